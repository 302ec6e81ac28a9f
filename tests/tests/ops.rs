//! Operations end to end (issue #5): lbd's keepalived.conf (`--config`) with health checks,
//! reloads and bad files, hitless restart (`--on-exit keep`), and Prometheus metrics.
//! Each test builds its own DR topology (see `lb_tests::testbed`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lb_tests::cmd::Daemon;
use lb_tests::lbd::Lbd;
use lb_tests::{LoadGen, SERVICE_PORT, Testbed, http, listing, tools, wait};

/// Health-check verdicts (delay_loop 1, retry 1, delay_before_retry 1, connect_timeout 1)
/// plus slack for a loaded machine.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts lbd in the director like `Testbed::start_lbd` does, with `extra` arguments, and
/// waits until `lbadm -Ln` answers.
#[track_caller]
fn start_lbd_with(tb: &Testbed, extra: &[&str]) -> Lbd {
    Lbd::start_with(
        &tb.director.ns,
        tb.director_ifaces(),
        tb.xdp_mode(),
        tb.lbd_files(),
        extra,
    )
}

/// Stops an lbd started by [`start_lbd_with`] with SIGTERM; it must exit cleanly.
fn stop_lbd(mut lbd: Lbd) {
    let status = lbd.daemon.stop(libc::SIGTERM, Duration::from_secs(15));
    assert!(
        status.success(),
        "lbd exited with {status:?}\n{}",
        lbd.daemon.report()
    );
}

/// An `rr` service on the VIP over real servers 1..=`reals` (direct routing); its address.
fn rr_service(tb: &Testbed, reals: usize) -> String {
    let vip = tb.vip_port(SERVICE_PORT);
    tb.lbadm(&["-A", "-t", &vip, "-s", "rr"]);
    for i in 1..=reals {
        tb.lbadm(&["-a", "-t", &vip, "-r", &tb.rip(i), "-g"]);
    }
    vip
}

/// `lbadm -Ln` in the director.
fn list(tb: &Testbed) -> String {
    tb.lbadm(&["-Ln"])
}

/// The `-Ln` line of real server `rip` on the HTTP port, if listed.
fn real_line(listing: &str, rip: &str) -> Option<String> {
    real_line_on(listing, rip, SERVICE_PORT)
}

/// Real server `rip:port`'s line in a `-Ln` listing.
fn real_line_on(listing: &str, rip: &str, port: u16) -> Option<String> {
    let needle = format!("-> {rip}:{port} ");
    listing
        .lines()
        .find(|l| l.contains(&needle))
        .map(str::to_owned)
}

/// Weight column of a real server's `-Ln` line.
fn weight_of(line: &str) -> u32 {
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[track_caller]
fn wait_listing(tb: &Testbed, what: &str, mut ok: impl FnMut(&str) -> bool) -> String {
    wait::wait_ok(what, HEALTH_TIMEOUT, || {
        let l = list(tb);
        if ok(&l) {
            Ok(l)
        } else {
            Err(format!("-Ln:\n{l}"))
        }
    })
}

/// One `real_server` block with a fast HTTP_GET check.
fn real_server_block(rip: &str, opts: &str) -> String {
    format!(
        "    real_server {rip} {SERVICE_PORT} {{
        weight 1
{opts}        HTTP_GET {{
            url {{
                path /health
                status_code 200
            }}
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }}
    }}
"
    )
}

