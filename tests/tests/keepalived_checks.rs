//! keepalived's checkers and scripts end to end (issue #13): lbd with a keepalived.conf whose
//! real servers are checked by `MISC_CHECK` programs, run in the director's network namespace
//! as keepalived would run them, with `misc_dynamic` weights, `notify_up`/`notify_down` and
//! `quorum_up`/`quorum_down` scripts; and the other checkers against a real server of their
//! kind in the real servers' namespaces: SSL_GET against nginx with TLS, SMTP_CHECK against
//! an SMTP responder, DNS_CHECK against dnsmasq, UDP_CHECK against a UDP echo, PING_CHECK,
//! HTTP_GET's regex. Each test builds its own DR topology.

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

/// Writes `conf` to `dir/keepalived.conf` and starts lbd with it.
#[track_caller]
fn start_lbd_with_conf(tb: &Testbed, dir: &Path, conf: &str) -> Lbd {
    let path = dir.join("keepalived.conf");
    write(&path, conf);
    start_lbd_with_config(tb, &path)
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
    let lbd = start_lbd_with_conf(&tb, &dir, &conf);
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
    let lbd = start_lbd_with_conf(&tb, &dir, &conf);
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
    let lbd = start_lbd_with_conf(&tb, &dir, &conf);
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
    let lbd = start_lbd_with_conf(&tb, &dir, &conf);
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
    let lbd = start_lbd_with_conf(&tb, &dir, &conf);
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

/// Runs `argv` (openssl, md5sum, ...) in the test's own namespace; panics with its output if
/// it fails, else returns its stdout.
#[track_caller]
fn run(argv: &[&str]) -> String {
    lb_tests::cmd::try_run(argv, None)
        .assert_success()
        .to_owned()
}

/// A new P-256 key in `dir/NAME.key` and its certificate in `dir/NAME.pem` for `/CN=NAME`:
/// self-signed, or signed by `dir/CA.pem`'s key when `ca` is given.
fn certificate(dir: &Path, name: &str, ca: Option<&str>) {
    let file = |ext: &str| dir.join(format!("{name}.{ext}")).display().to_string();
    let (key, pem, csr) = (file("key"), file("pem"), file("csr"));
    let subject = format!("/CN={name}");
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
    ];
    match ca {
        None => {
            let mut argv = vec!["openssl", "req", "-x509"];
            argv.extend_from_slice(&new_key);
            argv.extend_from_slice(&[&key, "-out", &pem, "-subj", &subject, "-days", "2"]);
            run(&argv);
        }
        Some(ca) => {
            let mut argv = vec!["openssl", "req"];
            argv.extend_from_slice(&new_key);
            argv.extend_from_slice(&[&key, "-out", &csr, "-subj", &subject]);
            run(&argv);
            let ca_pem = dir.join(format!("{ca}.pem")).display().to_string();
            let ca_key = dir.join(format!("{ca}.key")).display().to_string();
            run(&[
                "openssl",
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-set_serial",
                "2",
                "-out",
                &pem,
                "-days",
                "2",
            ]);
        }
    }
}

/// Port of the real servers' TLS nginx.
const TLS_PORT: u16 = 443;

/// Starts a second nginx on real server `i`, with TLS on [`TLS_PORT`] (certificate
/// `tls/server.pem`, made here), serving the real server's `files/` under `/files/`; with
/// `client_ca`, it wants a client certificate signed by that CA (`ssl_verify_client on`).
fn start_tls_nginx(tb: &Testbed, i: usize, client_ca: Option<&Path>) -> lb_tests::cmd::Daemon {
    let rs = tb.rs(i);
    let rs_dir = tb.dir().join(&rs.name);
    let dir = rs_dir.join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    certificate(&dir, "server", None);
    let (d, files) = (dir.display(), rs_dir.join("files"));
    let verify = match client_ca {
        Some(ca) => format!(
            "ssl_verify_client on;\n        ssl_client_certificate {};",
            ca.display()
        ),
        None => String::new(),
    };
    let conf = format!(
        "worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log notice;
events {{
    worker_connections 64;
}}
http {{
    default_type text/plain;
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen {ip}:{TLS_PORT} ssl;
        ssl_certificate {d}/server.pem;
        ssl_certificate_key {d}/server.key;
        {verify}
        location /files/ {{
            alias {files}/;
        }}
    }}
}}
",
        ip = rs.ip,
        files = files.display(),
    );
    let path = dir.join("nginx.conf");
    write(&path, &conf);
    lb_tests::http::start_nginx(&rs.ns, &dir, &path)
}

