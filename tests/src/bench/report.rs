//! The report: `docs/bench.md` with tables, and SVG plots next to it.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};

use super::{
    Outcome, Results, Section,
    control::Control,
    datapath::{self, Measured},
    http_load::{Config, Http, LoadKind, Sample},
    live::Live,
    packet_cost::PacketCost,
    scaling::{Experiment, Scaling},
    stats::{Summary, bytes, fixed, thousands},
    svg::{self, Bar, Series},
};

/// Writes the report and its plots; returns the problems found (failed sections and single
/// measurements), which make the run fail.
pub fn write(results: &Results) -> Result<Vec<String>> {
    let out = &results.opts.out;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut doc = Doc {
        text: String::new(),
        problems: Vec::new(),
        dir: dir.to_owned(),
        files: Vec::new(),
    };
    doc.header(results);
    doc.summary(results);
    doc.packet_cost(&results.packet_cost);
    doc.http(&results.http);
    doc.scaling(&results.scaling);
    doc.control(&results.control);
    doc.live(&results.live, results.packet_cost.done());
    doc.flood(&results.flood);
    doc.problems_section();
    // A run of some sections updates the report it is written over.
    let text = match std::fs::read_to_string(out) {
        Ok(old) if !results.opts.only.is_empty() => {
            super::merge::carry_over(&old, &doc.text, &results.opts.only)
        }
        _ => doc.text,
    };
    std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("==> bench: wrote {}", out.display());
    for file in &doc.files {
        eprintln!("    and {}", file);
    }
    Ok(doc.problems)
}

struct Doc {
    text: String,
    problems: Vec<String>,
    dir: std::path::PathBuf,
    files: Vec<String>,
}

macro_rules! w {
    ($doc:expr, $($arg:tt)*) => {{
        let _ = writeln!($doc.text, $($arg)*);
    }};
}

/// A Markdown table; a column is right-aligned unless it holds words.
fn table(doc: &mut Doc, header: &[&str], rows: &[Vec<String>]) {
    w!(doc, "| {} |", header.join(" | "));
    let words = |i: usize| {
        i == 0
            || rows.iter().any(|r| {
                r.get(i)
                    .and_then(|c| c.chars().next())
                    .is_some_and(|c| c.is_alphabetic() || c == '`')
            })
    };
    let aligns: String = (0..header.len())
        .map(|i| if words(i) { " --- |" } else { " ---: |" })
        .collect();
    w!(doc, "|{aligns}");
    for row in rows {
        w!(doc, "| {} |", row.join(" | "));
    }
    w!(doc, "");
}

fn opt(s: Option<Summary>, digits: usize) -> String {
    s.map_or_else(|| "–".into(), |s| s.show(digits))
}

/// A ratio as `0.93×`, with its spread.
fn ratio(s: Option<Summary>) -> String {
    s.map_or_else(
        || "–".into(),
        |s| {
            format!(
                "{}× ({}–{})",
                fixed(s.median, 2),
                fixed(s.min, 2),
                fixed(s.max, 2)
            )
        },
    )
}

impl Doc {
    fn svg(&mut self, name: &str, content: String) -> String {
        let path = self.dir.join(name);
        match std::fs::write(&path, content) {
            Ok(()) => self.files.push(path.display().to_string()),
            Err(e) => self
                .problems
                .push(format!("writing {}: {e}", path.display())),
        }
        name.to_owned()
    }

    fn not_measured<T>(&mut self, name: &str, section: &Section<T>) -> bool {
        match &section.outcome {
            Outcome::Done(_) => false,
            Outcome::Failed(e) => {
                w!(
                    self,
                    "**Not measured: the section failed.**\n\n```text\n{}\n```\n",
                    e.trim()
                );
                self.problems.push(format!("{name}: {}", first_line(e)));
                true
            }
            Outcome::Skipped(why) => {
                w!(self, "*Skipped: {why}.*\n");
                true
            }
        }
    }