/// A keepalived.conf: one DR rr service on the VIP with health-checked real servers.
fn keepalived_conf(tb: &Testbed, reals: &[usize], rs_opts: &str, sorry: Option<String>) -> String {
    let vip = tb.vip();
    let mut s = format!(
        "! lb ops test
global_defs {{
    router_id LB_TEST
}}
virtual_server {vip} {SERVICE_PORT} {{
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
"
    );
    if let Some(sorry) = sorry {
        s += &format!("    sorry_server {sorry} {SERVICE_PORT}\n");
    }
    for &i in reals {
        s += &real_server_block(&tb.rip(i), rs_opts);
    }
    s += "}\n";
    s
}

fn write_conf(tb: &Testbed, name: &str, text: &str) -> PathBuf {
    let path = tb.dir().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Kills real server `i`'s nginx (master and workers) with SIGKILL.
fn kill_nginx(tb: &Testbed, i: usize) {
    let pidfile = tb.dir().join(format!("rs{i}")).join("nginx.pid");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap_or_else(|e| panic!("{}: {e}", pidfile.display()))
        .trim()
        .parse()
        .unwrap();
    // The master first: killed after its workers, it could fork a new worker in between (it
    // replaces workers that die), and that orphan would keep serving. Then every nginx left
    // in the namespace, until none is alive.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // The master is the testbed's child: until the testbed reaps it, it stays a zombie that
    // still reads as nginx, so zombies count as gone.
    let zombie = |p: &i32| {
        std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
    };
    wait::wait_until(
        format!("rs{i}'s nginx gone"),
        Duration::from_secs(10),
        || {
            let alive: Vec<i32> = tb
                .rs(i)
                .ns
                .pids()
                .into_iter()
                .filter(|p| {
                    !zombie(p)
                        && std::fs::read_to_string(format!("/proc/{p}/comm"))
                            .is_ok_and(|c| c.trim() == "nginx")
                })
                .collect();
            for p in &alive {
                unsafe { libc::kill(*p, libc::SIGKILL) };
            }
            alive.is_empty()
        },
    );
    let _ = std::fs::remove_file(&pidfile);
}

/// A second address of the client, host 200 of its /24, from which nothing has connected
/// yet.
fn fresh_client_address(tb: &Testbed) -> std::net::Ipv4Addr {
    let [a, b, c, _] = tb.client.ip.octets();
    let ip = std::net::Ipv4Addr::new(a, b, c, 200);
    tb.client.ns.run(&[
        "ip",
        "addr",
        "add",
        &format!("{ip}/24"),
        "dev",
        tb.client.iface(),
    ]);
    ip
}

/// Starts a fresh nginx for real server `i` with the testbed's configuration.
fn restart_nginx(tb: &Testbed, i: usize) -> Daemon {
    let dir = tb.dir().join(format!("rs{i}"));
    let daemon = http::start_nginx(&tb.rs(i).ns, &dir, &dir.join("nginx.conf"));
    wait::wait_until(format!("rs{i}'s nginx answers"), HEALTH_TIMEOUT, || {
        tb.rs(i)
            .ns
            .try_run(
                &[
                    "curl",
                    "-sf",
                    "--max-time",
                    "1",
                    &format!("http://{}/", tb.rip(i)),
                ],
                None,
            )
            .success()
    });
    daemon
}

/// 1. HTTP_GET health checks: a killed real server leaves the service within
///    delay_loop × retry + slack while wrk runs, and comes back when it answers again.
#[test]
fn health_check_removes_and_restores_real_server() {
    let mut tb = Testbed::builder().build();
    let conf = write_conf(&tb, "lb.conf", &keepalived_conf(&tb, &[1, 2], "", None));
    let lbd = start_lbd_with(&tb, &["--config", conf.to_str().unwrap()]);
    let mut extra: Vec<Daemon> = Vec::new();
    wait_listing(&tb, "both real servers listed", |l| {
        real_line(l, &tb.rip(1)).is_some() && real_line(l, &tb.rip(2)).is_some()
    });
    tb.curl_vip(SERVICE_PORT, 10).assert_all_ok();

    let url = format!("http://{}/", tb.vip_port(SERVICE_PORT));
    let load = tb.start_load(LoadGen::Wrk { connections: 4 }, &url);
    std::thread::sleep(Duration::from_secs(2));
    kill_nginx(&tb, 1);
    let killed = Instant::now();
    let l = wait_listing(&tb, "rs1 removed after its nginx died", |l| {
        real_line(l, &tb.rip(1)).is_none() && real_line(l, &tb.rip(2)).is_some()
    });
    println!("rs1 removed after {:?}:\n{l}", killed.elapsed());
    std::thread::sleep(Duration::from_secs(2));
    let report_down = load.stop();
    println!("wrk across the kill: {report_down:?}");
    assert!(report_down.requests > 0, "{}", report_down.output);
    assert_eq!(report_down.non_2xx, 0, "{}", report_down.output);
    // How many requests fail across the kill depends on how many were in flight to rs1 and
    // how soon the check noticed; once rs1 is out of the service, none may fail: a SYN that
    // reuses the ports of a connection to the removed rs1 opens a new connection too.
    let load = tb.start_load(LoadGen::Wrk { connections: 4 }, &url);
    std::thread::sleep(Duration::from_secs(2));
    let report_out = load.stop();
    println!("wrk with rs1 out: {report_out:?}");
    assert!(report_out.requests > 0, "{}", report_out.output);
    assert_eq!(
        (report_out.failed, report_out.non_2xx),
        (0, 0),
        "{}",
        report_out.output
    );

    // With rs1 out of the service, every request goes to rs2.
    let tally = tb.curl_vip(SERVICE_PORT, 6);
    tally.assert_all_ok();
    assert_eq!(tally.count("rs2"), 6, "{tally}");

    // rs1 comes back while the load runs: no request may fail.
    let load = tb.start_load(LoadGen::Wrk { connections: 4 }, &url);
    std::thread::sleep(Duration::from_secs(1));
    extra.push(restart_nginx(&tb, 1));
    wait_listing(&tb, "rs1 back after its nginx restarted", |l| {
        real_line(l, &tb.rip(1)).is_some()
    });
    std::thread::sleep(Duration::from_secs(2));
    let report_up = load.stop();
    println!("wrk across the restore: {report_up:?}");
    assert_eq!(report_up.failed, 0, "{}", report_up.output);
    assert_eq!(report_up.non_2xx, 0, "{}", report_up.output);
    assert!(report_up.requests > 0, "{}", report_up.output);
    // wrk's tens of thousands of connections from the client leave entries (FIN_WAIT, the
    // last state a DR director sees, and SYN_RECV for the SYNs rs1 refused) over most of its
    // ports; as in IPVS (conn_reuse_mode 1), a SYN reusing such a port continues the old
    // entry's real server. A second address of the client has no entry at all: its requests
    // are all scheduled, and rr alternates exactly.
    let fresh = fresh_client_address(&tb);
    let argv = http::curl_argv(&url, 10);
    let mut argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let fresh_text = fresh.to_string();
    argv.splice(1..1, ["--interface", fresh_text.as_str()]);
    let tally = http::parse_curl(10, tb.client.ns.try_run(&argv, None));
    tally.assert_all_ok();
    // Back in the rr rotation.
    assert_eq!(tally.count("rs1"), 5, "{tally}");
    for pair in tally.replies.windows(2) {
        assert_ne!(pair[0].body, pair[1].body, "rr alternates: {tally}");
    }

    stop_lbd(lbd);
    drop(extra);
}

/// 2. inhibit_on_failure keeps a failed real server at weight 0; with every real server down
///    the sorry_server (rs3) answers.
#[test]
fn inhibit_on_failure_and_sorry_server() {
    let tb = Testbed::builder().real_servers(3).build();
    let text = keepalived_conf(
        &tb,
        &[1, 2],
        "        inhibit_on_failure\n",
        Some(tb.rip(3)),
    );
    let conf = write_conf(&tb, "lb.conf", &text);
    let lbd = start_lbd_with(&tb, &["--config", conf.to_str().unwrap()]);
    let mut extra: Vec<Daemon> = Vec::new();
    wait_listing(&tb, "rs1 and rs2 at weight 1", |l| {
        [1, 2]
            .iter()
            .all(|&i| real_line(l, &tb.rip(i)).is_some_and(|r| weight_of(&r) == 1))
    });
    let tally = tb.curl_vip(SERVICE_PORT, 10);
    tally.assert_all_ok();
    assert_eq!(tally.count("rs3"), 0, "{tally}");

    kill_nginx(&tb, 1);
    let l = wait_listing(&tb, "rs1 at weight 0 (inhibited)", |l| {
        real_line(l, &tb.rip(1)).is_some_and(|r| weight_of(&r) == 0)
    });
    assert_eq!(weight_of(&real_line(&l, &tb.rip(2)).unwrap()), 1, "{l}");
    assert!(
        real_line(&l, &tb.rip(3)).is_none(),
        "sorry server in while rs2 is up:\n{l}"
    );
    let tally = tb.curl_vip(SERVICE_PORT, 6);
    tally.assert_all_ok();
    assert_eq!(tally.count("rs2"), 6, "{tally}");

    kill_nginx(&tb, 2);
    let l = wait_listing(&tb, "sorry server in with both real servers down", |l| {
        real_line(l, &tb.rip(3)).is_some()
    });
    println!("{l}");
    let tally = tb.curl_vip(SERVICE_PORT, 6);
    tally.assert_all_ok();
    assert_eq!(tally.count("rs3"), 6, "{tally}");

    extra.push(restart_nginx(&tb, 1));
    extra.push(restart_nginx(&tb, 2));
    wait_listing(
        &tb,
        "rs1, rs2 back at weight 1 and the sorry server out",
        |l| {
            real_line(l, &tb.rip(3)).is_none()
                && [1, 2]
                    .iter()
                    .all(|&i| real_line(l, &tb.rip(i)).is_some_and(|r| weight_of(&r) == 1))
        },
    );
    let tally = tb.curl_vip(SERVICE_PORT, 10);
    tally.assert_all_ok();
    assert_eq!(tally.count("rs3"), 0, "{tally}");
    stop_lbd(lbd);
    drop(extra);
}

/// Runs `lbd reload` in the director.
fn reload(tb: &Testbed) -> lb_tests::cmd::Ran {
    let lbd = tools::binary("lbd").display().to_string();
    let socket = tb.lbd_files().socket.display().to_string();
    tb.director
        .ns
        .try_run(&[&lbd, "reload", "--socket", &socket], None)
}

/// The supported keywords (example.conf adapted to the topology).
fn full_conf(tb: &Testbed) -> String {
    let vip = tb.vip();
    let (r1, r2, r3) = (tb.rip(1), tb.rip(2), tb.rip(3));
    format!(
        "! adapted from lb-user/src/keepalived/example.conf
global_defs {{
    router_id LVS_DIRECTOR1
    notification_email {{
        ops@example.com
    }}
    notification_email_from keepalived@director1.example.com
    smtp_server 127.0.0.1
    smtp_connect_timeout 30
    lvs_timeouts tcp 900 tcpfin 120 udp 300
}}
vrrp_instance VI_1 {{
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    authentication {{
        auth_type PASS
        auth_pass s3cret
    }}
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
}}
virtual_server {vip} {SERVICE_PORT} {{
    delay_loop 1
    lb_algo wlc
    lb_kind DR
    persistence_timeout 600
    persistence_granularity 255.255.255.0
    protocol TCP
    sorry_server {r3} {SERVICE_PORT}
    real_server {r1} {SERVICE_PORT} {{
        weight 2
        inhibit_on_failure
        HTTP_GET {{
            url {{
                path /health
                status_code 200
            }}
            connect_timeout 1
            retry 1
            delay_before_retry 1
        }}
    }}
    real_server {r2} {SERVICE_PORT} {{
        weight 1
        uthreshold 5000
        TCP_CHECK {{
            connect_port {SERVICE_PORT}
            connect_timeout 1
        }}
    }}
}}
virtual_server {vip} 53 {{
    delay_loop 10
    lb_algo rr
    lb_kind DR
    protocol UDP
    real_server {r1} 53 {{
        TCP_CHECK {{
            connect_port {SERVICE_PORT}
            connect_timeout 2
        }}
    }}
}}
"
    )
}

#[track_caller]
fn assert_file_line(text: &str, file: &Path, line: usize) {
    let want = format!("{}:{line}", file.display());
    assert!(text.contains(&want), "expected `{want}` in:\n{text}");
}

/// 3. A keepalived.conf with the supported keywords loads; bad files are rejected with
///    FILE:LINE at startup (lbd exits non-zero) and at reload (nothing changes).
#[test]
fn config_loads_and_bad_files_are_rejected() {
    let tb = Testbed::builder().real_servers(3).build();
    let good = full_conf(&tb);
    let conf = write_conf(&tb, "lb.conf", &good);
    let unknown_line = good
        .lines()
        .position(|l| l.contains("lb_algo wlc"))
        .unwrap()
        + 1;
    let bad_unknown = write_conf(
        &tb,
        "bad-unknown.conf",
        &good.replacen(
            "    lb_algo wlc\n",
            "    lb_algo wlc\n    frobnicate yes\n",
            1,
        ),
    );
    let bad_ip_line = good
        .lines()
        .position(|l| l.contains("real_server"))
        .unwrap()
        + 1;
    let bad_ip = write_conf(
        &tb,
        "bad-ip.conf",
        &good.replacen(
            &format!("real_server {} ", tb.rip(1)),
            "real_server 10.0.0.300 ",
            1,
        ),
    );

    // Startup with a bad file: non-zero exit, FILE:LINE on stderr.
    let lbd_bin = tools::binary("lbd").display().to_string();
    for (file, line) in [(&bad_unknown, unknown_line + 1), (&bad_ip, bad_ip_line)] {
        let socket = tb.dir().join("bad.sock").display().to_string();
        let state = tb.dir().join("bad-state.json").display().to_string();
        let ran = tb.director.ns.try_run(
            &[
                &lbd_bin,
                "--iface",
                tb.director_ifaces()[0],
                "--xdp-mode",
                tb.xdp_mode().as_arg(),
                "--socket",
                &socket,
                "--state",
                &state,
                "--bpffs",
                "/sys/fs/bpf/lb-opsc-bad",
                "--config",
                file.to_str().unwrap(),
            ],
            None,
        );
        println!("startup with {}: {ran}", file.display());
        assert!(
            !ran.success(),
            "lbd started with {}:\n{ran}",
            file.display()
        );
        assert_file_line(&format!("{}{}", ran.stdout, ran.stderr), file, line);
    }

    // The good file loads.
    let lbd = start_lbd_with(&tb, &["--config", conf.to_str().unwrap()]);
    let loaded = wait_listing(&tb, "both services with health verdicts", |l| {
        l.contains(&format!(
            "TCP  {}:{SERVICE_PORT} wlc persistent 600",
            tb.vip()
        )) && l.contains(&format!("UDP  {}:53 rr", tb.vip()))
            && real_line(l, &tb.rip(1)).is_some_and(|r| weight_of(&r) == 2)
            && real_line(l, &tb.rip(2)).is_some()
    });
    println!("loaded:\n{loaded}");
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();
    let log = tb.lbd_log();
    assert!(
        log.contains("vrrp_instance") || log.contains("keepalived"),
        "no note about the VRRP part:\n{log}"
    );

    // Reload with bad files: fails with FILE:LINE, nothing changes, lbd keeps running.
    let before = list(&tb);
    for (file, line) in [(&bad_unknown, unknown_line + 1), (&bad_ip, bad_ip_line)] {
        std::fs::copy(file, &conf).unwrap();
        let ran = reload(&tb);
        println!("reload with {}: {ran}", file.display());
        assert!(!ran.success(), "reload accepted {}:\n{ran}", file.display());
        assert_file_line(&format!("{}{}", ran.stdout, ran.stderr), &conf, line);
        assert_eq!(list(&tb), before);
    }
    // A good change applies.
    std::fs::write(&conf, good.replace("lb_algo wlc", "lb_algo rr")).unwrap();
    let ran = reload(&tb);
    assert!(ran.success(), "{ran}");
    wait_listing(&tb, "the scheduler changed by reload", |l| {
        l.contains(&format!(
            "TCP  {}:{SERVICE_PORT} rr persistent 600",
            tb.vip()
        ))
    });
    stop_lbd(lbd);
}

/// A bpffs mounted in the host namespace (pins survive `ip netns exec`'s /sys remount);
/// cleans up lbd's leftovers and unmounts on drop.
struct HostBpffs {
    mount: PathBuf,
    director_ns: String,
}

impl HostBpffs {
    fn new(tb: &Testbed) -> Self {
        let mount = tb.dir().join("bpffs");
        std::fs::create_dir_all(&mount).unwrap();
        lb_tests::cmd::run(&["mount", "-t", "bpf", "bpf", mount.to_str().unwrap()]);
        HostBpffs {
            mount,
            director_ns: tb.director.ns.name().to_owned(),
        }
    }
    fn dir(&self) -> String {
        self.mount.join("lb").display().to_string()
    }
}

impl Drop for HostBpffs {
    fn drop(&mut self) {
        let lbd = tools::binary("lbd").display().to_string();
        let _ = lb_tests::cmd::try_run(
            &[
                "ip",
                "netns",
                "exec",
                &self.director_ns,
                &lbd,
                "--cleanup",
                "--bpffs",
                &self.dir(),
            ],
            None,
        );
        let _ = lb_tests::cmd::try_run(&["umount", "-l", self.mount.to_str().unwrap()], None);
    }
}

/// The client port of the hitless restart's slow download.
const DOWNLOAD_PORT: &str = "1000";

/// 4. Hitless restart: SIGTERM an lbd started with `--on-exit keep`, start it again; wrk sees
///    no failure and a slow download opened before completes intact.
#[test]
fn hitless_restart() {
    let mut tb = Testbed::builder().build();
    let bpffs = HostBpffs::new(&tb);
    let bpf_dir = bpffs.dir();
    let keep = ["--on-exit", "keep", "--bpffs", bpf_dir.as_str()];
    let lbd = start_lbd_with(&tb, &keep);
    let vip = tb.vip_port(SERVICE_PORT);
    tb.lbadm(&["-A", "-t", &vip, "-s", "rr"]);
    tb.lbadm(&["-a", "-t", &vip, "-r", &tb.rip(1), "-g"]);
    tb.lbadm(&["-a", "-t", &vip, "-r", &tb.rip(2), "-g"]);
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();

    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    tb.publish_file("big.bin", &big);
    let out = tb.dir().join("big.out");
    let dl_log = tb.dir().join("curl.log");
    let mut download = Daemon::spawn(
        "slow download",
        tb.client.ns.argv(&[
            "curl",
            "-sS",
            "--fail",
            "--limit-rate",
            "200k",
            "--max-time",
            "120",
            // Below the client's ephemeral ports (1024-65535), which wrk's connections use: a
            // port the connection table shows for the download only.
            "--local-port",
            DOWNLOAD_PORT,
            "-o",
            out.to_str().unwrap(),
            &format!("http://{vip}/files/big.bin"),
        ]),
        &dl_log,
        &dl_log,
    );
    let url = format!("http://{vip}/");
    let load = tb.start_load(LoadGen::Wrk { connections: 4 }, &url);
    std::thread::sleep(Duration::from_secs(2));

    let before = connections(&tb);
    let taken = Instant::now();
    stop_lbd(lbd);
    assert!(
        tb.director_xdp_attached(),
        "XDP detached despite --on-exit keep"
    );
    std::thread::sleep(Duration::from_secs(1));
    let lbd = start_lbd_with(&tb, &keep);
    let l = list(&tb);
    assert!(
        real_line(&l, &tb.rip(1)).is_some() && real_line(&l, &tb.rip(2)).is_some(),
        "{l}"
    );
    // The new lbd took over the old one's connection table: every entry that cannot have
    // expired since is still there with the same real server, among them the download's
    // (open across the restart; its state may move on: nginx may have written the whole file
    // into the client's buffers and closed, and curl read on).
    let after = connections(&tb);
    let elapsed = taken.elapsed().as_secs() + 2;
    let download_from = format!("{}:{DOWNLOAD_PORT}", tb.client.ip);
    let download_entry = |rows: &[listing::ConnRow]| {
        rows.iter()
            .find(|r| r.source == download_from)
            .map(|r| r.destination.clone())
    };
    assert!(
        download_entry(&before).is_some(),
        "the download from {download_from} is not in the table before the restart:\n{before:#?}"
    );
    assert_eq!(
        download_entry(&after),
        download_entry(&before),
        "the download's real server after the restart:\n{after:#?}"
    );
    for row in &before {
        if row.expire_secs().is_some_and(|left| left > elapsed) {
            assert!(
                after
                    .iter()
                    .any(|r| r.source == row.source && r.destination == row.destination),
                "{row:?} is not in the new lbd's connection table:\n{after:#?}"
            );
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    println!("wrk across the restart: {report:?}");
    assert!(report.requests > 0, "{}", report.output);
    assert_eq!(report.failed, 0, "{}", report.output);
    assert_eq!(report.non_2xx, 0, "{}", report.output);
    println!(
        "download still running after the restart: {}",
        download.is_running()
    );
    wait::wait_until(
        "the slow download finished",
        Duration::from_secs(90),
        || !download.is_running(),
    );
    let status = download.exit_status().expect("exited");
    assert!(status.success(), "download failed:\n{}", download.report());
    let got = std::fs::read(&out).unwrap();
    assert!(
        got == big,
        "download corrupted: {} bytes of {}",
        got.len(),
        big.len()
    );
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();
    stop_lbd(lbd);
    drop(bpffs);
}

/// The director's connection table as `lbadm -L -n -c` lists it.
#[track_caller]
fn connections(tb: &Testbed) -> Vec<listing::ConnRow> {
    listing::parse_connections(&tb.lbadm(&["-L", "-n", "-c"])).unwrap_or_else(|e| panic!("{e}"))
}

/// Scrapes lbd's metrics from inside the director.
fn scrape(tb: &Testbed, addr: &str) -> String {
    tb.director.ns.run(&[
        "curl",
        "-sf",
        "--max-time",
        "5",
        &format!("http://{addr}/metrics"),
    ])
}

/// The value of `name{labels}` where every `k="v"` in `want` is among the labels.
fn metric(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, labels) = series.split_once('{').unwrap_or((series, ""));
        (n == name
            && want
                .iter()
                .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\""))))
        .then(|| value.parse().ok())
        .flatten()
    })
}