/// Writes `text` as real server `i`'s `/files/NAME` (nginx serves it over HTTP and TLS).
fn page(tb: &Testbed, i: usize, name: &str, text: &str) {
    write(
        &tb.dir().join(&tb.rs(i).name).join("files").join(name),
        text,
    );
}

/// The MD5 sum of `text` as `md5sum` prints it: what genhash prints and `digest` holds.
fn md5_hex(dir: &Path, text: &str) -> String {
    let path = dir.join("md5-input");
    write(&path, text);
    let out = run(&["md5sum", &path.display().to_string()]);
    out.split_whitespace().next().unwrap().to_owned()
}

/// SSL_GET against nginx with TLS (a self-signed certificate, taken as keepalived takes any):
/// rs1's page must have the MD5 digest configured, rs2's must answer 200. With `alpha` they
/// come in only once their checks pass over TLS; a page whose digest changes, or that
/// disappears (404), takes its real server out, and back once it is as configured again.
#[test]
fn ssl_get_against_nginx_with_tls() {
    let tb = Testbed::builder().build();
    let dir: PathBuf = tb.dir().join("ssl");
    std::fs::create_dir_all(&dir).unwrap();
    let (vip, rip1, rip2) = (tb.vip(), tb.rip(1), tb.rip(2));
    let _tls1 = start_tls_nginx(&tb, 1, None);
    let _tls2 = start_tls_nginx(&tb, 2, None);
    let good = "rs1 is healthy\n";
    page(&tb, 1, "health", good);
    page(&tb, 2, "health", "rs2 is healthy\n");
    let digest = md5_hex(&dir, good);
    let conf = format!(
        "virtual_server {vip} {SERVICE_PORT} {{
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    alpha
    real_server {rip1} {SERVICE_PORT} {{
        SSL_GET {{
            url {{
                path /files/health
                digest {digest}
            }}
            connect_port {TLS_PORT}
            connect_timeout 2
            retry 0
            warmup 0
        }}
    }}
    real_server {rip2} {SERVICE_PORT} {{
        SSL_GET {{
            url {{
                path /files/health
                status_code 200
            }}
            connect_port {TLS_PORT}
            connect_timeout 2
            retry 0
            warmup 0
        }}
    }}
}}
"
    );
    let lbd = start_lbd_with_conf(&tb, &dir, &conf);
    let l = wait_weights(&tb, "both in once their TLS pages pass", (Some(1), Some(1)));
    println!("{l}");
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();

    page(&tb, 1, "health", "rs1 is degraded\n");
    wait_weights(&tb, "rs1 out (its page's digest changed)", (None, Some(1)));
    page(&tb, 1, "health", good);
    wait_weights(
        &tb,
        "rs1 back (the digest matches again)",
        (Some(1), Some(1)),
    );

    std::fs::remove_file(tb.dir().join(&tb.rs(2).name).join("files/health")).unwrap();
    wait_weights(&tb, "rs2 out (its page is gone: 404)", (Some(1), None));
    let tally = tb.curl_vip(SERVICE_PORT, 4);
    tally.assert_all_ok();
    assert_eq!(tally.count("rs1"), 4, "{tally}");
    page(&tb, 2, "health", "rs2 is back\n");
    wait_weights(&tb, "rs2 back (200 again)", (Some(1), Some(1)));

    let log = stop_lbd(lbd, &tb);
    for said in [
        format!("SSL_GET https://{rip1}:{TLS_PORT}/files/health returned 200, MD5 digest"),
        format!("SSL_GET https://{rip2}:{TLS_PORT}/files/health returned 404"),
    ] {
        assert!(log.contains(&said), "lbd's log says {said:?}:\n{log}");
    }
}

