//! The fixture tables, one file per concern. Each exports `fixtures()`; `datapath.rs` runs them.
//! To add a forwarding method, add a table here and a test in `datapath.rs`.

pub mod conns;
pub mod decap;
pub mod dr;
pub mod frags;
pub mod ipv6;
pub mod ipvs_parity;
pub mod locality;
pub mod nat;
pub mod parse;
pub mod relay;
pub mod sched;
pub mod sched_counts;
pub mod stats;
pub mod tun;
pub mod tun_encap;
