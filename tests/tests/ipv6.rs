//! IPv6 end to end (issue 14): the LVS-DR topology of `dr.rs` with every host dual-stack
//! (`TestbedBuilder::ipv6`: each address's IPv6 twin, `nodad`; the VIP's twin on the director
//! and on the real servers' `lo`), lbd configured with lbadm in ipvsadm's IPv6 syntax.
//!
//! `ipv6_real_servers_are_resolved_over_ndp` needs only user space (route and neighbour lookups
//! over IPv6). The traffic tests need the data path's IPv6 forwarding (DR, and TUN as IPv6 in
//! IPv6, GUE and GRE over IPv6, with `lbd decap` on the real servers). The keepalived test
//! runs health checks over IPv6 from the director.

use std::time::Duration;

use lb_tests::{
    Counter, SERVICE_PORT, Testbed,
    http::LoadGen,
    lbd::{GUE_PORT, Lbd},
    wait,
};

/// How long the real servers' access logs may take to show what a test waits for.
const TRAFFIC_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one lbadm command written as on a shell line, returning its stdout.
#[track_caller]
fn adm(tb: &Testbed, line: &str) -> String {
    let args: Vec<&str> = line.split_whitespace().collect();
    tb.lbadm(&args)
}

/// Seed 000's DR service, in IPv6: `-A -t [VIP6]:80 -s rr`, rs1 and rs2 with `-g`.
#[track_caller]
fn configure_dr6(tb: &Testbed) {
    let vip = tb.vip6_port(SERVICE_PORT);
    adm(tb, "-C");
    adm(tb, &format!("-A -t {vip} -s rr"));
    // ipvsadm takes an IPv6 real server in brackets only with a port.
    adm(
        tb,
        &format!("-a -t {vip} -r [{}]:{SERVICE_PORT} -g", tb.rip6(1)),
    );
    adm(
        tb,
        &format!("-a -t {vip} -r [{}]:{SERVICE_PORT} -g", tb.rip6(2)),
    );
    wait_resolved(tb);
}

/// Waits until lbd has published both real servers' MACs: it asked the kernel for them (a
/// neighbour solicitation each, sent once the director's link-local address has passed
/// duplicate address detection) and the advertisements came.
#[track_caller]
fn wait_resolved(tb: &Testbed) {
    for i in 1..=tb.real_servers.len() {
        let rip = tb.rip6(i).to_string();
        wait::wait_ok(
            format!("rs{i} ({rip}) resolved"),
            Duration::from_secs(10),
            || {
                let log = tb.lbd_log();
                log.lines()
                    .any(|l| l.contains("real server resolved") && l.contains(&rip))
                    .then_some(())
                    .ok_or_else(|| format!("lbd's log:\n{log}"))
            },
        );
    }
}

/// One real-server line of `ipvsadm -Ln` (`"  -> %-28s %-7s %-6d %-10u %-10u"`), its
/// connection counts left out.
fn real_line_prefix(addr: &str, forward: &str, weight: u32) -> String {
    format!("  -> {addr:<28} {forward:<7} {weight:<6} ")
}

#[test]
fn ipv6_real_servers_are_resolved_over_ndp() {
    let mut tb = Testbed::builder().ipv6().build();
    tb.start_lbd();
    configure_dr6(&tb);
    let vip = tb.vip6_port(SERVICE_PORT);
    let list = adm(&tb, "-Ln");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines[3], format!("TCP  {vip} rr"), "{list}");
    for (i, line) in lines[4..6].iter().enumerate() {
        let rs = format!("[{}]:{SERVICE_PORT}", tb.rip6(i + 1));
        assert!(
            line.starts_with(&real_line_prefix(&rs, "Route", 1)),
            "{line:?} in\n{list}"
        );
    }
    // -S and -R round trip in IPv6 syntax.
    let saved = adm(&tb, "-Sn");
    assert_eq!(
        saved,
        format!(
            "-A -t {vip} -s rr\n\
             -a -t {vip} -r [{}]:80 -g -w 1\n\
             -a -t {vip} -r [{}]:80 -g -w 1\n",
            tb.rip6(1),
            tb.rip6(2)
        )
    );
    adm(&tb, "-C");
    tb.lbadm_stdin(&["-R"], Some(&saved));
    assert_eq!(adm(&tb, "-Sn"), saved);
}

