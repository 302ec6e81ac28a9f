//! Builds the XDP program (`lb-ebpf`) for the BPF target with the nightly toolchain and embeds
//! it: `cargo build -p lb-user` yields binaries that carry their data path.
//!
//! Why not aya-build: it fixes the rustflags, and the data path needs BPF ISA v3
//! (`-C target-cpu=v3`, kernel >= 5.1; its atomic fetch-add needs >= 5.12) for the atomic
//! round-robin position. `AYA_BUILD_SKIP=1` skips the eBPF build (quick pure unit tests); the
//! embedded object is then empty and loading it fails with a clear message.
use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let object = out_dir.join("lb");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    if env::var_os("AYA_BUILD_SKIP").is_some_and(|v| v == "1" || v == "true") {
        println!("cargo:warning=AYA_BUILD_SKIP set: the eBPF object is not built");
        if !object.exists() {
            std::fs::write(&object, [])?;
        }
        return Ok(());
    }

    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .context("lb-user sits in the workspace")?;
    for dir in ["lb-ebpf", "lb-common"] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }

    // A target dir of its own, so this nested cargo never waits on the outer one's lock.
    let target_dir = out_dir.join("ebpf-target");
    // aya-ebpf reads the host architecture (for kprobe argument layouts) from this cfg.
    let arch = env::var("CARGO_CFG_TARGET_ARCH")?;
    let rustflags = [
        "-Cdebuginfo=2".to_owned(),
        "-Clink-arg=--btf".to_owned(),
        "-Ctarget-cpu=v3".to_owned(),
        // bpf-linker asks LLVM to keep memcpy's loads and stores in order by default, which
        // turns every memset and memmove (a struct zeroed or copied between map values) into a
        // call to compiler_builtins' byte-at-a-time loop: thousands of verifier steps each.
        // Without it LLVM expands them inline as word stores.
        "-Clink-arg=--disable-expand-memcpy-in-order".to_owned(),
        format!("--cfg=bpf_target_arch=\"{arch}\""),
    ]
    .join("\x1f");
    let mut cmd = Command::new("rustup");
    cmd.args([
        "run",
        "nightly",
        "cargo",
        "build",
        "--package",
        "lb-ebpf",
        "--bin",
        "lb",
    ])
    .args([
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
    ])
    .arg("--target-dir")
    .arg(&target_dir)
    .current_dir(workspace)
    .env("CARGO_ENCODED_RUSTFLAGS", rustflags);
    // The outer (stable) cargo's settings must not leak into the nightly build.
    for key in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO",
    ] {
        cmd.env_remove(key);
    }
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!(
            "building the eBPF program failed ({status}); `cargo xtask setup` installs the toolchain"
        );
    }
    copy(&target_dir.join("bpfel-unknown-none/release/lb"), &object)
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}
