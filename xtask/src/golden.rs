//! `cargo xtask ipvsadm-golden`: records what the real ipvsadm prints, as test data for
//! lbadm (`tests/golden/ipvsadm/`, see its README).
//!
//! The host's kernel has no IPVS, but Debian 12's 6.12 kernel (the VM matrix's, installed by
//! setup) has `ip_vs`. So: `apt-get download` Debian's `ipvsadm` and the `libpopt0` it links
//! against into `target/ipvsadm-golden/` and unpack them there with `dpkg -x` (nothing is
//! installed on the host), write a shell script that runs every `NAME.cmds` sequence with that
//! ipvsadm, boot the 6.12 kernel with virtme-ng to run it (the guest sees the host's files),
//! and split the transcript it prints into `NAME.golden` files.

use std::{
    fs,
    io::Read as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{vm, workspace::Workspace};

/// Where the sequences and their recordings live, from the workspace root.
pub const GOLDEN_DIR: &str = "tests/golden/ipvsadm";
/// The kernel series with IPVS to record on.
const SERIES: &str = "6.12";
/// Booting under emulation and running a few hundred commands.
const TIME_LIMIT: Duration = Duration::from_secs(15 * 60);
/// Marks the start of a sequence's transcript in the guest's output.
pub(crate) const CASE: &str = "### CASE ";

/// One `NAME.cmds`: its commands, each with its standard input lines.
struct Case {
    name: String,
    commands: Vec<(Vec<String>, Vec<String>)>,
}

fn read_cases(dir: &Path) -> Result<Vec<Case>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cmds"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text =
                fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Ok(Case {
                name: path.file_stem().unwrap().to_string_lossy().into_owned(),
                commands: parse_cmds(&text),
            })
        })
        .collect()
}

/// The commands of a `.cmds` text (the format of the README).
fn parse_cmds(text: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let mut commands: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(input) = line.strip_prefix("< ") {
            if let Some(last) = commands.last_mut() {
                last.1.push(input.to_owned());
            }
        } else if !line.trim().is_empty() && !line.starts_with('#') {
            let words = line.split_whitespace().map(str::to_owned).collect();
            commands.push((words, Vec::new()));
        }
    }
    commands
}

/// `s` as one word for `sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script the guest runs: each sequence from a clean table, each command's transcript.
fn script(cases: &[Case], ipvsadm: &Path) -> String {
    // Run as `ipvsadm` (its messages name argv[0]).
    let dir = ipvsadm.parent().unwrap_or(Path::new("/"));
    let mut s = format!(
        "modprobe ip_vs || exit 1\n\
         PATH={}:$PATH\n\
         out=/tmp/ipvsadm.out; err=/tmp/ipvsadm.err\n\
         show() {{ awk -v p=\"$1\" '{{ print p $0 }}' \"$2\"; }}\n",
        quote(&dir.to_string_lossy())
    );
    let ipvsadm = "ipvsadm";
    for case in cases {
        s += &format!("echo {}\n", quote(&format!("{CASE}{}", case.name)));
        s +=
            &format!("{ipvsadm} -C >/dev/null 2>&1; {ipvsadm} --set 900 120 300 >/dev/null 2>&1\n");
        for (args, input) in &case.commands {
            s += &format!("echo {}\n", quote(&format!("$ {}", args.join(" "))));
            let words: Vec<String> = args.iter().map(|a| quote(a)).collect();
            let run = format!("{ipvsadm} {} >$out 2>$err", words.join(" "));
            if input.is_empty() {
                s += &format!("{run} </dev/null\n");
            } else {
                for line in input {
                    s += &format!("echo {}\n", quote(&format!("< {line}")));
                }
                let lines: Vec<String> = input.iter().map(|l| quote(l)).collect();
                s += &format!("printf '%s\\n' {} | {run}\n", lines.join(" "));
            }
            s += "rc=$?; show '> ' $out; show '! ' $err; echo \"= $rc\"\n";
        }
    }
    s += "echo '### END'\n";
    s
}

/// Downloads and unpacks `package` into `dir` (kept: a second run reuses it).
pub(crate) fn unpack(dir: &Path, package: &str) -> Result<()> {
    let have = fs::read_dir(dir)?.filter_map(|e| e.ok()).any(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with(&format!("{package}_"))
    });
    if !have {
        crate::workspace::run_checked(
            Command::new("apt-get")
                .args(["download", package])
                .current_dir(dir),
        )?;
    }
    let deb = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
        })
        .with_context(|| format!("no {package} package downloaded in {}", dir.display()))?;
    crate::workspace::run_checked(
        Command::new("dpkg")
            .arg("-x")
            .arg(&deb)
            .arg(dir.join("root")),
    )
}

