//! Scale-out behind ECMP (issue #15): three directors, each running lbd (DR, `mh` with the
//! port, `sloppy_tcp=1`) and BIRD, announce the VIP to a router over BGP with BFD; the router
//! spreads flows over them with a multipath route (`fib_multipath_hash_policy=1`). See
//! `lb_tests::ecmp` for the topology.
//!
//! Under `wrk` and with 200 long-lived downloads (read slowly through a small receive window,
//! so that their ACKs keep crossing the directors throughout), one test measures and prints:
//!
//! 0. a director whose health checks fail (its own packets to the real servers dropped)
//!    withdraws the VIP, and announces it again once they pass (`lbd status` says why);
//! 1. a director drained (`lbd drain`), restarted while drained, and returned (`lbd
//!    undrain`): no request fails, no download breaks;
//! 2. a fourth director added: established downloads that survive (bar: >= 99%);
//! 3. a director killed (its link down, then its lbd and BIRD killed): the seconds until the
//!    router sends no new connection to it, new connections afterwards (bar: 100% succeed),
//!    downloads that survive (bar: >= 99%).
//!
//! Times are printed, never asserted.

use std::{
    collections::HashSet,
    io::{ErrorKind, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddrV4, TcpStream},
    sync::atomic::{AtomicU16, Ordering},
    time::{Duration, Instant},
};

use lb_tests::{
    LoadGen, SERVICE_PORT,
    ecmp::{EcmpLab, EcmpOptions, RESERVED_CLIENT_PORTS},
};

const DOWNLOADS: usize = 200;
/// Large enough to last the whole phase at the pace below (80 KB/s each).
const DOWNLOAD_SIZE: usize = 2 << 20;
const DOWNLOAD_FILE: &str = "big.bin";
/// Each download reads this much per round while the phase goes on.
const PACE_BYTES: usize = 4096;
const PACE_ROUND: Duration = Duration::from_millis(50);
/// How long a download may take to finish once read at full speed.
const FINISH_TIMEOUT: Duration = Duration::from_secs(90);
/// How long routing may take to follow a change (BFD: 300 ms; BGP: a round trip).
const ROUTE_TIMEOUT: Duration = Duration::from_secs(30);
/// New connections tried once the router has taken a killed director out.
const NEW_CONNECTIONS: usize = 200;

/// Client ports kept for the downloads (the lab's `RESERVED_CLIENT_PORTS`, which the kernel
/// gives to none of wrk's or curl's connections), each download taking one never used before. The
/// lab's one client address opens hundreds of connections a second under wrk and goes through
/// its 64k ports in a few minutes, while a director keeps an ended connection's entry for up
/// to two minutes (FIN_WAIT). An entry a director made while its own real servers were coming
/// back (phase 0: its Maglev table then differs from the others') would send a later download
/// with the same ports, once ECMP moves it there, to another real server, which resets or
/// ignores it: a client reusing a 4-tuple within two minutes, which real clients do far less.
static NEXT_DOWNLOAD_PORT: AtomicU16 = AtomicU16::new(*RESERVED_CLIENT_PORTS.start());

/// One long-lived download of `/files/big.bin` through the VIP.
struct Download {
    stream: TcpStream,
    port: u16,
    received: Vec<u8>,
    header_len: Option<usize>,
    total: usize,
    eof: bool,
    error: Option<String>,
}

impl Download {
    fn body_len(&self) -> usize {
        self.header_len.map_or(0, |h| self.total - h)
    }

    fn complete(&self) -> bool {
        self.eof
            && self.error.is_none()
            && self.header_len.is_some()
            && self.body_len() == DOWNLOAD_SIZE
            && self.received.starts_with(b"HTTP/1.1 200")
    }

    /// Reads up to `max` bytes if any are there; false if nothing came.
    fn read_some(&mut self, max: usize) -> bool {
        if self.eof || self.error.is_some() {
            return false;
        }
        let mut buf = vec![0u8; max];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.eof = true;
                true
            }
            Ok(n) => {
                self.total += n;
                if self.header_len.is_none() {
                    self.received.extend_from_slice(&buf[..n]);
                    if let Some(end) = self.received.windows(4).position(|w| w == b"\r\n\r\n") {
                        self.header_len = Some(end + 4);
                    }
                }
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => {
                self.error = Some(e.to_string());
                false
            }
        }
    }
}

