//! IPVS's schedulers end to end (seed 001's experiments, in LVS-DR): `wrr` 3:1 exactly, `sh`
//! keeping a client on one real server, `wlc` sharing long-lived connections by weight,
//! `lblc` and `lblcr` keeping the VIP on one real server (set) until it is overloaded, `lc`,
//! `sed`, `nq`, `fo` and `ovf` giving long-lived connections the real servers the kernel's
//! IPVS gave them (its recordings in `tests/golden/ipvs-sched`),
//! `-x`/`-y`'s hysteresis with connections opening and expiring,
//! persistence against plain `rr`, `-Z` and `--stats`, connections listed with `-L -c` and
//! expiring by `--set` timeouts, and `-E -s` under traffic. Each test builds its own
//! topology (see `lb_tests::testbed`) and waits for evidence, never for a fixed time.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{Shutdown, SocketAddr, SocketAddrV4, TcpStream},
    time::Duration,
};

use lb_tests::{
    ECHO_PORT, LoadGen, SERVICE_PORT, Testbed,
    listing::{self, ConnRow},
    wait,
};

/// How long connections may take to expire with 5-second timeouts (plus lbd's one-second
/// sweep, with room for a slow debug build on a busy machine).
const EXPIRY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs one lbadm command written as on a shell line, returning its stdout.
#[track_caller]
fn adm(tb: &Testbed, line: &str) -> String {
    let args: Vec<&str> = line.split_whitespace().collect();
    tb.lbadm(&args)
}

/// A DR testbed with lbd running and `real_servers` real servers.
fn testbed(real_servers: usize) -> Testbed {
    let mut tb = Testbed::builder().real_servers(real_servers).build();
    tb.start_lbd();
    tb
}

/// `-A -t VIP:port OPTIONS` and `-a ... -g -w W` for real servers 1, 2, ... with `weights`.
#[track_caller]
fn service(tb: &Testbed, port: u16, options: &str, weights: &[u32]) {
    let vip = tb.vip_port(port);
    adm(tb, &format!("-A -t {vip} {options}"));
    for (i, weight) in weights.iter().enumerate() {
        adm(
            tb,
            &format!("-a -t {vip} -r {}:{port} -g -w {weight}", tb.rip(i + 1)),
        );
    }
}

/// One real-server row of `-Ln`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RealRow {
    /// `addr:port`.
    addr: String,
    forward: String,
    weight: u32,
    active: u64,
    inactive: u64,
}

/// The real-server rows of service `proto addr` (`TCP`, `VIP:port`) in `-Ln`.
#[track_caller]
fn real_rows(tb: &Testbed, proto: &str, addr: &str) -> Vec<RealRow> {
    let list = adm(tb, "-Ln");
    let mut rows = Vec::new();
    let mut inside = false;
    for line in list.lines().skip(3) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() == Some(&"->") {
            if inside {
                let parse = |i: usize| -> u64 {
                    fields
                        .get(i)
                        .and_then(|f| f.parse().ok())
                        .unwrap_or_else(|| panic!("field {i} of {line:?} in:\n{list}"))
                };
                rows.push(RealRow {
                    addr: fields[1].to_owned(),
                    forward: fields[2].to_owned(),
                    weight: parse(3) as u32,
                    active: parse(4),
                    inactive: parse(5),
                });
            }
        } else {
            inside = fields.first() == Some(&proto) && fields.get(1) == Some(&addr);
        }
    }
    rows
}

/// `(active, inactive)` of every real server, summed over the service `TCP VIP:port`.
fn conn_totals(tb: &Testbed, port: u16) -> (u64, u64) {
    real_rows(tb, "TCP", &tb.vip_port(port))
        .iter()
        .fold((0, 0), |(a, i), r| (a + r.active, i + r.inactive))
}

/// The service `TCP VIP:port` in `-Ln --stats`.
#[track_caller]
fn stats(tb: &Testbed, port: u16) -> listing::ServiceStats {
    let text = adm(tb, "-Ln --stats");
    let services = listing::parse_stats(&text).unwrap_or_else(|e| panic!("{e}"));
    listing::find(&services, "TCP", &tb.vip_port(port)).clone()
}

/// The rows of `-L -n -c` (persistence templates included, state `NONE`).
#[track_caller]
fn connection_rows(tb: &Testbed) -> Vec<ConnRow> {
    listing::parse_connections(&adm(tb, "-L -n -c")).unwrap_or_else(|e| panic!("{e}"))
}

/// A connection from the client to a real server's TCP echo through the VIP, held open.
struct EchoConn {
    stream: TcpStream,
    /// The real server that greeted (`rs1`, ...).
    server: String,
    /// The client's end, as `-L -c` lists it.
    local: SocketAddr,
}

