//! keepalived's checkers and scripts end to end (issue #13): lbd with a keepalived.conf whose
//! real servers are checked by `MISC_CHECK` programs, run in the director's network namespace
//! as keepalived would run them, with `misc_dynamic` weights, `notify_up`/`notify_down` and
//! `quorum_up`/`quorum_down` scripts. Each test builds its own DR topology.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lb_tests::lbd::Lbd;
use lb_tests::{SERVICE_PORT, Testbed, UDP_ECHO_PORT, wait};

/// Verdicts take a delay_loop (1 s) or two; slack for a loaded machine.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts lbd in the director with `--config conf` and waits until `lbadm -Ln` answers.
#[track_caller]
fn start_lbd_with_config(tb: &Testbed, conf: &Path) -> Lbd {
    let conf = conf.display().to_string();
    Lbd::start_with(
        &tb.director.ns,
        tb.director_ifaces(),
        tb.xdp_mode(),
        tb.lbd_files(),
        &["--config", &conf],
    )
}

/// Stops lbd with SIGTERM (it must exit cleanly) and returns its log.
fn stop_lbd(mut lbd: Lbd, tb: &Testbed) -> String {
    let status = lbd.daemon.stop(libc::SIGTERM, Duration::from_secs(15));
    assert!(
        status.success(),
        "lbd exited with {status:?}\n{}",
        lbd.daemon.report()
    );
    std::fs::read_to_string(&tb.lbd_files().log).expect("lbd's log")
}

/// The `-Ln` line of real server `rip`, if listed.
fn real_line(listing: &str, rip: &str) -> Option<String> {
    let needle = format!("-> {rip}:{SERVICE_PORT} ");
    listing
        .lines()
        .find(|l| l.contains(&needle))
        .map(str::to_owned)
}

