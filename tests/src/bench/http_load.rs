//! Section 2: HTTP from a client to nginx real servers in the network-namespace testbed,
//! through lb (DR, TUN, NAT), through what users would pick instead (nftables, HAProxy in
//! `mode tcp`), and straight to one real server (the ceiling), with wrk and ab.
//!
//! Each configuration is switched on, loaded, and switched off again, round after round, so
//! that all of them see the same machine. Besides requests/s and latency, every run records
//! the machine's CPU time (all cores, from /proc/stat; on one machine the client, the director
//! and the real servers share the cores, so this is what a request costs end to end; the
//! difference to the direct run is what the director adds), the director's own process (lbd,
//! haproxy), and for lb the XDP program's run time (BPF statistics).

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};

use super::Options;
use crate::{
    XdpMode,
    cmd::{self, Daemon},
    http,
    testbed::{Testbed, Topology},
};

/// A way to get from the client to the real servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    /// Straight to one real server's address: the ceiling.
    Direct,
    LbDr,
    NftDr,
    Haproxy,
    LbTun,
    LbNat,
    NftNat,
}

impl Config {
    pub const ALL: [Config; 7] = [
        Config::Direct,
        Config::LbDr,
        Config::LbTun,
        Config::LbNat,
        Config::NftDr,
        Config::NftNat,
        Config::Haproxy,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Config::Direct => "direct to one real server (ceiling)",
            Config::LbDr => "lb DR (XDP, native)",
            Config::NftDr => "nftables DR (netdev ingress, jhash, fwd)",
            Config::Haproxy => "HAProxy mode tcp (roundrobin)",
            Config::LbTun => "lb TUN (XDP, native; lbd decap on the real servers)",
            Config::LbNat => "lb NAT (XDP, native; two-NIC director)",
            Config::NftNat => "nftables NAT (dnat numgen, conntrack; two-NIC director)",
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Config::Direct => "direct",
            Config::LbDr => "lb DR",
            Config::NftDr => "nftables DR",
            Config::Haproxy => "HAProxy",
            Config::LbTun => "lb TUN",
            Config::LbNat => "lb NAT",
            Config::NftNat => "nftables NAT",
        }
    }

    fn is_lb(self) -> bool {
        matches!(self, Config::LbDr | Config::LbTun | Config::LbNat)
    }
}

/// How the client loads the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadKind {
    /// wrk, a new connection per request (`Connection: close`): what a layer-4 balancer
    /// feels most (every connection is scheduled and enters the connection table).
    WrkClose,
    /// wrk over kept-alive connections: forwarding of established connections.
    WrkKeepAlive,
    /// ab without keep-alive, a fixed number of requests.
    Ab,
}

impl LoadKind {
    pub const ALL: [LoadKind; 3] = [LoadKind::WrkClose, LoadKind::WrkKeepAlive, LoadKind::Ab];

    pub fn label(self) -> &'static str {
        match self {
            LoadKind::WrkClose => "wrk, new connection per request",
            LoadKind::WrkKeepAlive => "wrk, keep-alive",
            LoadKind::Ab => "ab, new connection per request",
        }
    }
}

/// One load run.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU time of the whole machine per request (µs), and its softirq part.
    pub cpu_us: f64,
    pub softirq_us: f64,
    /// The director's process (lbd, haproxy) per request (µs).
    pub director_proc_us: Option<f64>,
    /// lb's XDP program on the director: run time per request (µs) and runs per request.
    pub xdp_us: Option<f64>,
    pub xdp_packets: Option<f64>,
}

/// Every run of one configuration under one load.
pub struct Row {
    pub config: Config,
    pub load: LoadKind,
    pub samples: Vec<Sample>,
}

pub struct Settings {
    pub rounds: usize,
    pub duration_s: u32,
    pub connections: u32,
    pub ab_requests: u32,
    pub ab_concurrency: u32,
}

pub struct Http {
    pub rows: Vec<Row>,
    pub errors: Vec<String>,
    pub settings: Settings,
    pub real_servers: usize,
}