/// 5. Metrics: connections counted per service, health verdicts per real server.
#[test]
fn metrics_report_connections_and_health() {
    let tb = Testbed::builder().build();
    let conf = write_conf(&tb, "lb.conf", &keepalived_conf(&tb, &[1, 2], "", None));
    let addr = "127.0.0.1:9317";
    let lbd = start_lbd_with(
        &tb,
        &["--config", conf.to_str().unwrap(), "--metrics", addr],
    );
    let vip = tb.vip().to_string();
    let port = SERVICE_PORT.to_string();
    let svc = [
        ("protocol", "tcp"),
        ("vip", vip.as_str()),
        ("port", port.as_str()),
    ];
    wait::wait_ok(
        "both real servers up in the metrics",
        HEALTH_TIMEOUT,
        || {
            let m = scrape(&tb, addr);
            let up: Vec<_> = [1, 2]
                .iter()
                .map(|&i| {
                    let rip = tb.rip(i);
                    metric(
                        &m,
                        "lb_real_up",
                        &[svc[0], svc[1], svc[2], ("real", rip.as_str())],
                    )
                })
                .collect();
            if up == [Some(1.0), Some(1.0)] {
                Ok(())
            } else {
                Err(format!("{up:?}\n{m}"))
            }
        },
    );
    let before = metric(&scrape(&tb, addr), "lb_service_connections_total", &svc).unwrap_or(0.0);
    assert_eq!(before, 0.0);
    tb.curl_vip(SERVICE_PORT, 12).assert_all_ok();
    let m = wait::wait_ok("12 connections counted", Duration::from_secs(10), || {
        let m = scrape(&tb, addr);
        match metric(&m, "lb_service_connections_total", &svc) {
            Some(12.0) => Ok(m),
            v => Err(format!("{v:?}\n{m}")),
        }
    });
    println!("{m}");
    node_ipvs_matches_lbadm(&tb, addr);

    let mut extra = Vec::new();
    kill_nginx(&tb, 1);
    let rip1 = tb.rip(1);
    let rs1 = [svc[0], svc[1], svc[2], ("real", rip1.as_str())];
    wait::wait_ok("rs1 down in the metrics", HEALTH_TIMEOUT, || {
        let m = scrape(&tb, addr);
        match metric(&m, "lb_real_up", &rs1) {
            Some(0.0) => Ok(()),
            v => Err(format!("{v:?}\n{m}")),
        }
    });
    extra.push(restart_nginx(&tb, 1));
    wait::wait_ok("rs1 up again in the metrics", HEALTH_TIMEOUT, || {
        let m = scrape(&tb, addr);
        match metric(&m, "lb_real_up", &rs1) {
            Some(1.0) => Ok(()),
            v => Err(format!("{v:?}\n{m}")),
        }
    });
    stop_lbd(lbd);
    drop(extra);
}

/// node_exporter's IPVS series (`node_ipvs_*`) carry the figures lbadm prints: the totals are
/// the sums of `-Ln --stats --exact`'s service lines, each real server's active and inactive
/// connections and weight its `-Ln` line's. Connections age between two listings, so it takes
/// a scrape between two identical listings.
fn node_ipvs_matches_lbadm(tb: &Testbed, addr: &str) {
    let numbers = |fields: &[&str]| -> Vec<f64> {
        fields.iter().map(|f| f.parse::<f64>().unwrap()).collect()
    };
    wait::wait_ok(
        "node_ipvs_* series equal lbadm's figures",
        Duration::from_secs(20),
        || {
            let before = (tb.lbadm(&["-Ln", "--stats", "--exact"]), tb.lbadm(&["-Ln"]));
            let m = scrape(tb, addr);
            let after = (tb.lbadm(&["-Ln", "--stats", "--exact"]), tb.lbadm(&["-Ln"]));
            if before != after {
                return Err("the listing changed during the scrape".to_owned());
            }
            let (stats, listing) = before;
            let mut totals = vec![0.0; 5];
            let mut services = 0;
            for line in stats
                .lines()
                .filter(|l| l.starts_with("TCP ") || l.starts_with("UDP "))
            {
                let fields: Vec<&str> = line.split_whitespace().collect();
                for (t, v) in totals.iter_mut().zip(numbers(&fields[2..7])) {
                    *t += v;
                }
                services += 1;
            }
            if services == 0 {
                return Err(format!("no service listed:\n{stats}"));
            }
            let names = [
                "node_ipvs_connections_total",
                "node_ipvs_incoming_packets_total",
                "node_ipvs_outgoing_packets_total",
                "node_ipvs_incoming_bytes_total",
                "node_ipvs_outgoing_bytes_total",
            ];
            for (name, want) in names.iter().zip(&totals) {
                let got = metric(&m, name, &[]);
                if got != Some(*want) {
                    return Err(format!("{name}: {got:?}, lbadm {want}\n{stats}\n{m}"));
                }
            }
            let mut service: Option<(String, String, String)> = None;
            let mut reals = 0;
            for line in listing.lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                match fields.as_slice() {
                    [proto @ ("TCP" | "UDP"), vip_port, ..] => {
                        let (vip, port) = vip_port.rsplit_once(':').unwrap();
                        service = Some((proto.to_string(), vip.to_owned(), port.to_owned()));
                    }
                    ["->", rip_port, _forward, weight, active, inactive] => {
                        let Some((proto, vip, port)) = &service else {
                            continue;
                        };
                        let (rip, rport) = rip_port.rsplit_once(':').unwrap();
                        let labels = [
                            ("local_address", vip.as_str()),
                            ("local_port", port.as_str()),
                            ("remote_address", rip),
                            ("remote_port", rport),
                            ("proto", proto.as_str()),
                            ("local_mark", ""),
                        ];
                        for (name, want) in [
                            ("node_ipvs_backend_weight", weight),
                            ("node_ipvs_backend_connections_active", active),
                            ("node_ipvs_backend_connections_inactive", inactive),
                        ] {
                            let want: f64 = want.parse().unwrap();
                            let got = metric(&m, name, &labels);
                            if got != Some(want) {
                                return Err(format!(
                                    "{name}{labels:?}: {got:?}, lbadm {want}\n{listing}\n{m}"
                                ));
                            }
                        }
                        reals += 1;
                    }
                    _ => {}
                }
            }
            if reals == 0 {
                return Err(format!("no real server listed:\n{listing}"));
            }
            println!(
                "node_ipvs_* agree with lbadm on {services} service(s), {reals} real server(s)"
            );
            Ok(())
        },
    );
}

