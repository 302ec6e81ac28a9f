//! Section 4: the control plane, against a running lbd in the testbed.
//!
//! - Restoring a large configuration: `lbadm -R` of up to 10,000 services with 4 real servers
//!   each (ipvsadm's save format), then listing it (`lbadm -Ln`) and clearing it (`lbadm -C`).
//!   The first restore runs against a freshly started lbd with an empty neighbour table (it
//!   asks the kernel to resolve the real servers and answers lbadm once they are resolved, or
//!   after 500 ms); the next ones find the real servers known. Once with real servers that
//!   answer ARP, once with addresses nobody answers for.
//! - Following a weight change: while a client opens connection after connection, real
//!   server 1's weight goes to 0 (`lbadm -e ... -w 0`); how long until no new connection goes
//!   to it any more. Every connection has a source port of its own: a SYN that reuses the
//!   port of a connection the director still holds (DR leaves them in FIN_WAIT) stays with
//!   that connection's real server, as in IPVS, whatever the weights.

use std::{
    io::{Read as _, Write as _},
    mem::size_of,
    net::{Ipv4Addr, SocketAddrV4, TcpStream},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::atomic::{AtomicBool, AtomicU16, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Result, ensure};

use super::Options;
use crate::{XdpMode, testbed::Testbed};

/// Restoring `services` services of one kind (seconds).
pub struct Restore {
    pub label: String,
    pub services: usize,
    pub reals_per_service: usize,
    /// The first restore, against a freshly started lbd and an empty neighbour table.
    pub cold: Option<f64>,
    pub cold_lbd_cpu: Option<f64>,
    /// Restores after that (the real servers known), one per round.
    pub warm: Vec<f64>,
    /// CPU time lbd spent during each of them.
    pub warm_lbd_cpu: Vec<f64>,
    pub list: Vec<f64>,
    pub clear: Vec<f64>,
}

/// One weight change.
pub struct Follow {
    /// How long `lbadm -e` took to return (ms).
    pub command_ms: f64,
    /// From the start of the command to the start of the last connection that still went to
    /// the drained real server (ms; 0 if none did).
    pub last_old_ms: f64,
    /// Connections the client made in the 500 ms after the command, and how many went to
    /// the drained real server.
    pub after: usize,
    pub after_to_drained: usize,
    /// The client's median time between connection starts (the resolution), ms.
    pub spacing_ms: f64,
}

pub struct Control {
    pub restores: Vec<Restore>,
    pub follows: Vec<Follow>,
    pub errors: Vec<String>,
}

pub fn run(opts: &Options) -> Result<Control> {
    let (sizes, rounds): (&[usize], usize) = if opts.quick {
        (&[1000, 2500], 2)
    } else {
        (&[1000, 2500, 5000, 10_000], 3)
    };
    let follow_rounds = if opts.quick { 2 } else { 6 };
    let mut tb = Testbed::builder()
        .real_servers(4)
        .xdp_mode(XdpMode::Native)
        .build();
    let mut control = Control {
        restores: Vec::new(),
        follows: Vec::new(),
        errors: Vec::new(),
    };
    let reachable: Vec<String> = (1..=4).map(|i| tb.rip(i)).collect();
    let o = tb.subnet().octets();
    let unreachable: Vec<String> = (200..204)
        .map(|h| Ipv4Addr::new(o[0], o[1], o[2], h).to_string())
        .collect();
    let mut runs: Vec<(&str, &Vec<String>, usize)> = sizes
        .iter()
        .map(|n| ("real servers that answer ARP", &reachable, *n))
        .collect();
    runs.push((
        "real servers nobody answers ARP for",
        &unreachable,
        sizes[0],
    ));
    for (label, reals, n) in runs {
        if super::interrupted() {
            break;
        }
        // A fresh lbd that knows no real server, and a kernel that has to ask for them.
        if tb.lbd_running() {
            tb.stop_lbd();
        }
        tb.director.ns.run(&["ip", "neigh", "flush", "all"]);
        tb.start_lbd();
        let lbd_pid = super::http_load::process_in(&tb.director.ns, "lbd");
        match restore(&tb, lbd_pid, label, n, reals, rounds) {
            Ok(r) => control.restores.push(r),
            Err(e) => control
                .errors
                .push(format!("restore of {n} services, {label}: {e:#}")),
        }
    }
    if !super::interrupted() {
        match follow(&tb, follow_rounds) {
            Ok(f) => control.follows = f,
            Err(e) => control.errors.push(format!("weight change: {e:#}")),
        }
    }
    Ok(control)
}

/// ipvsadm's save format: `n` services on VIPs 10.200.x.y:80 (wlc), each with `reals`.
fn rules(n: usize, reals: &[String]) -> String {
    let mut text = String::with_capacity(n * 200);
    for i in 0..n {
        let vip = format!("10.200.{}.{}:80", i >> 8, i & 0xff);
        text += &format!("-A -t {vip} -s wlc\n");
        for r in reals {
            text += &format!("-a -t {vip} -r {r}:80 -g -w 1\n");
        }
    }
    text
}

fn timed_lbadm(tb: &Testbed, args: &[&str], stdin: Option<&str>) -> Result<(f64, String)> {
    let start = Instant::now();
    let ran = tb.try_lbadm(args, stdin);
    let secs = start.elapsed().as_secs_f64();
    ensure!(ran.success(), "lbadm {} failed:\n{ran}", args.join(" "));
    Ok((secs, ran.stdout))
}

fn restore(
    tb: &Testbed,
    lbd_pid: Option<i32>,
    label: &str,
    services: usize,
    reals: &[String],
    rounds: usize,
) -> Result<Restore> {
    let text = rules(services, reals);
    let mut r = Restore {
        label: label.to_owned(),
        services,
        reals_per_service: reals.len(),
        cold: None,
        cold_lbd_cpu: None,
        warm: Vec::new(),
        warm_lbd_cpu: Vec::new(),
        list: Vec::new(),
        clear: Vec::new(),
    };
    timed_lbadm(tb, &["-C"], None)?;
    for round in 0..rounds {
        if super::interrupted() {
            break;
        }
        let cpu0 = lbd_pid.and_then(super::http_load::process_ticks);
        let (secs, _) = timed_lbadm(tb, &["-R"], Some(&text))?;
        let cpu1 = lbd_pid.and_then(super::http_load::process_ticks);
        let cpu = match (cpu0, cpu1) {
            (Some(a), Some(b)) => {
                Some(b.saturating_sub(a) as f64 * super::http_load::tick_us() / 1e6)
            }
            _ => None,
        };
        if round == 0 {
            r.cold = Some(secs);
            r.cold_lbd_cpu = cpu;
        } else {
            r.warm.push(secs);
            r.warm_lbd_cpu.extend(cpu);
        }
        let (secs, listing) = timed_lbadm(tb, &["-Ln"], None)?;
        r.list.push(secs);
        let listed = listing.lines().filter(|l| l.starts_with("TCP")).count();
        ensure!(
            listed == services,
            "`lbadm -Ln` lists {listed} services after restoring {services}"
        );
        let (secs, _) = timed_lbadm(tb, &["-C"], None)?;
        r.clear.push(secs);
    }
    Ok(r)
}

/// One HTTP/1.0 request on a new connection from source port `port` (so that no connection
/// reuses the port of one the director still holds); the real server's name from the body.
fn request(to: SocketAddrV4, port: u16) -> Option<String> {
    let mut s = connect_from(port, to)?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let body = reply.split("\r\n\r\n").nth(1)?;
    Some(body.trim().to_owned())
}

/// A TCP connection to `to` from local port `port` (std cannot bind before connecting).
fn connect_from(port: u16, to: SocketAddrV4) -> Option<TcpStream> {
    let sockaddr = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a new socket descriptor, owned by the OwnedFd at once; bind and connect get
    // sockaddr_in values that live across the calls, with their true size; the timeout is a
    // timeval that lives across setsockopt.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return None;
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let timeout = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        );
        let len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let local = sockaddr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port));
        if libc::bind(fd.as_raw_fd(), (&raw const local).cast(), len) != 0 {
            return None;
        }
        let remote = sockaddr(to);
        if libc::connect(fd.as_raw_fd(), (&raw const remote).cast(), len) != 0 {
            return None;
        }
        Some(TcpStream::from(fd))
    }
}