/// How a test SMTP responder answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SmtpMode {
    /// `220` greeting, `250` to HELO, `221` to QUIT.
    Serves = 0,
    /// `220` greeting, then `550` to HELO.
    RefusesHelo = 1,
    /// `554` instead of a greeting (RFC 5321's "no SMTP service here").
    NoService = 2,
}

/// A tiny SMTP responder on real server `i` (`rip:port`, in its namespace), answering as
/// `mode` says (changeable while it runs); the HELO lines it receives are kept in `helos`.
fn start_smtp(
    tb: &Testbed,
    i: usize,
    port: u16,
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
    helos: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::io::{BufRead as _, BufReader, Write as _};
    let rs = tb.rs(i);
    let (ip, name) = (rs.ip, rs.name.clone());
    let listener = rs
        .ns
        .enter(|| std::net::TcpListener::bind((ip, port)))
        .unwrap_or_else(|e| panic!("SMTP responder on {ip}:{port}: {e}"));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut lines = BufReader::new(conn.try_clone().unwrap()).lines();
            let mode = match mode.load(std::sync::atomic::Ordering::SeqCst) {
                0 => SmtpMode::Serves,
                1 => SmtpMode::RefusesHelo,
                _ => SmtpMode::NoService,
            };
            let greeting = match mode {
                SmtpMode::NoService => format!("554 {name} no SMTP service here\r\n"),
                _ => format!("220 {name} ESMTP lb-tests\r\n"),
            };
            if conn.write_all(greeting.as_bytes()).is_err() {
                continue;
            }
            while let Some(Ok(line)) = lines.next() {
                let line = line.trim_end().to_owned();
                let answer = if line.starts_with("HELO ") {
                    helos.lock().unwrap().push(line);
                    match mode {
                        SmtpMode::Serves => format!("250 {name}\r\n"),
                        _ => "550 5.7.1 not today\r\n".to_owned(),
                    }
                } else if line == "QUIT" {
                    let _ = conn.write_all(b"221 2.0.0 bye\r\n");
                    break;
                } else {
                    "500 5.5.1 unknown command\r\n".to_owned()
                };
                if conn.write_all(answer.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
}

/// SMTP_CHECK against an SMTP responder on each real server (port 25, over real TCP): rs1's
/// serves, so it comes in (with `alpha`) and says HELO with the `helo_name` configured; when
/// it refuses HELO (550) it goes out, and back once it serves again. rs2's answers 554 instead
/// of a greeting: it never comes in.
#[test]
fn smtp_check_against_an_smtp_responder() {
    use std::sync::{
        Arc, Mutex,
        atomic::{AtomicU8, Ordering},
    };
    let tb = Testbed::builder().build();
    let dir: PathBuf = tb.dir().join("smtp");
    std::fs::create_dir_all(&dir).unwrap();
    let (vip, rip1, rip2) = (tb.vip(), tb.rip(1), tb.rip(2));
    let mode1 = Arc::new(AtomicU8::new(SmtpMode::Serves as u8));
    let mode2 = Arc::new(AtomicU8::new(SmtpMode::NoService as u8));
    let helos = Arc::new(Mutex::new(Vec::new()));
    start_smtp(&tb, 1, 25, Arc::clone(&mode1), Arc::clone(&helos));
    start_smtp(
        &tb,
        2,
        25,
        Arc::clone(&mode2),
        Arc::new(Mutex::new(Vec::new())),
    );
    let conf = format!(
        "virtual_server {vip} {SERVICE_PORT} {{
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    alpha
    real_server {rip1} {SERVICE_PORT} {{
        SMTP_CHECK {{
            helo_name checker.lb.test
            connect_port 25
            connect_timeout 2
            retry 0
            warmup 0
        }}
    }}
    real_server {rip2} {SERVICE_PORT} {{
        SMTP_CHECK {{
            connect_port 25
            connect_timeout 2
            retry 0
            warmup 0
        }}
    }}
}}
"
    );
    let lbd = start_lbd_with_conf(&tb, &dir, &conf);
    let l = wait_weights(&tb, "rs1 in, rs2 not (554 greeting)", (Some(1), None));
    println!("{l}");
    assert!(
        helos
            .lock()
            .unwrap()
            .iter()
            .all(|h| h == "HELO checker.lb.test"),
        "{helos:?}"
    );

    mode1.store(SmtpMode::RefusesHelo as u8, Ordering::SeqCst);
    wait_weights(&tb, "rs1 out (550 to HELO)", (None, None));
    mode1.store(SmtpMode::Serves as u8, Ordering::SeqCst);
    wait_weights(&tb, "rs1 back (250 to HELO)", (Some(1), None));
    mode2.store(SmtpMode::Serves as u8, Ordering::SeqCst);
    wait_weights(&tb, "rs2 in once it greets", (Some(1), Some(1)));

    let log = stop_lbd(lbd, &tb);
    for said in [
        format!("SMTP_CHECK {rip1}:25: bad HELO response \"550 5.7.1 not today\\r\""),
        format!("SMTP_CHECK {rip2}:25: bad greeting banner \"554 rs2"),
    ] {
        assert!(log.contains(&said), "lbd's log says {said:?}:\n{log}");
    }
}