/// The downloads of one phase.
struct Downloads(Vec<Download>);

impl Downloads {
    /// Opens `DOWNLOADS` connections to the VIP from the client and asks each for the file.
    fn open(lab: &EcmpLab) -> Downloads {
        let vip = lab.vip_addr();
        let client = lab.client.ip;
        let streams: Vec<TcpStream> = lab.client.ns.enter(|| {
            (0..DOWNLOADS)
                .map(|i| {
                    let port = NEXT_DOWNLOAD_PORT.fetch_add(1, Ordering::Relaxed);
                    assert!(
                        RESERVED_CLIENT_PORTS.contains(&port),
                        "out of download ports"
                    );
                    let socket =
                        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                            .expect("a TCP socket");
                    socket
                        .bind(&SocketAddrV4::new(client, port).into())
                        .unwrap_or_else(|e| panic!("download {i}: binding port {port}: {e}"));
                    socket
                        .connect_timeout(&vip.into(), Duration::from_secs(5))
                        .unwrap_or_else(|e| panic!("download {i}: connecting to {vip}: {e}"));
                    TcpStream::from(socket)
                })
                .collect()
        });
        let request = format!(
            "GET /files/{DOWNLOAD_FILE} HTTP/1.1\r\nHost: {vip}\r\nConnection: close\r\n\r\n"
        );
        let downloads = streams
            .into_iter()
            .map(|mut stream| {
                stream
                    .write_all(request.as_bytes())
                    .expect("send the request");
                stream.set_nonblocking(true).expect("non-blocking");
                let port = stream.local_addr().expect("local address").port();
                Download {
                    stream,
                    port,
                    received: Vec::new(),
                    header_len: None,
                    total: 0,
                    eof: false,
                    error: None,
                }
            })
            .collect();
        Downloads(downloads)
    }

    /// Reads each download slowly for `duration`.
    fn pace(&mut self, duration: Duration) {
        let end = Instant::now() + duration;
        while Instant::now() < end {
            for d in &mut self.0 {
                d.read_some(PACE_BYTES);
            }
            std::thread::sleep(PACE_ROUND);
        }
    }

