//! What the testbed needs from the machine: root, the tools on PATH, and the binaries under
//! test.

use std::path::PathBuf;

use crate::cmd;

/// Programs the testbed and the end-to-end tests run.
pub const REQUIRED_TOOLS: &[&str] = &[
    "ip", "sysctl", "ethtool", "ping", "nginx", "curl", "wrk", "ab", "socat", "nft", "bpftool",
    "openssl", "dnsmasq", "md5sum",
];

/// Panics unless we run as root and every tool in [`REQUIRED_TOOLS`] is installed. Missing
/// tools are a failure, never a skip.
#[track_caller]
pub fn require_environment() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "the lb end-to-end tests create network namespaces and attach XDP programs: run them \
         as root (CI does, through `cargo xtask test`)"
    );
    let missing: Vec<&str> = REQUIRED_TOOLS
        .iter()
        .copied()
        .filter(|tool| !cmd::on_path(tool))
        .collect();
    assert!(
        missing.is_empty(),
        "missing tools: {}; run `cargo xtask setup` to install them",
        missing.join(", ")
    );
}

/// The directory holding `lbd` and `lbadm`: `$LB_BIN_DIR`, else `debug/` under
/// `$CARGO_TARGET_DIR` (as set when running, else when building this crate), else
/// `<workspace>/target/debug`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LB_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("lb-tests lives in the workspace")
        .to_owned();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO_TARGET_DIR").map(PathBuf::from))
        .map(|dir| {
            if dir.is_relative() {
                workspace.join(dir)
            } else {
                dir
            }
        })
        .unwrap_or_else(|| workspace.join("target"));
    target.join("debug")
}

/// The path of binary `name` (`lbd`, `lbadm`); panics with how to build it if it is missing.
#[track_caller]
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} not found: build it with `cargo build -p lb-user --bins` (or `cargo xtask build`), \
         or point LB_BIN_DIR at the directory holding lbd and lbadm",
        path.display()
    );
    path
}