/// dnsmasq's port: the real servers' UDP echo has 53.
const DNS_PORT: u16 = 5353;

/// Starts dnsmasq on real server `i` (port [`DNS_PORT`]), answering for `lb.test` (and nothing else) from the
/// hosts files in `dir` (re-read when they change).
fn start_dnsmasq(tb: &Testbed, i: usize, dir: &Path) -> lb_tests::cmd::Daemon {
    let rs = tb.rs(i);
    // Not in `dir`: dnsmasq would read its own log as a hosts file.
    let log = dir.with_extension("log");
    let argv = rs.ns.argv(&[
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--pid-file=",
        "--user=root",
        "--bind-interfaces",
        &format!("--listen-address={}", rs.ip),
        &format!("--port={DNS_PORT}"),
        "--local=/lb.test/",
        &format!("--hostsdir={}", dir.display()),
        "--log-queries",
        "--log-facility=-",
    ]);
    lb_tests::cmd::Daemon::spawn(&format!("dnsmasq in {}", rs.ns.name()), argv, &log, &log)
}

/// DNS_CHECK against dnsmasq on each real server. rs1 asks for `www.lb.test`'s A record,
/// rs2 for its AAAA record, which it has none of: dnsmasq answers that without error and
/// without records, which passes as in keepalived (only the answer's error code counts), so
/// both come in (with `alpha`). rs1 goes out when its dnsmasq no longer knows the name
/// (NXDOMAIN), and back once it does; rs2 goes out when its dnsmasq stops.
#[test]
fn dns_check_against_dnsmasq() {
    let tb = Testbed::builder().build();
    let dir: PathBuf = tb.dir().join("dns");
    let (vip, rip1, rip2) = (tb.vip(), tb.rip(1), tb.rip(2));
    let hosts = |i: usize| dir.join(format!("hosts{i}"));
    for i in [1, 2] {
        std::fs::create_dir_all(hosts(i)).unwrap();
        write(&hosts(i).join("lb"), "192.0.2.80 www.lb.test\n");
    }
    let _dns1 = start_dnsmasq(&tb, 1, &hosts(1));
    let mut dns2 = start_dnsmasq(&tb, 2, &hosts(2));
    let conf = format!(
        "virtual_server {vip} {SERVICE_PORT} {{
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    alpha
    real_server {rip1} {SERVICE_PORT} {{
        DNS_CHECK {{
            type A
            name www.lb.test
            connect_port {DNS_PORT}
            connect_timeout 1
            retry 0
            warmup 0
        }}
    }}
    real_server {rip2} {SERVICE_PORT} {{
        DNS_CHECK {{
            type AAAA
            name www.lb.test
            connect_port {DNS_PORT}
            connect_timeout 1
            retry 0
            warmup 0
        }}
    }}
}}
"
    );
    let lbd = start_lbd_with_conf(&tb, &dir, &conf);
    let l = wait_weights(&tb, "both in once answered", (Some(1), Some(1)));
    println!("{l}");

    write(&hosts(1).join("lb"), "192.0.2.80 other.lb.test\n");
    wait_weights(
        &tb,
        "rs1 out (www.lb.test unknown: NXDOMAIN)",
        (None, Some(1)),
    );
    write(&hosts(1).join("lb"), "192.0.2.80 www.lb.test\n");
    wait_weights(
        &tb,
        "rs1 back (the name is known again)",
        (Some(1), Some(1)),
    );

    dns2.stop(libc::SIGTERM, Duration::from_secs(10));
    wait_weights(&tb, "rs2 out (its dnsmasq stopped)", (Some(1), None));

    let log = stop_lbd(lbd, &tb);
    for said in [
        format!("DNS_CHECK {rip1}:{DNS_PORT} www.lb.test: answered with rcode 3"),
        format!("DNS_CHECK {rip2}:{DNS_PORT} www.lb.test: connection refused"),
    ] {
        assert!(log.contains(&said), "lbd's log says {said:?}:\n{log}");
    }
}

