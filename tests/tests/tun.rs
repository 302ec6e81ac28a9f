//! LVS-TUN end to end (seeds 000 and 003): lbd on the director encapsulates each client
//! packet in IP-in-IP to a real server; each real server runs `lbd decap` (this kernel has
//! no ipip module, so no `tunl0`) and, holding the VIP on `lo`, answers the client directly.
//! The director is configured with lbadm exactly as seed 003 configures ipvsadm; and with GUE
//! and GRE (`--tun-type`), which `lbd decap` on the real servers strips too.

use std::time::Duration;

use lb_common::Stat;
use lb_tests::{
    Counter, SERVICE_PORT, Tally, Testbed, Topology, XdpMode,
    lbd::{self, GUE_PORT},
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

/// Seed 003's three real servers with a TUN topology, lbd started.
fn seed_003_testbed(mode: XdpMode) -> Testbed {
    let mut tb = Testbed::builder()
        .topology(Topology::Tun)
        .real_servers(3)
        .xdp_mode(mode)
        .build();
    tb.start_lbd();
    tb
}

/// Seed 003's director configuration with `ipvsadm` replaced by `lbadm`:
/// ```text
/// $ ipvsadm -A -t 10.10.24.88:80 -s rr
/// $ ipvsadm -a -t 10.10.24.88:80 -r 10.10.24.21:80 -i
/// $ ipvsadm -a -t 10.10.24.88:80 -r 10.10.24.22:80 -i
/// $ ipvsadm -a -t 10.10.24.88:80 -r 10.10.24.23:80 -i
/// ```
#[track_caller]
fn configure_seed_003(tb: &Testbed) {
    let vip = tb.vip_port(SERVICE_PORT);
    adm(tb, "-C");
    adm(tb, &format!("-A -t {vip} -s rr"));
    for i in 1..=3 {
        adm(tb, &format!("-a -t {vip} -r {}:80 -i", tb.rip(i)));
    }
}

/// Panics unless the replies came round-robin: every real server in turn, in a fixed cycle.
#[track_caller]
fn assert_round_robin(tally: &Tally, servers: usize) {
    let names = tally.names();
    let cycle = &names[..servers.min(names.len())];
    let mut distinct = cycle.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        cycle.len(),
        "the first {servers} replies should come from {servers} different real servers:\n{tally}"
    );
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            *name,
            cycle[i % servers],
            "reply {i} breaks the round-robin cycle {cycle:?}:\n{tally}"
        );
    }
}

/// Waits until the real servers' access logs show `total` requests addressed to the VIP,
/// and returns each one's count.
#[track_caller]
fn wait_served_via_vip(tb: &Testbed, total: usize) -> Vec<usize> {
    wait::wait_ok(
        format!("{total} requests via the VIP in the access logs"),
        TRAFFIC_TIMEOUT,
        || {
            let served = tb.served_via_vip_all(SERVICE_PORT);
            if served.iter().sum::<usize>() >= total {
                Ok(served)
            } else {
                Err(format!("served via the VIP (rs1, rs2, ...): {served:?}"))
            }
        },
    )
}

fn rr_over_ipip(mode: XdpMode) {
    let tb = seed_003_testbed(mode);
    configure_seed_003(&tb);

    let list = adm(&tb, "-Ln");
    let vip = tb.vip_port(SERVICE_PORT);
    let rows: Vec<String> = list
        .lines()
        .skip(3)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let mut expected = vec![format!("TCP {vip} rr")];
    for i in 1..=3 {
        expected.push(format!("-> {}:80 Tunnel 1 0 0", tb.rip(i)));
    }
    // ipvsadm's own order of real servers is not the point here; the rows are.
    let mut sorted_rows = rows.clone();
    sorted_rows[1..].sort();
    expected[1..].sort();
    assert_eq!(
        sorted_rows, expected,
        "`-Ln` after seed 003's commands:\n{list}"
    );

    let tally = tb.curl_vip(SERVICE_PORT, 9);
    tally.assert_all_ok();
    assert_round_robin(&tally, 3);
    for i in 1..=3 {
        assert_eq!(tally.count(&format!("rs{i}")), 3, "{tally}");
    }

    // The requests reached the real servers still addressed to the VIP (the inner packet is
    // the client's, untouched) ...
    let served = wait_served_via_vip(&tb, 9);
    assert_eq!(served, vec![3, 3, 3], "requests served via the VIP");
    // ... inside IP-in-IP: each real server's decapsulator took packets apart, and the
    // director tunnelled rather than routed.
    tb.assert_each_real_server_decapsulated();
    let counters = tb.data_path_counters().expect("director counters");
    assert!(
        lbd::stat(&counters, Stat::TxTunnel) > 0 && lbd::stat(&counters, Stat::TxRoute) == 0,
        "the director should tunnel (tx_tunnel) and never route (tx_route): {}",
        lbd::name_counters(&counters)
    );
}

