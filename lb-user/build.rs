//! Builds the XDP program (`lb-ebpf`) for the BPF target with the nightly toolchain, so that
//! `cargo build -p lb-user` yields binaries with the object embedded.
use std::path::Path;

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let workspace = Path::new(&manifest_dir).parent().expect("lb-user sits in the workspace");
    let ebpf_dir = workspace.join("lb-ebpf");
    // aya-build watches the eBPF crate itself; the shared types live next door.
    println!("cargo:rerun-if-changed={}", workspace.join("lb-common").display());
    let ebpf_dir = ebpf_dir.to_str().expect("workspace path is UTF-8");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "lb-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