/// keepalived's global `SSL { ca, certificate, key }` block: rs1's nginx wants a client
/// certificate signed by the test's CA (`ssl_verify_client on`), rs2's wants none. Without the
/// block, rs1's SSL_GET gets nginx's 400 and goes out; once the block names
/// the client certificate and its key (lbd reloads on SIGHUP), rs1 comes in. The block's `ca`
/// did not sign the real servers' self-signed certificates: as in keepalived, it verifies
/// nothing, and rs2 stays in throughout.
#[test]
fn ssl_get_presents_the_ssl_block_s_client_certificate() {
    let tb = Testbed::builder().build();
    let dir: PathBuf = tb.dir().join("ssl-client");
    std::fs::create_dir_all(&dir).unwrap();
    let (vip, rip1, rip2) = (tb.vip(), tb.rip(1), tb.rip(2));
    certificate(&dir, "ca", None);
    certificate(&dir, "client", Some("ca"));
    let _tls1 = start_tls_nginx(&tb, 1, Some(&dir.join("ca.pem")));
    let _tls2 = start_tls_nginx(&tb, 2, None);
    page(&tb, 1, "health", "rs1\n");
    page(&tb, 2, "health", "rs2\n");
    let services = format!(
        "virtual_server {vip} {SERVICE_PORT} {{
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
    real_server {rip1} {SERVICE_PORT} {{
        SSL_GET {{
            url {{
                path /files/health
            }}
            connect_port {TLS_PORT}
            connect_timeout 2
            retry 0
            warmup 0
        }}
    }}
    real_server {rip2} {SERVICE_PORT} {{
        SSL_GET {{
            url {{
                path /files/health
            }}
            connect_port {TLS_PORT}
            connect_timeout 2
            retry 0
            warmup 0
        }}
    }}
}}
"
    );
    let lbd = start_lbd_with_conf(&tb, &dir, &services);
    wait_weights(
        &tb,
        "rs1 out (nginx wants a client certificate)",
        (None, Some(1)),
    );
    let log = std::fs::read_to_string(&tb.lbd_files().log).unwrap();
    let refused = format!("SSL_GET https://{rip1}:{TLS_PORT}/files/health returned 400");
    assert!(log.contains(&refused), "lbd's log says {refused:?}:\n{log}");
    let d = dir.display();
    let ssl = format!(
        "SSL {{\n    ca {d}/ca.pem\n    certificate {d}/client.pem\n    key {d}/client.key\n}}\n"
    );
    write(&dir.join("keepalived.conf"), &format!("{ssl}{services}"));
    lbd.daemon.signal(libc::SIGHUP);
    let l = wait_weights(
        &tb,
        "rs1 in once its check presents the client certificate",
        (Some(1), Some(1)),
    );
    println!("{l}");
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();
    let log = stop_lbd(lbd, &tb);
    assert!(
        log.contains("SSL_GET does not verify real servers' certificates"),
        "lbd's log notes what ca does:\n{log}"
    );
}