/// A bare TCP header with `flags`, no payload, from `sport` to `dport`, sequence `seq`.
fn tcp_header(sport: u16, dport: u16, seq: u32, flags: u8) -> [u8; 20] {
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    tcp[14..16].copy_from_slice(&1024u16.to_be_bytes());
    tcp
}

/// Sends each of `packets` from the client to `vip` through a raw socket of `protocol`:
/// `IPPROTO_TCP` for TCP segments the kernel puts an IP header on, `IPPROTO_RAW` for whole IP
/// packets (a spoofed source address).
fn send_raw(tb: &Testbed, vip: std::net::Ipv4Addr, protocol: i32, packets: &[Vec<u8>]) {
    tb.client.ns.enter(|| {
        // SAFETY: plain socket calls on a descriptor we own and close.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, protocol);
            assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
            let dst = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(vip.octets()),
                },
                sin_zero: [0; 8],
            };
            for packet in packets {
                let sent = libc::sendto(
                    fd,
                    packet.as_ptr().cast(),
                    packet.len(),
                    0,
                    (&raw const dst).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                );
                assert_eq!(
                    sent,
                    packet.len() as isize,
                    "sendto: {}",
                    std::io::Error::last_os_error()
                );
            }
            libc::close(fd);
        }
    });
}

/// Sends `count` TCP segments with `flags` and no payload from the client to `vip:port`
/// through a raw socket, from source ports `first_port..`: what a spoofed ACK flood, or a
/// connection the director has never seen, looks like to it.
fn send_raw_segments(
    tb: &Testbed,
    vip: std::net::Ipv4Addr,
    port: u16,
    flags: u8,
    first_port: u16,
    count: u16,
) {
    let segments: Vec<Vec<u8>> = (0..count)
        .map(|i| tcp_header(first_port + i, port, 0x1000_0000, flags).to_vec())
        .collect();
    send_raw(tb, vip, libc::IPPROTO_TCP, &segments);
}

/// Connection entries `lbadm -Lnc` lists.
fn listed_connections(tb: &Testbed) -> usize {
    tb.lbadm(&["-Lnc"])
        .lines()
        .filter(|l| l.starts_with("TCP") || l.starts_with("UDP"))
        .count()
}

#[test]
fn only_a_syn_opens_a_connection_unless_sloppy_tcp() {
    const ACK: u8 = 0x10;
    let tb = Testbed::builder().build();
    let lbd = start_lbd_with(&tb, &[]);
    let vip = tb.vip_port(SERVICE_PORT);
    tb.lbadm(&["-A", "-t", &vip, "-s", "rr"]);
    tb.lbadm(&["-a", "-t", &vip, "-r", &tb.rip(1), "-g"]);
    tb.lbadm(&["-a", "-t", &vip, "-r", &tb.rip(2), "-g"]);
    assert_eq!(
        tb.lbadm(&["--sysctl"]),
        "net.ipv4.vs.conn_reuse_mode = 1\n\
         net.ipv4.vs.expire_nodest_conn = 0\n\
         net.ipv4.vs.expire_quiescent_template = 0\n\
         net.ipv4.vs.sloppy_tcp = 0\n",
        "IPVS's defaults"
    );

    // As IPVS by default: ACKs of connections the director never saw open none (the
    // director's kernel, which has no VIP here, forwards or drops them).
    send_raw_segments(&tb, tb.vip(), SERVICE_PORT, ACK, 20000, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(listed_connections(&tb), 0, "{}", tb.lbadm(&["-Lnc"]));

    // A value out of range changes nothing.
    let refused = tb.try_lbadm(&["--sysctl", "net.ipv4.vs.sloppy_tcp=2"], None);
    assert!(!refused.success(), "{refused}");
    assert!(refused.stderr.contains("sloppy_tcp"), "{refused}");
    let unknown = tb.try_lbadm(&["--sysctl", "net.ipv4.vs.no_such_thing=1"], None);
    assert!(!unknown.success(), "{unknown}");

    // sloppy_tcp: a mid-flow segment opens a connection (a director taking over).
    assert_eq!(
        tb.lbadm(&["--sysctl", "net.ipv4.vs.sloppy_tcp=1"]),
        "net.ipv4.vs.sloppy_tcp = 1\n"
    );
    assert_eq!(
        tb.lbadm(&["--sysctl", "sloppy_tcp"]),
        "net.ipv4.vs.sloppy_tcp = 1\n"
    );
    send_raw_segments(&tb, tb.vip(), SERVICE_PORT, ACK, 21000, 5);
    wait::wait_ok(
        "5 connections listed",
        Duration::from_secs(5),
        || match listed_connections(&tb) {
            5 => Ok(()),
            n => Err(format!("{n} listed:\n{}", tb.lbadm(&["-Lnc"]))),
        },
    );
    // A RST never opens one, sloppy or not.
    send_raw_segments(&tb, tb.vip(), SERVICE_PORT, 0x04, 22000, 5);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(listed_connections(&tb), 5, "{}", tb.lbadm(&["-Lnc"]));
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();

    // The setting is kept with the configuration across a restart.
    stop_lbd(lbd);
    let lbd = start_lbd_with(&tb, &[]);
    assert_eq!(
        tb.lbadm(&["--sysctl", "sloppy_tcp"]),
        "net.ipv4.vs.sloppy_tcp = 1\n"
    );
    stop_lbd(lbd);
    // And `lbd --sysctl` sets it at start.
    let lbd = start_lbd_with(&tb, &["--sysctl", "sloppy_tcp=0"]);
    assert_eq!(
        tb.lbadm(&["--sysctl", "sloppy_tcp"]),
        "net.ipv4.vs.sloppy_tcp = 0\n"
    );
    stop_lbd(lbd);
}

/// Sends `count` TCP SYNs to `vip:port` from spoofed sources (10.200.0.0 up, one address
/// each), as a SYN flood does.
fn send_spoofed_syns(tb: &Testbed, vip: std::net::Ipv4Addr, port: u16, count: u32) {
    let packets: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let src = std::net::Ipv4Addr::from(0x0ac8_0000 + i);
            // IPv4 (the kernel fills in the checksum and total length).
            let mut packet = vec![0u8; 20];
            packet[0] = 0x45;
            packet[6] = 0x40;
            packet[8] = 64;
            packet[9] = libc::IPPROTO_TCP as u8;
            packet[12..16].copy_from_slice(&src.octets());
            packet[16..20].copy_from_slice(&vip.octets());
            // A SYN (its checksum left wrong: the real servers drop it unanswered).
            packet.extend_from_slice(&tcp_header(1024 + (i % 60_000) as u16, port, i, 0x02));
            packet
        })
        .collect();
    send_raw(tb, vip, libc::IPPROTO_RAW, &packets);
}

/// Per real server (`addr:port` as `-Lnc` prints it): active and inactive connections as
/// `-Lnc` lists them.
fn listed_counts(listing: &str) -> std::collections::BTreeMap<String, (u32, u32)> {
    let mut counts = std::collections::BTreeMap::new();
    for line in listing.lines().filter(|l| l.starts_with("TCP")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (state, real) = (fields[2], fields[5]);
        let entry: &mut (u32, u32) = counts.entry(real.to_owned()).or_default();
        match state {
            "NONE" => {}
            "ESTABLISHED" | "SYN_SENT" | "SYN_RECV" | "SYNACK" => entry.0 += 1,
            _ => entry.1 += 1,
        }
    }
    counts
}

/// Per real server: ActiveConn and InActConn as `-Ln` shows them.
fn shown_counts(listing: &str) -> std::collections::BTreeMap<String, (u32, u32)> {
    listing
        .lines()
        .filter(|l| l.trim_start().starts_with("-> ") && !l.contains("RemoteAddress"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[1].to_owned(),
                (f[4].parse().unwrap(), f[5].parse().unwrap()),
            )
        })
        .collect()
}