impl Http {
    pub fn row(&self, config: Config, load: LoadKind) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.config == config && r.load == load && !r.samples.is_empty())
    }
}

pub fn run(opts: &Options) -> Result<Http> {
    let settings = if opts.quick {
        Settings {
            rounds: 2,
            duration_s: 2,
            connections: 16,
            ab_requests: 1000,
            ab_concurrency: 16,
        }
    } else {
        Settings {
            rounds: 5,
            duration_s: 8,
            connections: 32,
            ab_requests: 10_000,
            ab_concurrency: 32,
        }
    };
    for tool in ["wrk", "ab", "nginx", "haproxy", "nft"] {
        ensure!(
            cmd::on_path(tool),
            "{tool} is not installed (cargo xtask setup installs it)"
        );
    }
    // Run times of BPF programs are counted only while this is held.
    let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| anyhow::anyhow!("enabling BPF run-time statistics: {e}"))
        .ok();
    let mut http = Http {
        rows: Vec::new(),
        errors: Vec::new(),
        settings,
        real_servers: 2,
    };
    let groups: [(Topology, &[Config]); 3] = [
        (
            Topology::Dr,
            &[Config::Direct, Config::LbDr, Config::NftDr, Config::Haproxy],
        ),
        (Topology::Tun, &[Config::LbTun]),
        (Topology::Nat, &[Config::LbNat, Config::NftNat]),
    ];
    for (topology, configs) in groups {
        if super::interrupted() {
            break;
        }
        eprintln!("    http: {} testbed", topology.describe());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_testbed(topology, configs, &mut http)
        }));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => http.errors.push(format!("{}: {e:#}", topology.describe())),
            Err(panic) => {
                http.errors
                    .push(format!("{}: {}", topology.describe(), panic_text(&*panic)))
            }
        }
    }
    drop(stats);
    Ok(http)
}

pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".into())
}

fn run_testbed(topology: Topology, configs: &[Config], http: &mut Http) -> Result<()> {
    let mut tb = Testbed::builder()
        .topology(topology)
        .real_servers(http.real_servers)
        .xdp_mode(XdpMode::Native)
        .build();
    for config in configs {
        for load in LoadKind::ALL {
            http.rows.push(Row {
                config: *config,
                load,
                samples: Vec::new(),
            });
        }
    }
    let mut failed: Vec<Config> = Vec::new();
    for round in 0..http.settings.rounds {
        for config in configs {
            if super::interrupted() {
                return Ok(());
            }
            if failed.contains(config) {
                continue;
            }
            eprintln!("    http: round {}: {}", round + 1, config.short());
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                measure_config(&mut tb, *config, &http.settings)
            }));
            let error = match result {
                Ok(Ok(samples)) => {
                    for (load, sample) in samples {
                        if let Some(row) = http
                            .rows
                            .iter_mut()
                            .find(|r| r.config == *config && r.load == load)
                        {
                            row.samples.push(sample);
                        }
                    }
                    None
                }
                Ok(Err(e)) => Some(format!("{e:#}")),
                Err(panic) => Some(panic_text(&*panic)),
            };
            if let Some(e) = error {
                http.errors.push(format!("{}: {e}", config.label()));
                failed.push(*config);
            }
        }
    }
    Ok(())
}

/// What is running for a configuration, to measure and to stop.
struct Active {
    url: String,
    /// The director's process, for its CPU time.
    director_pid: Option<i32>,
    /// lb's XDP program on the director, for its run time.
    xdp_prog: Option<u32>,
    haproxy: Option<Daemon>,
    nft_table: Option<&'static str>,
}

fn measure_config(
    tb: &mut Testbed,
    config: Config,
    settings: &Settings,
) -> Result<Vec<(LoadKind, Sample)>> {
    let mut active = activate(tb, config)?;
    let result = (|| -> Result<Vec<(LoadKind, Sample)>> {
        let mut out = Vec::new();
        for load in LoadKind::ALL {
            if super::interrupted() {
                break;
            }
            out.push((load, measure_load(tb, &active, load, settings)?));
        }
        Ok(out)
    })();
    deactivate(tb, config, &mut active);
    result
}