    fn header(&mut self, r: &Results) {
        let m = &r.machine;
        w!(self, "# lb benchmarks\n");
        w!(
            self,
            "<!-- Written by `cargo xtask bench` (tests/src/bench/). Edit the generator, not \
             this file. -->\n"
        );
        let mode = if r.opts.quick {
            "**quick** (the CI smoke run: short runs that show every benchmark works; the \
             figures are rough)"
        } else {
            "full"
        };
        w!(self, "| | |\n| --- | --- |");
        w!(self, "| measured | {} |", m.date);
        w!(
            self,
            "| machine | {}, {} cores, {} |",
            m.cpu_model,
            m.cores,
            m.memory
        );
        w!(self, "| kernel | Linux {} |", m.kernel);
        w!(self, "| lb | commit {} |", m.commit);
        w!(self, "| mode | {mode} |");
        w!(self, "| run time | {} |", minutes(r.took.as_secs_f64()));
        w!(
            self,
            "| load average | {} at the start, {} at the end |",
            r.load_before,
            r.load_after
        );
        let tools: Vec<String> = m
            .tools
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, v)| format!("{name} {v}"))
            .collect();
        w!(self, "| peers | {} |\n", tools.join("; "));
        w!(
            self,
            "Every figure is **median (min–max)** over repeated measurements. Ratios are \
             computed round by round from measurements taken side by side in this run, never \
             across runs or machines. On one machine the load generator, the director and the \
             real servers share the cores, and anything else running (see the load average) \
             shows up in every figure: compare within this file. Speed is recorded here and \
             never asserted; tests check behaviour.\n"
        );
        w!(self, "Reproduce (as root, from the repository):\n");
        w!(self, "```sh");
        w!(
            self,
            "cargo xtask bench            # everything, written here (docs/bench.md)"
        );
        w!(
            self,
            "cargo xtask bench --quick    # a short version of everything (CI smoke test)"
        );
        w!(
            self,
            "cargo xtask bench -- --only packet-cost   # sections: packet-cost, http, scaling, \
             control, live, flood"
        );
        w!(self, "```\n");
    }

    fn summary(&mut self, r: &Results) {
        let mut lines = Vec::new();
        if let Some(pc) = r.packet_cost.done()
            && let Some(floor) = pc.get("floor")
        {
            for key in ["dr-est", "dr6-est", "dr-new", "nat-est", "nat6-est"] {
                if let Some(m) = pc.get(key)
                    && m.error.is_none()
                {
                    let (ratio, extra) = ratio_extra(pc, m);
                    let what = strip_md(&m.label)
                        .replacen("lb ", "", 1)
                        .replacen(": ", ", ", 1);
                    lines.push(format!(
                        "Per packet, {what}: {} ns, {}× the floor ({} ns above it).",
                        opt(m.summary(), 0).split(' ').next().unwrap_or("–"),
                        ratio.map_or("–".into(), |s| fixed(s.median, 1)),
                        extra.map_or("–".into(), |s| fixed(s.median, 0)),
                    ));
                }
            }
            let _ = floor;
        }
        if let Some(h) = r.http.done() {
            let mut parts = Vec::new();
            for c in [Config::LbDr, Config::NftDr, Config::Haproxy] {
                if let Some(x) = http_ratio(h, c, LoadKind::WrkClose) {
                    parts.push(format!("{} {}", c.short(), percent(x.median)));
                }
            }
            if !parts.is_empty() {
                lines.push(format!(
                    "HTTP with a new connection per request (wrk), requests/s as a share of \
                     going straight to one real server: {}.",
                    parts.join(", ")
                ));
            }
        }
        if let Some(sc) = r.scaling.done() {
            let series = |e: &Experiment, name: &str| -> Vec<(u64, f64)> {
                e.points
                    .iter()
                    .filter(|p| p.series == name)
                    .filter_map(|p| p.measured.summary().map(|s| (p.x, s.median)))
                    .collect()
            };
            let wlc = series(&sc.reals, "wlc new connection");
            if let (Some(first), Some(last)) = (wlc.first(), wlc.last())
                && wlc.len() > 1
            {
                lines.push(format!(
                    "A new `wlc` connection costs {} ns with {} real servers and {} ns with {} \
                     (`wrr` stays flat); services and connection-table fill hardly move the \
                     per-packet cost.",
                    fixed(first.1, 0),
                    first.0,
                    fixed(last.1, 0),
                    thousands(last.0)
                ));
            }
        }
        if let Some(c) = r.control.done()
            && let Some(big) = c
                .restores
                .iter()
                .filter(|x| x.label.contains("answer ARP") && !x.label.contains("nobody"))
                .max_by_key(|x| x.services)
            && let Some(s) = Summary::of(&big.warm).or(big.cold.and_then(|c| Summary::of(&[c])))
        {
            lines.push(format!(
                "`lbadm -R` of {} services × {} real servers takes {} s.",
                thousands(big.services as u64),
                big.reals_per_service,
                fixed(s.median, 1)
            ));
        }
        if let Some(f) = r.flood.done()
            && let Some(last) = f.rounds.last()
        {
            lines.push(format!(
                "A SYN flood of {}x the half-open table ({} spoofed SYNs): {} of {} established \
                 connections kept, {} moved, {} lost; {} ns per flood SYN.",
                fixed(last.times_table, 0),
                thousands(last.syns),
                last.kept,
                f.established,
                last.moved,
                last.lost,
                fixed(last.ns_per_syn, 0)
            ));
        }
        if lines.is_empty() {
            return;
        }
        w!(self, "## Summary\n");
        for l in lines {
            w!(self, "- {l}");
        }
        w!(self, "");
    }

    fn packet_cost(&mut self, section: &Section<PacketCost>) {
        w!(self, "## 1. Per-packet cost (BPF_PROG_TEST_RUN)\n");
        if self.not_measured("per-packet cost", section) {
            return;
        }
        let pc = section.done().expect("done");
        w!(
            self,
            "lb's XDP object is loaded as lbd loads it (default map sizes) in a network \
             namespace of its own with a director's interfaces, routes and neighbours (NAT asks \
             the kernel's FIB). Each path runs {} times per system call ({} rounds, all paths \
             interleaved){}; ns/packet is the calling thread's CPU time over the repeats, and \
             the kernel's own whole-nanosecond average is shown as a cross-check. Every run is \
             checked: the verdict, and lb's own event counters grown by exactly the repeat \
             count.\n",
            thousands(u64::from(pc.repeat)),
            pc.rounds,
            pc.cpu
                .map_or(String::new(), |c| format!(", pinned to CPU {c}"))
        );
        w!(
            self,
            "**The floor** is the least a load balancer can do in XDP: swap the MAC addresses \
             and send the frame back (`XDP_TX`), hand-assembled. The ratio is each path over \
             the floor, round by round.\n"
        );
        let Some(floor) = pc.get("floor") else {
            w!(self, "*The floor was not measured.*\n");
            return;
        };
        let mut rows = Vec::new();
        let mut bars = Vec::new();
        for m in &pc.measured {
            if m.key.starts_with("floor-w") {
                continue;
            }
            if let Some(e) = &m.error {
                rows.push(vec![
                    m.label.clone(),
                    format!("**failed**: {}", first_line(e)),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
                self.problems.push(format!(
                    "per-packet cost, {}: {}",
                    strip_md(&m.label),
                    first_line(e)
                ));
                continue;
            }
            let (r, extra) = ratio_extra(pc, m);
            let wrapped = m
                .baseline
                .as_deref()
                .is_some_and(|b| b.starts_with("floor-w"));
            rows.push(vec![
                format!("{}{}", m.label, if wrapped { " †" } else { "" }),
                opt(m.summary(), 1),
                opt(m.kernel_summary(), 0),
                if m.key == "floor" {
                    "1×".into()
                } else {
                    ratio(r)
                },
                extra.map_or("–".into(), |s| s.show(1)),
            ]);
            if let Some(s) = m.summary() {
                bars.push(Bar {
                    label: strip_md(&m.label),
                    value: s,
                    highlight: m.key == "floor" || m.key == "pass",
                });
            }
        }
        table(
            self,
            &[
                "path",
                "ns/packet",
                "kernel's figure (ns)",
                "ratio to floor",
                "above floor (ns)",
            ],
            &rows,
        );
        let wrappers: Vec<String> = pc
            .measured
            .iter()
            .filter(|m| m.key.starts_with("floor-w"))
            .map(|m| format!("{} ns ({})", opt(m.summary(), 1), m.label))
            .collect();
        w!(
            self,
            "† Run behind a restore wrapper: BPF_PROG_TEST_RUN runs the program again on the \
             buffer it has just changed, and every path that forwards changes it (DR takes one \
             off the TTL; encapsulation, NAT and decapsulation more), so from the second run on \
             it would measure some other path. A hand-assembled wrapper puts the frame back \
             (length and bytes) and tail-calls the program; the same wrapper in front of the \
             floor costs {}. For these paths \"above floor\" is the cost above the wrapped \
             floor, and the ratio is (floor + that) / floor.\n",
            wrappers.join(", ")
        );
        w!(
            self,
            "A *new connection* is a SYN from another client every run: the new-flow wrapper \
             (the restore wrapper that also writes a counter into the source address) runs in \
             front of it and of its floor, so the connection table fills up and then evicts, \
             as under load. *Established* is an ACK on an entry opened by a SYN just before.\n"
        );
        w!(
            self,
            "The data path's programs on this kernel: size after verification, and the \
             instructions the verifier processed (its limit is 1,000,000; lb's budget, \
             enforced by the `every_program_verifies_within_budget` fixture on every kernel \
             of the test matrix, is 1/8 of it):\n"
        );
        let rows: Vec<Vec<String>> = pc
            .programs
            .iter()
            .map(|p| {
                vec![
                    format!("`{}`", p.name),
                    p.insns.map_or("–".into(), |n| thousands(u64::from(n))),
                    thousands(u64::from(p.verified)),
                    format!("{:.1}%", f64::from(p.verified) / 1_000_000.0 * 100.0),
                ]
            })
            .collect();
        table(
            self,
            &[
                "program",
                "BPF instructions",
                "verified instructions",
                "of the limit",
            ],
            &rows,
        );
        let name = self.svg(
            "bench-packet-cost.svg",
            svg::bar_chart(
                "ns per packet (BPF_PROG_TEST_RUN), median with min–max",
                "ns per packet",
                &bars,
                floor.summary().map(|s| (s.median, "floor")),
            ),
        );
        w!(self, "![ns per packet by path]({name})\n");
        w!(
            self,
            "Memory of every map at lbd's default sizes (the kernel's `memlock` figure):\n"
        );
        let mut rows = Vec::new();
        let mut total = 0;
        for m in &pc.memory {
            total += m.memlock;
            rows.push(vec![
                format!("`{}`", m.name),
                m.kind.clone(),
                format!("{} + {}", m.key_size, m.value_size),
                thousands(u64::from(m.max_entries)),
                bytes(m.memlock),
            ]);
        }
        rows.push(vec![
            "**total**".into(),
            String::new(),
            String::new(),
            String::new(),
            format!("**{}**", bytes(total)),
        ]);
        table(
            self,
            &[
                "map",
                "type",
                "key + value (bytes)",
                "max entries",
                "memory",
            ],
            &rows,
        );
    }

    fn http(&mut self, section: &Section<Http>) {
        w!(self, "## 2. HTTP through the director\n");
        if self.not_measured("HTTP", section) {
            return;
        }
        let h = section.done().expect("done");
        let s = &h.settings;
        w!(
            self,
            "The testbed's network namespaces: a client, a director and {} nginx real servers \
             on veth pairs and a bridge (lb and the nftables DR rule on the director's NIC; \
             XDP in native mode, with an XDP_PASS program on the switch side of the veth). \
             Each configuration is switched on, loaded, switched off, in turn, {} rounds: wrk \
             for {} s with {} connections (one thread), and `ab -n {} -c {}`. The ceiling is \
             the client going straight to one real server (the balanced configurations have \
             two, so they may pass it).\n",
            h.real_servers,
            s.rounds,
            s.duration_s,
            s.connections,
            s.ab_requests,
            s.ab_concurrency
        );
        w!(
            self,
            "CPU per request is the whole machine's (client, director and real servers share \
             the cores; /proc/stat), so the figure to compare is the difference to the direct \
             run: what the director adds. *Softirq* is the kernel's packet processing on all \
             cores (XDP runs there). *Director process* is lbd's or haproxy's own CPU time. *lb \
             XDP program* is the program's run time on the director from the kernel's BPF \
             statistics, with the packets it handled per request; in live traffic a packet costs \
             more than in section 1 (cold caches, and the statistics' own clock reads).\n"
        );
        let mut bars = Vec::new();
        for load in LoadKind::ALL {
            w!(self, "### {}\n", load.label());
            let direct = h.row(Config::Direct, load);
            let direct_cpu = direct.and_then(|r| sum(r, |x| x.cpu_us)).map(|s| s.median);
            let mut speed = Vec::new();
            let mut cost = Vec::new();
            for config in Config::ALL {
                let Some(row) = h.row(config, load) else {
                    continue;
                };
                let rel = http_ratio(h, config, load);
                let cpu = sum(row, |x| x.cpu_us);
                let over = match (cpu, direct_cpu) {
                    (Some(c), Some(d)) if config != Config::Direct => {
                        format!("{:+.0}", c.median - d)
                    }
                    _ => "–".into(),
                };
                let xdp = sum_opt(row, |x| x.xdp_us);
                let pkts = sum_opt(row, |x| x.xdp_packets);
                let errors: u64 = row.samples.iter().map(|x| x.errors).sum();
                let requests: u64 = row.samples.iter().map(|x| x.requests).sum();
                if errors > 0 {
                    self.problems.push(format!(
                        "HTTP, {}, {}: {errors} of {requests} requests failed",
                        config.short(),
                        load.label()
                    ));
                }
                speed.push(vec![
                    config.label().into(),
                    opt(sum(row, |x| x.rps), 0),
                    if config == Config::Direct {
                        "1×".into()
                    } else {
                        ratio(rel)
                    },
                    opt(sum(row, |x| x.p50_ms), 2),
                    opt(sum(row, |x| x.p99_ms), 2),
                    format!("{errors} of {}", thousands(requests)),
                ]);
                cost.push(vec![
                    config.short().into(),
                    opt(cpu, 0),
                    over,
                    opt(sum(row, |x| x.softirq_us), 0),
                    opt(sum_opt(row, |x| x.director_proc_us), 1),
                    match (xdp, pkts) {
                        (Some(x), Some(p)) => {
                            format!("{} ({} packets)", x.show(2), fixed(p.median, 1))
                        }
                        _ => "–".into(),
                    },
                ]);
                if load == LoadKind::WrkClose
                    && config != Config::Direct
                    && let Some(r) = rel
                {
                    bars.push(Bar {
                        label: config.short().into(),
                        value: r,
                        highlight: false,
                    });
                }
            }
            table(
                self,
                &[
                    "configuration",
                    "requests/s",
                    "of direct",
                    "p50 latency (ms)",
                    "p99 latency (ms)",
                    "failed requests",
                ],
                &speed,
            );
            w!(self, "CPU per request (µs):\n");
            table(
                self,
                &[
                    "configuration",
                    "machine",
                    "over direct",
                    "softirq",
                    "director process",
                    "lb XDP program",
                ],
                &cost,
            );
        }
        if !bars.is_empty() {
            let name = self.svg(
                "bench-http.svg",
                svg::bar_chart(
                    "HTTP, new connection per request (wrk): requests/s of direct",
                    "share of going straight to one real server (1 = the ceiling)",
                    &bars,
                    Some((1.0, "direct")),
                ),
            );
            w!(self, "![HTTP requests/s relative to direct]({name})\n");
        }
        if !h.errors.is_empty() {
            w!(self, "Configurations that could not be measured:\n");
            for e in &h.errors {
                w!(self, "- {}", first_line(e));
                self.problems.push(format!("HTTP: {}", first_line(e)));
            }
            w!(self, "");
        }
    }

    fn scaling(&mut self, section: &Section<Scaling>) {
        w!(self, "## 3. Scaling (BPF_PROG_TEST_RUN)\n");
        if self.not_measured("scaling", section) {
            return;
        }
        let sc = section.done().expect("done");
        w!(
            self,
            "Each size is a fresh load of the object, filled from user space and measured next \
             to the floor in the same load (the repeat count calibrated so that one run takes \
             tens of milliseconds). A new connection is a SYN from another client every run, \
             behind the new-flow wrapper of section 1, and an established connection runs \
             behind the restore wrapper (both compared with the plain floor here, so the \
             wrapper's cost is in the figure); the connection-count series measures \
             established connections only, as new ones would grow the table it measures.\n"
        );
        for (i, e) in [&sc.services, &sc.reals, &sc.conns].into_iter().enumerate() {
            w!(self, "### {}\n", capitalise(&e.title));
            match i {
                0 => w!(
                    self,
                    "Services on VIPs of their own; the last one added is measured. \
                     Established connections are found in the connection table before any \
                     service lookup.\n"
                ),
                1 => w!(
                    self,
                    "One `wrr` and one `wlc` service with the same number of real servers \
                     (weight 1). `wrr` reads one slot of its precomputed IPVS sequence; `wlc` \
                     compares the live connection counts of every real server (up to {}), as \
                     IPVS does.\n",
                    thousands(u64::from(lb_common::MAX_SCAN))
                ),
                _ => w!(
                    self,
                    "The connection table sized for the entries plus a quarter (nothing is \
                     evicted), filled with established connections; the measured one is in the \
                     middle of the fill.\n"
                ),
            }
            let mut rows = Vec::new();
            let mut names: Vec<String> = Vec::new();
            for p in &e.points {
                if !names.contains(&p.series) {
                    names.push(p.series.clone());
                }
                rows.push(vec![
                    thousands(p.x),
                    p.series.clone(),
                    opt(p.measured.summary(), 1),
                    ratio(datapath::ratio_to_floor(&p.measured, None, &p.floor)),
                    opt(p.floor.summary(), 1),
                ]);
            }
            table(
                self,
                &[
                    &e.x_label,
                    "path",
                    "ns/packet",
                    "ratio to floor",
                    "floor (ns)",
                ],
                &rows,
            );
            let series: Vec<Series> = names
                .iter()
                .map(|n| Series {
                    name: n.clone(),
                    points: e
                        .points
                        .iter()
                        .filter(|p| &p.series == n)
                        .filter_map(|p| p.measured.summary().map(|s| (p.x as f64, s)))
                        .collect(),
                })
                .collect();
            if !series.is_empty() {
                let file = [
                    "bench-scaling-services.svg",
                    "bench-scaling-reals.svg",
                    "bench-scaling-conns.svg",
                ][i];
                let name = self.svg(
                    file,
                    svg::line_chart(&e.title, &e.x_label, "ns per packet", &series),
                );
                w!(self, "![{}]({name})\n", e.title);
            }
            for err in &e.errors {
                w!(self, "- **failed**: {}", first_line(err));
                self.problems.push(format!("scaling: {}", first_line(err)));
            }
            if !e.errors.is_empty() {
                w!(self, "");
            }
        }
        w!(self, "### Memory\n");
        let rows: Vec<Vec<String>> = sc
            .conn_memory
            .iter()
            .map(|c| {
                vec![
                    thousands(c.entries),
                    thousands(u64::from(c.max_entries)),
                    bytes(c.memlock),
                    format!(
                        "{} B",
                        fixed(c.memlock as f64 / f64::from(c.max_entries), 0)
                    ),
                    format!("{} s", fixed(c.fill_secs, 2)),
                ]
            })
            .collect();
        table(
            self,
            &[
                "connections",
                "table size (max entries)",
                "memory",
                "per entry",
                "fill from user space",
            ],
            &rows,
        );
        w!(
            self,
            "The connection table is an LRU hash, allocated whole when the program loads: its \
             memory follows `--conn-table-size`, not how full it is. Every other map is a \
             fixed-size array or hash whose memory is in section 1's table (services and real \
             servers cost nothing more as they are added, up to 16,384 services and 65,536 \
             real servers).\n"
        );
    }

    fn control(&mut self, section: &Section<Control>) {
        w!(self, "## 4. Control plane\n");
        if self.not_measured("control plane", section) {
            return;
        }
        let c = section.done().expect("done");
        w!(
            self,
            "Against a running lbd (release build) in the testbed's director, through `lbadm` in \
             the director's namespace (each command's time includes starting lbadm). `-R` reads \
             ipvsadm's save format (`-A -t VIP:80 -s wlc`, then `-a ... -g -w 1` per real \
             server) and lbd applies it as one batch. It does not wait for ARP: it asks the \
             kernel to resolve real servers it does not know and answers lbadm once they are \
             resolved or 500 ms have passed, holding nothing meanwhile.\n"
        );
        let rows: Vec<Vec<String>> = c
            .restores
            .iter()
            .map(|r| {
                let one = |v: Option<f64>| v.map_or("–".into(), |v| fixed(v, 2));
                vec![
                    thousands(r.services as u64),
                    r.reals_per_service.to_string(),
                    r.label.clone(),
                    one(r.cold),
                    one(r.cold_lbd_cpu),
                    opt(Summary::of(&r.warm), 2),
                    opt(Summary::of(&r.warm_lbd_cpu), 2),
                    opt(Summary::of(&r.list), 2),
                    opt(Summary::of(&r.clear), 2),
                ]
            })
            .collect();
        table(
            self,
            &[
                "services",
                "real servers each",
                "real servers",
                "first `lbadm -R` (s)",
                "lbd CPU (s)",
                "`lbadm -R` again (s)",
                "lbd CPU (s)",
                "`lbadm -Ln` (s)",
                "`lbadm -C` (s)",
            ],
            &rows,
        );
        w!(
            self,
            "*First* is the first restore after lbd started, with the director's neighbour table \
             flushed: lbd asks the kernel to resolve every real server and answers lbadm once \
             they are resolved (or after 500 ms). *Again* restores the same rules after `lbadm -C`; lbd then \
             knows the real servers. *lbd CPU* is the daemon's own CPU time during the \
             restore.\n"
        );
        if !c.follows.is_empty() {
            w!(
                self,
                "**Weight change.** A client opens one HTTP connection after another to a `wrr` \
                 service of two real servers while one of them is set to weight 0 (`lbadm -e \
                 ... -w 0`), in {} rounds. Each connection has a source port of its own: a \
                 SYN reusing the port of a connection the director still holds (DR leaves \
                 closed connections in FIN_WAIT until they expire) stays with that \
                 connection's real server, as in IPVS (`conn_reuse_mode=1`), whatever the \
                 weights, so a busy client that reuses ports drains more slowly than this.\n",
                c.follows.len()
            );
            let col = |f: &dyn Fn(&super::control::Follow) -> f64| {
                Summary::of(&c.follows.iter().map(f).collect::<Vec<_>>())
            };
            let rows = vec![
                vec![
                    "`lbadm -e` returns after (ms)".into(),
                    opt(col(&|f| f.command_ms), 1),
                ],
                vec![
                    "last new connection to the drained server, after the command started (ms)"
                        .into(),
                    opt(col(&|f| f.last_old_ms), 1),
                ],
                vec![
                    "connections to it in the 500 ms after".into(),
                    opt(col(&|f| f.after_to_drained as f64), 0),
                ],
                vec![
                    "connections in those 500 ms".into(),
                    opt(col(&|f| f.after as f64), 0),
                ],
                vec![
                    "client's time between connections (resolution, ms)".into(),
                    opt(col(&|f| f.spacing_ms), 2),
                ],
            ];
            table(self, &["weight 1 → 0", "median (min–max)"], &rows);
        }
        for e in &c.errors {
            w!(self, "- **failed**: {}", first_line(e));
            self.problems
                .push(format!("control plane: {}", first_line(e)));
        }
        if !c.errors.is_empty() {
            w!(self, "");
        }
    }

    fn live(&mut self, section: &Section<Live>, _pc: Option<&PacketCost>) {
        w!(
            self,
            "## 5. Packet rate through a veth pair (XDP live frames)\n"
        );
        if self.not_measured("live frames", section) {
            return;
        }
        let l = section.done().expect("done");
        w!(
            self,
            "BPF_PROG_TEST_RUN in live-frames mode runs the program on {} frames per round \
             ({} rounds) \"arriving\" on one end of a veth pair and really sends what it returns \
             with XDP_TX to the other end, where a native XDP program drops it (and the veth \
             counts it). It all runs on one core, so this is what one core forwards; \
             *delivered* is frames counted at the far end over frames sent.\n",
            thousands(u64::from(l.frames_per_round)),
            l.rounds
        );
        let floor = l.rates.first().filter(|r| r.label.starts_with("floor"));
        let mut rows = Vec::new();
        for r in &l.rates {
            if let Some(e) = &r.error {
                rows.push(vec![
                    r.label.clone(),
                    format!("**failed**: {}", first_line(e)),
                    String::new(),
                    String::new(),
                ]);
                self.problems
                    .push(format!("live frames, {}: {}", r.label, first_line(e)));
                continue;
            }
            let rel = floor.and_then(|f| {
                let v: Vec<f64> = r.mpps.iter().zip(&f.mpps).map(|(a, b)| a / b).collect();
                Summary::of(&v)
            });
            rows.push(vec![
                r.label.clone(),
                opt(r.summary(), 2),
                ratio(rel),
                format!("{}%", fixed(r.delivered * 100.0, 1)),
            ]);
        }
        table(
            self,
            &[
                "program",
                "Mpps (one core)",
                "of the floor's rate",
                "delivered",
            ],
            &rows,
        );
    }

    fn flood(&mut self, section: &Section<super::flood::Flood>) {
        w!(
            self,
            "## 6. A SYN flood against established connections (BPF_PROG_TEST_RUN)\n"
        );
        if self.not_measured("SYN flood", section) {
            return;
        }
        let f = section.done().expect("done");
        w!(
            self,
            "lb's program at lbd's default sizes (a connection table of {} entries, a \
             half-open table of {}) opens {} connections (SYN, then the handshake's ACK), then \
             takes SYNs from a new spoofed source each, one half-open table's worth per round; \
             between rounds every other connection sends a segment, the rest stay idle. \
             *Kept*: still in the connection table with its real server. The connection \
             table's active count is exact as it goes; the half-open share's running count has \
             every flood SYN in it until lbd's sweep counts the table afresh (every second).\n",
            thousands(u64::from(f.conn_table)),
            thousands(u64::from(f.half_open_table)),
            thousands(u64::from(f.established))
        );
        let rows: Vec<Vec<String>> = f
            .rounds
            .iter()
            .map(|r| {
                vec![
                    format!("{}x", fixed(r.times_table, 0)),
                    thousands(r.syns),
                    fixed(r.ns_per_syn, 0),
                    format!("{} / {} / {}", r.kept, r.moved, r.lost),
                    r.table_active.to_string(),
                    thousands(r.half_open_entries),
                    r.half_open_running.to_string(),
                ]
            })
            .collect();
        for r in &f.rounds {
            if r.kept != f.established {
                self.problems.push(format!(
                    "SYN flood: {} of {} established connections kept after {} SYNs",
                    r.kept, f.established, r.syns
                ));
            }
        }
        table(
            self,
            &[
                "flood so far",
                "SYNs",
                "ns per SYN",
                "kept / moved / lost",
                "connection table: active",
                "half-open entries",
                "half-open: running count",
            ],
            &rows,
        );
    }

    fn problems_section(&mut self) {
        if self.problems.is_empty() {
            return;
        }
        w!(self, "## Problems in this run\n");
        for p in self.problems.clone() {
            w!(self, "- {p}");
        }
        w!(self, "");
    }
}

/// Ratio to the floor and ns above the baseline of a section-1 measurement.
fn ratio_extra(pc: &PacketCost, m: &Measured) -> (Option<Summary>, Option<Summary>) {
    let Some(floor) = pc.get("floor") else {
        return (None, None);
    };
    let base = m.baseline.as_deref().and_then(|b| pc.get(b));
    let wrapped = base.filter(|b| b.key != "floor");
    let r = datapath::ratio_to_floor(m, wrapped, floor);
    let extra = base.and_then(|b| datapath::extra_ns(m, b));
    (r, extra)
}

fn sum(row: &super::http_load::Row, f: impl Fn(&Sample) -> f64) -> Option<Summary> {
    Summary::of(&row.samples.iter().map(f).collect::<Vec<_>>())
}

fn sum_opt(row: &super::http_load::Row, f: impl Fn(&Sample) -> Option<f64>) -> Option<Summary> {
    Summary::of(&row.samples.iter().filter_map(f).collect::<Vec<_>>())
}

/// Requests/s of `config` over direct's, paired round by round.
fn http_ratio(h: &Http, config: Config, load: LoadKind) -> Option<Summary> {
    let row = h.row(config, load)?;
    let direct = h.row(Config::Direct, load)?;
    let v: Vec<f64> = row
        .samples
        .iter()
        .zip(&direct.samples)
        .map(|(a, d)| a.rps / d.rps)
        .collect();
    Summary::of(&v)
}

fn percent(x: f64) -> String {
    format!("{}%", fixed(x * 100.0, 0))
}

fn minutes(secs: f64) -> String {
    if secs < 90.0 {
        format!("{} s", fixed(secs, 0))
    } else {
        format!("{} min", fixed(secs / 60.0, 1))
    }
}

fn first_line(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or("").trim();
    if line.len() > 300 {
        format!("{}…", &line[..line.floor_char_boundary(300)])
    } else {
        line.to_owned()
    }
}

fn strip_md(text: &str) -> String {
    text.replace("**", "")
}

fn capitalise(text: &str) -> String {
    let mut c = text.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}