#[test]
fn dr_ipv6_round_robin_reaches_the_real_servers_at_the_vip() {
    let mut tb = Testbed::builder().ipv6().build();
    tb.start_lbd();
    configure_dr6(&tb);

    let tally = tb.curl(&format!("http://{}/", tb.vip6_port(SERVICE_PORT)), 10);
    tally.assert_all_ok();
    assert_eq!(tally.count("rs1"), 5, "{tally}");
    assert_eq!(tally.count("rs2"), 5, "{tally}");
    // DR changes only MACs: the requests reach nginx addressed to the VIP.
    let served = wait::wait_ok(
        "5 requests via the IPv6 VIP on each",
        TRAFFIC_TIMEOUT,
        || {
            let served = tb.served_via_vip6_all(SERVICE_PORT);
            (served == [5, 5])
                .then_some(served.clone())
                .ok_or_else(|| format!("served via the VIP (rs1, rs2): {served:?}"))
        },
    );
    println!("served {served:?}");

    // The connection table lists IPv6 connections with brackets, as ipvsadm does.
    let conns = adm(&tb, "-L -n -c");
    let client = format!("[{}]:", tb.client6());
    let vip = tb.vip6_port(SERVICE_PORT);
    assert!(
        conns
            .lines()
            .skip(2)
            .any(|l| l.contains(&client) && l.contains(&vip)),
        "{conns}"
    );
    // Counters: 10 connections on the service.
    let stats = adm(&tb, "-L -n --stats --exact");
    let row = stats
        .lines()
        .find(|l| l.starts_with(&format!("TCP  {vip}")))
        .unwrap_or_else(|| panic!("no service row in\n{stats}"));
    let conns: u64 = row.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(conns, 10, "{stats}");
}

#[test]
fn dual_stack_director_serves_an_ipv4_and_an_ipv6_vip_at_once() {
    let mut tb = Testbed::builder().ipv6().build();
    tb.start_lbd();
    configure_dr6(&tb);
    let vip4 = tb.vip_port(SERVICE_PORT);
    adm(&tb, &format!("-A -t {vip4} -s rr"));
    adm(&tb, &format!("-a -t {vip4} -r {} -g", tb.rip(1)));
    adm(&tb, &format!("-a -t {vip4} -r {} -g", tb.rip(2)));

    let v6 = tb.curl(&format!("http://{}/", tb.vip6_port(SERVICE_PORT)), 4);
    let v4 = tb.curl_vip(SERVICE_PORT, 4);
    v6.assert_all_ok();
    v4.assert_all_ok();
    for tally in [&v6, &v4] {
        assert_eq!(tally.count("rs1"), 2, "{tally}");
        assert_eq!(tally.count("rs2"), 2, "{tally}");
    }
    // Both VIPs under wrk at once (a new connection per request): nothing fails, and the
    // connection counters of both services grow.
    let url6 = format!("http://{}/", tb.vip6_port(SERVICE_PORT));
    let url4 = format!("http://{vip4}/");
    let load6 = tb.start_load(LoadGen::Wrk { connections: 4 }, &url6);
    let load4 = tb.start_load(LoadGen::Wrk { connections: 4 }, &url4);
    std::thread::sleep(Duration::from_secs(3));
    let (report6, report4) = (load6.stop(), load4.stop());
    println!("wrk over IPv6: {report6:?}\nwrk over IPv4: {report4:?}");
    for report in [&report6, &report4] {
        assert!(report.requests > 0, "{}", report.output);
        assert_eq!((report.failed, report.non_2xx), (0, 0), "{}", report.output);
    }

    // Listed IPv4 first, as ipvsadm sorts by family.
    let list = adm(&tb, "-Ln");
    let services: Vec<&str> = list.lines().filter(|l| l.starts_with("TCP")).collect();
    assert_eq!(
        services,
        [
            format!("TCP  {vip4} rr"),
            format!("TCP  {} rr", tb.vip6_port(SERVICE_PORT))
        ],
        "{list}"
    );
}