/// A flood of spoofed SYNs of 5x the half-open table neither moves nor loses an established
/// connection, and ActiveConn/InActConn equal what `-Lnc` lists (the half-open table's share
/// recounted by the sweep, LRU evictions and all).
#[test]
fn a_syn_flood_loses_no_established_connection_and_counts_stay_exact() {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::{SocketAddr, SocketAddrV4, TcpStream};

    let tb = Testbed::builder().build();
    // A connection table of 4,096: its half-open table holds 1,024.
    let lbd = start_lbd_with(&tb, &["--conn-table-size", "4096"]);
    let vip = format!("{}:{}", tb.vip(), lb_tests::echo::ECHO_PORT);
    tb.lbadm(&["-A", "-t", &vip, "-s", "rr"]);
    tb.lbadm(&["-a", "-t", &vip, "-r", &tb.rip(1), "-g"]);
    tb.lbadm(&["-a", "-t", &vip, "-r", &tb.rip(2), "-g"]);

    // 40 connections, kept open: each remembers which real server greeted it.
    let to = SocketAddr::V4(SocketAddrV4::new(tb.vip(), lb_tests::echo::ECHO_PORT));
    let mut open: Vec<(BufReader<TcpStream>, String)> = (0..40)
        .map(|i| {
            let stream = tb
                .client
                .ns
                .enter(|| TcpStream::connect_timeout(&to, Duration::from_secs(3)))
                .unwrap_or_else(|e| panic!("connection {i}: {e}"));
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream);
            let mut greeting = String::new();
            reader.read_line(&mut greeting).unwrap();
            (reader, greeting.trim().to_owned())
        })
        .collect();
    assert_eq!(
        open.iter().filter(|(_, name)| name == "rs1").count(),
        20,
        "rr"
    );
    let exchange = |open: &mut Vec<(BufReader<TcpStream>, String)>, what: &str| {
        for (i, (reader, name)) in open.iter_mut().enumerate() {
            let line = format!("{what} {i} to {name}\n");
            reader.get_mut().write_all(line.as_bytes()).unwrap();
            let mut echo = String::new();
            reader
                .read_line(&mut echo)
                .unwrap_or_else(|e| panic!("connection {i} ({name}) {what}: {e}"));
            assert_eq!(echo, line, "connection {i} ({name}) {what}");
        }
    };
    exchange(&mut open, "before the flood");

    send_spoofed_syns(&tb, tb.vip(), lb_tests::echo::ECHO_PORT, 5 * 1024);
    // Every connection still reaches its own real server (one moved to the other would be
    // reset), busy ones and those idle through the flood alike.
    exchange(&mut open, "after the flood");

    let listing = wait::wait_ok(
        "ActiveConn/InActConn equal to what -Lnc lists",
        Duration::from_secs(10),
        || {
            let (shown, listed) = (tb.lbadm(&["-Ln"]), tb.lbadm(&["-Lnc"]));
            let (s, l) = (shown_counts(&shown), listed_counts(&listed));
            let sum = |m: &std::collections::BTreeMap<String, (u32, u32)>| {
                m.values().map(|c| c.0 + c.1).sum::<u32>()
            };
            if s == l && sum(&s) > 40 {
                Ok(listed)
            } else {
                Err(format!("-Ln: {s:?}\n-Lnc: {l:?}\n{shown}"))
            }
        },
    );
    let half_open = listing.lines().filter(|l| l.contains("SYN_RECV")).count();
    assert!(
        (1..=1024).contains(&half_open),
        "the flood's SYNs fill the half-open table, no more: {half_open}"
    );
    drop(open);
    stop_lbd(lbd);
}

/// Runs lbd in the director with `args` to its end (at most a minute), without judging it.
fn run_lbd(tb: &Testbed, files: &lb_tests::lbd::LbdFiles, args: &[&str]) -> lb_tests::cmd::Ran {
    let lbd = tools::binary("lbd").display().to_string();
    let socket = files.socket.display().to_string();
    let state = files.state.display().to_string();
    let mut argv = vec!["timeout", "60", lbd.as_str()];
    argv.extend_from_slice(&["--iface", tb.director_ifaces()[0]]);
    argv.extend_from_slice(&["--xdp-mode", tb.xdp_mode().as_arg()]);
    argv.extend_from_slice(&["--socket", &socket, "--state", &state]);
    argv.extend_from_slice(args);
    tb.director.ns.try_run(&argv, None)
}

/// Issue 12, start-up: a bad keepalived.conf is refused before anything is loaded or
/// attached; a second lbd on the same pin directory is refused (naming the first) and the
/// first keeps serving; a `virtual_server` removed from the file while lbd was down is gone
/// when it starts again.
#[test]
fn startup_checks_first_and_one_lbd_per_pin_directory() {
    let tb = Testbed::builder().real_servers(2).build();
    let bpffs = HostBpffs::new(&tb);
    let bpf_dir = bpffs.dir();
    let vip = tb.vip();
    let two = keepalived_conf(&tb, &[1, 2], "", None)
        + &format!(
            "virtual_server {vip} 8080 {{\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n\
             {}}}\n",
            real_server_block(&tb.rip(1), "")
        );
    let conf = write_conf(&tb, "lb.conf", &two);

    // A bad file: refused, nothing attached, nothing pinned.
    let bad = write_conf(
        &tb,
        "bad.conf",
        &two.replacen("lb_algo rr", "lb_algo rr\n    frobnicate yes", 1),
    );
    let other = lb_tests::lbd::LbdFiles::in_dir(&tb.dir().join("other"));
    std::fs::create_dir_all(tb.dir().join("other")).unwrap();
    let ran = run_lbd(
        &tb,
        &other,
        &["--bpffs", &bpf_dir, "--config", bad.to_str().unwrap()],
    );
    println!("lbd --config bad.conf: {ran}");
    assert!(!ran.success(), "lbd started with a bad file:\n{ran}");
    assert!(
        !tb.director_xdp_attached(),
        "XDP attached by an lbd that refused its configuration"
    );
    assert!(!Path::new(&bpf_dir).exists(), "{bpf_dir} left behind");
    assert!(
        !ran.stderr.contains("XDP program attached")
            && !ran.stdout.contains("XDP program attached"),
        "{ran}"
    );

    // The first lbd, then a second on the same pin directory with its own socket and state.
    let keep = [
        "--on-exit",
        "keep",
        "--bpffs",
        bpf_dir.as_str(),
        "--config",
        conf.to_str().unwrap(),
    ];
    let lbd = start_lbd_with(&tb, &keep);
    let l = list(&tb);
    assert!(l.contains(&format!("{vip}:8080")), "{l}");
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();
    let started = Instant::now();
    let ran = run_lbd(&tb, &other, &["--bpffs", &bpf_dir]);
    println!("a second lbd: {ran}");
    assert!(!ran.success(), "a second lbd started:\n{ran}");
    let pid = lbd.daemon.pid();
    assert!(
        format!("{}{}", ran.stdout, ran.stderr).contains("in use by another lbd (pid"),
        "the refusal does not say who holds the directory (first lbd: pid {pid}):\n{ran}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused only after {:?}",
        started.elapsed()
    );
    assert!(!other.socket.exists(), "the second lbd bound its socket");
    // Services and real servers with their weights (the connection counts move with curl).
    let shape = |l: &str| -> Vec<String> {
        l.lines()
            .map(|line| {
                line.split_whitespace()
                    .take(4)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    assert_eq!(
        shape(&list(&tb)),
        shape(&l),
        "the first lbd's configuration changed"
    );
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();

    // :8080 leaves the file while lbd is down: gone at the next start, :80 kept.
    stop_lbd(lbd);
    std::fs::write(&conf, keepalived_conf(&tb, &[1, 2], "", None)).unwrap();
    // A SIGHUP while it starts does not kill it (acted on once it is up: a reload).
    let files = tb.lbd_files();
    let lbd_bin = tools::binary("lbd").display().to_string();
    let (socket, state) = (
        files.socket.display().to_string(),
        files.state.display().to_string(),
    );
    let mut argv = vec![lbd_bin.as_str(), "--iface", tb.director_ifaces()[0]];
    argv.extend_from_slice(&["--xdp-mode", tb.xdp_mode().as_arg()]);
    argv.extend_from_slice(&["--socket", &socket, "--state", &state]);
    argv.extend_from_slice(&keep);
    let mut daemon = Daemon::spawn_with_env(
        "lbd sent SIGHUP while starting",
        tb.director.ns.argv(&argv),
        &[("NO_COLOR", "1")],
        &files.log,
        &files.log,
    );
    std::thread::sleep(Duration::from_millis(100));
    daemon.signal(libc::SIGHUP);
    wait::wait_ok(
        "lbd answers after a SIGHUP at start-up",
        Duration::from_secs(60),
        || {
            daemon.assert_running();
            let ran = lb_tests::lbd::lbadm(&tb.director.ns, &files.socket, &["-Ln"], None);
            if ran.success() {
                Ok(())
            } else {
                Err(ran.to_string())
            }
        },
    );
    let lbd = Lbd { daemon };
    wait::wait_ok("the SIGHUP acted on", Duration::from_secs(10), || {
        let log = tb.lbd_log();
        if log.contains("SIGHUP: reloading") {
            Ok(())
        } else {
            Err(log)
        }
    });
    let l = list(&tb);
    assert!(
        !l.contains(&format!("{vip}:8080")),
        "removed service restored:\n{l}"
    );
    assert!(l.contains(&format!("{vip}:{SERVICE_PORT}")), "{l}");
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();
    stop_lbd(lbd);
}

/// The control socket answers root, lbd's own user and the members of `--socket-group`
/// only: the socket is 0660 for that group, a member lists the table, and a user who is not
/// one is refused by lbd itself (by the peer's credentials) even when the file's mode lets
/// them connect, with a message that says who asked. lbd never deletes a file at `--socket`
/// that is not a socket.
#[test]
fn the_control_socket_answers_root_and_the_socket_group_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let mut tb = Testbed::builder().real_servers(1).build();
    let socket = tb.lbd_files().socket.clone();
    // Something that is not a socket where the socket goes: refused, left alone.
    std::fs::write(&socket, "not a socket").unwrap();
    let ran = tb.director.ns.try_run(
        &[
            tools::binary("lbd").to_str().unwrap(),
            "--iface",
            tb.director_ifaces()[0],
            "--socket",
            socket.to_str().unwrap(),
            "--state",
            tb.lbd_files().state.to_str().unwrap(),
        ],
        None,
    );
    assert!(!ran.success(), "lbd started over a plain file:\n{ran}");
    assert!(ran.stderr.contains("is not a socket"), "{ran}");
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "not a socket");
    std::fs::remove_file(&socket).unwrap();

    // nogroup (65534) may use it.
    tb.start_lbd_with(&["--socket-group", "nogroup"]);
    let vip = tb.vip();
    tb.lbadm(&["-A", "-t", &format!("{vip}:{SERVICE_PORT}"), "-s", "rr"]);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "the socket's mode with --socket-group");
    let lbadm = tools::binary("lbadm").display().to_string();
    let socket_arg = socket.display().to_string();
    let as_user = |uid: &str, gid: &str| {
        tb.director.ns.try_run(
            &[
                "setpriv",
                "--reuid",
                uid,
                "--regid",
                gid,
                "--clear-groups",
                &lbadm,
                "--socket",
                &socket_arg,
                "-Ln",
            ],
            None,
        )
    };
    let member = as_user("65534", "65534");
    assert!(
        member.success(),
        "a member of --socket-group was refused:\n{member}"
    );
    assert!(
        member.stdout.contains(&format!("{vip}:{SERVICE_PORT}")),
        "{member}"
    );
    // Another user cannot open the file...
    let other = as_user("4242", "4242");
    assert!(!other.success(), "{other}");
    // ...and when the file lets them (a mode loosened by hand), lbd refuses them itself.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let other = as_user("4242", "4242");
    println!("uid 4242 on a 0666 socket: {other}");
    assert!(!other.success(), "{other}");
    assert!(
        other.stderr.contains("permission denied: uid 4242"),
        "the refusal does not say who asked:\n{other}"
    );
    assert!(
        tb.lbd_log().contains("control connection refused"),
        "lbd did not log the refusal"
    );
}