#[test]
fn rr_spreads_nine_requests_three_to_each_of_three_real_servers() {
    rr_over_ipip(XdpMode::Skb);
}

#[test]
fn rr_over_ipip_with_native_xdp() {
    rr_over_ipip(XdpMode::Native);
}

/// Seed 003's point: replies go from the real servers straight to the client. Counted where
/// the switch forwards frames, before any host sees them: the director's port carries the
/// client's requests in and the tunnelled packets out, and not one packet from the VIP.
#[test]
fn replies_bypass_the_director() {
    let tb = seed_003_testbed(XdpMode::Skb);
    configure_seed_003(&tb);
    let vip = tb.vip();
    let director = format!("\"{}\"", tb.director.switch_port);
    let client = format!("\"{}\"", tb.client.switch_port);
    let rs_ports: Vec<String> = tb
        .real_servers
        .iter()
        .map(|rs| format!("\"{}\"", rs.switch_port))
        .collect();
    let rs_ports = format!("{{ {} }}", rs_ports.join(", "));
    let counters = tb.switch_counters(&[
        Counter::new(
            "requests_to_director",
            format!("oifname {director} ip daddr {vip} tcp dport 80"),
        ),
        Counter::new(
            "tunnelled_from_director",
            format!("iifname {director} oifname {rs_ports} ip protocol 4"),
        ),
        Counter::new(
            "plain_requests_to_rs",
            format!("oifname {rs_ports} ip daddr {vip}"),
        ),
        Counter::new(
            "replies_to_client",
            format!("iifname {rs_ports} oifname {client} ip saddr {vip} tcp sport 80"),
        ),
        Counter::new(
            "from_vip_to_director",
            format!("oifname {director} ip saddr {vip}"),
        ),
    ]);

    let tally = tb.curl_vip(SERVICE_PORT, 9);
    tally.assert_all_ok();
    assert_round_robin(&tally, 3);
    // A download keeps the real servers sending while we count.
    let body = vec![b'x'; 256 * 1024];
    tb.publish_file("256KiB.bin", &body);
    let url = format!("http://{vip}/files/256KiB.bin");
    let got = tb.download(&url).expect("download over TUN");
    assert_eq!(got.len(), body.len(), "size of {url}");

    let report = counters.to_string();
    println!("switch counters:\n{report}");
    assert!(
        counters.packets("requests_to_director") >= 10,
        "the client's requests should reach the director:\n{report}"
    );
    assert!(
        counters.packets("tunnelled_from_director") >= 10,
        "the director should send IP-in-IP to the real servers:\n{report}"
    );
    assert!(
        counters.packets("replies_to_client") >= 10,
        "the real servers' replies should reach the client:\n{report}"
    );
    assert_eq!(
        counters.packets("plain_requests_to_rs"),
        0,
        "packets to the VIP reached a real server without the tunnel:\n{report}"
    );
    assert_eq!(
        counters.packets("from_vip_to_director"),
        0,
        "replies from the VIP reached the director's port:\n{report}"
    );
}

/// A pseudo-random (xorshift) file, so that a misplaced, repeated or lost segment changes
/// the bytes.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A 1 MiB download over TUN arrives intact from each of the three real servers (rr sends
/// the three downloads to the three in turn).
#[test]
fn a_1_mib_download_arrives_intact_from_each_real_server() {
    let tb = seed_003_testbed(XdpMode::Skb);
    configure_seed_003(&tb);
    let file = pseudo_random(1024 * 1024, 0x1b_2003);
    tb.publish_file("1MiB.bin", &file);
    let url = format!("http://{}/files/1MiB.bin", tb.vip());

    for n in 1..=3 {
        let got = tb
            .download(&url)
            .unwrap_or_else(|e| panic!("download {n} of {url}:\n{e}"));
        assert_eq!(got.len(), file.len(), "size of download {n} of {url}");
        if let Some(at) = got.iter().zip(&file).position(|(a, b)| a != b) {
            panic!("download {n} of {url} differs from the file from byte {at} on");
        }
    }
    let downloads = wait_served_via_vip(&tb, 3);
    assert_eq!(
        downloads,
        vec![1, 1, 1],
        "one download from each real server, addressed to the VIP"
    );
}

