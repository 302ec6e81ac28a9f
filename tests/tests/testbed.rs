//! The testbed itself, without lbd: plain bridging works, the VIP belongs to the director,
//! the load generators' reports parse, and nothing is left behind. When these fail, the DR
//! tests' failures say nothing about lbd.

use std::net::Ipv4Addr;

use lb_tests::{LoadGen, SERVICE_PORT, Testbed, UNSERVED_PORT, XdpMode, netns, wait};

#[test]
fn client_reaches_real_servers_directly() {
    let tb = Testbed::builder().real_servers(3).build();
    for i in 1..=3 {
        let url = format!("http://{}:{SERVICE_PORT}/", tb.rip(i));
        let tally = tb.curl(&url, 4);
        tally.assert_all_ok();
        assert_eq!(tally.count(&format!("rs{i}")), 4, "{tally}");
    }
    // Requests to a real server's own address are not counted as VIP traffic.
    assert_eq!(tb.served_via_vip_all(SERVICE_PORT), vec![0, 0, 0]);
}

#[test]
fn without_lbd_the_vip_is_the_directors() {
    let tb = Testbed::builder().build();
    // Nothing listens on the director: its own stack refuses (curl exit 7), and the real
    // servers (which do listen, and carry the VIP on lo) never see the request.
    for port in [SERVICE_PORT, UNSERVED_PORT] {
        let ran = tb.curl_once(&format!("http://{}/", tb.vip_port(port)));
        assert_eq!(ran.code(), Some(7), "expected connection refused:\n{ran}");
    }
    assert_eq!(tb.served_via_vip_all(SERVICE_PORT), vec![0, 0]);
    assert_eq!(tb.served_via_vip_all(UNSERVED_PORT), vec![0, 0]);
}

#[test]
fn load_generators_report_no_errors_on_a_healthy_server() {
    let mut tb = Testbed::builder().real_servers(1).build();
    let url = format!("http://{}:{SERVICE_PORT}/", tb.rip(1));
    for kind in [
        LoadGen::Wrk { connections: 4 },
        LoadGen::Ab {
            concurrency: 4,
            requests: 1_000_000,
        },
    ] {
        let local = format!("{}:{SERVICE_PORT}", tb.rip(1));
        let start = tb.served(1, &local);
        let load = tb.start_load(kind, &url);
        let served = || tb.served(1, &local);
        wait::wait_until(
            format!("{kind:?} to get 300 replies from rs1"),
            std::time::Duration::from_secs(30),
            || served() >= start + 300,
        );
        let report = load.stop();
        // Requests still in flight when the generator is stopped are not "complete", so the
        // count can be a few short of what the server logged.
        assert!(report.requests > 0, "{kind:?}: {}", report.output);
        assert_eq!(report.failed, 0, "{kind:?}: {}", report.output);
        assert_eq!(report.non_2xx, 0, "{kind:?}: {}", report.output);
    }
}

#[test]
fn native_mode_peer_gets_an_xdp_program() {
    let tb = Testbed::builder()
        .real_servers(1)
        .xdp_mode(XdpMode::Native)
        .build();
    let port = tb.director.switch_port.clone();
    let out = tb
        .switch()
        .run(&["ip", "-details", "link", "show", "dev", &port]);
    assert!(out.contains("prog/xdp"), "no XDP program on {port}:\n{out}");
    // The pass program does not disturb plain traffic through that port.
    let tally = tb.curl(&format!("http://{}:{SERVICE_PORT}/", tb.rip(1)), 2);
    tally.assert_all_ok();
}

#[test]
fn dropping_a_testbed_removes_its_namespaces() {
    let tb = Testbed::builder()
        .real_servers(1)
        .subnet(Ipv4Addr::new(10, 250, 7, 0))
        .build();
    assert_eq!(tb.vip().to_string(), "10.250.7.99");
    let prefix = format!("{}-", tb.prefix());
    let dir = tb.dir().to_owned();
    let ours = || {
        netns::list()
            .into_iter()
            .filter(|name| name.starts_with(&prefix))
            .count()
    };
    assert_eq!(ours(), 4, "switch, client, director, rs1");
    drop(tb);
    assert_eq!(ours(), 0);
    assert!(!dir.exists(), "{} survived", dir.display());
}

#[test]
fn a_panicking_test_still_cleans_up() {
    let prefix = std::sync::Mutex::new(String::new());
    let result = std::panic::catch_unwind(|| {
        let tb = Testbed::builder().real_servers(1).build();
        *prefix.lock().unwrap() = format!("{}-", tb.prefix());
        panic!("deliberate");
    });
    assert!(result.is_err());
    let prefix = prefix.into_inner().unwrap();
    assert!(!prefix.is_empty());
    let left: Vec<String> = netns::list()
        .into_iter()
        .filter(|name| name.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
