//! The fixture format (Katran-style): a fixture names a situation, sets up the maps, and sends
//! packets, each with its expected verdict, the expected packet out byte for byte, the data-path
//! counters it must bump, and the map state expected afterwards. Map edits between packets
//! (a table rewritten, a real server removed) are steps too.
//!
//! Every fixture runs on a freshly loaded program. A table runs all its fixtures and fails with
//! every failing fixture's report (first failing step, all its mismatches, hexdumps). Tables run
//! through `lb_xdp` unless they name another entry point ([`run_table_of`]: `lb_decap`).

use std::{collections::BTreeMap, fmt::Write as _};

use lb_common::{Conn, Counters, FlowKey, LocalityKey, PersistKey, RealConns, Stat, tcp_state};

use super::{
    harness::{Change, DECAP_PROGRAM, Director, PROGRAM, Verdict, coarse_now_ns},
    wire,
};

pub struct Fixture {
    pub name: &'static str,
    pub setup: Vec<Change>,
    pub steps: Vec<Step>,
}

pub enum Step {
    /// Send a packet and check what happened.
    Send(Send),
    /// Change the maps (as lbd would) before the next packet.
    Apply {
        what: &'static str,
        changes: Vec<Change>,
    },
    /// Check map state without sending anything.
    Expect(Vec<Expect>),
}

/// One packet and what it must do.
pub struct Send {
    pub what: String,
    pub input: Vec<u8>,
    pub verdict: Verdict,
    pub output: Output,
    /// DP_STATS counters this packet bumps by one each (`Stat::Rx` is implied for `lb_xdp`);
    /// every other counter must stay put. A counter listed twice must go up by two.
    pub counts: Vec<Stat>,
    pub expect: Vec<Expect>,
    /// The interface the packet arrives on (`ctx_in`); `None`: the kernel's default, loopback.
    pub ingress: Option<u32>,
}

/// The packet expected out of the program.
pub enum Output {
    /// Byte for byte the input (PASS must not touch the packet).
    Unchanged,
    /// Byte for byte this.
    Exact(Vec<u8>),
    /// Byte for byte this, except the given byte ranges, which the program fills with
    /// values no fixture can predict (a random IP ID); checksums are still verified. Being
    /// unpredictable, they must not be the same in every packet: a fixture with three or
    /// more such packets fails when all of them carry the same bytes there.
    Masked(Vec<u8>, Vec<std::ops::Range<usize>>),
    /// Not checked: only for dropped packets, whose bytes go nowhere.
    Dropped,
}

/// Map state after a step.
#[derive(Clone, Debug)]
pub enum Expect {
    /// The connection-table entry of `flow` (the timestamp is not compared).
    Conn {
        flow: FlowKey,
        real: u32,
        service: u32,
        state: u8,
    },
    /// The whole connection-table entry of `flow`, virtual address and port and flags too
    /// (NAT's two entries); `last_seen_ns` is not compared.
    ConnEntry {
        flow: FlowKey,
        conn: Conn,
    },
    NoConn(FlowKey),
    /// The entry of the flow is in the half-open table (true) or the connection table.
    HalfOpen(FlowKey, bool),
    /// A real server's active connections in each table (`REAL_CONNS` as the data path keeps
    /// it, before any sweep).
    RealConnsByTable {
        id: u32,
        active: i64,
        half_open_active: i64,
    },
    /// Number of connection-table entries (both tables).
    ConnCount(usize),
    /// Counters of a service, summed over CPUs.
    ServiceStats {
        id: u32,
        counters: Counters,
    },
    /// Counters of a real server, summed over CPUs.
    RealStats {
        id: u32,
        counters: Counters,
    },
    /// A service's round-robin position.
    RrPosition {
        service: u32,
        position: u64,
    },
    /// A real server's live connection counts and overload flag (`REAL_CONNS`).
    RealConns {
        id: u32,
        conns: RealConns,
    },
    /// The persistence template of `key` sends its client to `real`, and was used (created or
    /// refreshed) within the last [`FRESH_NS`].
    Persist {
        key: PersistKey,
        real: u32,
    },
    NoPersist(PersistKey),
    /// The locality entry of `key` (lblc, lblcr) has exactly the real servers `reals`, oldest
    /// first, and was used within the last [`FRESH_NS`]; its last change was within that time
    /// if `modified_now`, else longer ago.
    Locality {
        key: LocalityKey,
        reals: Vec<u32>,
        modified_now: bool,
    },
    NoLocality(LocalityKey),
}