/// keepalived.conf with an IPv6 virtual server: HTTP_GET passes on rs1 (over IPv6, to its
/// nginx), TCP_CHECK fails on rs2 (a closed port, refused over IPv6), so only rs1 is listed
/// and it takes every request.
#[test]
fn keepalived_ipv6_virtual_server_with_checks_over_ipv6() {
    let tb = Testbed::builder().ipv6().build();
    let (vip, rip1, rip2) = (tb.vip6(), tb.rip6(1), tb.rip6(2));
    let conf = format!(
        "virtual_server {vip} {SERVICE_PORT} {{
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server {rip1} {SERVICE_PORT} {{
        HTTP_GET {{
            url {{
                path /
                status_code 200
            }}
            connect_timeout 1
            warmup 0
        }}
    }}
    real_server {rip2} {SERVICE_PORT} {{
        TCP_CHECK {{
            connect_port 9
            connect_timeout 1
            retry 0
            warmup 0
        }}
    }}
}}
"
    );
    let conf_path = tb.dir().join("keepalived6.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let conf_arg = conf_path.display().to_string();
    let mut lbd = Lbd::start_with(
        &tb.director.ns,
        tb.director_ifaces(),
        tb.xdp_mode(),
        tb.lbd_files(),
        &["--config", &conf_arg],
    );
    let has = |l: &str, rip| l.contains(&format!("-> [{rip}]:{SERVICE_PORT} "));
    let listing = wait::wait_ok("rs1 in, rs2 out", Duration::from_secs(20), || {
        let l = tb.lbadm(&["-Ln"]);
        if has(&l, rip1) && !has(&l, rip2) {
            Ok(l)
        } else {
            let probe = tb.director.ns.try_run(
                &[
                    "curl",
                    "-sS",
                    "-m",
                    "2",
                    &format!("http://[{rip1}]:{SERVICE_PORT}/"),
                ],
                None,
            );
            let neigh = tb.director.ns.try_run(&["ip", "-6", "neigh"], None);
            let route = tb
                .director
                .ns
                .try_run(&["ip", "-6", "route", "get", &rip1.to_string()], None);
            Err(format!(
                "-Ln:\n{l}\nlbd:\n{}\ncurl from the director: {probe}\n{neigh}\n{route}",
                lbd.daemon.report()
            ))
        }
    });
    println!("{listing}");
    let tally = tb.curl(&format!("http://{}/", tb.vip6_port(SERVICE_PORT)), 4);
    tally.assert_all_ok();
    assert_eq!(tally.count("rs1"), 4, "{tally}");
    let status = lbd.daemon.stop(libc::SIGTERM, Duration::from_secs(15));
    assert!(
        status.success(),
        "lbd exited with {status:?}\n{}",
        lbd.daemon.report()
    );
}

/// keepalived.conf's `virtual_server group` over IPv6: a `virtual_server_group` entry that is a
/// range of the last 16 bits (`VIP6-END`, the end in hexadecimal) sets up one service per
/// address; the VIP's serves through rs1.
#[test]
fn keepalived_ipv6_virtual_server_group_range() {
    let tb = Testbed::builder().ipv6().build();
    let (vip, rip1) = (tb.vip6(), tb.rip6(1));
    let segments = vip.segments();
    let next = std::net::Ipv6Addr::from({
        let mut s = segments;
        s[7] += 1;
        s
    });
    let conf = format!(
        "virtual_server_group web6 {{
    {vip}-{:x} {SERVICE_PORT}
}}
virtual_server group web6 {{
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server {rip1} {SERVICE_PORT} {{
    }}
}}
",
        segments[7] + 1
    );
    let conf_path = tb.dir().join("keepalived6-group.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let conf_arg = conf_path.display().to_string();
    let mut lbd = Lbd::start_with(
        &tb.director.ns,
        tb.director_ifaces(),
        tb.xdp_mode(),
        tb.lbd_files(),
        &["--config", &conf_arg],
    );
    let listing = tb.lbadm(&["-Ln"]);
    for addr in [vip, next] {
        assert!(
            listing.contains(&format!("TCP  [{addr}]:{SERVICE_PORT} rr")),
            "a service on [{addr}]:{SERVICE_PORT}:\n{listing}"
        );
    }
    let rip = tb.rip6(1).to_string();
    wait::wait_ok("rs1 resolved", Duration::from_secs(10), || {
        let log = tb.lbd_log();
        log.lines()
            .any(|l| l.contains("real server resolved") && l.contains(&rip))
            .then_some(())
            .ok_or_else(|| format!("lbd's log:\n{log}"))
    });
    let tally = tb.curl(&format!("http://{}/", tb.vip6_port(SERVICE_PORT)), 4);
    tally.assert_all_ok();
    assert_eq!(tally.count("rs1"), 4, "{tally}");
    let status = lbd.daemon.stop(libc::SIGTERM, Duration::from_secs(15));
    assert!(
        status.success(),
        "lbd exited with {status:?}\n{}",
        lbd.daemon.report()
    );
}