fn activate(tb: &mut Testbed, config: Config) -> Result<Active> {
    let vip = tb.vip();
    let mut active = Active {
        url: format!("http://{vip}:80/"),
        director_pid: None,
        xdp_prog: None,
        haproxy: None,
        nft_table: None,
    };
    match config {
        Config::Direct => active.url = format!("http://{}:80/", tb.rip(1)),
        Config::LbDr | Config::LbTun | Config::LbNat => {
            tb.start_lbd();
            let service = tb.vip_port(80);
            tb.lbadm(&["-C"]);
            tb.lbadm(&["-A", "-t", &service, "-s", "rr"]);
            for i in 1..=tb.real_servers.len() {
                let (real, how) = match config {
                    Config::LbDr => (tb.rip(i), "-g"),
                    Config::LbTun => (tb.rip(i), "-i"),
                    _ => (format!("{}:80", tb.rip(i)), "-m"),
                };
                tb.lbadm(&["-a", "-t", &service, "-r", &real, how]);
            }
            active.director_pid = process_in(&tb.director.ns, "lbd");
            active.xdp_prog = xdp_prog_id(tb, tb.director.iface());
        }
        Config::NftDr => {
            let director_mac = tb.director.mac();
            let iface = tb.director.iface().to_owned();
            let map: Vec<String> = (1..=tb.real_servers.len())
                .map(|i| format!("{} : {}", i - 1, tb.rs(i).mac()))
                .collect();
            let rules = format!(
                "table netdev lbbench {{\n\
                 \tchain ingress {{\n\
                 \t\ttype filter hook ingress device \"{iface}\" priority 0;\n\
                 \t\tip daddr {vip} tcp dport 80 ether saddr set {director_mac} ether daddr set \
                 jhash ip saddr . tcp sport mod {} map {{ {} }} fwd to \"{iface}\"\n\
                 \t}}\n\
                 }}\n",
                map.len(),
                map.join(", ")
            );
            nft_load(tb, &rules)?;
            active.nft_table = Some("netdev lbbench");
        }
        Config::NftNat => {
            let map: Vec<String> = (1..=tb.real_servers.len())
                .map(|i| format!("{} : {}", i - 1, tb.rip(i)))
                .collect();
            let rules = format!(
                "table ip lbbench {{\n\
                 \tchain prerouting {{\n\
                 \t\ttype nat hook prerouting priority dstnat;\n\
                 \t\tip daddr {vip} tcp dport 80 dnat to numgen inc mod {} map {{ {} }}\n\
                 \t}}\n\
                 }}\n",
                map.len(),
                map.join(", ")
            );
            nft_load(tb, &rules)?;
            active.nft_table = Some("ip lbbench");
        }
        Config::Haproxy => {
            let servers: String = (1..=tb.real_servers.len())
                .map(|i| format!("    server rs{i} {}:80\n", tb.rip(i)))
                .collect();
            let conf = format!(
                "global\n    maxconn 4000\n\
                 defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    \
                 timeout server 60s\n\
                 frontend bench\n    bind {vip}:80\n    default_backend real_servers\n\
                 backend real_servers\n    balance roundrobin\n{servers}"
            );
            let path = tb.dir().join("haproxy.cfg");
            std::fs::write(&path, conf).context("writing haproxy.cfg")?;
            let log = tb.dir().join("haproxy.log");
            let argv = tb
                .director
                .ns
                .argv(&["haproxy", "-db", "-f", &path.display().to_string()]);
            let daemon = Daemon::spawn("haproxy on the director", argv, &log, &log);
            active.director_pid = Some(daemon.pid());
            active.haproxy = Some(daemon);
        }
    }
    wait_serving(tb, &active.url, &mut active.haproxy)?;
    Ok(active)
}