/// How recent a template's `last_seen_ns` must be for [`Expect::Persist`]: it was stamped by
/// the packet just run, so this only has to absorb the coarse clock's granularity.
const FRESH_NS: u64 = 2_000_000_000;

/// [`Expect::RealConns`] with the overload flag clear (`active` and `inactive`: IPVS's
/// figures, both tables' together).
pub fn real_conns(id: u32, active: i64, inactive: i64) -> Expect {
    Expect::RealConns {
        id,
        conns: RealConns {
            active,
            inactive,
            ..RealConns::default()
        },
    }
}

/// [`Expect::RealConns`] with the overload flag set.
pub fn overloaded_conns(id: u32, active: i64, inactive: i64) -> Expect {
    Expect::RealConns {
        id,
        conns: RealConns {
            active,
            inactive,
            overloaded: 1,
            ..RealConns::default()
        },
    }
}

impl Send {
    pub fn new(what: impl Into<String>, input: Vec<u8>, verdict: Verdict, output: Output) -> Self {
        Self {
            what: what.into(),
            input,
            verdict,
            output,
            counts: Vec::new(),
            expect: Vec::new(),
            ingress: None,
        }
    }

    /// The packet arrives on interface `ifindex` (of the fixture thread's network namespace).
    pub fn on(mut self, ifindex: u32) -> Self {
        self.ingress = Some(ifindex);
        self
    }

    /// Handed to the kernel untouched, counted under `reason`.
    pub fn pass(what: impl Into<String>, input: Vec<u8>, reason: Stat) -> Self {
        Self::new(what, input, Verdict::PASS, Output::Unchanged).counts(&[reason])
    }

    /// Dropped, counted under `reason`.
    pub fn drop(what: impl Into<String>, input: Vec<u8>, reason: Stat) -> Self {
        Self::new(what, input, Verdict::DROP, Output::Dropped).counts(&[reason])
    }

    /// The packet moves its connection from the half-open table to the connection table (the
    /// handshake's ACK; a UDP flow's second datagram).
    pub fn promotes(self) -> Self {
        self.counts(&[Stat::Promoted])
    }

    pub fn counts(mut self, stats: &[Stat]) -> Self {
        self.counts.extend_from_slice(stats);
        self
    }

    pub fn expect(mut self, expect: impl IntoIterator<Item = Expect>) -> Self {
        self.expect.extend(expect);
        self
    }
}

impl From<Send> for Step {
    fn from(send: Send) -> Self {
        Step::Send(send)
    }
}

pub fn counters(conns: u64, in_pkts: u64, in_bytes: u64) -> Counters {
    Counters {
        conns,
        in_pkts,
        in_bytes,
        ..Counters::default()
    }
}

/// Runs every fixture of a table through `lb_xdp`; panics with the reports of those that failed.
pub fn run_table(table: &str, fixtures: Vec<Fixture>) {
    run_table_of(table, PROGRAM, fixtures);
}

