//! The benchmarks' CI smoke test: `bench --quick` runs every section against the binaries
//! under test and produces numbers. How fast anything is is never checked here; the bench
//! binary itself fails when a section could not run or gave no figures.

use std::process::Command;

use lb_tests::tools;

#[test]
fn quick_benchmarks_run_every_section_and_report_numbers() {
    let dir = std::env::temp_dir().join(format!("lb-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the report directory");
    let out = dir.join("bench.md");
    let ran = Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("--quick")
        .arg("--out")
        .arg(&out)
        .env("LB_BIN_DIR", tools::bin_dir())
        .output()
        .expect("starting the bench binary");
    let report = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        ran.status.success(),
        "bench --quick failed ({}):\n{}\n--- report ---\n{report}",
        ran.status,
        String::from_utf8_lossy(&ran.stderr)
    );
    for heading in [
        "## 1. Per-packet cost",
        "## 2. HTTP through the director",
        "## 3. Scaling",
        "## 4. Control plane",
        "## 5. Packet rate",
        "## 6. A SYN flood",
    ] {
        let section = section_text(&report, heading)
            .unwrap_or_else(|| panic!("no section {heading:?} in the report:\n{report}"));
        assert!(
            section.lines().any(is_table_row_with_a_number),
            "section {heading:?} has no table row with a figure:\n{section}"
        );
    }
    // Every plot the report links to was written.
    for line in report.lines().filter(|l| l.contains(".svg)")) {
        let name = line
            .rsplit_once('(')
            .and_then(|(_, rest)| rest.split_once(".svg)"))
            .map(|(name, _)| format!("{name}.svg"))
            .expect("a markdown image link");
        assert!(dir.join(&name).is_file(), "plot {name} missing");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The text from `heading` up to the next section of the same level.
fn section_text<'a>(report: &'a str, heading: &str) -> Option<&'a str> {
    let start = report.find(heading)?;
    let rest = &report[start + heading.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    Some(&rest[..end])
}

/// A markdown table row (not the separator) with at least one cell that holds a number.
fn is_table_row_with_a_number(line: &str) -> bool {
    let line = line.trim();
    line.starts_with('|')
        && !line.starts_with("| ---")
        && line.split('|').skip(2).any(|cell| {
            cell.trim()
                .trim_end_matches(|c: char| c.is_alphabetic() || c == '%' || c == '/' || c == ' ')
                .trim_start_matches(['~', '×', 'x'])
                .replace(',', "")
                .parse::<f64>()
                .is_ok()
        })
}