/// Weight column of a real server's `-Ln` line.
fn weight_of(line: &str) -> u32 {
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// The weights of real servers 1 and 2 in `-Ln` (`None`: not listed).
fn weights(tb: &Testbed) -> (Option<u32>, Option<u32>, String) {
    let l = tb.lbadm(&["-Ln"]);
    let w = |i| real_line(&l, &tb.rip(i)).map(|line| weight_of(&line));
    (w(1), w(2), l)
}

#[track_caller]
fn wait_weights(tb: &Testbed, what: &str, want: (Option<u32>, Option<u32>)) -> String {
    wait::wait_ok(what, HEALTH_TIMEOUT, || {
        let (a, b, l) = weights(tb);
        if (a, b) == want {
            Ok(l)
        } else {
            Err(format!("-Ln:\n{l}"))
        }
    })
}

/// The lines a script appended to `file` so far.
fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[track_caller]
fn wait_lines(file: &Path, want: &[&str]) {
    wait::wait_ok(
        format!("{} to read {want:?}", file.display()),
        HEALTH_TIMEOUT,
        || {
            let got = lines(file);
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        },
    );
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// MISC_CHECK with misc_dynamic sets the weight from the exit status (status - 2), 0 keeps
/// the configured weight, 1 fails; notify_up/notify_down run on each change of a real server,
/// quorum_down/quorum_up when the live weight crosses the quorum. The checks' programs reach
/// the real servers from the director's namespace (rs2's check curls it).
#[test]
fn misc_check_weights_and_notify_scripts() {
    let tb = Testbed::builder().build();
    let dir: PathBuf = tb.dir().join("misc");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display();
    let (rip1, rip2) = (tb.rip(1), tb.rip(2));
    // rs1: the exit status is whatever code1 says. rs2: up while its nginx answers and code2
    // says 0.
    write(&dir.join("code1"), "12\n");
    write(&dir.join("code2"), "0\n");
    write(&dir.join("check1.sh"), &format!("exit $(cat {d}/code1)\n"));
    write(
        &dir.join("check2.sh"),
        &format!(
            "curl -sf --max-time 1 -o /dev/null http://{rip2}:{SERVICE_PORT}/ || exit 1\n\
             exit $(cat {d}/code2)\n"
        ),
    );
    let notify = |what: &str, file: &str| format!("\"/bin/sh -c 'echo {what} >> {d}/{file}'\"");
    let vip = tb.vip();
    let conf = format!(
        "virtual_server {vip} {SERVICE_PORT} {{
    delay_loop 1
    lb_algo wrr
    lb_kind DR
    protocol TCP
    quorum 2
    quorum_up {qu}
    quorum_down {qd}
    real_server {rip1} {SERVICE_PORT} {{
        weight 1
        notify_up {u1}
        notify_down {d1}
        MISC_CHECK {{
            misc_path \"/bin/sh {d}/check1.sh\"
            misc_timeout 5
            misc_dynamic
            warmup 0
        }}
    }}
    real_server {rip2} {SERVICE_PORT} {{
        weight 1
        MISC_CHECK {{
            misc_path \"/bin/sh {d}/check2.sh\"
            misc_timeout 5
            warmup 0
        }}
    }}
}}
",
        qu = notify("up", "quorum"),
        qd = notify("down", "quorum"),
        u1 = notify("rs1-up", "notify"),
        d1 = notify("rs1-down", "notify"),
    );
    let conf_path = dir.join("keepalived.conf");
    write(&conf_path, &conf);
    let lbd = start_lbd_with_config(&tb, &conf_path);
    let (notify_file, quorum_file) = (dir.join("notify"), dir.join("quorum"));

    let l = wait_weights(&tb, "rs1 at weight 10 (exit 12)", (Some(10), Some(1)));
    println!("{l}");
    tb.curl_vip(SERVICE_PORT, 6).assert_all_ok();

    write(&dir.join("code1"), "0\n");
    wait_weights(&tb, "rs1 back at its weight 1 (exit 0)", (Some(1), Some(1)));

    write(&dir.join("code1"), "1\n");
    wait_weights(&tb, "rs1 out (exit 1)", (None, Some(1)));
    wait_lines(&notify_file, &["rs1-down"]);
    let tally = tb.curl_vip(SERVICE_PORT, 4);
    tally.assert_all_ok();
    assert_eq!(tally.count("rs2"), 4, "{tally}");
    // Live weight 1 < quorum 2: the quorum was lost (no sorry server: rs2 stays in).
    wait_lines(&quorum_file, &["down"]);

    write(&dir.join("code1"), "5\n");
    wait_weights(&tb, "rs1 in at weight 3 (exit 5)", (Some(3), Some(1)));
    wait_lines(&notify_file, &["rs1-down", "rs1-up"]);
    wait_lines(&quorum_file, &["down", "up"]);

    // rs2's program fails when rs2 does not answer: a status other than 0 without
    // misc_dynamic fails too.
    write(&dir.join("code2"), "3\n");
    wait_weights(
        &tb,
        "rs2 out (exit 3 without misc_dynamic)",
        (Some(3), None),
    );
    let tally = tb.curl_vip(SERVICE_PORT, 4);
    tally.assert_all_ok();
    assert_eq!(tally.count("rs1"), 4, "{tally}");

    let log = stop_lbd(lbd, &tb);
    assert!(
        log.contains("MISC_CHECK /bin/sh"),
        "lbd's log names the checks' programs:\n{log}"
    );
}

/// UDP_CHECK against the real servers' UDP echo: rs1's echo answers `rs1 lb-check` to the
/// payload `lb-check` (`require_reply 72 73 3X 20`: "rs", any digit, a space), rs2's check
/// goes to a closed port and the ICMP port unreachable takes it out.
#[test]
fn udp_check_against_a_udp_echo() {
    let tb = Testbed::builder().build();
    let dir: PathBuf = tb.dir().join("udp");
    std::fs::create_dir_all(&dir).unwrap();
    let (vip, rip1, rip2) = (tb.vip(), tb.rip(1), tb.rip(2));
    let conf = format!(
        "virtual_server {vip} {UDP_ECHO_PORT} {{
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol UDP
    real_server {rip1} {UDP_ECHO_PORT} {{
        UDP_CHECK {{
            payload 6c 62 2d 63 68 65 63 6b 0a
            require_reply 72 73 3X 20
            connect_timeout 1
            warmup 0
        }}
    }}
    real_server {rip2} {UDP_ECHO_PORT} {{
        UDP_CHECK {{
            connect_port 9
            connect_timeout 1
            retry 0
            warmup 0
        }}
    }}
}}
"
    );
    let conf_path = dir.join("keepalived.conf");
    write(&conf_path, &conf);
    let lbd = start_lbd_with_config(&tb, &conf_path);
    let l = wait::wait_ok("rs2 out, rs1 in", HEALTH_TIMEOUT, || {
        let l = tb.lbadm(&["-Ln"]);
        let has = |rip: &str| l.contains(&format!("-> {rip}:{UDP_ECHO_PORT} "));
        if has(&rip1) && !has(&rip2) {
            Ok(l)
        } else {
            Err(format!("-Ln:\n{l}"))
        }
    });
    println!("{l}");
    // rs1 stays in: its check keeps passing.
    std::thread::sleep(Duration::from_secs(3));
    let l = tb.lbadm(&["-Ln"]);
    assert!(l.contains(&format!("-> {rip1}:{UDP_ECHO_PORT} ")), "{l}");
    stop_lbd(lbd, &tb);
}