/// Runs every fixture of a table through `program`, an XDP entry point of the object.
pub fn run_table_of(table: &str, program: &'static str, fixtures: Vec<Fixture>) {
    let total = fixtures.len();
    let mut failures = Vec::new();
    for fixture in &fixtures {
        match run_fixture(program, fixture) {
            Ok(()) => eprintln!("ok     {table}: {}", fixture.name),
            Err(report) => {
                eprintln!("FAILED {table}: {}", fixture.name);
                failures.push(format!("=== {table}: {}\n{report}", fixture.name));
            }
        }
    }
    if let Some(repeat) = perf_repeat() {
        for fixture in &fixtures {
            report_perf(table, program, fixture, repeat);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} fixtures in {table} failed:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `LB_FIXTURE_PERF=N`: also time each fixture's packets, N runs each, on a fresh program set
/// up the same way (the checked run is unaffected). Katran's perf mode, from the same tables.
fn perf_repeat() -> Option<u32> {
    std::env::var("LB_FIXTURE_PERF")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
}

fn report_perf(table: &str, program: &'static str, fixture: &Fixture, repeat: u32) {
    let mut director = Director::load_program(program);
    for change in &fixture.setup {
        director.apply(change);
    }
    for step in &fixture.steps {
        match step {
            Step::Send(send) => {
                // Anything beyond the MACs rewritten: time every run from the original bytes.
                let fresh = match &send.output {
                    Output::Exact(out) | Output::Masked(out, _) => {
                        out.get(12..) != send.input.get(12..)
                    }
                    Output::Unchanged | Output::Dropped => false,
                };
                let per_packet = director.time_per_packet(&send.input, send.ingress, repeat, fresh);
                eprintln!(
                    "perf   {table}: {} / {}: {per_packet:?} per packet{}",
                    fixture.name,
                    send.what,
                    if fresh { " (single runs)" } else { "" }
                );
            }
            Step::Apply { changes, .. } => changes.iter().for_each(|c| director.apply(c)),
            Step::Expect(_) => {}
        }
    }
}

fn run_fixture(program: &'static str, fixture: &Fixture) -> Result<(), String> {
    let mut director = Director::load_program(program);
    for change in &fixture.setup {
        director.apply(change);
    }
    // What happened before a failing step, for its report.
    let mut history = String::new();
    // The bytes each `Output::Masked` packet had in its masked ranges.
    let mut unpredictable: Vec<Vec<u8>> = Vec::new();
    for (i, step) in fixture.steps.iter().enumerate() {
        let step_no = i + 1;
        let earlier = if history.is_empty() {
            String::new()
        } else {
            format!("after:\n{history}")
        };
        match step {
            Step::Send(send) => {
                let masked = check_send(&director, program, send).map_err(|report| {
                    format!(
                        "{earlier}step {step_no}, packet \"{}\":\n{report}",
                        send.what
                    )
                })?;
                unpredictable.extend(masked);
                let _ = writeln!(
                    history,
                    "  {step_no}. packet \"{}\": as expected",
                    send.what
                );
            }
            Step::Apply { what, changes } => {
                changes.iter().for_each(|c| director.apply(c));
                let _ = writeln!(history, "  {step_no}. map change \"{what}\"");
            }
            Step::Expect(expect) => {
                let problems = check_expect(&director, expect);
                if !problems.is_empty() {
                    return Err(format!(
                        "{earlier}step {step_no} (map check):\n{}",
                        problems.join("\n")
                    ));
                }
                let _ = writeln!(history, "  {step_no}. map check: as expected");
            }
        }
    }
    if unpredictable.len() >= 3 && unpredictable.windows(2).all(|w| w[0] == w[1]) {
        return Err(format!(
            "after:\n{history}the {} packets' unpredictable bytes (a random IP ID, ...) were \
             the same in every one: {:02x?}",
            unpredictable.len(),
            unpredictable[0]
        ));
    }
    Ok(())
}

/// Checks one packet; returns, for an `Output::Masked` packet, the bytes its masked ranges
/// held.
fn check_send(director: &Director, program: &str, send: &Send) -> Result<Option<Vec<u8>>, String> {
    let before = director.dp_stats();
    let (verdict, output) = director.run_on(&send.input, send.ingress).map_err(|e| {
        format!(
            "BPF_PROG_TEST_RUN failed: {e}{}\ninput: {}",
            send.ingress
                .map(|i| format!(" (ingress ifindex {i})"))
                .unwrap_or_default(),
            wire::describe(&send.input)
        )
    })?;
    let after = director.dp_stats();
    let mut problems = Vec::new();

    if verdict != send.verdict {
        problems.push(format!(
            "verdict: expected {:?}, got {verdict:?}",
            send.verdict
        ));
    }

    let masked;
    let expected_output = match &send.output {
        Output::Unchanged => Some(send.input.as_slice()),
        Output::Exact(bytes) => Some(bytes.as_slice()),
        Output::Masked(bytes, ignore) => {
            // Take the unpredictable bytes from the actual output (when it is long enough).
            let mut expected = bytes.clone();
            for range in ignore {
                if let (Some(dst), Some(src)) =
                    (expected.get_mut(range.clone()), output.get(range.clone()))
                {
                    dst.copy_from_slice(src);
                }
            }
            masked = expected;
            Some(masked.as_slice())
        }
        Output::Dropped => None,
    };
    if let Some(expected) = expected_output
        && expected != output
    {
        problems.push(format!(
            "output packet differs from the expected one\n  expected: {}\n  actual:   {}\n{}",
            wire::describe(expected).replace('\n', "\n  "),
            wire::describe(&output).replace('\n', "\n  "),
            wire::hexdump_diff(expected, &output)
        ));
    }
    // A forwarded or rewritten packet (decapsulated, answered with ICMP) must carry valid
    // checksums whenever the input did, by the suite's own full computation.
    let rewritten = verdict.forwards() || output != send.input;
    if rewritten && verdict != Verdict::DROP && wire::checksum_problems(&send.input).is_empty() {
        for problem in wire::checksum_problems(&output) {
            problems.push(format!("packet out: {problem}"));
        }
    }

    let mut expected_delta: BTreeMap<u32, u64> = BTreeMap::new();
    // lb_decap counts only what it decapsulates; lb_xdp counts every packet it sees.
    if program != DECAP_PROGRAM {
        *expected_delta.entry(Stat::Rx as u32).or_default() += 1;
    }
    for stat in &send.counts {
        *expected_delta.entry(*stat as u32).or_default() += 1;
    }
    for stat in Stat::ALL {
        let expected = expected_delta.get(&(stat as u32)).copied().unwrap_or(0);
        let actual = after[stat as usize].wrapping_sub(before[stat as usize]);
        if expected != actual {
            problems.push(format!(
                "DP_STATS[{}]: expected +{expected}, got +{actual}",
                stat.name()
            ));
        }
    }

    problems.extend(check_expect(director, &send.expect));

    if problems.is_empty() {
        return Ok(match &send.output {
            Output::Masked(_, ranges) => Some(
                ranges
                    .iter()
                    .flat_map(|r| output.get(r.clone()).unwrap_or_default())
                    .copied()
                    .collect(),
            ),
            _ => None,
        });
    }
    let mut report = problems.join("\n");
    let _ = write!(
        report,
        "\ninput: {}\n{}",
        wire::describe(&send.input).replace('\n', "\n  "),
        wire::hexdump(&send.input)
    );
    Err(report)
}

fn check_expect(director: &Director, expect: &[Expect]) -> Vec<String> {
    let mut problems = Vec::new();
    for e in expect {
        match e {
            Expect::Conn {
                flow,
                real,
                service,
                state,
            } => match director.conn(flow) {
                None => problems.push(format!("CONNS: no entry for {}", fmt_flow(flow))),
                Some(conn) => {
                    let got = (conn.real, conn.service, conn.state);
                    if got != (*real, *service, *state) {
                        problems.push(format!(
                            "CONNS[{}]: expected real {real} service {service} state {}, got {}",
                            fmt_flow(flow),
                            tcp_state::name(*state),
                            fmt_conn(&conn)
                        ));
                    }
                }
            },
            Expect::ConnEntry { flow, conn } => match director.conn(flow) {
                None => problems.push(format!("CONNS: no entry for {}", fmt_flow(flow))),
                Some(got) => {
                    let comparable = |c: &Conn| Conn {
                        last_seen_ns: 0,
                        ..*c
                    };
                    if comparable(&got) != comparable(conn) {
                        problems.push(format!(
                            "CONNS[{}]: expected {}, got {}",
                            fmt_flow(flow),
                            fmt_conn(conn),
                            fmt_conn(&got)
                        ));
                    }
                }
            },
            Expect::NoConn(flow) => {
                if let Some(conn) = director.conn(flow) {
                    problems.push(format!(
                        "CONNS[{}]: expected no entry, got {}",
                        fmt_flow(flow),
                        fmt_conn(&conn)
                    ));
                }
            }
            Expect::HalfOpen(flow, half_open) => match director.conn_in(flow) {
                None => problems.push(format!("CONNS: no entry for {}", fmt_flow(flow))),
                Some((_, got)) if got != *half_open => problems.push(format!(
                    "{}: expected in the {} table, found in the other",
                    fmt_flow(flow),
                    if *half_open {
                        "half-open"
                    } else {
                        "connection"
                    }
                )),
                Some(_) => {}
            },
            Expect::RealConnsByTable {
                id,
                active,
                half_open_active,
            } => {
                let got = director.real_conns(*id);
                if (got.active, got.half_open_active) != (*active, *half_open_active) {
                    problems.push(format!(
                        "REAL_CONNS[{id}]: expected active {active} in the connection table and \
                         {half_open_active} in the half-open table, got {} and {}",
                        got.active, got.half_open_active
                    ));
                }
            }
            Expect::ConnCount(n) => {
                let conns = director.conns();
                if conns.len() != *n {
                    let listing: Vec<String> = conns
                        .iter()
                        .map(|(f, c)| format!("  {} -> {}", fmt_flow(f), fmt_conn(c)))
                        .collect();
                    problems.push(format!(
                        "CONNS: expected {n} entries, got {}:\n{}",
                        conns.len(),
                        listing.join("\n")
                    ));
                }
            }
            Expect::ServiceStats { id, counters } => {
                let got = director.service_stats(*id);
                if got != *counters {
                    problems.push(format!(
                        "SERVICE_STATS[{id}]: expected {counters:?}, got {got:?}"
                    ));
                }
            }
            Expect::RealStats { id, counters } => {
                let got = director.real_stats(*id);
                if got != *counters {
                    problems.push(format!(
                        "REAL_STATS[{id}]: expected {counters:?}, got {got:?}"
                    ));
                }
            }
            Expect::RrPosition { service, position } => {
                let got = director.rr_position(*service);
                if got != *position {
                    problems.push(format!(
                        "SERVICE_STATE[{service}].rr_position: expected {position}, got {got}"
                    ));
                }
            }
            Expect::RealConns { id, conns } => {
                let got = director.real_conns(*id);
                let got = RealConns {
                    active: got.total_active(),
                    inactive: got.total_inactive(),
                    half_open_active: 0,
                    half_open_inactive: 0,
                    ..got
                };
                if got != *conns {
                    problems.push(format!(
                        "REAL_CONNS[{id}]: expected {}, got {}",
                        fmt_real_conns(conns),
                        fmt_real_conns(&got)
                    ));
                }
            }
            Expect::Persist { key, real } => match director.persist(key) {
                None => problems.push(format!("PERSIST: no template for {}", fmt_persist(key))),
                Some(template) => {
                    let age = coarse_now_ns().wrapping_sub(template.last_seen_ns);
                    if template.real != *real || age > FRESH_NS {
                        problems.push(format!(
                            "PERSIST[{}]: expected real {real} used just now, got real {} \
                             last used {:.3} s ago",
                            fmt_persist(key),
                            template.real,
                            age as f64 / 1e9
                        ));
                    }
                }
            },
            Expect::Locality {
                key,
                reals,
                modified_now,
            } => match director.locality(key) {
                None => problems.push(format!("LOCALITY: no entry for {}", fmt_locality(key))),
                Some(entry) => {
                    let members = &entry.reals[..entry.len()];
                    let used = coarse_now_ns().wrapping_sub(entry.last_use_ns);
                    let modified = coarse_now_ns().wrapping_sub(entry.last_mod_ns);
                    if members != reals.as_slice()
                        || used > FRESH_NS
                        || (modified <= FRESH_NS) != *modified_now
                    {
                        problems.push(format!(
                            "LOCALITY[{}]: expected real servers {reals:?} used just now, \
                             changed {}; got {members:?} used {:.3} s ago, changed {:.3} s ago",
                            fmt_locality(key),
                            if *modified_now { "just now" } else { "earlier" },
                            used as f64 / 1e9,
                            modified as f64 / 1e9
                        ));
                    }
                }
            },
            Expect::NoLocality(key) => {
                if let Some(entry) = director.locality(key) {
                    problems.push(format!(
                        "LOCALITY[{}]: expected no entry, got {:?}",
                        fmt_locality(key),
                        &entry.reals[..entry.len()]
                    ));
                }
            }
            Expect::NoPersist(key) => {
                if let Some(template) = director.persist(key) {
                    problems.push(format!(
                        "PERSIST[{}]: expected no template, got real {}",
                        fmt_persist(key),
                        template.real
                    ));
                }
            }
        }
    }
    problems
}

pub fn fmt_flow(flow: &FlowKey) -> String {
    let addr = |a: lb_common::Addr| a.to_ip(flow.family);
    let port = |p: u16| u16::from_be(p);
    format!(
        "{}:{} > {}:{} proto {}",
        addr(flow.saddr),
        port(flow.sport),
        addr(flow.daddr),
        port(flow.dport),
        flow.proto
    )
}

fn fmt_real_conns(c: &RealConns) -> String {
    format!(
        "active {} inactive {}{}",
        c.active,
        c.inactive,
        if c.overloaded != 0 { " overloaded" } else { "" }
    )
}

fn fmt_persist(key: &PersistKey) -> String {
    format!(
        "service {} client {}",
        key.service,
        key.client.to_ip(lb_common::AF_INET)
    )
}

fn fmt_locality(key: &LocalityKey) -> String {
    format!(
        "service {} destination {}",
        key.service,
        key.daddr.to_ip(lb_common::AF_INET)
    )
}

fn fmt_conn(conn: &Conn) -> String {
    format!(
        "real {} service {} state {} flags {:#x} virtual {}:{}",
        conn.real,
        conn.service,
        tcp_state::name(conn.state),
        conn.flags,
        conn.vaddr.to_ip(lb_common::AF_INET),
        u16::from_be(conn.vport)
    )
}
