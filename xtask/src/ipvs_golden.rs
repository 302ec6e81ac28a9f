//! `cargo xtask ipvs-golden`: records which real server the kernel's IPVS gives each of a
//! set of TCP flows (`sh`, `dh`, `mh` with their flags, `rr`, `wrr`, the connection-count
//! schedulers), as test data for the data-path fixture that compares lb's choices with them
//! (`tests/golden/ipvs-sched/`, see its README).
//!
//! As `ipvsadm-golden` does: Debian's `ipvsadm` unpacked into `target/ipvsadm-golden/`, and
//! Debian 12's 6.12 kernel booted with virtme-ng over the host's files. In the guest,
//! `record.py` builds a director namespace per case, sends the case's SYNs from a client
//! namespace, and prints each case's file after a `### CASE name` line.

use std::{ffi::OsString, fs, io::Read as _, path::Path, time::Duration};

use anyhow::{Result, bail};

use crate::{golden, vm, workspace::Workspace};

/// The recorder and its recordings, from the workspace root.
pub const DIR: &str = "tests/golden/ipvs-sched";
const SERIES: &str = "6.12";
/// Each case takes a minute or so under emulation.
const TIME_LIMIT: Duration = Duration::from_secs(40 * 60);

pub fn run(ws: &Workspace, cases: &[String]) -> Result<()> {
    let dir = ws.root.join(DIR);
    let work = ws.target_dir.join("ipvsadm-golden");
    fs::create_dir_all(&work)?;
    for package in ["ipvsadm", "libpopt0"] {
        golden::unpack(&work, package)?;
    }
    let root = work.join("root");
    let path = format!(
        "{}:/usr/sbin:/usr/bin:/sbin:/bin",
        root.join("sbin").display()
    );
    let series = vm::selected_series(Some(SERIES))?[0];
    let Some(kernel) = vm::Kernel::find(series)? else {
        bail!("no {SERIES} kernel in /boot (`cargo xtask setup` installs one)");
    };
    let vng = vm::require_vng()?;
    step!("recording IPVS's scheduling on {} (VM)", kernel.release);
    let mut args: Vec<OsString> = vec![dir.join("record.py").into_os_string()];
    args.extend(cases.iter().map(OsString::from));
    let cmd = vm::GuestCommand {
        dir: &ws.root,
        env: vec![
            ("PATH".to_owned(), path.into()),
            (
                "LD_LIBRARY_PATH".to_owned(),
                root.join("usr/lib/x86_64-linux-gnu").into_os_string(),
            ),
        ],
        program: Path::new("/usr/bin/python3"),
        args,
    };
    let mut guest = vm::Guest::start(&vng, &kernel, &cmd, TIME_LIMIT)?;
    let mut transcript = String::new();
    if let Some(mut stdout) = guest.stdout() {
        stdout.read_to_string(&mut transcript)?;
    }
    let exit = guest.wait()?;
    if exit.timed_out || !exit.status.success() {
        bail!("the VM failed ({}):\n{transcript}", exit.status);
    }
    let files = golden::split(&transcript)?;
    if files.is_empty() {
        bail!("no case recorded:\n{transcript}");
    }
    for (name, text) in files {
        let path = dir.join(format!("{name}.txt"));
        fs::write(&path, text)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