    /// Paces while `f` runs `until` it returns `Some`, polling it every round.
    fn pace_until<T>(
        &mut self,
        timeout: Duration,
        mut until: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(v) = until() {
                return Some(v);
            }
            if Instant::now() >= end {
                return None;
            }
            for d in &mut self.0 {
                d.read_some(PACE_BYTES);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The client ports, to find the downloads in a director's connection table.
    fn ports(&self) -> HashSet<u16> {
        self.0.iter().map(|d| d.port).collect()
    }

    /// Reads every download to its end at full speed; returns how many arrived whole, and a
    /// description of the others.
    fn finish(mut self) -> (usize, Vec<String>) {
        let end = Instant::now() + FINISH_TIMEOUT;
        loop {
            let mut progress = false;
            for d in &mut self.0 {
                progress |= d.read_some(256 * 1024);
            }
            if self.0.iter().all(|d| d.eof || d.error.is_some()) || Instant::now() >= end {
                break;
            }
            if !progress {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let complete = self.0.iter().filter(|d| d.complete()).count();
        let broken = self
            .0
            .iter()
            .filter(|d| !d.complete())
            .map(|d| {
                format!(
                    "port {}: {} of {DOWNLOAD_SIZE} body bytes, {}",
                    d.port,
                    d.body_len(),
                    d.error.clone().unwrap_or_else(|| if d.eof {
                        "closed early".to_owned()
                    } else {
                        "still open at the deadline".to_owned()
                    })
                )
            })
            .collect();
        (complete, broken)
    }
}

/// How many of `ports` go through director `i` now: established entries of its connection
/// table that a packet refreshed within the last few seconds (an entry a flow left behind on
/// a director it moved away from stays until it expires, and a later download may reuse its
/// port).
fn flows_through(lab: &EcmpLab, i: usize, ports: &HashSet<u16>, client: Ipv4Addr) -> usize {
    let ran = lab.lbadm(i, &["-Lnc"]);
    ran.stdout
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 4
                && f[2] == "ESTABLISHED"
                && expire_secs(f[1]).is_some_and(|s| s + FRESH_SECS >= TCP_TIMEOUT_SECS)
                && f[3].split_once(':').is_some_and(|(ip, port)| {
                    ip.parse() == Ok(client) && port.parse().is_ok_and(|p: u16| ports.contains(&p))
                })
        })
        .count()
}

/// IPVS's established TCP timeout (lbd's default), and how recently an entry must have seen
/// a packet to count as a flow going through a director.
const TCP_TIMEOUT_SECS: u32 = 900;
const FRESH_SECS: u32 = 5;

/// `-Lnc`'s expire column, `MM:SS`, in seconds.
fn expire_secs(text: &str) -> Option<u32> {
    let (m, s) = text.split_once(':')?;
    Some(m.parse::<u32>().ok()? * 60 + s.parse::<u32>().ok()?)
}

/// Waits for the router's route to satisfy `ok`.
#[track_caller]
fn wait_until_route(lab: &EcmpLab, what: &str, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + ROUTE_TIMEOUT;
    while !ok() {
        assert!(
            Instant::now() < end,
            "timed out waiting for {what}\n{}",
            lab.report()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Says which downloads did not arrive whole, how they ended, and what each director's
/// connection table holds for them (which real server, which state).
fn print_broken(lab: &EcmpLab, broken: &[String]) {
    let client = lab.client.ip;
    for b in broken {
        println!("    download not intact: {b}");
        let Some(port) = b
            .strip_prefix("port ")
            .and_then(|r| r.split(':').next())
            .and_then(|p| p.parse::<u16>().ok())
        else {
            continue;
        };
        let source = format!("{client}:{port} ");
        for (i, d) in lab.directors.iter().enumerate() {
            let ran = lab.lbadm(i, &["-Lnc"]);
            if !ran.success() {
                continue;
            }
            for line in ran.stdout.lines().filter(|l| l.contains(&source)) {
                println!("      {}: {}", d.name(), line.trim());
            }
        }
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

fn wrk(lab: &EcmpLab, tag: &str) -> lb_tests::http::Load {
    lab.start_load(LoadGen::Wrk { connections: 8 }, &lab.url(), tag)
}

#[test]
fn ecmp_directors_drained_added_and_killed() {
    let mut lab = EcmpLab::start(&EcmpOptions {
        directors: 4,
        running: 3,
        ..EcmpOptions::default()
    });
    let payload: Vec<u8> = (0..DOWNLOAD_SIZE).map(|i| (i % 251) as u8).collect();
    lab.publish_file(DOWNLOAD_FILE, &payload);
    let client = lab.client.ip;
    println!(
        "ECMP lab up: the router routes {} over {:?}",
        lab.vip(),
        lab.next_hops()
    );
    lab.curl_url(&lab.url(), 20).assert_all_ok();

    // ---- (0) a director whose health checks fail withdraws the VIP ----
    // d1's own packets to the real servers' port 80 are dropped (its health checks, from its
    // kernel; the data path's forwarding does not pass the output hook): it sees every real
    // server down, while the others see them up.
    let d1 = 0;
    let d1_ip = lab.directors[d1].ip();
    let load = wrk(&lab, "health");
    let t = Instant::now();
    lab.block_health_checks(d1, true);
    wait_until_route(&lab, "d1 to withdraw the VIP once its checks fail", || {
        !lab.next_hops().contains(&d1_ip)
    });
    let health_withdrawn = t.elapsed();
    let status = lab.lbd_command(d1, "status");
    assert!(
        status.stdout.contains("withdrawn")
            && status
                .stdout
                .contains("no service has a healthy real server"),
        "`lbd status` does not say why d1 withdrew\n{status}"
    );
    let t = Instant::now();
    lab.block_health_checks(d1, false);
    wait_until_route(
        &lab,
        "d1 to announce the VIP again once its checks pass",
        || lab.next_hops().contains(&d1_ip),
    );
    let health_back = t.elapsed();
    // Every director has the real servers in the same order (newest first, as IPVS walks
    // them for mh), so the same Maglev table.
    let order = |i: usize| -> Vec<String> {
        lab.lbadm(i, &["-Ln", "--nosort"])
            .stdout
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("-> "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|a| !a.starts_with("RemoteAddress"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        order(d1),
        order(1),
        "d1's real servers are in another order than d2's after the health checks flapped"
    );
    let report = load.stop();
    println!(
        "(0) health: d1 out of the route {:.2} s after its health checks began to fail \
         (TCP_CHECK, delay_loop 2, connect_timeout 2), back {:.2} s after they pass again; \
         wrk: {} requests, {} failed, {} non-2xx",
        health_withdrawn.as_secs_f64(),
        health_back.as_secs_f64(),
        report.requests,
        report.failed,
        report.non_2xx
    );

    // ---- (1) drain d2, restart its lbd while drained, return it ----
    let d2 = 1;
    let d2_ip = lab.directors[d2].ip();
    let mut downloads = Downloads::open(&lab);
    let load = wrk(&lab, "drain");
    downloads.pace(Duration::from_secs(2));
    let on_d2 = flows_through(&lab, d2, &downloads.ports(), client);
    let t = Instant::now();
    let status = lab.lbd_command(d2, "drain");
    assert!(
        status.success(),
        "lbd drain failed\n{status}\n{}",
        lab.report()
    );
    let withdrawn = downloads.pace_until(ROUTE_TIMEOUT, || {
        (!lab.next_hops().contains(&d2_ip)).then(|| t.elapsed())
    });
    let withdrawn =
        withdrawn.unwrap_or_else(|| panic!("d2 drained but still a next hop\n{}", lab.report()));
    let status = lab.lbd_command(d2, "status");
    assert!(
        status.stdout.contains("DRAINED") && status.stdout.contains("withdrawn"),
        "`lbd status` does not show the drain\n{status}"
    );
    // A drained director stays drained across a restart of lbd (its drain state file).
    let restarted = Instant::now();
    lab.stop_lbd(d2);
    lab.start_director(d2);
    downloads.pace(Duration::from_secs(2));
    let status = lab.lbd_command(d2, "status");
    assert!(
        status.stdout.contains("DRAINED"),
        "lbd forgot the drain across a restart\n{status}"
    );
    assert!(
        !lab.next_hops().contains(&d2_ip),
        "d2 announced the VIP again after a restart while drained\n{}",
        lab.report()
    );
    let restart_secs = restarted.elapsed().as_secs_f64();
    let t = Instant::now();
    let status = lab.lbd_command(d2, "undrain");
    assert!(status.success(), "lbd undrain failed\n{status}");
    let returned = downloads
        .pace_until(ROUTE_TIMEOUT, || {
            lab.next_hops().contains(&d2_ip).then(|| t.elapsed())
        })
        .unwrap_or_else(|| panic!("d2 undrained but not a next hop again\n{}", lab.report()));
    downloads.pace(Duration::from_secs(2));
    let report = load.stop();
    let (complete, broken) = downloads.finish();
    print_broken(&lab, &broken);
    println!(
        "(1) drain: d2 withdrawn from the router {:.2} s after `lbd drain` ({on_d2} of \
         {DOWNLOADS} downloads were going through it); lbd restarted while drained \
         ({restart_secs:.1} s) and stayed drained; back as a next hop {:.2} s after `lbd \
         undrain`; wrk: {} requests, {} failed, {} non-2xx; downloads intact: {complete}/{DOWNLOADS}",
        withdrawn.as_secs_f64(),
        returned.as_secs_f64(),
        report.requests,
        report.failed,
        report.non_2xx
    );
    assert!(
        report.failed == 0 && report.non_2xx == 0 && report.requests > 0,
        "requests failed while a director was drained and returned\n{}\n{}",
        report.output,
        lab.report()
    );
    assert_eq!(
        complete,
        DOWNLOADS,
        "downloads broke while a director was drained and returned: {broken:?}\n{}",
        lab.report()
    );

    // ---- (2) a fourth director ----
    let d4 = 3;
    let d4_ip = lab.directors[d4].ip();
    let mut downloads = Downloads::open(&lab);
    let load = wrk(&lab, "add");
    downloads.pace(Duration::from_secs(2));
    let t = Instant::now();
    lab.start_director(d4);
    let added = downloads
        .pace_until(ROUTE_TIMEOUT, || {
            lab.next_hops().contains(&d4_ip).then(|| t.elapsed())
        })
        .unwrap_or_else(|| panic!("d4 started but never a next hop\n{}", lab.report()));
    downloads.pace(Duration::from_secs(3));
    let ports = downloads.ports();
    let moved = flows_through(&lab, d4, &ports, client);
    let report = load.stop();
    let (complete, broken) = downloads.finish();
    print_broken(&lab, &broken);
    println!(
        "(2) add: d4 a next hop {:.2} s after its lbd started (health checks, BIRD, BGP); \
         {moved} of {DOWNLOADS} established downloads moved to d4; downloads intact: \
         {complete}/{DOWNLOADS} ({:.1}%); wrk: {} requests, {} failed, {} non-2xx",
        added.as_secs_f64(),
        percent(complete, DOWNLOADS),
        report.requests,
        report.failed,
        report.non_2xx
    );
    assert!(
        percent(complete, DOWNLOADS) >= 99.0,
        "fewer than 99% of the downloads survived a fourth director: {broken:?}\n{}",
        lab.report()
    );

    // ---- (3) a director killed ----
    let d3 = 2;
    let mut downloads = Downloads::open(&lab);
    let load = wrk(&lab, "kill");
    downloads.pace(Duration::from_secs(2));
    let ports = downloads.ports();
    let on_d3 = flows_through(&lab, d3, &ports, client);
    let Killed {
        gone,
        tally,
        new_ok,
        report,
        complete,
        broken,
    } = kill(&mut lab, d3, downloads, load);
    println!(
        "(3) kill: d3 out of the router's route {:.2} s after it died (BFD {}x{} ms); new \
         connections afterwards: {new_ok}/{NEW_CONNECTIONS} succeeded; {on_d3} of {DOWNLOADS} \
         downloads went through d3; downloads intact: {complete}/{DOWNLOADS} ({:.1}%); wrk \
         across the kill: {} requests, {} failed, {} non-2xx",
        gone.as_secs_f64(),
        3,
        100,
        percent(complete, DOWNLOADS),
        report.requests,
        report.failed,
        report.non_2xx
    );
    assert_kill_bars(&lab, new_ok, &tally, complete, &broken, "");
}

/// What a director's death did: how long the router took to drop it, the new connections
/// tried afterwards, wrk across it, and the downloads.
struct Killed {
    gone: Duration,
    tally: lb_tests::Tally,
    new_ok: usize,
    report: lb_tests::http::LoadReport,
    complete: usize,
    broken: Vec<String>,
}

/// Kills director `i` while `downloads` and `load` run: waits (pacing the downloads) until
/// the router no longer routes to it, tries new connections, then finishes the downloads.
fn kill(
    lab: &mut EcmpLab,
    i: usize,
    mut downloads: Downloads,
    load: lb_tests::http::Load,
) -> Killed {
    let ip = lab.directors[i].ip();
    let t = Instant::now();
    lab.kill_director(i);
    let gone = downloads
        .pace_until(ROUTE_TIMEOUT, || {
            (!lab.next_hops().contains(&ip)).then(|| t.elapsed())
        })
        .unwrap_or_else(|| panic!("{ip} killed but still a next hop\n{}", lab.report()));
    let tally = lab.curl_url(&lab.url(), NEW_CONNECTIONS);
    let new_ok = tally.replies.iter().filter(|r| r.status == 200).count();
    downloads.pace(Duration::from_secs(2));
    let report = load.stop();
    let (complete, broken) = downloads.finish();
    print_broken(lab, &broken);
    Killed {
        gone,
        tally,
        new_ok,
        report,
        complete,
        broken,
    }
}

/// Issue #15's bars for a director's death: every new connection succeeds once the router
/// has dropped it, and at least 99% of the downloads survive.
#[track_caller]
fn assert_kill_bars(
    lab: &EcmpLab,
    new_ok: usize,
    tally: &lb_tests::Tally,
    complete: usize,
    broken: &[String],
    what: &str,
) {
    assert_eq!(
        new_ok,
        NEW_CONNECTIONS,
        "new connections failed after the router took the dead director out{what}\n{tally}\n{}",
        lab.report()
    );
    assert!(
        percent(complete, DOWNLOADS) >= 99.0,
        "fewer than 99% of the downloads survived a director's death{what}: {broken:?}\n{}",
        lab.report()
    );
}

/// How many of `ports` director `i` lists in its connection table, in any state: its own
/// flows and, with connection synchronisation, the other directors'.
fn listed_downloads(lab: &EcmpLab, i: usize, ports: &HashSet<u16>, client: Ipv4Addr) -> usize {
    let ran = lab.lbadm(i, &["-Lnc"]);
    ran.stdout
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3)?.split_once(':'))
        .filter(|(ip, port)| {
            ip.parse() == Ok(client) && port.parse().is_ok_and(|p: u16| ports.contains(&p))
        })
        .count()
}

/// The director the router sends each of `ports` (the client's downloads) to now, as the
/// kernel hashes the flow over the multipath route (`ip route get` with the flow's ports).
fn routed_to(lab: &EcmpLab, ports: &HashSet<u16>) -> std::collections::HashMap<u16, Ipv4Addr> {
    let (vip, client) = (lab.vip().to_string(), lab.client.ip.to_string());
    ports
        .iter()
        .map(|&port| {
            let (sport, dport) = (port.to_string(), SERVICE_PORT.to_string());
            let ran = lab.router.ns.try_run(
                &[
                    "ip", "route", "get", &vip, "from", &client, "iif", "eth0", "ipproto", "tcp",
                    "sport", &sport, "dport", &dport,
                ],
                None,
            );
            let hop = ran
                .stdout
                .split_whitespace()
                .skip_while(|w| *w != "via")
                .nth(1)
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("ip route get for port {port}: {ran}"));
            (port, hop)
        })
        .collect()
}

/// Issue #15's other bar: with a scheduler whose choice differs from director to director
/// (`wlc`), long-lived flows survive a director's death when the directors synchronise their
/// connections (each a sync master and a sync backup on one group): the directors that ECMP
/// moves the dead one's flows to (and, hash-threshold ECMP being what it is, some of each
/// other's) have them already. Without the sync daemons, the moved flows are scheduled anew
/// by `sloppy_tcp` and land on another real server, which resets them.
#[test]
fn ecmp_wlc_with_connection_sync_survives_a_director_killed() {
    let mut lab = EcmpLab::start(&EcmpOptions {
        scheduler: "wlc".to_owned(),
        sync: true,
        ..EcmpOptions::default()
    });
    let payload: Vec<u8> = (0..DOWNLOAD_SIZE).map(|i| (i % 251) as u8).collect();
    lab.publish_file(DOWNLOAD_FILE, &payload);
    let client = lab.client.ip;
    println!("{}", lab.describe());
    lab.curl_url(&lab.url(), 20).assert_all_ok();

    let mut downloads = Downloads::open(&lab);
    let load = wrk(&lab, "kill");
    let ports = downloads.ports();
    let directors = lab.directors.len();
    // Every director lists every download: its own, and the others' by synchronisation.
    let t = Instant::now();
    let synced = downloads.pace_until(ROUTE_TIMEOUT, || {
        (0..directors)
            .all(|i| listed_downloads(&lab, i, &ports, client) == DOWNLOADS)
            .then(|| t.elapsed())
    });
    let listed: Vec<usize> = (0..directors)
        .map(|i| listed_downloads(&lab, i, &ports, client))
        .collect();
    let synced = synced.unwrap_or_else(|| {
        panic!(
            "the directors do not all list the {DOWNLOADS} downloads (they list {listed:?})\n{}",
            lab.report()
        )
    });
    let d3 = 2;
    let d3_ip = lab.directors[d3].ip();
    let before = routed_to(&lab, &ports);
    let Killed {
        gone,
        tally,
        new_ok,
        report,
        complete,
        broken,
    } = kill(&mut lab, d3, downloads, load);
    // The route is as it was when d3 went: where the downloads went from then on.
    let after = routed_to(&lab, &ports);
    let on_d3 = before.values().filter(|&&hop| hop == d3_ip).count();
    let moved = ports.iter().filter(|p| before[p] != after[p]).count();
    println!(
        "wlc + connection sync: every director listed all {DOWNLOADS} downloads {:.2} s after \
         they opened; d3 out of the router's route {:.2} s after it died; {moved} of the \
         downloads changed director ({on_d3} from d3, the others between the survivors); new \
         connections afterwards: {new_ok}/{NEW_CONNECTIONS} succeeded; downloads intact: \
         {complete}/{DOWNLOADS} ({:.1}%); wrk across the kill: {} requests, {} failed, {} \
         non-2xx",
        synced.as_secs_f64(),
        gone.as_secs_f64(),
        percent(complete, DOWNLOADS),
        report.requests,
        report.failed,
        report.non_2xx
    );
    assert_kill_bars(
        &lab,
        new_ok,
        &tally,
        complete,
        &broken,
        " (wlc and connection sync)",
    );
}