/// A change that does not fit is refused whole: a batch of `mh` services one more than the
/// scheduling-table slots hold (each `mh` table is 4,093 slots, 256 fit next to nothing else)
/// fails with ipvsadm's exit status and lbd's reason, and leaves the running services, the
/// listing and the state file exactly as they were; the service that was there goes on
/// serving, and a batch that fits is applied afterwards.
#[test]
fn a_batch_that_does_not_fit_changes_nothing() {
    let mut tb = Testbed::builder().real_servers(1).build();
    tb.start_lbd();
    let vip = tb.vip_port(SERVICE_PORT);
    let rip = tb.rip(1);
    tb.lbadm(&["-A", "-t", &vip, "-s", "mh"]);
    tb.lbadm(&["-a", "-t", &vip, "-r", &rip, "-g"]);
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();
    let listed = list(&tb);
    let saved = std::fs::read(&tb.lbd_files().state).unwrap();

    let many: String = (0..256)
        .map(|i| {
            let service = format!("{}:{}", tb.vip(), 20000 + i);
            format!("-A -t {service} -s mh\n-a -t {service} -r {rip}:{SERVICE_PORT} -g\n")
        })
        .collect();
    let ran = tb.try_lbadm(&["-R"], Some(&many));
    println!("256 more mh services: {ran}");
    assert!(!ran.success(), "a batch over the slots was applied:\n{ran}");
    assert!(ran.stderr.contains("scheduling tables are full"), "{ran}");
    assert_eq!(list(&tb), listed, "the listing changed");
    assert_eq!(
        std::fs::read(&tb.lbd_files().state).unwrap(),
        saved,
        "the state file changed"
    );
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();

    // What fits goes in.
    let fits: String = many
        .lines()
        .take(2 * 255)
        .map(|l| format!("{l}\n"))
        .collect();
    tb.lbadm_stdin(&["-R"], Some(&fits));
    let l = list(&tb);
    assert_eq!(l.matches("TCP  ").count(), 256, "{l}");
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();
}

/// lbd raises its soft limit on open files to the hard one (a health check holds a socket:
/// a thousand real servers checked at once would not fit in the usual 1,024).
#[test]
fn lbd_raises_its_open_file_limit() {
    let tb = Testbed::builder().real_servers(1).build();
    // lbd inherits a soft limit below the hard one (the usual 1,024), as under a login shell.
    let mut ours = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with local values.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut ours) };
    assert!(
        ours.rlim_max > 1024,
        "the hard limit is too low for this test"
    );
    let low = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: ours.rlim_max,
    };
    // SAFETY: as above.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) };
    let lbd = start_lbd_with(&tb, &[]);
    // SAFETY: as above.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &ours) };
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", lbd.daemon.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    println!("{line}");
    assert_eq!(
        fields[3], fields[4],
        "soft limit below the hard one: {line}"
    );
    stop_lbd(lbd);
}

/// A real server whose neighbour entry the director's kernel lets go (the kernel itself never
/// sends to a DR real server, so it garbage-collects such entries) keeps taking its traffic:
/// lbd asks for it again and forwards to the last known MAC meanwhile, even when the real
/// server no longer answers ARP at all. (Before, the real server was unpublished until it was
/// resolved again, and its connections were dropped.)
#[test]
fn a_real_server_whose_neighbour_entry_is_flushed_keeps_its_traffic() {
    let mut tb = Testbed::builder().real_servers(1).build();
    tb.start_lbd();
    rr_service(&tb, 1);
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();
    // The real server stops answering ARP; the director's entry for it goes.
    tb.rs(1)
        .ns
        .run(&["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=8"]);
    tb.director.ns.run(&["ip", "neigh", "flush", "all"]);
    // Several ticks: the loss is seen, re-resolution is asked for and fails.
    std::thread::sleep(Duration::from_secs(3));
    let neigh = tb.director.ns.run(&["ip", "neigh", "show"]);
    println!("director's neighbours after the flush:\n{neigh}");
    tb.curl_vip(SERVICE_PORT, 10).assert_all_ok();
    let l = list(&tb);
    assert!(real_line(&l, &tb.rip(1)).is_some(), "{l}");
    assert!(
        tb.lbd_log().contains("the last known MAC stands"),
        "lbd did not say why it keeps forwarding"
    );
}

/// #12: the director's NIC deleted and created again (a driver reload, a bond or VLAN
/// rebuilt): its XDP attachment went with the old device, and lbd attaches to the new one by
/// itself once it is back under the same name. Fails without it: the new device has no
/// program, so the VIP answers from the director's own stack (connection refused).
#[test]
fn a_nic_deleted_and_created_again_is_attached_again() {
    let mut tb = Testbed::builder().real_servers(2).build();
    tb.start_lbd();
    let vip = rr_service(&tb, 2);
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();

    let port = tb.director.switch_port.clone();
    let iface = tb.director.iface().to_owned();
    // A NIC keeps its hardware address across a driver reload (and the client's neighbour
    // entry for the VIP stays right).
    let mac = tb.director.mac();
    tb.switch().run(&["ip", "link", "del", &port]);
    wait::wait_until("lbd to see the NIC gone", Duration::from_secs(10), || {
        tb.lbd_log().contains("interface gone")
    });
    // Created again as the testbed first made it, with its MAC: the other end on the switch,
    // then the director's addresses (its own and the VIP).
    tb.switch().run(&[
        "ip",
        "link",
        "add",
        &port,
        "type",
        "veth",
        "peer",
        "name",
        &iface,
        "address",
        &mac,
        "netns",
        tb.director.ns.name(),
    ]);
    tb.switch()
        .run(&["ip", "link", "set", "dev", &port, "master", "br0", "up"]);
    let d = &tb.director.ns;
    d.run(&[
        "ip",
        "addr",
        "add",
        &format!("{}/24", tb.director.ip),
        "dev",
        &iface,
    ]);
    d.run(&[
        "ip",
        "addr",
        "add",
        &format!("{}/32", tb.vip()),
        "dev",
        &iface,
    ]);
    d.run(&["ip", "link", "set", "dev", &iface, "up"]);
    d.run(&["ethtool", "-K", &iface, "tx", "off"]);
    let recreated = Instant::now();

    let url = format!("http://{vip}/");
    wait::wait_until("the service back", Duration::from_secs(20), || {
        tb.curl_once(&url).success()
    });
    println!(
        "service back {:.1} s after the NIC was created again",
        recreated.elapsed().as_secs_f64()
    );
    tb.curl_vip(SERVICE_PORT, 10).assert_all_ok();
    assert!(
        tb.director_xdp_attached(),
        "no XDP program on the new {iface}"
    );
    let log = tb.lbd_log();
    assert!(log.contains("XDP program attached again"), "{log}");
}

/// #12: a real server's MAC changes (its NIC replaced, or a standby taking its address over)
/// and it announces itself (gratuitous ARP, `arp_notify`): the director's neighbour table
/// follows, and lbd forwards to the new MAC. Fails if lbd kept the old one: the bridge has
/// no port for it any more and the real server's share of requests is lost.
#[test]
fn a_real_server_whose_mac_changes_keeps_its_traffic() {
    let mut tb = Testbed::builder().real_servers(2).build();
    tb.start_lbd();
    let vip = rr_service(&tb, 2);
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();
    // The kernel lets an announcement override an entry only a second after its last
    // update (neigh locktime).
    std::thread::sleep(Duration::from_secs(2));
    let rs = tb.rs(1);
    let iface = rs.iface().to_owned();
    let old = rs.mac();
    let new = "02:00:5e:10:00:99";
    rs.ns.run(&[
        "sysctl",
        "-qw",
        &format!("net.ipv4.conf.{iface}.arp_notify=1"),
    ]);
    rs.ns
        .run(&["ip", "link", "set", "dev", &iface, "address", new]);
    let changed = Instant::now();
    let url = format!("http://{vip}/");
    wait::wait_until(
        "every request served again",
        Duration::from_secs(10),
        || (0..4).all(|_| tb.curl_once(&url).success()),
    );
    println!(
        "{old} -> {new}: all requests served again {:.1} s later",
        changed.elapsed().as_secs_f64()
    );
    tb.curl_vip(SERVICE_PORT, 10).assert_all_ok();
    let log = tb.lbd_log();
    assert!(log.contains("real server's MAC changed"), "{log}");
}

/// Unmounts a test's tmpfs however the test ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        let opts = format!("size={size},mode=0700");
        lb_tests::cmd::run(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &opts,
            "tmpfs",
            dir.to_str().unwrap(),
        ]);
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = lb_tests::cmd::try_run(&["umount", "-l", self.0.to_str().unwrap()], None);
    }
}