impl EchoConn {
    /// Connects to `VIP:ECHO_PORT` from the client and reads the real server's greeting.
    #[track_caller]
    fn open(tb: &Testbed) -> EchoConn {
        let to = SocketAddr::V4(SocketAddrV4::new(tb.vip(), ECHO_PORT));
        let stream = tb
            .client
            .ns
            .enter(|| TcpStream::connect_timeout(&to, Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("connecting to {to} from the client: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let local = stream.local_addr().expect("local address");
        let mut conn = EchoConn {
            stream,
            server: String::new(),
            local,
        };
        conn.server = conn.read_line();
        conn
    }

    /// The next line the server sent, without its newline.
    #[track_caller]
    fn read_line(&mut self) -> String {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match self.stream.read(&mut byte) {
                Ok(0) => panic!(
                    "{} closed the connection from {} after {:?}",
                    self.server,
                    self.local,
                    String::from_utf8_lossy(&line)
                ),
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) => line.push(byte[0]),
                Err(e) => panic!(
                    "reading from the echo (connection from {}, server {:?}): {e}",
                    self.local, self.server
                ),
            }
        }
        String::from_utf8_lossy(&line).into_owned()
    }

    /// Sends `text` and expects it echoed back: the connection still reaches its server.
    #[track_caller]
    fn echo(&mut self, text: &str) {
        self.stream
            .write_all(format!("{text}\n").as_bytes())
            .unwrap_or_else(|e| panic!("writing on the connection from {}: {e}", self.local));
        assert_eq!(self.read_line(), text, "echo from {}", self.server);
    }

    /// Half-closes and reads to the end: the server closes too (FIN both ways).
    #[track_caller]
    fn close(mut self) {
        self.stream.shutdown(Shutdown::Write).expect("half-close");
        let mut rest = Vec::new();
        self.stream.read_to_end(&mut rest).unwrap_or_else(|e| {
            panic!("reading the end of the connection from {}: {e}", self.local)
        });
    }
}

/// Seed 001's `wrr` experiment: weights 3:1 give exactly 3:1 over 400 new connections, in
/// the replies, in the real servers' logs and in `--stats` after `-Z`.
#[test]
fn wrr_3_to_1_is_exact_over_400_connections() {
    let tb = testbed(2);
    service(&tb, SERVICE_PORT, "-s wrr", &[3, 1]);
    let vip = tb.vip_port(SERVICE_PORT);
    adm(&tb, &format!("-Z -t {vip}"));

    let tally = tb.curl_vip(SERVICE_PORT, 400);
    tally.assert_all_ok();
    assert_eq!(
        (tally.count("rs1"), tally.count("rs2")),
        (300, 100),
        "wrr 3:1 over 400 new connections:\n{tally}"
    );
    // IPVS walks its real servers newest first (rs2, rs1): a new service starts with one
    // pass over every real server (rs2 rs1), then its cycle for 3:1, rs1 rs1 rs2 rs1, over
    // and over (tests/golden/ipvs-sched/wrr-3-1.txt).
    let names = tally.names();
    assert_eq!(
        names[..2],
        ["rs2", "rs1"],
        "the first two connections: IPVS's first pass\n{tally}"
    );
    for (i, chunk) in names[2..].chunks(4).enumerate() {
        let cycle = ["rs1", "rs1", "rs2", "rs1"];
        assert_eq!(
            chunk,
            &cycle[..chunk.len()],
            "connections {}..{} out of IPVS's wrr order:\n{tally}",
            2 + 4 * i,
            2 + 4 * i + chunk.len() - 1
        );
    }

    let s = stats(&tb, SERVICE_PORT);
    let rip = |i: usize| format!("{}:{SERVICE_PORT}", tb.rip(i));
    assert_eq!(
        s.totals.conns, 400,
        "--stats after -Z and 400 connections: {s:#?}"
    );
    assert_eq!(
        (
            s.real(&rip(1)).map(|c| c.conns),
            s.real(&rip(2)).map(|c| c.conns)
        ),
        (Some(300), Some(100)),
        "--stats Conns per real server: {s:#?}"
    );
}

/// Seed 001's `sh` experiment: every connection of one client goes to one real server, the
/// other gets none.
#[test]
fn sh_keeps_every_connection_of_a_client_on_one_real_server() {
    let tb = testbed(2);
    service(&tb, SERVICE_PORT, "-s sh", &[1, 3]);
    let vip = tb.vip_port(SERVICE_PORT);
    adm(&tb, &format!("-Z -t {vip}"));

    let tally = tb.curl_vip(SERVICE_PORT, 20);
    tally.assert_all_ok();
    let counts = tally.counts();
    assert_eq!(
        counts.len(),
        1,
        "sh spread one client's connections:\n{tally}"
    );
    let (chosen, n) = counts.iter().next().expect("one server");
    assert_eq!(*n, 20, "{tally}");

    let s = stats(&tb, SERVICE_PORT);
    let conns: Vec<u64> = (1..=2)
        .map(|i| {
            s.real(&format!("{}:{SERVICE_PORT}", tb.rip(i)))
                .expect("real server row")
                .conns
        })
        .collect();
    let expected = if chosen == "rs1" { [20, 0] } else { [0, 20] };
    assert_eq!(
        conns, expected,
        "--stats Conns per real server ({chosen} chosen)"
    );
}

/// `wlc` with weights 3:1 and 40 long-lived connections opened one after the other (each
/// counted active before the next): IPVS's wlc takes the real server with the least
/// ActiveConn × 256 + InActConn per unit of weight, a tie going to the newest (rs2). So the
/// order is rs2 rs1 rs1 rs1, four connections at a time, as IPVS gave it
/// (`tests/golden/ipvs-sched/wlc.txt`), the 40 end exactly 30:10, and they keep working.
#[test]
fn wlc_3_to_1_shares_long_lived_connections_by_weight() {
    let tb = testbed(2);
    service(&tb, ECHO_PORT, "-s wlc", &[3, 1]);

    let (mut conns, order) = open_in_turn(&tb, 40);
    println!("greeted by, in order: {order:?}");
    let expected: Vec<&str> = (0..10).flat_map(|_| ["rs2", "rs1", "rs1", "rs1"]).collect();
    assert_eq!(order, expected, "real servers that greeted, in order");
    let rows = real_rows(&tb, "TCP", &tb.vip_port(ECHO_PORT));
    let active: Vec<u64> = rows.iter().map(|r| r.active).collect();
    assert_eq!(active, [30, 10], "ActiveConn: {rows:#?}");

    for (i, conn) in conns.iter_mut().enumerate() {
        conn.echo(&format!("still there {i}"));
    }
    for conn in conns {
        conn.close();
    }
}

/// Opens `n` echo connections one after the other (each is established, and so counted
/// active, before the next is opened) and returns them with the real servers that greeted.
fn open_in_turn(tb: &Testbed, n: usize) -> (Vec<EchoConn>, Vec<String>) {
    let conns: Vec<EchoConn> = (0..n).map(|_| EchoConn::open(tb)).collect();
    let order = conns.iter().map(|c| c.server.clone()).collect();
    (conns, order)
}

/// A recording of IPVS's scheduling (`tests/golden/ipvs-sched/CASE.txt`, made by `cargo xtask
/// ipvs-golden` against the kernel's IPVS): the service's ipvsadm options, its real servers'
/// `ipvsadm -a` options (`-w 3 -x 4`) in the order they were added (A, B, C, ... played here
/// by rs1, rs2, rs3, ...), and the real server IPVS gave each of its SYNs, in order (`None`:
/// no destination).
struct Recording {
    options: String,
    reals: Vec<String>,
    order: Vec<Option<String>>,
}

#[track_caller]
fn ipvs_recording(case: &str) -> Recording {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden/ipvs-sched")
        .join(format!("{case}.txt"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut recording = Recording {
        options: String::new(),
        reals: Vec::new(),
        order: Vec::new(),
    };
    let rs = |name: &str| {
        let index = name
            .bytes()
            .next()
            .filter(u8::is_ascii_uppercase)
            .map(|b| b - b'A');
        match (name.len(), index) {
            (1, Some(i)) => format!("rs{}", i + 1),
            _ => panic!("{}: real server {name:?}", path.display()),
        }
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["service", ref options @ ..] => recording.options = options.join(" "),
            ["real", name, weight, ref options @ ..] => {
                assert_eq!(rs(name), format!("rs{}", recording.reals.len() + 1));
                recording
                    .reals
                    .push(format!("-w {weight} {}", options.join(" ")));
            }
            ["flow", _, "none"] => recording.order.push(None),
            ["flow", _, name] => recording.order.push(Some(rs(name))),
            _ => panic!("{}: cannot read {line:?}", path.display()),
        }
    }
    recording
}

/// Long-lived connections opened one after the other through lbadm's service go to the real
/// servers IPVS gave the SYNs of recording `case`, in the same order: the connection-count
/// schedulers compared with the kernel end to end (each connection is established, so
/// counted active, before the next, as IPVS counted its SYN_RECV ones). Where IPVS found no
/// destination, the connection fails here too.
#[track_caller]
fn connections_go_where_ipvs_sent_them(case: &str) {
    let recording = ipvs_recording(case);
    let tb = testbed(recording.reals.len());
    let vip = tb.vip_port(ECHO_PORT);
    adm(&tb, &format!("-A -t {vip} {}", recording.options));
    for (i, options) in recording.reals.iter().enumerate() {
        let rip = tb.rip(i + 1);
        adm(
            &tb,
            &format!("-a -t {vip} -r {rip}:{ECHO_PORT} -g {options}"),
        );
    }
    let served = recording.order.iter().take_while(|o| o.is_some()).count();
    let (conns, order) = open_in_turn(&tb, served);
    let expected: Vec<&str> = recording.order[..served]
        .iter()
        .map(|o| o.as_deref().expect("served"))
        .collect();
    assert_eq!(
        order, expected,
        "{case} ({}): real servers that greeted, in order, against IPVS's",
        recording.options
    );
    if served < recording.order.len() {
        let to = SocketAddr::V4(SocketAddrV4::new(tb.vip(), ECHO_PORT));
        let connected = tb
            .client
            .ns
            .enter(|| TcpStream::connect_timeout(&to, Duration::from_secs(3)));
        assert!(
            connected.is_err(),
            "{case}: IPVS found no real server for connection {}, lb did",
            served + 1
        );
    }
    for conn in conns {
        conn.close();
    }
}

#[test]
fn lc_follows_ipvs() {
    connections_go_where_ipvs_sent_them("lc");
}

#[test]
fn lc_with_a_real_server_at_weight_0_follows_ipvs() {
    connections_go_where_ipvs_sent_them("lc-quiescent");
}

#[test]
fn wlc_with_three_weights_follows_ipvs() {
    connections_go_where_ipvs_sent_them("wlc-3-2-1");
}

#[test]
fn sed_follows_ipvs() {
    connections_go_where_ipvs_sent_them("sed");
}

#[test]
fn nq_follows_ipvs() {
    connections_go_where_ipvs_sent_them("nq");
}

#[test]
fn fo_follows_ipvs() {
    connections_go_where_ipvs_sent_them("fo-tie");
}

#[test]
fn rr_passes_over_a_real_server_at_its_upper_threshold_as_ipvs_does() {
    connections_go_where_ipvs_sent_them("rr-threshold");
}

#[test]
fn wlc_passes_over_a_real_server_at_its_upper_threshold_as_ipvs_does() {
    connections_go_where_ipvs_sent_them("wlc-threshold");
}

#[test]
fn ovf_follows_ipvs_until_every_real_server_overflows() {
    connections_go_where_ipvs_sent_them("ovf");
}

/// `lblc` with weights 2:2 and long-lived connections to the VIP (one destination): rs2, wlc's
/// first choice (a tie goes to the newest real server, as in IPVS), keeps the VIP while it has
/// no more than 2 active connections; with 3 it is overloaded in IPVS's sense (rs1 has fewer
/// than half its weight), wlc moves the VIP to rs1, which keeps it from then on (with 3 or
/// more, nobody is under half its weight). `wlc` would alternate from the second connection
/// on. Changing the scheduler forgets the table. IPVS gave the same order
/// (`tests/golden/ipvs-sched/lblc.txt`).
#[test]
fn lblc_keeps_the_vip_on_one_real_server_until_it_is_overloaded() {
    let tb = testbed(2);
    service(&tb, ECHO_PORT, "-s lblc", &[2, 2]);
    let (mut conns, order) = open_in_turn(&tb, 8);
    assert_eq!(
        order,
        ["rs2", "rs2", "rs2", "rs1", "rs1", "rs1", "rs1", "rs1"],
        "real servers that greeted, in order"
    );
    let rows = real_rows(&tb, "TCP", &tb.vip_port(ECHO_PORT));
    let active: Vec<u64> = rows.iter().map(|r| r.active).collect();
    assert_eq!(active, [5, 3], "ActiveConn: {rows:#?}");
    // A new scheduler starts without the old one's table, as in IPVS: lblcr then asks wlc,
    // which picks rs2 (3 active against 5); rs1 had the VIP under lblc.
    adm(&tb, &format!("-E -t {} -s lblcr", tb.vip_port(ECHO_PORT)));
    conns.push(EchoConn::open(&tb));
    assert_eq!(conns[8].server, "rs2", "after -E -s lblcr");
    for (i, conn) in conns.iter_mut().enumerate() {
        conn.echo(&format!("still there {i}"));
    }
    for conn in conns {
        conn.close();
    }
}

/// `lblcr` in the same situation: rs1 joins the VIP's set instead of taking it over, and from
/// then on the less loaded member takes each connection (the set's newer member, rs1, on a
/// tie). IPVS gave the same order (`tests/golden/ipvs-sched/lblcr.txt`).
#[test]
fn lblcr_adds_a_real_server_to_the_set_when_it_is_overloaded() {
    let tb = testbed(2);
    service(&tb, ECHO_PORT, "-s lblcr", &[2, 2]);
    let (conns, order) = open_in_turn(&tb, 8);
    assert_eq!(
        order,
        ["rs2", "rs2", "rs2", "rs1", "rs1", "rs1", "rs1", "rs2"],
        "real servers that greeted, in order"
    );
    let rows = real_rows(&tb, "TCP", &tb.vip_port(ECHO_PORT));
    let active: Vec<u64> = rows.iter().map(|r| r.active).collect();
    assert_eq!(active, [4, 4], "ActiveConn: {rows:#?}");
    for conn in conns {
        conn.close();
    }
}

/// `-p 60` holds a client on one real server across 20 new connections, where plain `rr`
/// alternates; `-L -c` shows the template.
#[test]
fn persistence_holds_a_client_where_rr_alternates() {
    let tb = testbed(2);
    service(&tb, SERVICE_PORT, "-s rr", &[1, 1]);
    let vip = tb.vip_port(SERVICE_PORT);

    let tally = tb.curl_vip(SERVICE_PORT, 20);
    tally.assert_all_ok();
    let names = tally.names();
    for pair in names.windows(2) {
        assert_ne!(pair[0], pair[1], "rr without -p should alternate:\n{tally}");
    }
    assert_eq!(
        (tally.count("rs1"), tally.count("rs2")),
        (10, 10),
        "{tally}"
    );

    adm(&tb, &format!("-E -t {vip} -s rr -p 60"));
    let tally = tb.curl_vip(SERVICE_PORT, 20);
    tally.assert_all_ok();
    let counts = tally.counts();
    assert_eq!(
        counts.len(),
        1,
        "-p 60 should keep the client on one real server:\n{tally}"
    );
    let chosen = counts.keys().next().expect("one server").clone();
    let chosen_rip = format!(
        "{}:{SERVICE_PORT}",
        tb.rip(if chosen == "rs1" { 1 } else { 2 })
    );

    let client = tb.client.ip.to_string();
    let templates: Vec<(String, String, String, String)> = connection_rows(&tb)
        .into_iter()
        .filter(|r| r.state == "NONE")
        .map(|r| (r.proto, r.source, r.virtual_addr, r.destination))
        .collect();
    assert_eq!(
        templates,
        [(
            "TCP".to_owned(),
            format!("{client}:0"),
            vip.clone(),
            chosen_rip
        )],
        "-L -n -c persistence templates (state NONE): protocol, client, virtual, real"
    );
}

/// `-Z -t VIP:80` zeroes that service's counters (and not another's); N new connections then
/// show as exactly N in `--stats`.
#[test]
fn zeroed_counters_count_exactly_the_new_connections() {
    let tb = testbed(2);
    service(&tb, SERVICE_PORT, "-s rr", &[1, 1]);
    service(&tb, ECHO_PORT, "-s rr", &[1, 1]);
    tb.curl_vip(SERVICE_PORT, 10).assert_all_ok();
    for _ in 0..3 {
        EchoConn::open(&tb).close();
    }
    let before = stats(&tb, SERVICE_PORT);
    assert_eq!(before.totals.conns, 10, "{before:#?}");

    adm(&tb, &format!("-Z -t {}", tb.vip_port(SERVICE_PORT)));
    let zeroed = stats(&tb, SERVICE_PORT);
    assert_eq!(zeroed.totals, listing::Counts::default(), "{zeroed:#?}");
    assert_eq!(
        zeroed.reals_sum(),
        listing::Counts::default(),
        "{zeroed:#?}"
    );
    assert_eq!(
        stats(&tb, ECHO_PORT).totals.conns,
        3,
        "-Z of another service zeroed the echo service"
    );

    let opens_before = tb.client_tcp_active_opens();
    tb.curl_vip(SERVICE_PORT, 25).assert_all_ok();
    let opened = tb.client_tcp_active_opens() - opens_before;
    assert_eq!(opened, 25, "the client opened one connection per request");
    let after = stats(&tb, SERVICE_PORT);
    assert_eq!(
        after.totals.conns, 25,
        "--stats Conns after -Z and 25: {after:#?}"
    );
    assert_eq!(after.reals_sum().conns, 25, "{after:#?}");
    assert!(
        after.totals.in_pkts >= 25 * 3 && after.totals.in_bytes > 0,
        "InPkts/InBytes count the client's packets: {after:#?}"
    );
    // DR: replies bypass the director.
    assert_eq!((after.totals.out_pkts, after.totals.out_bytes), (0, 0));
}

/// `-L -n -c` lists open connections: the client's address and port, the VIP and the real
/// server that answered, ESTABLISHED.
#[test]
fn listed_connections_are_the_open_ones() {
    let tb = testbed(2);
    service(&tb, ECHO_PORT, "-s rr", &[1, 1]);
    let conns: Vec<EchoConn> = (0..3).map(|_| EchoConn::open(&tb)).collect();

    let rows = connection_rows(&tb);
    let vip = tb.vip_port(ECHO_PORT);
    for conn in &conns {
        let i: usize = conn.server.trim_start_matches("rs").parse().expect("rsN");
        let row = rows
            .iter()
            .find(|r| r.source == conn.local.to_string())
            .unwrap_or_else(|| panic!("no -L -c row for {}: {rows:#?}", conn.local));
        assert_eq!(
            (
                row.proto.as_str(),
                row.state.as_str(),
                row.virtual_addr.as_str(),
                row.destination.clone()
            ),
            (
                "TCP",
                "ESTABLISHED",
                vip.as_str(),
                format!("{}:{ECHO_PORT}", tb.rip(i))
            ),
            "-L -c row of {}: {rows:#?}",
            conn.local
        );
        let (min, sec) = row.expire.split_once(':').expect("mm:ss");
        let left = min.parse::<u32>().expect("minutes") * 60 + sec.parse::<u32>().expect("secs");
        assert!(
            (1..=900).contains(&left),
            "ESTABLISHED expires within IPVS's default 900 s: {row:?}"
        );
    }
    assert_eq!(rows.len(), 3, "only the open connections: {rows:#?}");
    for conn in conns {
        conn.close();
    }
}

/// With `--set 5 5 5` connections expire: ActiveConn and InActConn go back to 0 and `-L -c`
/// empties, for TCP that closed, TCP left open and idle, and UDP.
#[test]
fn connections_expire_and_counts_return_to_zero() {
    let tb = testbed(2);
    service(&tb, ECHO_PORT, "-s rr", &[1, 1]);
    service(&tb, SERVICE_PORT, "-s rr", &[1, 1]);
    let udp_vip = tb.vip_port(lb_tests::UDP_ECHO_PORT);
    adm(&tb, &format!("-A -u {udp_vip} -s rr"));
    for i in 1..=2 {
        adm(&tb, &format!("-a -u {udp_vip} -r {} -g", tb.rip(i)));
    }
    adm(&tb, "--set 5 5 5");
    assert_eq!(
        adm(&tb, "-L --timeout"),
        "Timeout (tcp tcpfin udp): 5 5 5\n"
    );

    let open: Vec<EchoConn> = (0..4).map(|_| EchoConn::open(&tb)).collect();
    tb.curl_vip(SERVICE_PORT, 6).assert_all_ok();
    for i in 0..2 {
        tb.udp_echo_vip(lb_tests::UDP_ECHO_PORT, &format!("hello {i}"))
            .unwrap_or_else(|e| panic!("UDP echo through the VIP: {e}"));
    }
    let (active, _) = conn_totals(&tb, ECHO_PORT);
    assert_eq!(active, 4, "the 4 open echo connections are active");
    let (_, closed) = conn_totals(&tb, SERVICE_PORT);
    assert!(closed > 0, "closed HTTP connections count as inactive");
    let listed = connection_rows(&tb);
    assert!(
        listed.iter().any(|r| r.proto == "UDP"),
        "-L -c lists the UDP flows: {listed:#?}"
    );

    // Two of the echo connections close; two stay open and idle, longer than `tcp`.
    let mut open = open.into_iter();
    open.next().expect("conn").close();
    open.next().expect("conn").close();
    let _idle: Vec<EchoConn> = open.collect();

    wait::wait_ok("every connection to expire", EXPIRY_TIMEOUT, || {
        let rows: Vec<(String, Vec<RealRow>)> = [
            ("TCP", tb.vip_port(ECHO_PORT)),
            ("TCP", tb.vip_port(SERVICE_PORT)),
            ("UDP", udp_vip.clone()),
        ]
        .into_iter()
        .map(|(proto, addr)| {
            let rows = real_rows(&tb, proto, &addr);
            (format!("{proto} {addr}"), rows)
        })
        .collect();
        let busy = rows
            .iter()
            .any(|(_, reals)| reals.iter().any(|r| r.active + r.inactive > 0));
        let listed = connection_rows(&tb);
        if busy || !listed.is_empty() {
            Err(format!("-Ln: {rows:?}\n-L -c: {listed:?}"))
        } else {
            Ok(())
        }
    });
}

/// An HTTP download from the client through the VIP that the test reads at its own pace:
/// while the test does not read, TCP flow control holds the real server back, so the download
/// stays in the middle for as long as the test wants, with no clock involved.
struct HeldDownload {
    stream: TcpStream,
    local: SocketAddr,
    received: Vec<u8>,
}

impl HeldDownload {
    /// Connects to `VIP:port` from the client and asks for `path` (HTTP/1.0: the server
    /// closes when done).
    #[track_caller]
    fn start(tb: &Testbed, port: u16, path: &str) -> HeldDownload {
        let to = SocketAddr::V4(SocketAddrV4::new(tb.vip(), port));
        let mut stream = tb
            .client
            .ns
            .enter(|| TcpStream::connect_timeout(&to, Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("connecting to {to} from the client: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {to}\r\n\r\n").as_bytes())
            .expect("sending the request");
        let local = stream.local_addr().expect("local address");
        HeldDownload {
            stream,
            local,
            received: Vec::new(),
        }
    }

    /// Reads until at least `n` bytes (headers included) have arrived.
    #[track_caller]
    fn read_at_least(&mut self, n: usize) {
        let mut buf = vec![0u8; 64 << 10];
        while self.received.len() < n {
            match self.stream.read(&mut buf) {
                Ok(0) => panic!(
                    "the download from {} ended after {} bytes",
                    self.local,
                    self.received.len()
                ),
                Ok(got) => self.received.extend_from_slice(&buf[..got]),
                Err(e) => panic!(
                    "reading the download from {} after {} bytes: {e}",
                    self.local,
                    self.received.len()
                ),
            }
        }
    }

    /// Reads the rest and returns the status line and the body.
    #[track_caller]
    fn finish(mut self) -> (String, Vec<u8>) {
        let mut rest = Vec::new();
        self.stream.read_to_end(&mut rest).unwrap_or_else(|e| {
            panic!(
                "reading the rest of the download from {} after {} bytes: {e}",
                self.local,
                self.received.len() + rest.len()
            )
        });
        self.received.extend_from_slice(&rest);
        let end = self
            .received
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of the HTTP headers");
        let headers = String::from_utf8_lossy(&self.received[..end]).into_owned();
        let status = headers.lines().next().unwrap_or_default().to_owned();
        (status, self.received[end + 4..].to_vec())
    }
}

/// `-E -s` under traffic: new connections follow the new scheduler at once; a long download
/// and an open connection started before keep going to their real servers.
#[test]
fn switching_the_scheduler_under_traffic_keeps_existing_connections() {
    let mut tb = testbed(2);
    // The client's receive buffer stays small, so the real server cannot get far ahead of
    // what the test has read (4 MiB at most in its send buffer, 256 KiB in the client's).
    tb.client
        .ns
        .sysctl("net.ipv4.tcp_rmem", "4096 65536 262144");
    service(&tb, SERVICE_PORT, "-s rr", &[1, 1]);
    service(&tb, ECHO_PORT, "-s rr", &[1, 1]);
    let vip = tb.vip_port(SERVICE_PORT);

    const SIZE: usize = 16 << 20;
    let contents: Vec<u8> = (0..SIZE as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    tb.publish_file("big.bin", &contents);
    let mut download = HeldDownload::start(&tb, SERVICE_PORT, "/files/big.bin");
    download.read_at_least(1 << 20);
    let mut echo = EchoConn::open(&tb);
    let load = tb.start_load(LoadGen::Wrk { connections: 4 }, &format!("http://{vip}/"));

    let listed = |tb: &Testbed| -> ConnRow {
        let rows = connection_rows(tb);
        rows.iter()
            .find(|r| r.source == download.local.to_string())
            .cloned()
            .unwrap_or_else(|| panic!("the download is not in -L -c: {rows:#?}"))
    };
    let before = listed(&tb);
    assert_eq!(before.state, "ESTABLISHED", "{before:?}");
    let list = adm(&tb, "-Ln");
    assert!(list.contains(&format!("TCP  {vip} rr")), "{list}");

    for scheduler in ["sh", "wlc", "wrr"] {
        adm(&tb, &format!("-E -t {vip} -s {scheduler}"));
        let list = adm(&tb, "-Ln");
        assert!(
            list.contains(&format!("TCP  {vip} {scheduler}")),
            "-Ln after -E -s {scheduler}:\n{list}"
        );
        echo.echo(&format!("after -E -s {scheduler}"));
        if scheduler == "sh" {
            // New connections follow sh at once: one real server for the client.
            let tally = tb.curl_vip(SERVICE_PORT, 6);
            tally.assert_all_ok();
            assert_eq!(tally.counts().len(), 1, "sh after -E:\n{tally}");
        }
        let now = listed(&tb);
        assert_eq!(
            (now.state.as_str(), &now.destination),
            ("ESTABLISHED", &before.destination),
            "the download's connection after -E -s {scheduler}"
        );
    }
    // Whatever the real server could send ahead is at most its send buffer plus the
    // client's receive buffer: most of the file is still to come, after the switches.
    println!(
        "read {} of {SIZE} bytes of the download before the switches",
        download.received.len()
    );
    assert!(
        download.received.len() < SIZE / 2,
        "{} of {SIZE} bytes already read",
        download.received.len()
    );

    let (status, body) = download.finish();
    assert!(status.ends_with(" 200 OK"), "download status {status:?}");
    assert!(
        body.len() == contents.len() && body == contents,
        "downloaded {} bytes, expected the published {}",
        body.len(),
        contents.len()
    );

    let report = load.stop();
    assert!(report.requests > 0, "{}", report.output);
    assert_eq!(
        (report.failed, report.non_2xx),
        (0, 0),
        "requests failed while the scheduler changed:\n{}",
        report.output
    );
    echo.echo("at the end");
    echo.close();
}

/// Active and inactive connections by real server (`addr:port`).
type CountsByReal = BTreeMap<String, (u64, u64)>;

/// Active and inactive connections per real server as `-L -n -c` lists them (templates
/// aside), next to what `-Ln` shows for every service.
fn listed_and_shown(tb: &Testbed) -> (CountsByReal, CountsByReal) {
    let mut listed = CountsByReal::new();
    for row in connection_rows(tb) {
        let entry = listed.entry(row.destination.clone()).or_default();
        match row.state.as_str() {
            "NONE" => {}
            "ESTABLISHED" | "SYN_SENT" | "SYN_RECV" | "SYNACK" => entry.0 += 1,
            _ => entry.1 += 1,
        }
    }
    let mut shown = CountsByReal::new();
    for port in [ECHO_PORT, SERVICE_PORT] {
        for row in real_rows(tb, "TCP", &tb.vip_port(port)) {
            if row.active + row.inactive > 0 {
                shown.insert(row.addr.clone(), (row.active, row.inactive));
            }
        }
    }
    listed.retain(|_, c| c.0 + c.1 > 0);
    (listed, shown)
}

/// lbd reads 8 connection-table entries a tick here, so a pass over this test's ~100 entries
/// takes a dozen ticks: the counts never wait for a pass (they are exact as they go), equal
/// what `-L -c` lists whenever traffic is quiet, and go back to exactly what stays open.
#[test]
fn counts_stay_exact_while_a_sweep_pass_takes_many_ticks() {
    let mut tb = Testbed::builder().real_servers(2).build();
    tb.start_lbd_with(&["--sweep-budget", "8"]);
    service(&tb, ECHO_PORT, "-s rr", &[1, 1]);
    service(&tb, SERVICE_PORT, "-s rr", &[1, 1]);
    // Closed connections (FIN_WAIT, the last state a DR director sees) go after 3 s.
    adm(&tb, "--set 900 3 300");
    let open: Vec<EchoConn> = (0..20).map(|_| EchoConn::open(&tb)).collect();
    tb.curl_vip(SERVICE_PORT, 80).assert_all_ok();
    let equal = |what: &str| {
        wait::wait_ok(what, Duration::from_secs(10), || {
            let (listed, shown) = listed_and_shown(&tb);
            if listed == shown {
                Ok(shown)
            } else {
                Err(format!("-L -c: {listed:?}\n-Ln: {shown:?}"))
            }
        })
    };
    let shown = equal("-Ln equal to -L -c with 20 open and 80 closed connections");
    let total: u64 = shown.values().map(|c| c.0 + c.1).sum();
    assert!(total >= 90, "{shown:?}");
    assert_eq!(conn_totals(&tb, ECHO_PORT), (20, 0));

    // Half the echo connections close; everything closed expires, over passes of many ticks.
    let mut open = open.into_iter();
    for conn in open.by_ref().take(10) {
        conn.close();
    }
    let _still_open: Vec<EchoConn> = open.collect();
    wait::wait_ok("the closed connections to expire", EXPIRY_TIMEOUT, || {
        let (listed, shown) = listed_and_shown(&tb);
        let echo = conn_totals(&tb, ECHO_PORT);
        let http = conn_totals(&tb, SERVICE_PORT);
        if echo == (10, 0) && http == (0, 0) && listed == shown {
            Ok(())
        } else {
            Err(format!(
                "echo {echo:?} http {http:?}\n-L -c: {listed:?}\n-Ln: {shown:?}"
            ))
        }
    });
}

/// `-x 2 -y 1` in traffic (IPVS's `IP_VS_DEST_F_OVERLOAD`: set when a real server's active
/// plus inactive connections reach the upper threshold, cleared only when they fall below
/// the lower one): rs1 at 2 connections takes no new one, still none at 1 (where, without
/// `-y`, three quarters of `-x` would let it back), and takes new ones again at 0.
#[test]
fn lower_threshold_holds_a_real_server_back_until_its_count_drops_below_it() {
    let tb = testbed(2);
    let vip = tb.vip_port(ECHO_PORT);
    adm(&tb, &format!("-A -t {vip} -s rr"));
    let rip = |i: usize| format!("{}:{ECHO_PORT}", tb.rip(i));
    adm(&tb, &format!("-a -t {vip} -r {} -g -w 1 -x 2 -y 1", rip(1)));
    adm(&tb, &format!("-a -t {vip} -r {} -g -w 1", rip(2)));
    // Closed connections (FIN_WAIT, the last state a DR director sees) go after 3 s.
    adm(&tb, "--set 900 3 300");
    let rs1_conns = || {
        let rows = real_rows(&tb, "TCP", &vip);
        let row = rows
            .iter()
            .find(|r| r.addr == rip(1))
            .unwrap_or_else(|| panic!("rs1 in -Ln: {rows:?}"));
        row.active + row.inactive
    };
    let wait_rs1_at = |n: u64| {
        wait::wait_ok(
            format!("rs1's connections (active + inactive) to drop to {n}"),
            EXPIRY_TIMEOUT,
            || match rs1_conns() {
                c if c == n => Ok(()),
                c => Err(format!("{c}")),
            },
        );
    };

    // rr, newest first: rs2 rs1 rs2 rs1; rs1 is then at its upper threshold.
    let (conns, order) = open_in_turn(&tb, 4);
    assert_eq!(
        order,
        ["rs2", "rs1", "rs2", "rs1"],
        "rr before -x is reached"
    );
    let (more, order) = open_in_turn(&tb, 2);
    assert_eq!(order, ["rs2", "rs2"], "rs1 at -x 2 takes no new connection");

    let (rs1, others): (Vec<EchoConn>, Vec<EchoConn>) =
        conns.into_iter().partition(|c| c.server == "rs1");
    let mut rs1 = rs1.into_iter();
    rs1.next().expect("rs1's first").close();
    wait_rs1_at(1);
    let (more2, order) = open_in_turn(&tb, 2);
    assert_eq!(
        order,
        ["rs2", "rs2"],
        "rs1 at 1 connection is not below -y 1: still overloaded"
    );

    rs1.next().expect("rs1's second").close();
    wait_rs1_at(0);
    let (last, mut order) = open_in_turn(&tb, 2);
    order.sort();
    assert_eq!(
        order,
        ["rs1", "rs2"],
        "rs1 below -y 1 takes new connections again"
    );
    for conn in others.into_iter().chain(more).chain(more2).chain(last) {
        conn.close();
    }
}
