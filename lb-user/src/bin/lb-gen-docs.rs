//! `lb-gen-docs ROOT`: writes lbd's and lbadm's man pages and shell completions under ROOT as
//! a package lays them out (`usr/share/man/man8`, ...). Run by `cargo xtask dist`; not
//! installed.

use std::{path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(root), None) = (args.next(), args.next()) else {
        eprintln!("usage: lb-gen-docs ROOT");
        return ExitCode::from(2);
    };
    match lb_user::cli::docs::write_tree(&PathBuf::from(root)) {
        Ok(files) => {
            for file in files {
                println!("{}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lb-gen-docs: {e}");
            ExitCode::FAILURE
        }
    }
}
