//! The machine a run measured: figures only mean something next to it.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::cmd;

#[derive(Clone, Debug)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    pub memory: String,
    /// When the run started, UTC.
    pub date: String,
    /// The commit measured (with `+changes` when the work tree differs from it).
    pub commit: String,
    pub tools: Vec<(String, String)>,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
            .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Machine {
            cpu_model,
            cores,
            kernel,
            memory,
            date: utc_date(secs),
            commit: commit(),
            tools: tool_versions(),
        }
    }
}

fn commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let head = cmd::try_run(&["git", "-C", dir, "rev-parse", "--short=12", "HEAD"], None);
    if !head.success() {
        return "unknown".into();
    }
    let dirty = cmd::try_run(
        &[
            "git",
            "-C",
            dir,
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
        None,
    );
    let changes = if dirty.success() && !dirty.stdout.trim().is_empty() {
        " + uncommitted changes"
    } else {
        ""
    };
    format!("{}{changes}", head.stdout.trim())
}

fn tool_versions() -> Vec<(String, String)> {
    let version = |argv: &[&str]| -> String {
        let ran = cmd::try_run(argv, None);
        version_in(&format!("{}\n{}", ran.stdout, ran.stderr)).unwrap_or_default()
    };
    vec![
        ("nginx".into(), version(&["nginx", "-v"])),
        ("HAProxy".into(), version(&["haproxy", "-v"])),
        ("nftables".into(), version(&["nft", "--version"])),
        ("wrk".into(), version(&["wrk", "--version"])),
        ("ab".into(), version(&["ab", "-V"])),
    ]
}

/// The first version number in a program's `--version` text: `nginx/1.22.1` → `1.22.1`,
/// `v1.0.6` → `1.0.6`.
pub fn version_in(text: &str) -> Option<String> {
    text.split_whitespace().find_map(|word| {
        let word = word.rsplit('/').next()?.trim_start_matches('v');
        let starts_with_digit = word.chars().next()?.is_ascii_digit();
        (starts_with_digit && word.contains('.')).then(|| word.trim_end_matches(',').to_owned())
    })
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the epoch (Howard Hinnant's civil_from_days).
pub fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_the_epoch() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13 UTC");
    }

    #[test]
    fn versions_from_version_texts() {
        assert_eq!(version_in("nginx version: nginx/1.22.1").unwrap(), "1.22.1");
        assert_eq!(
            version_in("nftables v1.0.6 (Lester Gooch #5)").unwrap(),
            "1.0.6"
        );
        assert_eq!(
            version_in("wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012").unwrap(),
            "4.1.0-3+b2"
        );
        assert_eq!(
            version_in("This is ApacheBench, Version 2.3 <$Revision$>").unwrap(),
            "2.3"
        );
        assert_eq!(version_in("no version here"), None);
    }
}
