//! The hashing schedulers and persistence netmasks end to end, against the kernel's IPVS:
//! `sh`, `dh`, `mh`, `-b sh-fallback`, `-b sh-port`, `-b mh-fallback`, `-b mh-port` and
//! `-p -M`, configured through `lbadm`, with real HTTP connections from the client addresses
//! and ports IPVS was given in `tests/golden/ipvs-sched` (see its README): each connection
//! must be served by the real server IPVS chose for that flow. Nothing here computes an
//! expected real server.
//!
//! The testbed is made to look like the recordings' world: the real servers rs1..rs4 also
//! hold A..D's addresses, 10.1.0.11..14 (`mh` places a real server in its table by address
//! and port), and are added by those addresses on port 80, in the recorded order and with
//! the recorded weights (`sh` and `dh` tile their buckets by that order); the client sends
//! from any address of 198.51.96.0/20 (the recordings' clients) and the real servers route
//! their answers back to it; `dh` hashes the VIP, so its service is on the recordings'
//! 203.0.113.10.

use std::net::{Ipv4Addr, SocketAddrV4};

use lb_tests::{SERVICE_PORT, Testbed, bound};

/// The recordings' client network and real-server addresses (A is 10.1.0.11).
const CLIENTS: &str = "198.51.96.0/20";
const FIRST_REAL: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 11);
/// The recordings' VIP, for `dh`.
const RECORDED_VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

/// One recording: the service's options, its real servers' weights (in the order added, A
/// first) and its flows with IPVS's real server (0 for A).
struct Recording {
    options: String,
    weights: Vec<u32>,
    flows: Vec<(SocketAddrV4, usize)>,
}

#[track_caller]
fn recording(case: &str) -> Recording {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden/ipvs-sched")
        .join(format!("{case}.txt"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let index = |name: &str| match name.as_bytes() {
        [b @ b'A'..=b'D'] => usize::from(b - b'A'),
        _ => panic!("{}: real server {name:?}", path.display()),
    };
    let mut recording = Recording {
        options: String::new(),
        weights: Vec::new(),
        flows: Vec::new(),
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["service", ref options @ ..] => recording.options = options.join(" "),
            ["real", name, weight] => {
                assert_eq!(index(name), recording.weights.len(), "{line}");
                recording.weights.push(weight.parse().expect("a weight"));
            }
            ["flow", from, name] => recording.flows.push((
                from.parse().expect("a client address and port"),
                index(name),
            )),
            _ => panic!("{}: cannot use {line:?} here", path.display()),
        }
    }
    recording
}

/// A DR testbed with four real servers made to look like the recordings' world (see the
/// module documentation), lbd running.
fn testbed() -> Testbed {
    let mut tb = Testbed::builder().real_servers(4).build();
    let client = tb.client.ip.to_string();
    bound::add_client_network(&tb.client.ns, CLIENTS);
    // ARP from the client's own address, not from whichever 198.51.x.y a connection uses.
    tb.client.ns.sysctl(
        &format!("net.ipv4.conf.{}.arp_announce", tb.client.iface()),
        "2",
    );
    for (i, rs) in tb.real_servers.iter().enumerate() {
        let addr = format!("{}/32", real_addr(i));
        rs.ns.run(&["ip", "addr", "add", &addr, "dev", rs.iface()]);
        rs.ns.run(&[
            "ip",
            "addr",
            "add",
            &format!("{RECORDED_VIP}/32"),
            "dev",
            "lo",
        ]);
        rs.ns.run(&["ip", "route", "add", CLIENTS, "via", &client]);
    }
    let director = &tb.director;
    director
        .ns
        .run(&["ip", "route", "add", "10.1.0.0/24", "dev", director.iface()]);
    director
        .ns
        .run(&["ip", "route", "add", CLIENTS, "via", &client]);
    director.ns.run(&[
        "ip",
        "addr",
        "add",
        &format!("{RECORDED_VIP}/32"),
        "dev",
        director.iface(),
    ]);
    let director_ip = director.ip.to_string();
    tb.client.ns.run(&[
        "ip",
        "route",
        "add",
        &format!("{RECORDED_VIP}/32"),
        "via",
        &director_ip,
    ]);
    tb.start_lbd();
    tb
}

/// Real server `i`'s recorded address (A, B, ...).
fn real_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::from_bits(FIRST_REAL.to_bits() + i as u32)
}