fn deactivate(tb: &mut Testbed, config: Config, active: &mut Active) {
    if config.is_lb() && tb.lbd_running() {
        tb.stop_lbd();
    }
    if let Some(mut haproxy) = active.haproxy.take() {
        haproxy.stop(libc::SIGTERM, Duration::from_secs(10));
    }
    if let Some(table) = active.nft_table.take() {
        let mut argv = vec!["nft", "delete", "table"];
        argv.extend(table.split_whitespace());
        let ran = tb.director.ns.try_run(&argv, None);
        if !ran.success() {
            eprintln!(
                "    http: removing nft table {table}: {}",
                ran.stderr.trim()
            );
        }
    }
}

fn nft_load(tb: &Testbed, rules: &str) -> Result<()> {
    let path = tb.dir().join("lbbench.nft");
    std::fs::write(&path, rules).context("writing the nft rules")?;
    let ran = tb
        .director
        .ns
        .try_run(&["nft", "-f", &path.display().to_string()], None);
    ensure!(ran.success(), "loading nftables rules:\n{rules}\n{ran}");
    Ok(())
}

/// Waits until `url` answers from the client (lbd learns the real servers' MACs, HAProxy
/// starts listening).
fn wait_serving(tb: &Testbed, url: &str, haproxy: &mut Option<Daemon>) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let tally = tb.curl(url, 4);
        if tally.replies.len() == 4 && tally.replies.iter().all(|r| r.status == 200) {
            return Ok(());
        }
        if let Some(d) = haproxy.as_mut()
            && !d.is_running()
        {
            bail!("haproxy exited:\n{}", d.report());
        }
        if std::time::Instant::now() >= deadline {
            bail!("{url} does not answer from the client:\n{tally}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The pid of the process named `comm` in `ns`.
pub fn process_in(ns: &crate::netns::Netns, comm: &str) -> Option<i32> {
    ns.pids().into_iter().find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
    })
}

fn xdp_prog_id(tb: &Testbed, iface: &str) -> Option<u32> {
    let ran = tb
        .director
        .ns
        .try_run(&["ip", "-details", "link", "show", "dev", iface], None);
    let mut words = ran.stdout.split_whitespace();
    words.find(|w| *w == "prog/xdp")?;
    (words.next()? == "id").then_some(())?;
    words.next()?.parse().ok()
}

/// CPU counters of the whole machine, from /proc/stat (clock ticks).
#[derive(Clone, Copy, Default)]
struct CpuTicks {
    busy: u64,
    softirq: u64,
}

fn cpu_ticks() -> CpuTicks {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return CpuTicks::default();
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|w| w.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    CpuTicks {
        busy: get(0) + get(1) + get(2) + get(5) + get(6),
        softirq: get(6),
    }
}

/// utime + stime of process `pid`, in clock ticks.
pub fn process_ticks(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15: indexes 11 and 12 from the state.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn xdp_run_stats(id: u32) -> Option<(Duration, u64)> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == id)
        .map(|p| (p.run_time(), p.run_count()))
}

/// Microseconds per clock tick.
pub fn tick_us() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1e6 / if hz > 0 { hz as f64 } else { 100.0 }
}

