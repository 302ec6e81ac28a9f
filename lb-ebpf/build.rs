//! The eBPF object is linked by `bpf-linker`, which cargo does not know about. Rebuild when the
//! linker binary changes so an upgraded linker never leaves a stale object behind.
fn main() {
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(_) => panic!("bpf-linker is not on PATH: `cargo xtask setup` installs it"),
    }
}