/// #12's fault list, under wrk (0 failed requests is the bar): 200 `lbadm -e` in a row, then
/// the state directory full (a change is refused, says why, and changes nothing: the listing
/// and, after a restart, the saved configuration are as before), then room again.
#[test]
fn two_hundred_changes_and_a_full_state_directory_under_load() {
    let mut tb = Testbed::builder().real_servers(2).build();
    let fs = Tmpfs::mount(tb.dir().join("state-fs"), "1m");
    let files = lb_tests::lbd::LbdFiles {
        state: fs.0.join("state.json"),
        ..tb.lbd_files().clone()
    };
    let start = |tb: &Testbed| {
        Lbd::start_with(
            &tb.director.ns,
            tb.director_ifaces(),
            tb.xdp_mode(),
            &files,
            &[],
        )
    };
    let lbd = start(&tb);
    let vip = tb.vip_port(SERVICE_PORT);
    tb.lbadm(&["-A", "-t", &vip, "-s", "wrr"]);
    for i in 1..=2 {
        tb.lbadm(&["-a", "-t", &vip, "-r", &tb.rip(i), "-g"]);
    }
    let url = format!("http://{vip}/");
    let load = tb.start_load(LoadGen::Wrk { connections: 4 }, &url);

    let began = Instant::now();
    for i in 0..200u32 {
        let weight = (1 + i % 5).to_string();
        let rip = tb.rip(1 + (i % 2) as usize);
        tb.lbadm(&["-e", "-t", &vip, "-r", &rip, "-g", "-w", &weight]);
    }
    println!("200 lbadm -e in {:.1} s", began.elapsed().as_secs_f64());
    // The last two: rs1 (i = 198) weight 4, rs2 (i = 199) weight 5.
    let l = list(&tb);
    assert_eq!(weight_of(&real_line(&l, &tb.rip(1)).unwrap()), 4, "{l}");
    assert_eq!(weight_of(&real_line(&l, &tb.rip(2)).unwrap()), 5, "{l}");

    // Fill the state directory: writing there fails with ENOSPC.
    let filler = fs.0.join("filler");
    let _ = tb.director.ns.try_run(
        &[
            "dd",
            "if=/dev/zero",
            &format!("of={}", filler.display()),
            "bs=64k",
        ],
        None,
    );
    let refused = tb.try_lbadm(&["-e", "-t", &vip, "-r", &tb.rip(1), "-g", "-w", "9"], None);
    assert!(
        !refused.success(),
        "a change that cannot be saved was reported done"
    );
    println!("refused: {}", refused.stderr.trim());
    assert!(
        refused.stderr.contains("No space left on device"),
        "{}",
        refused.stderr
    );
    let l = list(&tb);
    assert_eq!(weight_of(&real_line(&l, &tb.rip(1)).unwrap()), 4, "{l}");
    std::fs::remove_file(&filler).unwrap();
    tb.lbadm(&["-e", "-t", &vip, "-r", &tb.rip(1), "-g", "-w", "7"]);

    let report = load.stop();
    println!("wrk during the changes: {report:?}");
    assert!(report.requests > 0, "{}", report.output);
    assert_eq!(report.failed, 0, "{}", report.output);
    assert_eq!(report.non_2xx, 0, "{}", report.output);

    // What was saved is what was listed.
    stop_lbd(lbd);
    let lbd = start(&tb);
    let l = list(&tb);
    assert_eq!(weight_of(&real_line(&l, &tb.rip(1)).unwrap()), 7, "{l}");
    assert_eq!(weight_of(&real_line(&l, &tb.rip(2)).unwrap()), 5, "{l}");
    stop_lbd(lbd);
}