/// Debian's ipvsadm and the directory of the libpopt it needs (`LD_LIBRARY_PATH`), unpacked
/// under the target directory (downloaded once).
pub(crate) fn ipvsadm(ws: &Workspace) -> Result<(PathBuf, PathBuf)> {
    let work = ws.target_dir.join("ipvsadm-golden");
    fs::create_dir_all(&work)?;
    for package in ["ipvsadm", "libpopt0"] {
        unpack(&work, package)?;
    }
    Ok((
        work.join("root/sbin/ipvsadm"),
        work.join("root/usr/lib/x86_64-linux-gnu"),
    ))
}

pub fn run(ws: &Workspace) -> Result<()> {
    let golden = ws.root.join(GOLDEN_DIR);
    let cases = read_cases(&golden)?;
    let (ipvsadm, libs) = ipvsadm(ws)?;
    let work = ws.target_dir.join("ipvsadm-golden");
    let script_path = work.join("record.sh");
    fs::write(&script_path, script(&cases, &ipvsadm))?;

    let series = vm::selected_series(Some(SERIES))?[0];
    let Some(kernel) = vm::Kernel::find(series)? else {
        bail!("no {SERIES} kernel in /boot (`cargo xtask setup` installs one)");
    };
    let vng = vm::require_vng()?;
    step!(
        "recording {} sequences with {} on {} (VM)",
        cases.len(),
        ipvsadm.display(),
        kernel.release
    );
    let cmd = vm::GuestCommand {
        dir: &ws.root,
        env: vec![("LD_LIBRARY_PATH".to_owned(), libs.into_os_string())],
        program: Path::new("/bin/sh"),
        args: vec![script_path.into_os_string()],
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
    let files = split(&transcript)?;
    for case in &cases {
        let Some(text) = files.iter().find(|(n, _)| *n == case.name).map(|f| &f.1) else {
            bail!(
                "no transcript of {} in the VM's output:\n{transcript}",
                case.name
            );
        };
        let path = golden.join(format!("{}.golden", case.name));
        fs::write(&path, text)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The transcript of each sequence, by name; requires the end marker (a complete run).
pub(crate) fn split(transcript: &str) -> Result<Vec<(String, String)>> {
    let mut files: Vec<(String, String)> = Vec::new();
    let mut ended = false;
    for line in transcript.lines() {
        if let Some(name) = line.strip_prefix(CASE) {
            files.push((name.to_owned(), String::new()));
        } else if line == "### END" {
            ended = true;
            break;
        } else if let Some((_, text)) = files.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    if !ended {
        bail!("the recording did not finish:\n{transcript}");
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmds_files_read_commands_and_their_input() {
        let cmds = parse_cmds("# c\n-A -t 1.2.3.4:80 -s rr\n\n-R\n< -C\n< -A -t x\n-Ln\n");
        assert_eq!(
            cmds,
            [
                (
                    vec![
                        "-A".into(),
                        "-t".into(),
                        "1.2.3.4:80".into(),
                        "-s".into(),
                        "rr".into()
                    ],
                    vec![]
                ),
                (vec!["-R".into()], vec!["-C".into(), "-A -t x".into()]),
                (vec!["-Ln".into()], vec![]),
            ]
        );
    }

    #[test]
    fn transcripts_split_by_case() {
        let out = "boot noise\n### CASE a\n$ -Ln\n= 0\n### CASE b\n$ -C\n= 0\n### END\n";
        assert_eq!(
            split(out).unwrap(),
            [
                ("a".to_owned(), "$ -Ln\n= 0\n".to_owned()),
                ("b".to_owned(), "$ -C\n= 0\n".to_owned())
            ]
        );
        assert!(split("### CASE a\n").is_err());
    }

    #[test]
    fn every_checked_in_sequence_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(GOLDEN_DIR);
        let cases = read_cases(&dir).unwrap();
        assert!(cases.len() >= 5);
        let s = script(&cases, Path::new("/x/ipvsadm"));
        assert!(s.contains("PATH='/x':$PATH\n"));
        assert!(s.contains("\nipvsadm '-Ln' >$out 2>$err </dev/null\n"));
    }
}