/// LVS-TUN over IPv6: the director encapsulates IPv6 in IPv6 (next header 41) to each real
/// server's IPv6 address, where `lbd decap` strips the outer header; the requests reach nginx
/// addressed to the VIP.
#[test]
fn tun_ipv6_in_ipv6_reaches_the_real_servers_at_the_vip() {
    let mut tb = Testbed::builder()
        .topology(lb_tests::Topology::Tun)
        .ipv6()
        .build();
    tb.start_lbd();
    let vip = tb.vip6_port(SERVICE_PORT);
    adm(&tb, &format!("-A -t {vip} -s rr"));
    for i in 1..=2 {
        adm(
            &tb,
            &format!("-a -t {vip} -r [{}]:{SERVICE_PORT} -i", tb.rip6(i)),
        );
    }
    wait_resolved(&tb);
    let tally = tb.curl(&format!("http://{vip}/"), 6);
    tally.assert_all_ok();
    assert_eq!(tally.count("rs1"), 3, "{tally}");
    assert_eq!(tally.count("rs2"), 3, "{tally}");
    wait::wait_ok(
        "3 requests via the IPv6 VIP on each",
        TRAFFIC_TIMEOUT,
        || {
            let served = tb.served_via_vip6_all(SERVICE_PORT);
            (served == [3, 3])
                .then_some(())
                .ok_or_else(|| format!("served via the VIP (rs1, rs2): {served:?}"))
        },
    );
}

