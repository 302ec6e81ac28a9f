//! `--only`: a run of some sections updates the report it is written over instead of
//! replacing it. The sections not run, and their summary lines, are carried over from the
//! existing report, and its header says which figures come from which run.
//!
//! Pure text work on reports this generator wrote: sections are found by their numbered
//! headings and summary lines by how the generator starts them ([`SECTIONS`]).

/// Each section's `--only` name, heading prefix and the start of its summary lines.
pub const SECTIONS: [(&str, &str, Option<&str>); 6] = [
    ("packet-cost", "## 1. ", Some("Per packet,")),
    ("http", "## 2. ", Some("HTTP with")),
    ("scaling", "## 3. ", Some("A new `wlc`")),
    ("control", "## 4. ", Some("`lbadm -R`")),
    ("live", "## 5. ", None),
    ("flood", "## 6. ", Some("A SYN flood")),
];

const SUMMARY: &str = "## Summary";

/// A report cut at its level-2 headings: the text before the first, then each heading's block
/// (heading line included).
fn blocks(text: &str) -> (String, Vec<String>) {
    let mut head = String::new();
    let mut blocks: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with("## ") {
            blocks.push(String::new());
        }
        match blocks.last_mut() {
            Some(block) => block.push_str(line),
            None => head.push_str(line),
        }
    }
    (head, blocks)
}

/// The value of a `| name | value |` row of the header table.
fn header_row<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        l.strip_prefix(&format!("| {name} | "))
            .and_then(|rest| rest.strip_suffix(" |"))
    })
}

/// The section a summary line belongs to.
fn section_of_line(line: &str) -> Option<&'static str> {
    let text = line.strip_prefix("- ")?;
    SECTIONS
        .iter()
        .find(|(_, _, start)| start.is_some_and(|s| text.starts_with(s)))
        .map(|(name, _, _)| *name)
}

/// The section a block belongs to.
fn section_of_block(block: &str) -> Option<&'static str> {
    SECTIONS
        .iter()
        .find(|(_, heading, _)| block.starts_with(heading))
        .map(|(name, _, _)| *name)
}

/// `new`, written by a run of the sections in `run`, with every other section (and its
/// summary lines) taken from `old`, the report it replaces.
pub fn carry_over(old: &str, new: &str, run: &[String]) -> String {
    let ran = |name: &str| run.iter().any(|r| r == name);
    let (old_head, old_blocks) = blocks(old);
    let (new_head, new_blocks) = blocks(new);
    let kept: Vec<&str> = SECTIONS
        .iter()
        .map(|(name, _, _)| *name)
        .filter(|name| !ran(name))
        .filter(|name| old_blocks.iter().any(|b| section_of_block(b) == Some(name)))
        .collect();

    let mut out = String::new();
    for line in new_head.split_inclusive('\n') {
        out.push_str(line);
        if line.starts_with("| measured | ") && !kept.is_empty() {
            out.push_str(&format!(
                "| sections | {} measured in this run; {} carried over from the run measured {} \
                 ({}) |\n",
                run.join(", "),
                kept.join(", "),
                header_row(&old_head, "measured").unwrap_or("earlier"),
                header_row(&old_head, "lb").unwrap_or("commit unknown"),
            ));
        }
    }

    // Summary lines: this run's for its sections, the old report's for the others, in the
    // sections' order.
    let summary_lines = |blocks: &[String]| -> Vec<String> {
        blocks
            .iter()
            .find(|b| b.starts_with(SUMMARY))
            .map(|b| {
                b.lines()
                    .filter(|l| l.starts_with("- "))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old_lines, new_lines) = (summary_lines(&old_blocks), summary_lines(&new_blocks));
    let mut summary: Vec<String> = Vec::new();
    for (name, _, _) in SECTIONS {
        let from = if ran(name) { &new_lines } else { &old_lines };
        summary.extend(
            from.iter()
                .filter(|l| section_of_line(l) == Some(name))
                .cloned(),
        );
    }
    summary.extend(
        new_lines
            .iter()
            .filter(|l| section_of_line(l).is_none())
            .cloned(),
    );
    if !summary.is_empty() {
        out.push_str(SUMMARY);
        out.push_str("\n\n");
        for line in &summary {
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }

    for block in new_blocks.iter().filter(|b| !b.starts_with(SUMMARY)) {
        let carried = section_of_block(block)
            .filter(|name| !ran(name))
            .and_then(|name| {
                old_blocks
                    .iter()
                    .find(|b| section_of_block(b) == Some(name))
            });
        out.push_str(carried.unwrap_or(block));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "# lb benchmarks\n\n| | |\n| --- | --- |\n| measured | 2026-01-01 \
                       |\n| lb | commit aaa |\n\nIntro.\n\n## Summary\n\n- Per packet, DR: 1 \
                       ns.\n- HTTP with a new connection: 80%.\n- `lbadm -R` of 10 services \
                       takes 9.0 s.\n\n## 1. Per-packet cost\n\nold packets\n\n## 4. Control \
                       plane\n\nold control\n\n## 5. Packet rate\n\nold live\n";

    const NEW: &str = "# lb benchmarks\n\n| | |\n| --- | --- |\n| measured | 2026-02-02 \
                       |\n| lb | commit bbb |\n\nIntro.\n\n## Summary\n\n- `lbadm -R` of 10 \
                       services takes 0.1 s.\n\n## 1. Per-packet cost\n\n*Skipped: not \
                       selected with --only.*\n\n## 4. Control plane\n\nnew control\n\n## 5. \
                       Packet rate\n\n*Skipped: not selected with --only.*\n\n## Problems\n\n\
                       none\n";

    #[test]
    fn sections_not_run_come_from_the_old_report() {
        let merged = carry_over(OLD, NEW, &["control".to_owned()]);
        assert_eq!(
            merged,
            "# lb benchmarks\n\n| | |\n| --- | --- |\n| measured | 2026-02-02 |\n| sections | \
             control measured in this run; packet-cost, live carried over from the run \
             measured 2026-01-01 (commit aaa) |\n| lb | commit bbb |\n\nIntro.\n\n## \
             Summary\n\n- Per packet, DR: 1 ns.\n- HTTP with a new connection: 80%.\n- `lbadm -R` \
             of 10 services takes 0.1 s.\n\n\
             ## 1. Per-packet cost\n\nold packets\n\n## 4. Control plane\n\nnew control\n\n\
             ## 5. Packet rate\n\nold live\n## Problems\n\nnone\n"
        );
    }

    #[test]
    fn a_section_missing_from_the_old_report_stays_as_this_run_wrote_it() {
        let merged = carry_over(
            "# lb benchmarks\n\nnothing yet\n",
            NEW,
            &["control".to_owned()],
        );
        assert!(merged.contains("*Skipped: not selected with --only.*"));
        assert!(!merged.contains("| sections |"));
        assert!(merged.contains("new control"));
    }
}