fn follow(tb: &Testbed, rounds: usize) -> Result<Vec<Follow>> {
    let service = tb.vip_port(80);
    timed_lbadm(tb, &["-C"], None)?;
    timed_lbadm(tb, &["-A", "-t", &service, "-s", "wrr"], None)?;
    for i in 1..=2 {
        timed_lbadm(
            tb,
            &["-a", "-t", &service, "-r", &tb.rip(i), "-g", "-w", "1"],
            None,
        )?;
    }
    let to = SocketAddrV4::new(tb.vip(), 80);
    // Source ports handed out once each; the connection table never saw them.
    let next_port = AtomicU16::new(20_000);
    // Both real servers must answer before anything is timed.
    let warm = tb.curl_vip(80, 4);
    ensure!(
        warm.count("rs1") == 2 && warm.count("rs2") == 2,
        "rr over rs1 and rs2 does not work:\n{warm}"
    );
    let mut out = Vec::new();
    for round in 0..rounds {
        if super::interrupted() {
            break;
        }
        // Drain rs1 and rs2 in turn.
        let drained = 1 + round % 2;
        let name = format!("rs{drained}");
        let stop = AtomicBool::new(false);
        let (log, t0, command) = std::thread::scope(|scope| {
            let client = scope.spawn(|| {
                tb.client.ns.enter(|| {
                    let mut log: Vec<(Instant, Option<String>)> = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let port = next_port.fetch_add(1, Ordering::Relaxed);
                        if port == u16::MAX {
                            break;
                        }
                        let start = Instant::now();
                        log.push((start, request(to, port)));
                    }
                    log
                })
            });
            std::thread::sleep(Duration::from_millis(300));
            let t0 = Instant::now();
            let command = timed_lbadm(
                tb,
                &[
                    "-e",
                    "-t",
                    &service,
                    "-r",
                    &tb.rip(drained),
                    "-g",
                    "-w",
                    "0",
                ],
                None,
            );
            std::thread::sleep(Duration::from_millis(500));
            stop.store(true, Ordering::Relaxed);
            (client.join().expect("client thread"), t0, command)
        });
        let (command_secs, _) = command?;
        let failed = log.iter().filter(|(_, n)| n.is_none()).count();
        ensure!(
            failed * 10 <= log.len(),
            "{failed} of {} requests failed during the weight change",
            log.len()
        );
        let after: Vec<&(Instant, Option<String>)> = log.iter().filter(|(t, _)| *t >= t0).collect();
        ensure!(
            !after.is_empty(),
            "the client made no connection after the weight change (out of source ports?)"
        );
        let last_old = after
            .iter()
            .filter(|(_, n)| n.as_deref() == Some(name.as_str()))
            .map(|(t, _)| t.duration_since(t0).as_secs_f64() * 1e3)
            .fold(0.0f64, f64::max);
        let mut gaps: Vec<f64> = log
            .windows(2)
            .map(|w| w[1].0.duration_since(w[0].0).as_secs_f64() * 1e3)
            .collect();
        gaps.sort_by(f64::total_cmp);
        timed_lbadm(
            tb,
            &[
                "-e",
                "-t",
                &service,
                "-r",
                &tb.rip(drained),
                "-g",
                "-w",
                "1",
            ],
            None,
        )?;
        out.push(Follow {
            command_ms: command_secs * 1e3,
            last_old_ms: last_old,
            after: after.len(),
            after_to_drained: after
                .iter()
                .filter(|(_, n)| n.as_deref() == Some(name.as_str()))
                .count(),
            spacing_ms: gaps.get(gaps.len() / 2).copied().unwrap_or(0.0),
        });
        // Let the restored weight settle before the next round.
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(out)
}