/// GUE and GRE over IPv6 (`ip_vs_tunnel_xmit_v6`'s `--tun-type gue|gre`), as
/// `tun::gue_and_gre_tunnels_through_lbd_decap` over IPv4: rs1 GUE with the UDP checksum,
/// rs2 GRE with its checksum, rs3 GUE without; requests go round-robin through the three
/// tunnels to the IPv6 VIP, each real server's `lbd decap` strips its tunnel, and replies go
/// straight to the client. On the switch: GUE (next header 17) to the tunnel port, GRE (47),
/// no IPv6 in IPv6, no reply through the director; a download through each arrives intact.
#[test]
fn gue_and_gre_over_ipv6_through_lbd_decap() {
    let mut tb = Testbed::builder()
        .topology(lb_tests::Topology::Tun)
        .real_servers(3)
        .ipv6()
        .build();
    tb.start_lbd();
    let vip = tb.vip6_port(SERVICE_PORT);
    adm(&tb, &format!("-A -t {vip} -s rr"));
    let options = [
        format!("--tun-type gue --tun-port {GUE_PORT} --tun-csum"),
        "--tun-type gre --tun-csum".to_owned(),
        format!("--tun-type gue --tun-port {GUE_PORT}"),
    ];
    for (i, options) in (1..=3).zip(&options) {
        adm(
            &tb,
            &format!(
                "-a -t {vip} -r [{}]:{SERVICE_PORT} -i {options}",
                tb.rip6(i)
            ),
        );
    }
    let list = adm(&tb, "-Ln --tun-info");
    for (i, tunnel) in (1..=3).zip([
        format!("gue:{GUE_PORT}:+c"),
        "gre:+c".to_owned(),
        format!("gue:{GUE_PORT}:-c"),
    ]) {
        let rs = format!("[{}]:{SERVICE_PORT}", tb.rip6(i));
        assert!(
            list.lines().any(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words.len() > 3 && words[1] == rs && words[2] == "Tunnel" && words[3] == tunnel
            }),
            "`-Ln --tun-info` should show {rs} as Tunnel {tunnel}:\n{list}"
        );
    }
    wait_resolved(&tb);

    let director = format!("\"{}\"", tb.director.switch_port);
    let rs_ports: Vec<String> = tb
        .real_servers
        .iter()
        .map(|rs| format!("\"{}\"", rs.switch_port))
        .collect();
    let rs_ports = format!("{{ {} }}", rs_ports.join(", "));
    let counters = tb.switch_counters(&[
        Counter::new(
            "gue_from_director",
            format!("iifname {director} oifname {rs_ports} ip6 nexthdr udp udp dport {GUE_PORT}"),
        ),
        Counter::new(
            "gre_from_director",
            format!("iifname {director} oifname {rs_ports} ip6 nexthdr 47"),
        ),
        Counter::new(
            "ip6ip6_from_director",
            format!("iifname {director} oifname {rs_ports} ip6 nexthdr 41"),
        ),
        Counter::new(
            "replies_to_director",
            format!(
                "oifname {director} ip6 saddr {} tcp sport {SERVICE_PORT}",
                tb.vip6()
            ),
        ),
    ]);

    let tally = tb.curl(&format!("http://{vip}/"), 9);
    tally.assert_all_ok();
    for i in 1..=3 {
        assert_eq!(tally.count(&format!("rs{i}")), 3, "{tally}");
    }
    wait::wait_ok(
        "3 requests via the IPv6 VIP on each",
        TRAFFIC_TIMEOUT,
        || {
            let served = tb.served_via_vip6_all(SERVICE_PORT);
            (served == [3, 3, 3])
                .then_some(())
                .ok_or_else(|| format!("served via the VIP (rs1, rs2, rs3): {served:?}"))
        },
    );

    // A download through each tunnel arrives intact (the checksummed ones included).
    // Pseudo-random (xorshift), so that a misplaced, repeated or lost segment shows.
    let mut x: u64 = 0x6e_0016;
    let file: Vec<u8> = (0..300 * 1024 + 3)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    tb.publish_file("gue6.bin", &file);
    let url = format!("http://{vip}/files/gue6.bin");
    for n in 1..=3 {
        let got = tb
            .download(&url)
            .unwrap_or_else(|e| panic!("download {n} of {url}:\n{e}"));
        assert!(got == file, "download {n} of {url} differs from the file");
    }

    tb.assert_each_real_server_decapsulated();
    let report = counters.to_string();
    println!("switch counters:\n{report}");
    assert!(
        counters.packets("gue_from_director") >= 10,
        "the director should send GUE over IPv6 to rs1 and rs3:\n{report}"
    );
    assert!(
        counters.packets("gre_from_director") >= 5,
        "the director should send GRE over IPv6 to rs2:\n{report}"
    );
    assert_eq!(
        counters.packets("ip6ip6_from_director"),
        0,
        "no real server is on IPv6 in IPv6:\n{report}"
    );
    assert_eq!(
        counters.packets("replies_to_director"),
        0,
        "replies should bypass the director:\n{report}"
    );
}

/// LVS-NAT over IPv6 (seed 001's two networks, each with its IPv6 twin; the real servers'
/// default IPv6 route through the director): requests reach the real servers rewritten to
/// their own address and port, and the replies come back through the director from the VIP
/// (curl gets them).
#[test]
fn nat_ipv6_rewrites_to_the_real_servers_and_back() {
    let mut tb = Testbed::builder()
        .topology(lb_tests::Topology::Nat)
        .ipv6()
        .build();
    tb.start_lbd();
    let vip = tb.vip6_port(SERVICE_PORT);
    adm(&tb, &format!("-A -t {vip} -s rr"));
    for i in 1..=2 {
        adm(
            &tb,
            &format!("-a -t {vip} -r [{}]:{SERVICE_PORT} -m", tb.rip6(i)),
        );
    }
    wait_resolved(&tb);
    let tally = tb.curl(&format!("http://{vip}/"), 6);
    tally.assert_all_ok();
    assert_eq!(tally.count("rs1"), 3, "{tally}");
    assert_eq!(tally.count("rs2"), 3, "{tally}");
    // NAT rewrites the destination: nginx logs the real server's own address as the local one.
    wait::wait_ok(
        "3 requests at each real server's address",
        TRAFFIC_TIMEOUT,
        || {
            let served: Vec<usize> = (1..=2)
                .map(|i| {
                    lb_tests::http::count_served(
                        &tb.dir().join(format!("rs{i}")).join("access.log"),
                        &format!("{}:{SERVICE_PORT}", tb.rip6(i)),
                        None,
                    )
                })
                .collect();
            (served == [3, 3])
                .then_some(())
                .ok_or_else(|| format!("served at the real servers' addresses: {served:?}"))
        },
    );
}