/// `virtual_server group`: one service per address and port of the group (the VIP on ports 80
/// and 8080, where the real servers' nginx listens too), with the same real servers; a real
/// server whose check fails leaves every service of the group.
#[test]
fn virtual_server_group_sets_up_each_address() {
    let tb = Testbed::builder().build();
    let dir: PathBuf = tb.dir().join("group");
    std::fs::create_dir_all(&dir).unwrap();
    let (vip, rip1, rip2) = (tb.vip(), tb.rip(1), tb.rip(2));
    write(&dir.join("code2"), "0\n");
    let d = dir.display();
    let conf = format!(
        "virtual_server_group web {{
    {vip} {SERVICE_PORT}
    {vip} 8080
}}
virtual_server group web {{
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server {rip1} {SERVICE_PORT} {{
        TCP_CHECK {{
            connect_timeout 1
            warmup 0
        }}
    }}
    real_server {rip2} {SERVICE_PORT} {{
        MISC_CHECK {{
            misc_path \"/bin/sh -c 'exit $(cat {d}/code2)'\"
            warmup 0
        }}
    }}
}}
"
    );
    let conf_path = dir.join("keepalived.conf");
    write(&conf_path, &conf);
    let lbd = start_lbd_with_config(&tb, &conf_path);
    let count = |l: &str, rip: &str| l.matches(&format!("-> {rip}:")).count();
    let l = wait::wait_ok(
        "both services with both real servers",
        HEALTH_TIMEOUT,
        || {
            let l = tb.lbadm(&["-Ln"]);
            if l.contains(&format!("TCP  {vip}:8080 rr"))
                && count(&l, &rip1) == 2
                && count(&l, &rip2) == 2
            {
                Ok(l)
            } else {
                Err(format!("-Ln:\\n{l}"))
            }
        },
    );
    println!("{l}");
    assert!(
        l.contains(&format!("-> {rip1}:8080 ")),
        "DR takes the service's port:\\n{l}"
    );
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();
    tb.curl_vip(8080, 4).assert_all_ok();

    write(&dir.join("code2"), "1\n");
    wait::wait_ok("rs2 out of both services", HEALTH_TIMEOUT, || {
        let l = tb.lbadm(&["-Ln"]);
        if count(&l, &rip2) == 0 && count(&l, &rip1) == 2 {
            Ok(())
        } else {
            Err(format!("-Ln:\\n{l}"))
        }
    });
    let log = stop_lbd(lbd, &tb);
    // One check of each real server for the whole group.
    let downs = log.matches("real server down: MISC_CHECK").count();
    assert_eq!(downs, 1, "{log}");
}

/// Drops ICMP (`icmp`) or ICMPv6 (`icmpv6`) echo requests in real server `i`'s namespace
/// (`drop: false` takes the rule away again).
fn drop_echo_requests(tb: &Testbed, i: usize, family: &str, drop: bool) {
    let ns = &tb.rs(i).ns;
    let table = format!("lb_ping_{family}");
    let ran = if drop {
        let rules = format!(
            "table inet {table} {{\nchain input {{\ntype filter hook input priority 0;\n\
             {family} type echo-request drop\n}}\n}}\n"
        );
        ns.try_run(&["nft", "-f", "-"], Some(&rules))
    } else {
        ns.try_run(&["nft", "delete", "table", "inet", &table], None)
    };
    ran.assert_success();
}

