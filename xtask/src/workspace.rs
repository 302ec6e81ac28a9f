//! Where the workspace and its build output are, and running cargo inside it.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Context as _, Result, bail};

/// The package that holds the data-path fixtures and end-to-end tests.
pub const TESTS_PACKAGE: &str = "lb-tests";

pub struct Workspace {
    pub root: PathBuf,
    /// Cargo's target directory (honours `CARGO_TARGET_DIR` and `build.target-dir`).
    pub target_dir: PathBuf,
    /// Names of the workspace's default members (never the BPF-only eBPF crate).
    pub default_members: Vec<String>,
}

impl Workspace {
    /// Asks `cargo metadata` where things are.
    pub fn load() -> Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask sits inside the workspace")?
            .to_path_buf();
        let mut cmd = cargo(&root);
        cmd.args(["metadata", "--format-version", "1", "--no-deps"]);
        let out = output(&mut cmd)?;
        let meta: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("parsing `cargo metadata` output")?;
        let target_dir = meta["target_directory"]
            .as_str()
            .context("`cargo metadata` has no target_directory")?
            .into();
        let default_members = default_member_names(&meta)?;
        Ok(Self {
            root,
            target_dir,
            default_members,
        })
    }

    /// A `cargo` command run at the workspace root.
    pub fn cargo(&self) -> Command {
        cargo(&self.root)
    }

    /// Where the binaries of a profile land.
    pub fn bin_dir(&self, release: bool) -> PathBuf {
        self.target_dir
            .join(if release { "release" } else { "debug" })
    }

    /// Builds `lbd` and `lbadm`; lb-user's build script builds the eBPF object into them.
    pub fn build_user_space(&self, release: bool) -> Result<()> {
        step!(
            "building the eBPF object and user space (lbd, lbadm){}",
            profile_note(release)
        );
        let mut cmd = self.cargo();
        cmd.args(["build", "--package", "lb-user", "--bins"]);
        if release {
            cmd.arg("--release");
        }
        run_checked(&mut cmd)
    }

    /// Builds every default member (user space with the eBPF object, tests' binaries, xtask).
    pub fn build_all(&self, release: bool) -> Result<()> {
        step!(
            "building the eBPF object and all default members{}",
            profile_note(release)
        );
        let mut cmd = self.cargo();
        cmd.arg("build");
        if release {
            cmd.arg("--release");
        }
        run_checked(&mut cmd)?;
        step!("binaries are in {}", self.bin_dir(release).display());
        Ok(())
    }
}

fn profile_note(release: bool) -> &'static str {
    if release { " (release)" } else { "" }
}

/// A `cargo` command run in `dir`, with the cargo that runs xtask.
fn cargo(dir: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir);
    // A leftover AYA_BUILD_SKIP would build lbd with an empty eBPF object.
    cmd.env_remove("AYA_BUILD_SKIP");
    cmd
}

fn default_member_names(meta: &serde_json::Value) -> Result<Vec<String>> {
    let ids = meta["workspace_default_members"]
        .as_array()
        .context("`cargo metadata` has no workspace_default_members")?;
    let packages = meta["packages"]
        .as_array()
        .context("`cargo metadata` has no packages")?;
    ids.iter()
        .map(|id| {
            packages
                .iter()
                .find(|p| p["id"] == *id)
                .and_then(|p| p["name"].as_str())
                .map(str::to_owned)
                .with_context(|| format!("default member {id} is not among the packages"))
        })
        .collect()
}

/// The command line, for messages.
pub fn display(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program());
    // The toolchain's cargo (from $CARGO) is just `cargo` to the reader.
    let mut s = if program.file_name().is_some_and(|name| name == "cargo") {
        "cargo".to_owned()
    } else {
        program.to_string_lossy().into_owned()
    };
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` with inherited stdio and fails unless it succeeds.
pub fn run_checked(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("starting `{}`", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Runs `cmd`, capturing its output, and fails (showing stderr) unless it succeeds.
pub fn output(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("starting `{}`", display(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            display(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_members_are_named_from_their_ids() {
        let meta: serde_json::Value = serde_json::from_str(
            r#"{
                "packages": [
                    {"id": "path+file:///w/lb-ebpf#0.1.0", "name": "lb-ebpf"},
                    {"id": "path+file:///w/lb-user#0.1.0", "name": "lb-user"},
                    {"id": "path+file:///w/tests#lb-tests@0.1.0", "name": "lb-tests"}
                ],
                "workspace_default_members": [
                    "path+file:///w/lb-user#0.1.0",
                    "path+file:///w/tests#lb-tests@0.1.0"
                ]
            }"#,
        )
        .unwrap();
        assert_eq!(
            default_member_names(&meta).unwrap(),
            ["lb-user", "lb-tests"]
        );
    }

    #[test]
    fn command_lines_are_displayed_with_their_arguments() {
        let mut cmd = Command::new("/root/.rustup/toolchains/stable/bin/cargo");
        cmd.args(["test", "--package", "lb-tests"]);
        assert_eq!(display(&cmd), "cargo test --package lb-tests");
        let cmd = Command::new("/work/target/debug/lbd");
        assert_eq!(display(&cmd), "/work/target/debug/lbd");
    }
}