/// #12's fault list: lbd killed with SIGKILL (no shutdown at all) under wrk. Its pinned
/// program and maps keep forwarding with nobody at the controls; an lbd started again adopts
/// them and the configuration. 0 failed requests.
#[test]
fn lbd_killed_with_sigkill_and_started_again_under_load() {
    let mut tb = Testbed::builder().real_servers(2).build();
    let bpffs = HostBpffs::new(&tb);
    let bpf_dir = bpffs.dir();
    let args = ["--bpffs", bpf_dir.as_str()];
    let mut lbd = start_lbd_with(&tb, &args);
    let vip = rr_service(&tb, 2);
    let url = format!("http://{vip}/");
    let load = tb.start_load(LoadGen::Wrk { connections: 4 }, &url);
    std::thread::sleep(Duration::from_secs(2));

    let status = lbd.daemon.stop(libc::SIGKILL, Duration::from_secs(5));
    println!("lbd: {status:?}");
    assert!(tb.director_xdp_attached(), "nothing attached after SIGKILL");
    std::thread::sleep(Duration::from_secs(2));
    let lbd = start_lbd_with(&tb, &args);
    let l = list(&tb);
    assert!(
        real_line(&l, &tb.rip(1)).is_some() && real_line(&l, &tb.rip(2)).is_some(),
        "{l}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    println!("wrk across SIGKILL and start: {report:?}");
    assert!(report.requests > 0, "{}", report.output);
    assert_eq!(report.failed, 0, "{}", report.output);
    assert_eq!(report.non_2xx, 0, "{}", report.output);
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();
    stop_lbd(lbd);
    drop(bpffs);
}

/// A listing's services and real servers with their weights, without the connection counts
/// (they move with the traffic).
fn shape(listing: &str) -> Vec<String> {
    listing
        .lines()
        .map(|line| {
            line.split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Stops wrk and requires that it ran and no request failed.
#[track_caller]
fn assert_no_failed_requests(load: lb_tests::http::Load, during: &str) {
    let report = load.stop();
    println!("wrk {during}: {report:?}");
    assert!(report.requests > 0, "{}", report.output);
    assert_eq!(report.failed, 0, "{}", report.output);
    assert_eq!(report.non_2xx, 0, "{}", report.output);
}

/// #12's fault list: a reload with a broken keepalived.conf under wrk, by SIGHUP and by
/// `lbd reload`: refused with FILE:LINE (in the log, and in `lbd reload`'s answer), the
/// running services exactly as they were (the broken file would also drop a real server),
/// 0 failed requests.
#[test]
fn a_reload_with_a_broken_file_under_load_changes_nothing() {
    let mut tb = Testbed::builder().real_servers(2).build();
    let conf = write_conf(&tb, "lb.conf", &keepalived_conf(&tb, &[1, 2], "", None));
    let mut lbd = start_lbd_with(&tb, &["--config", conf.to_str().unwrap()]);
    let before = wait_listing(&tb, "both real servers up", |l| {
        real_line(l, &tb.rip(1)).is_some() && real_line(l, &tb.rip(2)).is_some()
    });
    let url = format!("http://{}/", tb.vip_port(SERVICE_PORT));
    let load = tb.start_load(LoadGen::Wrk { connections: 4 }, &url);
    std::thread::sleep(Duration::from_secs(1));

    let broken = keepalived_conf(&tb, &[1], "", None).replacen(
        "    lb_algo rr\n",
        "    lb_algo rr\n    frobnicate yes\n",
        1,
    );
    let line = broken
        .lines()
        .position(|l| l.contains("frobnicate"))
        .unwrap()
        + 1;
    std::fs::write(&conf, &broken).unwrap();

    lbd.daemon.signal(libc::SIGHUP);
    let log = wait::wait_ok("the SIGHUP refused", HEALTH_TIMEOUT, || {
        let log = tb.lbd_log();
        if log.contains("SIGHUP: reload refused") {
            Ok(log)
        } else {
            Err(log)
        }
    });
    assert_file_line(&log, &conf, line);
    assert_eq!(shape(&list(&tb)), shape(&before), "SIGHUP changed services");

    let ran = reload(&tb);
    println!("lbd reload: {ran}");
    assert!(!ran.success(), "reload accepted a broken file:\n{ran}");
    assert_file_line(&format!("{}{}", ran.stdout, ran.stderr), &conf, line);
    assert_eq!(
        shape(&list(&tb)),
        shape(&before),
        "lbd reload changed services"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_no_failed_requests(load, "across two refused reloads");
    lbd.daemon.assert_running();
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();
    stop_lbd(lbd);
}

/// #12's fault list: a second lbd started by mistake while wrk runs, on the same pin
/// directory and on the same interface with a pin directory of its own: refused both times,
/// naming the first lbd's pid. Either way
/// it leaves nothing behind and the first keeps serving: its configuration as it was, 0
/// failed requests.
#[test]
fn a_second_lbd_started_by_mistake_under_load_is_refused() {
    let mut tb = Testbed::builder().real_servers(2).build();
    let bpffs = HostBpffs::new(&tb);
    let bpf_dir = bpffs.dir();
    let lbd = start_lbd_with(&tb, &["--bpffs", bpf_dir.as_str()]);
    let vip = rr_service(&tb, 2);
    let before = list(&tb);
    let load = tb.start_load(LoadGen::Wrk { connections: 4 }, &format!("http://{vip}/"));
    std::thread::sleep(Duration::from_secs(1));

    let other = lb_tests::lbd::LbdFiles::in_dir(&tb.dir().join("other"));
    std::fs::create_dir_all(tb.dir().join("other")).unwrap();
    let ran = run_lbd(&tb, &other, &["--bpffs", &bpf_dir]);
    println!("a second lbd on the same pin directory: {ran}");
    assert!(!ran.success(), "a second lbd started:\n{ran}");
    let holder = format!("in use by another lbd (pid {})", lbd.daemon.pid());
    assert!(
        format!("{}{}", ran.stdout, ran.stderr).contains(&holder),
        "the refusal does not say `{holder}`:\n{ran}"
    );
    assert!(!other.socket.exists(), "the second lbd bound its socket");

    let own_dir = bpffs.mount.join("lb-second").display().to_string();
    let ran = run_lbd(&tb, &other, &["--bpffs", &own_dir]);
    println!("a second lbd on the same interface: {ran}");
    assert!(!ran.success(), "a second lbd started:\n{ran}");
    let said = format!("{}{}", ran.stdout, ran.stderr);
    let holder = format!(
        "{} already has an XDP program, held by pid {} (lbd)",
        tb.director_ifaces()[0],
        lbd.daemon.pid()
    );
    assert!(
        said.contains(&holder),
        "the refusal does not say `{holder}`:\n{ran}"
    );
    assert!(!other.socket.exists(), "the second lbd bound its socket");
    assert!(!Path::new(&own_dir).exists(), "{own_dir} left behind");

    assert_eq!(shape(&list(&tb)), shape(&before), "the first lbd changed");
    std::thread::sleep(Duration::from_secs(1));
    assert_no_failed_requests(load, "across two refused lbds");
    tb.curl_vip(SERVICE_PORT, 4).assert_all_ok();
    stop_lbd(lbd);
    drop(bpffs);
}

/// How many health-checked real servers flap in [`two_thousand_flapping_real_servers`].
const FLAPPING_REALS: usize = 2000;

/// The `i`th of [`FLAPPING_REALS`] addresses, all on real server 2 (10.250.0.0/21).
fn flapping_rip(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(10, 250, (i / 250) as u8, (1 + i % 250) as u8)
}

/// The [`FLAPPING_REALS`] real servers listed under `service` in `listing`.
fn listed_reals_of(listing: &str, service: &str) -> std::collections::BTreeSet<String> {
    let mut under = false;
    let mut reals = std::collections::BTreeSet::new();
    for line in listing.lines() {
        if line.starts_with("TCP") || line.starts_with("UDP") {
            under = line.contains(service);
        } else if under && let Some(rest) = line.trim_start().strip_prefix("-> ") {
            reals.insert(rest.split(':').next().unwrap().to_owned());
        }
    }
    reals
}

/// #12's fault list: 2,000 health-checked (TCP_CHECK) real servers, all addresses of one
/// real-server namespace, half of them flapping (nftables drops their checks, then lets them
/// through). lbd stays responsive (every `lbadm -Ln` answers, the slowest is printed), its
/// listing converges to the truth after each flip (the times are printed, not judged), and
/// wrk to a service of two always-up real servers has 0 failed requests.
#[test]
fn two_thousand_flapping_real_servers() {
    let mut tb = Testbed::builder().real_servers(2).build();
    let rs = &tb.rs(2).ns;
    let iface = tb.rs(2).iface().to_owned();
    let batch: String = (0..FLAPPING_REALS)
        .map(|i| format!("addr add {}/32 dev {iface}\n", flapping_rip(i)))
        .collect();
    let batch_file = write_conf(&tb, "addrs.batch", &batch);
    rs.run(&["ip", "-batch", batch_file.to_str().unwrap()]);
    tb.director
        .ns
        .run(&["ip", "route", "add", "10.250.0.0/21", "via", &tb.rip(2)]);
    rs.run(&[
        "nft",
        "add table inet flap; \
         add set inet flap down { type ipv4_addr; }; \
         add chain inet flap input { type filter hook input priority 0; }; \
         add rule inet flap input ip daddr @down tcp dport 80 drop",
    ]);

    let vip = tb.vip();
    let tcp_check = |port: u16| {
        format!(
            "        TCP_CHECK {{\n            connect_port {port}\n            \
             connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }}\n"
        )
    };
    let mut conf = format!(
        "global_defs {{\n    router_id LB_FLAP\n}}\n\
         virtual_server {vip} {SERVICE_PORT} {{\n    delay_loop 1\n    lb_algo rr\n    \
         lb_kind DR\n    protocol TCP\n"
    );
    for i in 1..=2 {
        conf += &format!("    real_server {} {SERVICE_PORT} {{\n", tb.rip(i));
        conf += &tcp_check(SERVICE_PORT);
        conf += "    }\n";
    }
    conf += &format!(
        "}}\nvirtual_server {vip} 8080 {{\n    delay_loop 2\n    lb_algo wrr\n    \
         lb_kind DR\n    protocol TCP\n"
    );
    for i in 0..FLAPPING_REALS {
        conf += &format!("    real_server {} 8080 {{\n", flapping_rip(i));
        conf += &tcp_check(SERVICE_PORT);
        conf += "    }\n";
    }
    conf += "}\n";
    let conf = write_conf(&tb, "flap.conf", &conf);
    let lbd = start_lbd_with(&tb, &["--config", conf.to_str().unwrap()]);

    let flapping = format!("{vip}:8080");
    let all: std::collections::BTreeSet<String> = (0..FLAPPING_REALS)
        .map(|i| flapping_rip(i).to_string())
        .collect();
    let steady: std::collections::BTreeSet<String> = (0..FLAPPING_REALS)
        .filter(|i| i % 2 == 0)
        .map(|i| flapping_rip(i).to_string())
        .collect();
    let flappers: Vec<String> = (0..FLAPPING_REALS)
        .filter(|i| i % 2 == 1)
        .map(|i| flapping_rip(i).to_string())
        .collect();
    // Waits until the listing shows exactly `want`; every -Ln must answer. Prints how long
    // it took and the slowest -Ln.
    let converge = |tb: &Testbed, what: &str, want: &std::collections::BTreeSet<String>| {
        let began = Instant::now();
        let mut slowest = Duration::ZERO;
        let mut listed = 0;
        wait::wait_ok(what, Duration::from_secs(300), || {
            let asked = Instant::now();
            let ran = tb.try_lbadm(&["-Ln"], None);
            slowest = slowest.max(asked.elapsed());
            assert!(ran.success(), "lbadm -Ln did not answer: {ran}");
            let got = listed_reals_of(&ran.stdout, &flapping);
            listed = got.len();
            if got == *want {
                Ok(())
            } else {
                Err(format!("{} listed, {} wanted", got.len(), want.len()))
            }
        });
        println!(
            "{what}: converged in {:.1} s ({listed} listed), slowest lbadm -Ln {:.2} s",
            began.elapsed().as_secs_f64(),
            slowest.as_secs_f64()
        );
    };
    converge(&tb, "all 2,000 up", &all);
    let url = format!("http://{}/", tb.vip_port(SERVICE_PORT));
    let load = tb.start_load(LoadGen::Wrk { connections: 4 }, &url);

    let set = |tb: &Testbed, verb: &str| {
        let elements = flappers.join(", ");
        tb.rs(2).ns.run(&[
            "nft",
            &format!("{verb} element inet flap down {{ {elements} }}"),
        ]);
    };
    for round in 1..=2 {
        set(&tb, "add");
        converge(&tb, &format!("round {round}: 1,000 dropped"), &steady);
        set(&tb, "delete");
        converge(&tb, &format!("round {round}: all back"), &all);
    }
    assert_no_failed_requests(load, "while 1,000 real servers flapped");
    let l = list(&tb);
    assert!(
        real_line(&l, &tb.rip(1)).is_some() && real_line(&l, &tb.rip(2)).is_some(),
        "{l}"
    );
    stop_lbd(lbd);
}

/// Real server `rip`'s line on the echo port in a `-Ln` listing.
fn echo_line(listing: &str, rip: &str) -> Option<String> {
    real_line_on(listing, rip, lb_tests::ECHO_PORT)
}

/// A keepalived.conf with one DR service on the VIP's echo port: `(real server, weight)`,
/// each with a TCP_CHECK.
fn echo_service_conf(tb: &Testbed, algo: &str, reals: &[(usize, u32)]) -> String {
    let port = lb_tests::ECHO_PORT;
    let mut text = format!(
        "virtual_server {} {port} {{\n    delay_loop 1\n    lb_algo {algo}\n    lb_kind DR\n    \
         protocol TCP\n",
        tb.vip()
    );
    for &(i, weight) in reals {
        text += &format!(
            "    real_server {} {port} {{\n        weight {weight}\n        TCP_CHECK {{\n            \
             connect_timeout 1\n        }}\n    }}\n",
            tb.rip(i)
        );
    }
    text + "}\n"
}

/// #17: a reload (SIGHUP) that changes the scheduler, changes a weight and adds a real server
/// leaves established connections where they are, as keepalived's reload leaves IPVS's: each
/// still echoes through the VIP (a connection sent to another real server would be reset
/// there), and the connection table lists each client on the same real server as before.
#[test]
fn established_connections_keep_their_real_servers_across_a_reload() {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::{SocketAddrV4, TcpStream};

    let tb = Testbed::builder().real_servers(3).build();
    let conf = write_conf(
        &tb,
        "lb.conf",
        &echo_service_conf(&tb, "rr", &[(1, 1), (2, 1)]),
    );
    let lbd = start_lbd_with(&tb, &["--config", conf.to_str().unwrap()]);
    wait_listing(&tb, "both real servers", |l| {
        echo_line(l, &tb.rip(1)).is_some() && echo_line(l, &tb.rip(2)).is_some()
    });
    let to = SocketAddrV4::new(tb.vip(), lb_tests::ECHO_PORT);
    let mut conns: Vec<(BufReader<TcpStream>, String)> = (0..6)
        .map(|i| {
            let stream = tb
                .client
                .ns
                .enter(|| TcpStream::connect_timeout(&to.into(), Duration::from_secs(5)))
                .unwrap_or_else(|e| panic!("echo connection {i} to {to}: {e}"));
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut reader = BufReader::new(stream);
            let mut greeting = String::new();
            reader
                .read_line(&mut greeting)
                .unwrap_or_else(|e| panic!("echo connection {i}: no greeting: {e}"));
            (reader, greeting.trim().to_owned())
        })
        .collect();
    let greeted: Vec<&str> = conns.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        greeted.iter().filter(|s| **s == "rs1").count(),
        3,
        "rr over two real servers: {greeted:?}"
    );
    let table = |tb: &Testbed| -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = connections(tb)
            .into_iter()
            .filter(|r| r.virtual_addr == to.to_string() && r.state == "ESTABLISHED")
            .map(|r| (r.source, r.destination))
            .collect();
        rows.sort();
        rows
    };
    let before = table(&tb);
    assert_eq!(before.len(), 6, "{before:?}");

    std::fs::write(
        &conf,
        echo_service_conf(&tb, "wlc", &[(1, 3), (2, 1), (3, 1)]),
    )
    .unwrap();
    lbd.daemon.signal(libc::SIGHUP);
    let after_reload = wait_listing(&tb, "the reloaded configuration", |l| {
        l.contains(" wlc")
            && echo_line(l, &tb.rip(3)).is_some()
            && echo_line(l, &tb.rip(1)).is_some_and(|line| weight_of(&line) == 3)
    });
    println!("after the reload:\n{after_reload}");

    for (i, (reader, server)) in conns.iter_mut().enumerate() {
        let line = format!("after the reload {i}\n");
        reader.get_mut().write_all(line.as_bytes()).unwrap();
        let mut back = String::new();
        reader
            .read_line(&mut back)
            .unwrap_or_else(|e| panic!("connection {i} (greeted by {server}): {e}"));
        assert_eq!(back, line, "connection {i} (greeted by {server})");
    }
    assert_eq!(
        table(&tb),
        before,
        "the connection table moved connections across the reload"
    );
    stop_lbd(lbd);
}