/// Configures `case`'s service on `vip`:80 (the testbed's VIP if none) through lbadm and replays its first `flows`
/// flows, one connection each, in order: each must be served by the real server IPVS gave it.
#[track_caller]
fn replay_on(case: &str, vip: Option<Ipv4Addr>, flows: usize) {
    let recording = recording(case);
    assert!(recording.flows.len() >= flows, "{case}: too few flows");
    let tb = testbed();
    let vip = vip.unwrap_or(tb.vip());
    let service = format!("{vip}:{SERVICE_PORT}");
    let args = format!("-A -t {service} {}", recording.options);
    tb.lbadm(&args.split_whitespace().collect::<Vec<_>>());
    for (i, weight) in recording.weights.iter().enumerate() {
        let real = format!("{}:{SERVICE_PORT}", real_addr(i));
        let weight = weight.to_string();
        tb.lbadm(&["-a", "-t", &service, "-r", &real, "-g", "-w", &weight]);
    }
    let to = SocketAddrV4::new(vip, SERVICE_PORT);
    let mut mismatches = Vec::new();
    for (n, &(from, ipvs)) in recording.flows[..flows].iter().enumerate() {
        let expected = format!("rs{}", ipvs + 1);
        let got = bound::http_get_from(&tb.client.ns, from, to)
            .unwrap_or_else(|e| panic!("{case}: flow #{} {from}: {e}", n + 1));
        if got != expected {
            mismatches.push(format!(
                "flow #{} {from}: IPVS gave {expected}, lb {got}",
                n + 1
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{case} ({}), {} of {flows} flows elsewhere than IPVS sent them:\n{}\n-Ln:\n{}",
        recording.options,
        mismatches.len(),
        mismatches.join("\n"),
        tb.lbadm(&["-L", "-n"])
    );
}

/// [`replay_on`] the testbed's VIP.
#[track_caller]
fn replay(case: &str, flows: usize) {
    replay_on(case, None, flows);
}

/// `sh` over A:1, B:2, C:3: each client address to the real server IPVS's hash gave it.
#[test]
fn sh_follows_ipvs() {
    replay("sh", 60);
}

/// `-b sh-fallback` with B at weight 0: B's clients go where IPVS re-hashed them.
#[test]
fn sh_fallback_follows_ipvs() {
    replay("sh-fallback", 60);
}

/// `-b sh-port`: two client addresses, many ports, spread as IPVS spread them (without the
/// flag each address would keep one real server).
#[test]
fn sh_port_follows_ipvs() {
    replay("sh-port", 60);
}

/// `-b sh-fallback,sh-port` together, with a real server at weight 0.
#[test]
fn sh_port_fallback_follows_ipvs() {
    replay("sh-port-fallback", 60);
}

/// `dh` hashes the destination: every client of the one VIP goes to IPVS's real server.
#[test]
fn dh_follows_ipvs() {
    replay_on("dh", Some(RECORDED_VIP), 40);
}

/// `mh` (Maglev) over A..D: the table from the real servers' addresses and ports.
#[test]
fn mh_follows_ipvs() {
    replay("mh", 60);
}

/// `-b mh-fallback` with B added at weight 0: B holds no slots (in IPVS and in lb), so this
/// checks that the flag changes nothing there; the fallback itself is checked with an
/// overloaded real server below.
#[test]
fn mh_fallback_follows_ipvs() {
    replay("mh-fallback", 60);
}

/// `-b mh-port`: the client's port in the hash.
#[test]
fn mh_port_follows_ipvs() {
    replay("mh-port", 60);
}

/// `-p 60 -M 255.255.255.0` with rr: a client network keeps its real server (two addresses
/// of one /24 share a template), rr moves on only for new networks, as in IPVS.
#[test]
fn persistence_netmask_follows_ipvs() {
    replay("rr-persistent-netmask", 40);
}

/// `-b mh-fallback` when a real server is over its upper threshold (IPVS's
/// `ip_vs_mh_get_fallback` for an unavailable destination): A at `-x 1` holding one
/// connection takes no new one, and the clients the recording (`mh`, the same four real
/// servers at weight 1) gave A are served by the others; every other client keeps the real
/// server IPVS gave it. Without the fallback, A's clients would find no destination.
#[test]
fn mh_fallback_passes_over_an_overloaded_real_server() {
    let recording = recording("mh");
    assert_eq!(recording.options, "-s mh");
    let tb = testbed();
    let service = format!("{}:{SERVICE_PORT}", tb.vip());
    tb.lbadm(&["-A", "-t", &service, "-s", "mh", "-b", "mh-fallback"]);
    for (i, weight) in recording.weights.iter().enumerate() {
        let real = format!("{}:{SERVICE_PORT}", real_addr(i));
        let weight = weight.to_string();
        let mut args = vec!["-a", "-t", &service, "-r", &real, "-g", "-w", &weight];
        if i == 0 {
            args.extend(["-x", "1"]);
        }
        tb.lbadm(&args);
    }
    let to = SocketAddrV4::new(tb.vip(), SERVICE_PORT);
    let (held_from, _) = *recording
        .flows
        .iter()
        .find(|&&(_, real)| real == 0)
        .expect("a flow to A");
    let held = bound::connect_in(&tb.client.ns, held_from, to)
        .unwrap_or_else(|e| panic!("the connection A holds: {e}"));
    // A is at its threshold now (mh without `-b mh-port` hashes the address only: the
    // held client's own flows are skipped, they would follow its connection's real server).
    let (mut moved, mut kept) = (0, 0);
    let mut wrong = Vec::new();
    for (n, &(from, ipvs)) in recording.flows[..80].iter().enumerate() {
        if *from.ip() == *held_from.ip() {
            continue;
        }
        let got = bound::http_get_from(&tb.client.ns, from, to)
            .unwrap_or_else(|e| panic!("flow #{} {from} (IPVS: rs{}): {e}", n + 1, ipvs + 1));
        let ok = if ipvs == 0 {
            moved += 1;
            got != "rs1"
        } else {
            kept += 1;
            got == format!("rs{}", ipvs + 1)
        };
        if !ok {
            wrong.push(format!(
                "flow #{} {from}: IPVS gave rs{}, lb {got}",
                n + 1,
                ipvs + 1
            ));
        }
    }
    drop(held);
    assert!(
        moved >= 5 && kept >= 20,
        "too few flows: {moved} of A's, {kept} others"
    );
    assert!(
        wrong.is_empty(),
        "with rs1 (A) over -x 1, its clients must go elsewhere and the others stay:\n{}\n-Ln:\n{}",
        wrong.join("\n"),
        tb.lbadm(&["-L", "-n"])
    );
}