/// PING_CHECK: ICMP echo to rs2's address, ICMPv6 echo to rs1's IPv6 twin (`connect_ip`). With
/// `alpha` the real servers come in only once their echo requests are answered; one whose
/// real server drops echo requests (nftables in its namespace) goes out, and comes back once
/// they are answered again.
#[test]
fn ping_check_follows_echo_replies() {
    let tb = Testbed::builder().ipv6().build();
    let dir: PathBuf = tb.dir().join("ping");
    std::fs::create_dir_all(&dir).unwrap();
    let (vip, rip1, rip2, rip1_v6) = (tb.vip(), tb.rip(1), tb.rip(2), tb.rip6(1));
    let conf = format!(
        "virtual_server {vip} {SERVICE_PORT} {{
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    alpha
    real_server {rip1} {SERVICE_PORT} {{
        PING_CHECK {{
            connect_ip {rip1_v6}
            connect_timeout 1
            retry 0
            warmup 0
        }}
    }}
    real_server {rip2} {SERVICE_PORT} {{
        PING_CHECK {{
            connect_timeout 1
            retry 1
            delay_before_retry 1
            warmup 0
        }}
    }}
}}
"
    );
    let conf_path = dir.join("keepalived.conf");
    write(&conf_path, &conf);
    let lbd = start_lbd_with_config(&tb, &conf_path);
    let l = wait_weights(
        &tb,
        "both in once their pings are answered",
        (Some(1), Some(1)),
    );
    println!("{l}");
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();

    drop_echo_requests(&tb, 2, "icmp", true);
    wait_weights(&tb, "rs2 out (echo requests dropped)", (Some(1), None));
    let tally = tb.curl_vip(SERVICE_PORT, 4);
    tally.assert_all_ok();
    assert_eq!(tally.count("rs1"), 4, "{tally}");

    drop_echo_requests(&tb, 2, "icmp", false);
    wait_weights(&tb, "rs2 back (echo answered again)", (Some(1), Some(1)));

    // rs1's check is over ICMPv6: dropping its ICMPv6 echo requests takes it out.
    drop_echo_requests(&tb, 1, "icmpv6", true);
    wait_weights(
        &tb,
        "rs1 out (ICMPv6 echo requests dropped)",
        (None, Some(1)),
    );

    let log = stop_lbd(lbd, &tb);
    assert!(
        log.contains(&format!("PING_CHECK {rip2}: no echo reply")),
        "lbd's log says why rs2 went out:\n{log}"
    );
}

/// HTTP_GET's `regex`: rs1's page must match `status: (ok|fine)$` (PCRE2's `$` before the
/// page's last newline), rs2's must not contain `error` (`regex_no_match`). With `alpha` they
/// come in only once their pages pass; a page that stops passing takes its real server out,
/// and back in once it passes again.
#[test]
fn http_get_regex_follows_the_page() {
    let tb = Testbed::builder().build();
    let dir: PathBuf = tb.dir().join("regex");
    std::fs::create_dir_all(&dir).unwrap();
    let (vip, rip1, rip2) = (tb.vip(), tb.rip(1), tb.rip(2));
    let page = |i: usize, text: &str| {
        let path = tb.dir().join(&tb.rs(i).name).join("files/status");
        write(&path, text);
    };
    page(1, "status: ok\n");
    page(2, "status: ok\n");
    let conf = format!(
        "virtual_server {vip} {SERVICE_PORT} {{
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    alpha
    real_server {rip1} {SERVICE_PORT} {{
        HTTP_GET {{
            url {{
                path /files/status
                regex \"status: (ok|fine)$\"
            }}
            connect_timeout 1
            retry 0
            warmup 0
        }}
    }}
    real_server {rip2} {SERVICE_PORT} {{
        HTTP_GET {{
            url {{
                path /files/status
                regex error
                regex_no_match
            }}
            connect_timeout 1
            retry 0
            warmup 0
        }}
    }}
}}
"
    );
    let conf_path = dir.join("keepalived.conf");
    write(&conf_path, &conf);
    let lbd = start_lbd_with_config(&tb, &conf_path);
    let l = wait_weights(&tb, "both in once their pages pass", (Some(1), Some(1)));
    println!("{l}");

    page(1, "status: degraded\n");
    wait_weights(&tb, "rs1 out (its page no longer matches)", (None, Some(1)));
    page(1, "status: fine\n");
    wait_weights(&tb, "rs1 back (it matches again)", (Some(1), Some(1)));
    page(2, "status: ok\nlast error: disk full\n");
    wait_weights(
        &tb,
        "rs2 out (its page matches regex_no_match's)",
        (Some(1), None),
    );
    page(2, "status: ok\n");
    wait_weights(&tb, "rs2 back", (Some(1), Some(1)));

    let log = stop_lbd(lbd, &tb);
    assert!(
        log.contains("not a body matching regex"),
        "lbd's log says why rs1 went out:\n{log}"
    );
}
