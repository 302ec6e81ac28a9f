//! LVS-DR end to end: lbd on the director, configured with lbadm exactly as seed 000
//! configures ipvsadm, real servers answering with their names, curl and load generators on
//! the client. Each test builds its own topology (see `lb_tests::testbed`).

use std::time::Duration;

use lb_tests::{LoadGen, SERVICE_PORT, Testbed, UDP_ECHO_PORT, UNSERVED_PORT, XdpMode, wait};

/// How long the real servers' access logs may take to show what a test waits for.
const TRAFFIC_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one lbadm command written as on a shell line (no quoting needed for ipvsadm
/// arguments), returning its stdout.
#[track_caller]
fn adm(tb: &Testbed, line: &str) -> String {
    let args: Vec<&str> = line.split_whitespace().collect();
    tb.lbadm(&args)
}

/// Seed 000's LVS/DR director configuration with `ipvsadm` replaced by `lbadm`:
/// ```text
/// # ipvsadm -C
/// # ipvsadm -A -t 192.168.1.99:80 -s rr
/// # ipvsadm -a -t 192.168.1.99:80 -r 192.168.1.12 -g
/// # ipvsadm -a -t 192.168.1.99:80 -r 192.168.1.13 -g
/// ```
#[track_caller]
fn configure_seed_000_dr(tb: &Testbed) {
    let vip = tb.vip_port(SERVICE_PORT);
    adm(tb, "-C");
    adm(tb, &format!("-A -t {vip} -s rr"));
    adm(tb, &format!("-a -t {vip} -r {} -g", tb.rip(1)));
    adm(tb, &format!("-a -t {vip} -r {} -g", tb.rip(2)));
}

/// ipvsadm's `-Ln` title lines after the version line.
const LIST_TITLES: [&str; 2] = [
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
];

/// One real-server line of `ipvsadm -Ln`, formatted as ipvsadm's
/// `"  -> %-28s %-7s %-6d %-10u %-10u\n"` does.
fn list_real_line(addr: &str, forward: &str, weight: u32, active: u32, inactive: u32) -> String {
    format!("  -> {addr:<28} {forward:<7} {weight:<6} {active:<10} {inactive:<10}")
}

/// `-Ln` output with each real server's ActiveConn and InActConn replaced by a placeholder
/// (they depend on traffic and timing), keeping everything that is configuration.
fn mask_conn_counts(list: &str) -> String {
    list.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let is_real = line.starts_with("  -> ")
                && fields.len() == 6
                && fields[4].parse::<u64>().is_ok()
                && fields[5].parse::<u64>().is_ok();
            if is_real {
                format!("  -> {} {} {} (conns)", fields[1], fields[2], fields[3])
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until the real servers' counts of requests addressed to the VIP satisfy `done`
/// (given the counts as increases over `base`), and returns those increases.
#[track_caller]
fn wait_served(
    tb: &Testbed,
    what: &str,
    base: &[usize],
    mut done: impl FnMut(&[usize]) -> bool,
) -> Vec<usize> {
    wait::wait_ok(what, TRAFFIC_TIMEOUT, || {
        let now = tb.served_via_vip_all(SERVICE_PORT);
        let delta: Vec<usize> = now.iter().zip(base).map(|(n, b)| n - b).collect();
        if done(&delta) {
            println!("{what}: served (rs1, rs2, ...) {delta:?}");
            Ok(delta)
        } else {
            Err(format!(
                "served via the VIP since the step (rs1, rs2, ...): {delta:?}"
            ))
        }
    })
}

#[track_caller]
fn assert_alternates(tally: &lb_tests::Tally) {
    let names = tally.names();
    for (i, pair) in names.windows(2).enumerate() {
        assert_ne!(
            pair[0],
            pair[1],
            "rr sent requests {i} and {} to the same real server:\n{tally}",
            i + 1
        );
    }
}

/// Seed 000's round robin: 10 requests, each on a new connection, alternate between the two
/// real servers, 5 each, and reach them still addressed to the VIP (only MACs change in DR).
fn rr_alternates(mode: XdpMode) {
    let mut tb = Testbed::builder().xdp_mode(mode).build();
    tb.start_lbd();
    configure_seed_000_dr(&tb);

    let tally = tb.curl_vip(SERVICE_PORT, 10);
    tally.assert_all_ok();
    assert_alternates(&tally);
    assert_eq!(tally.count("rs1"), 5, "{tally}");
    assert_eq!(tally.count("rs2"), 5, "{tally}");

    let served = wait_served(
        &tb,
        "5 requests via the VIP on each real server",
        &[0, 0],
        |d| d.iter().sum::<usize>() >= 10,
    );
    assert_eq!(
        served,
        vec![5, 5],
        "requests that reached each real server via the VIP"
    );
}

#[test]
fn rr_alternates_between_real_servers() {
    rr_alternates(XdpMode::Skb);
}

#[test]
fn rr_alternates_with_native_xdp() {
    rr_alternates(XdpMode::Native);
}

#[test]
fn wrr_3_to_1_holds_over_400_connections() {
    let mut tb = Testbed::builder().build();
    tb.start_lbd();
    let vip = tb.vip_port(SERVICE_PORT);
    adm(&tb, "-C");
    adm(&tb, &format!("-A -t {vip} -s wrr"));
    adm(&tb, &format!("-a -t {vip} -r {} -g -w 3", tb.rip(1)));
    adm(&tb, &format!("-a -t {vip} -r {} -g -w 1", tb.rip(2)));

    let tally = tb.curl_vip(SERVICE_PORT, 400);
    tally.assert_all_ok();
    assert_eq!(
        (tally.count("rs1"), tally.count("rs2")),
        (300, 100),
        "wrr 3:1 over 400 new connections:\n{tally}"
    );
}

#[test]
fn reconfiguring_under_load_loses_no_request() {
    let mut tb = Testbed::builder().real_servers(3).build();
    tb.start_lbd();
    let vip = tb.vip_port(SERVICE_PORT);
    let (rip1, rip2, rip3) = (tb.rip(1), tb.rip(2), tb.rip(3));
    adm(&tb, "-C");
    adm(&tb, &format!("-A -t {vip} -s wrr"));
    adm(&tb, &format!("-a -t {vip} -r {rip1} -g -w 1"));
    adm(&tb, &format!("-a -t {vip} -r {rip2} -g -w 1"));
    // wrk's tens of thousands of connections from one client come back to the same source
    // ports while the previous connection on a port is in FIN_WAIT (the last state a DR
    // director sees), and with IPVS's default conn_reuse_mode (1) a SYN there continues the
    // old connection, to its old real server, whatever its weight now. Mode 3 reschedules
    // such a SYN too, so that every request below is a new connection to the scheduler.
    adm(&tb, "--sysctl net.ipv4.vs.conn_reuse_mode=3");

    // wrk with `Connection: close`: every request is a new connection, so every request is
    // scheduled. At most `in_flight` connections are open at any time.
    let kind = LoadGen::Wrk { connections: 8 };
    let in_flight = kind.concurrency() as usize;
    let mut load = tb.start_load(kind, &format!("http://{vip}/"));
    let mut served_all = || {
        load.daemon.assert_running();
        tb.served_via_vip_all(SERVICE_PORT)
    };

    let base = served_all();
    wait_served(&tb, "rs1 and rs2 to serve under load", &base, |d| {
        d[0] >= 200 && d[1] >= 200
    });

    // A new real server takes traffic.
    adm(&tb, &format!("-a -t {vip} -r {rip3} -g -w 1"));
    let base = served_all();
    wait_served(&tb, "rs3 to serve after `-a`", &base, |d| d[2] >= 200);

    // A heavier weight takes the largest share (3:1:1 for new connections; what was in flight
    // when the weight changed is at most `in_flight` either way).
    adm(&tb, &format!("-e -t {vip} -r {rip1} -g -w 3"));
    let base = served_all();
    let d = wait_served(&tb, "1000 requests after `-e -w 3`", &base, |d| {
        d.iter().sum::<usize>() >= 1000
    });
    assert!(
        d[0] > d[1] + in_flight && d[0] > d[2] + in_flight,
        "rs1 (weight 3) should have served the most since `-e`: {d:?}"
    );

    // Weight 0 (quiesce): no new connections; only those already open may finish there.
    adm(&tb, &format!("-e -t {vip} -r {rip2} -g -w 0"));
    let base = served_all();
    let d = wait_served(&tb, "600 requests after `-w 0`", &base, |d| {
        d[0] + d[2] >= 600
    });
    assert!(
        d[1] <= in_flight,
        "rs2 (weight 0) served {} requests after `-e -w 0`, more than the {in_flight} that can \
         have been in flight: {d:?}",
        d[1]
    );

    // Deleted: no new connections either. As with IPVS, packets of connections still open to
    // a deleted real server are dropped, so an operator drains it first (weight 0) and
    // deletes it once it has no active connection: then nothing is lost.
    adm(&tb, &format!("-e -t {vip} -r {rip1} -g -w 0"));
    wait::wait_ok(
        "rs1 drained (no active connection)",
        Duration::from_secs(20),
        || {
            let listing = adm(&tb, "-Ln");
            let active = listing
                .lines()
                .find(|l| l.contains(&format!("-> {rip1}:")))
                .and_then(|l| l.split_whitespace().nth(4))
                .and_then(|n| n.parse::<u32>().ok());
            match active {
                Some(0) => Ok(()),
                _ => Err(listing),
            }
        },
    );
    adm(&tb, &format!("-d -t {vip} -r {rip1}"));
    let base = served_all();
    let d = wait_served(&tb, "600 requests after `-d`", &base, |d| d[2] >= 600);
    assert!(
        d[0] <= in_flight && d[1] <= in_flight,
        "deleted rs1 / quiesced rs2 still served after `-d`: {d:?}"
    );

    let report = load.stop();
    println!("{}", report.output);
    assert!(report.requests > 0, "{}", report.output);
    assert_eq!(
        (report.failed, report.non_2xx),
        (0, 0),
        "requests failed or got errors while the service was reconfigured:\n{}",
        report.output
    );

    let list = mask_conn_counts(&adm(&tb, "-Ln"));
    let expected = [
        format!("TCP  {vip} wrr"),
        format!("  -> {rip2}:80 Route 0 (conns)"),
        format!("  -> {rip3}:80 Route 1 (conns)"),
    ];
    assert_eq!(
        list.lines().skip(3).collect::<Vec<_>>(),
        expected,
        "table after the changes:\n{list}"
    );
}

#[test]
fn save_clear_restore_gives_back_the_same_table() {
    let mut tb = Testbed::builder().build();
    tb.start_lbd();
    configure_seed_000_dr(&tb);
    let vip = tb.vip_port(SERVICE_PORT);
    let (rip1, rip2) = (tb.rip(1), tb.rip(2));

    let before = adm(&tb, "-Ln");
    // Seed 000: `ipvsadm -Sn > ipvsadm.conf` prints the rules with explicit ports and weights.
    let saved = adm(&tb, "-Sn");
    assert_eq!(
        saved,
        format!(
            "-A -t {vip} -s rr\n\
             -a -t {vip} -r {rip1}:80 -g -w 1\n\
             -a -t {vip} -r {rip2}:80 -g -w 1\n"
        ),
        "-Sn output"
    );

    // Seed 000 restores with `cat ipvsadm.conf | ipvsadm --restore`; -R is the short form.
    for restore in ["-R", "--restore"] {
        adm(&tb, "-C");
        let cleared = adm(&tb, "-Ln");
        let titles: Vec<&str> = before.lines().take(3).collect();
        assert_eq!(
            cleared.lines().collect::<Vec<_>>(),
            titles,
            "after -C only the titles remain"
        );
        tb.lbadm_stdin(&[restore], Some(&saved));
        let after = adm(&tb, "-Ln");
        assert_eq!(
            after, before,
            "`-Ln` after `-C` and `{restore}` of the `-Sn` output"
        );
    }

    // The restored service carries traffic.
    let tally = tb.curl_vip(SERVICE_PORT, 4);
    tally.assert_all_ok();
    assert_alternates(&tally);
}

#[test]
fn restarted_lbd_restores_its_services_from_the_state_file() {
    let mut tb = Testbed::builder().build();
    tb.start_lbd();
    configure_seed_000_dr(&tb);
    let tally = tb.curl_vip(SERVICE_PORT, 4);
    tally.assert_all_ok();
    let before = adm(&tb, "-Ln");
    assert!(
        tb.lbd_files().state.is_file(),
        "no state file at {} after configuring",
        tb.lbd_files().state.display()
    );

    let status = tb.stop_lbd();
    assert!(
        status.success(),
        "lbd exited with {status} after SIGTERM\n{}",
        tb.lbd_log()
    );
    assert!(
        !tb.lbd_files().socket.exists(),
        "lbd left its socket {} behind",
        tb.lbd_files().socket.display()
    );
    assert!(
        !tb.director_xdp_attached(),
        "lbd left its XDP program attached to the director's eth0"
    );
    // Without lbd the VIP is only the director's own address: its stack refuses.
    let ran = tb.curl_once(&format!("http://{}/", tb.vip_port(SERVICE_PORT)));
    assert_eq!(
        ran.code(),
        Some(7),
        "expected the director to refuse with lbd stopped:\n{ran}"
    );

    tb.start_lbd();
    let after = adm(&tb, "-Ln");
    assert_eq!(
        mask_conn_counts(&after),
        mask_conn_counts(&before),
        "`-Ln` after restarting lbd with the same --state (connection counts masked)"
    );
    let tally = tb.curl_vip(SERVICE_PORT, 10);
    tally.assert_all_ok();
    assert_alternates(&tally);
    assert_eq!((tally.count("rs1"), tally.count("rs2")), (5, 5), "{tally}");
}

#[test]
fn list_output_has_the_shape_of_seed_000() {
    let mut tb = Testbed::builder().build();
    tb.start_lbd();
    configure_seed_000_dr(&tb);
    let vip = tb.vip_port(SERVICE_PORT);

    let list = adm(&tb, "-Ln");
    let lines: Vec<&str> = list.lines().collect();
    let version = lines.first().copied().unwrap_or_default();
    let size = version
        .strip_prefix("IP Virtual Server version 1.2.1 (size=")
        .and_then(|rest| rest.strip_suffix(')'));
    assert!(
        size.is_some_and(|n| n.parse::<u32>().is_ok()),
        "first line {version:?} is not like `IP Virtual Server version 1.2.1 (size=4096)`"
    );
    let expected = [
        LIST_TITLES[0].to_owned(),
        LIST_TITLES[1].to_owned(),
        format!("TCP  {vip} rr"),
        list_real_line(&format!("{}:80", tb.rip(1)), "Route", 1, 0, 0),
        list_real_line(&format!("{}:80", tb.rip(2)), "Route", 1, 0, 0),
    ];
    assert_eq!(
        lines[1..]
            .iter()
            .map(|l| format!("{l:?}"))
            .collect::<Vec<_>>(),
        expected
            .iter()
            .map(|l| format!("{l:?}"))
            .collect::<Vec<_>>(),
        "`-Ln` lines (quoted to show spacing) against ipvsadm's layout"
    );
    assert!(list.ends_with('\n'), "`-Ln` output ends with a newline");

    // The same listing spelled `-L -n`, and with the socket taken from LBD_SOCKET.
    assert_eq!(adm(&tb, "-L -n"), list, "`-L -n` against `-Ln`");
    let via_env = tb.try_lbadm_env(&["-Ln"]);
    assert_eq!(via_env.assert_success(), list, "`-Ln` with LBD_SOCKET");
}

#[test]
fn a_port_without_service_is_not_forwarded() {
    let mut tb = Testbed::builder().build();
    tb.start_lbd();
    configure_seed_000_dr(&tb);
    tb.curl_vip(SERVICE_PORT, 2).assert_all_ok();

    // Every real server would answer on UNSERVED_PORT (and owns the VIP), so a forwarded
    // request would succeed; the director's own stack, where nothing listens, refuses it.
    let url = format!("http://{}/", tb.vip_port(UNSERVED_PORT));
    let ran = tb.curl_once(&url);
    assert_eq!(
        ran.code(),
        Some(7),
        "expected the director to refuse {url}:\n{ran}"
    );
    assert_eq!(
        tb.served_via_vip_all(UNSERVED_PORT),
        vec![0, 0],
        "a real server saw a request for {url}"
    );
}

/// Datagrams larger than the path MTU travel in fragments: the first carries the ports and
/// is balanced, the later ones follow it to the same real server, which answers the client
/// directly. (IPVS answers these; before, lb passed every fragment to the director's kernel
/// and no answer came.)
#[test]
fn large_udp_datagrams_travel_in_fragments() {
    let mut tb = Testbed::builder().build();
    tb.start_lbd();
    let vip = tb.vip_port(UDP_ECHO_PORT);
    adm(&tb, "-C");
    adm(&tb, &format!("-A -u {vip} -s rr"));
    for i in 1..=2 {
        adm(&tb, &format!("-a -u {vip} -r {} -g", tb.rip(i)));
    }
    for size in [3000, 6000, 100] {
        let query: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let answer = tb
            .udp_echo_vip(UDP_ECHO_PORT, &query)
            .unwrap_or_else(|e| panic!("a {size}-byte query to {vip}: {e}"));
        assert!(
            answer.text.ends_with(&format!(" {query}\n")),
            "{size} bytes: the whole query echoed, got {} bytes",
            answer.text.len()
        );
    }
    let stats = adm(&tb, "-L -n --stats");
    println!("{stats}");
}
