//! The command lines of `lbd` and `lbadm` as clap definitions, for parsing (`lbd`) and for
//! what is generated from them: man pages and shell completions ([`docs`]), which
//! `cargo xtask dist` puts in the Debian package.

pub mod docs;
pub mod lbadm;
pub mod lbd;