/// Seed 003's service with each real server on another tunnel: rs1 GUE with the UDP
/// checksum, rs2 GRE with its checksum, rs3 GUE without. Requests go round-robin through
/// the three tunnels, each real server's `lbd decap` strips its tunnel, and replies go
/// straight to the client; `-L --tun-info` and `-S` show the tunnels as ipvsadm does. On the
/// switch: GUE to the tunnel port, GRE, no IP-in-IP, no reply through the director.
#[test]
fn gue_and_gre_tunnels_through_lbd_decap() {
    let tb = seed_003_testbed(XdpMode::Skb);
    let vip = tb.vip_port(SERVICE_PORT);
    adm(&tb, "-C");
    adm(&tb, &format!("-A -t {vip} -s rr"));
    let options = [
        format!("--tun-type gue --tun-port {GUE_PORT} --tun-csum"),
        "--tun-type gre --tun-csum".to_owned(),
        format!("--tun-type gue --tun-port {GUE_PORT}"),
    ];
    for (i, options) in (1..=3).zip(&options) {
        adm(
            &tb,
            &format!("-a -t {vip} -r {}:80 -i {options}", tb.rip(i)),
        );
    }

    let list = adm(&tb, "-Ln --tun-info");
    let rows: Vec<String> = list
        .lines()
        .skip(3)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let mut expected = vec![
        format!("-> {}:80 Tunnel gue:{GUE_PORT}:+c 1 0 0", tb.rip(1)),
        format!("-> {}:80 Tunnel gre:+c 1 0 0", tb.rip(2)),
        format!("-> {}:80 Tunnel gue:{GUE_PORT}:-c 1 0 0", tb.rip(3)),
    ];
    let mut got = rows[1..].to_vec();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "`-Ln --tun-info`:\n{list}");
    let saved = adm(&tb, "-Sn");
    for (i, tail) in [
        format!("--tun-type gue --tun-port {GUE_PORT} --tun-csum"),
        "--tun-type gre --tun-csum".to_owned(),
        format!("--tun-type gue --tun-port {GUE_PORT} --tun-nocsum"),
    ]
    .iter()
    .enumerate()
    {
        let line = format!("-a -t {vip} -r {}:80 -i -w 1 {tail}", tb.rip(i + 1));
        assert!(
            saved.lines().any(|l| l == line),
            "`-Sn` should have {line:?}:\n{saved}"
        );
    }

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
            format!("iifname {director} oifname {rs_ports} udp dport {GUE_PORT}"),
        ),
        Counter::new(
            "gre_from_director",
            format!("iifname {director} oifname {rs_ports} ip protocol 47"),
        ),
        Counter::new(
            "ipip_from_director",
            format!("iifname {director} oifname {rs_ports} ip protocol 4"),
        ),
        Counter::new(
            "replies_to_director",
            format!("oifname {director} ip saddr {} tcp sport 80", tb.vip()),
        ),
    ]);

    let tally = tb.curl_vip(SERVICE_PORT, 9);
    tally.assert_all_ok();
    assert_round_robin(&tally, 3);
    for i in 1..=3 {
        assert_eq!(tally.count(&format!("rs{i}")), 3, "{tally}");
    }
    let served = wait_served_via_vip(&tb, 9);
    assert_eq!(served, vec![3, 3, 3], "requests served via the VIP");

    // A download through each tunnel arrives intact (the checksummed ones included).
    let file = pseudo_random(300 * 1024 + 3, 0x6e_0015);
    tb.publish_file("gue.bin", &file);
    let url = format!("http://{}/files/gue.bin", tb.vip());
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
        "the director should send GUE to rs1 and rs3:\n{report}"
    );
    assert!(
        counters.packets("gre_from_director") >= 5,
        "the director should send GRE to rs2:\n{report}"
    );
    assert_eq!(
        counters.packets("ipip_from_director"),
        0,
        "no real server is on IP-in-IP:\n{report}"
    );
    assert_eq!(
        counters.packets("replies_to_director"),
        0,
        "replies should bypass the director:\n{report}"
    );
}