fn measure_load(tb: &Testbed, active: &Active, load: LoadKind, s: &Settings) -> Result<Sample> {
    let duration = format!("{}s", s.duration_s);
    let connections = s.connections.to_string();
    let ab_n = s.ab_requests.to_string();
    let ab_c = s.ab_concurrency.to_string();
    let argv: Vec<&str> = match load {
        LoadKind::WrkClose | LoadKind::WrkKeepAlive => {
            let mut a = vec![
                "wrk",
                "--threads",
                "1",
                "--connections",
                &connections,
                "--duration",
                &duration,
                "--timeout",
                "5s",
                "--latency",
            ];
            if load == LoadKind::WrkClose {
                a.extend(["--header", "Connection: close"]);
            }
            a.push(&active.url);
            a
        }
        LoadKind::Ab => vec!["ab", "-r", "-s", "5", "-c", &ab_c, "-n", &ab_n, &active.url],
    };
    let cpu0 = cpu_ticks();
    let proc0 = active.director_pid.and_then(process_ticks);
    let xdp0 = active.xdp_prog.and_then(xdp_run_stats);
    let ran = tb.client.ns.try_run(&argv, None);
    let cpu1 = cpu_ticks();
    let proc1 = active.director_pid.and_then(process_ticks);
    let xdp1 = active.xdp_prog.and_then(xdp_run_stats);
    ensure!(ran.success(), "load generator failed:\n{ran}");
    let mut sample = match load {
        LoadKind::Ab => parse_ab(&ran.stdout),
        _ => parse_wrk(&ran.stdout),
    }
    .with_context(|| format!("cannot read the load generator's report:\n{ran}"))?;
    ensure!(sample.requests > 0, "no request completed:\n{ran}");
    let per_req = |ticks: u64| ticks as f64 * tick_us() / sample.requests as f64;
    sample.cpu_us = per_req(cpu1.busy - cpu0.busy);
    sample.softirq_us = per_req(cpu1.softirq - cpu0.softirq);
    if let (Some(a), Some(b)) = (proc0, proc1) {
        sample.director_proc_us = Some(per_req(b.saturating_sub(a)));
    }
    if let (Some((t0, n0)), Some((t1, n1))) = (xdp0, xdp1) {
        let requests = sample.requests as f64;
        sample.xdp_us = Some((t1.saturating_sub(t0)).as_secs_f64() * 1e6 / requests);
        sample.xdp_packets = Some(n1.saturating_sub(n0) as f64 / requests);
    }
    Ok(sample)
}

/// `318.00us`, `1.02ms`, `2.00s` → milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e3)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// wrk's report with `--latency`: requests, errors, Requests/sec, the 50% and 99% lines.
pub fn parse_wrk(text: &str) -> Option<Sample> {
    let base = http::parse_wrk(text)?;
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let pct = |p: &str| {
        text.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == p).then(|| duration_ms(w.next()?))?
        })
    };
    Some(Sample {
        requests: base.requests,
        errors: base.failed + base.non_2xx,
        rps,
        p50_ms: pct("50%")?,
        p99_ms: pct("99%")?,
        ..Sample::default()
    })
}

/// ab's report: Complete/Failed requests, Requests per second, and the 50%/99% lines of its
/// "served within" table (whole milliseconds).
pub fn parse_ab(text: &str) -> Option<Sample> {
    let base = http::parse_ab(text)?;
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests per second:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let pct = |p: &str| {
        text.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == p).then(|| w.next()?.parse::<f64>().ok())?
        })
    };
    Some(Sample {
        requests: base.requests,
        errors: base.failed + base.non_2xx,
        rps,
        p50_ms: pct("50%")?,
        p99_ms: pct("99%")?,
        ..Sample::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_latency_report() {
        let text = "Running 2s test @ http://10.0.0.99:80/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.31ms  402.91us   9.25ms   83.03%
    Req/Sec    12.28k   453.02    12.80k    80.00%
  Latency Distribution
     50%    1.24ms
     75%    1.47ms
     90%    1.75ms
     99%    2.61ms
  24441 requests in 2.00s, 3.61MB read
  Socket errors: connect 0, read 3, write 0, timeout 0
Requests/sec:  12218.45
Transfer/sec:      1.80MB
";
        let s = parse_wrk(text).unwrap();
        assert_eq!((s.requests, s.errors), (24441, 3));
        assert!((s.rps - 12218.45).abs() < 1e-6);
        assert!((s.p50_ms - 1.24).abs() < 1e-9 && (s.p99_ms - 2.61).abs() < 1e-9);
        assert!((duration_ms("402.91us").unwrap() - 0.40291).abs() < 1e-12);
        assert_eq!(duration_ms("2.00s"), Some(2000.0));
    }

    #[test]
    fn ab_report() {
        let text = "Complete requests:      1000
Failed requests:        0
Requests per second:    4321.09 [#/sec] (mean)
Percentage of the requests served within a certain time (ms)
  50%      3
  66%      4
  99%      9
 100%     12 (longest request)
";
        let s = parse_ab(text).unwrap();
        assert_eq!((s.requests, s.errors), (1000, 0));
        assert_eq!((s.p50_ms, s.p99_ms), (3.0, 9.0));
        assert!((s.rps - 4321.09).abs() < 1e-6);
    }
}
