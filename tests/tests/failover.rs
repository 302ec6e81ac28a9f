//! Two directors with keepalived VRRP (seed 002, issue #5). keepalived runs VRRP only
//! (`keepalived --vrrp`): its vrrp_instance puts the VIP on the master's eth0. lbd runs on both
//! directors and reads the virtual_server part of the same keepalived.conf (`lbd --config`).
//!
//! With `lb_algo mh` both directors send a flow to the same real server (Maglev hashing of
//! the client's address and port over the same real servers), and with
//! `--sysctl net.ipv4.vs.sloppy_tcp=1` lb's data path schedules a mid-flow TCP packet that has
//! no connection entry, as IPVS does with that sysctl (without it, only a SYN opens a
//! connection and these tests fail). So the backup carries on the connections the master had
//! opened, with no connection synchronisation.
//!
//! The topology is the DR LAN with a backup director (see `lb_tests::testbed`):
//!
//! ```text
//! client .10, director .11 (keepalived MASTER, priority 150), director2 .9 (BACKUP, 100),
//! rs1 .12, rs2 .13, rs3 .14 (VIP on lo), VIP .99/32 on the VRRP master's eth0
//! ```
//!
//! Long-lived connections are the test's own sockets in the client's namespace: TCP echo
//! sessions (VIP:23, greeted with the real server's name) it keeps talking on, and HTTP
//! downloads (VIP:80) it reads in steps, so that data is still to come when the VIP moves.

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{SocketAddr, SocketAddrV4, TcpStream},
    path::PathBuf,
    time::{Duration, Instant},
};

use lb_tests::{
    ECHO_PORT, SERVICE_PORT, Testbed,
    cmd::{self, Daemon},
    lbd::{self, Lbd, LbdFiles},
    listing::{self, ServiceStats},
    testbed::Host,
    wait,
};

/// The directors, by index: the one keepalived makes master, and the backup.
const A: usize = 0;
const B: usize = 1;
const PRIORITY: [u32; 2] = [150, 100];
const STATE: [&str; 2] = ["MASTER", "BACKUP"];

const REAL_SERVERS: usize = 3;
/// How long VRRP may take to settle or move the VIP (keepalived's master-down interval is
/// about 3 s with `advert_int 1`), with slack for a loaded machine.
const VRRP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the client's traffic may take to follow the VIP.
const TRAFFIC_TIMEOUT: Duration = Duration::from_secs(30);
/// How long lbd's health checks may take to list every real server.
const LISTING_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one step on a long-lived connection may take: across a failover it waits for
/// TCP's retransmissions, which back off.
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// The echo sessions to hold open, and how many to try at most to have them spread over
/// at least two real servers.
const ECHO_SESSIONS: usize = 6;
const MAX_ECHO_SESSIONS: usize = 30;
const DOWNLOADS: usize = 3;
/// Larger than what the client's receive buffer and the path hold while the test is not
/// reading (a window of about 128 KiB), so most of it flows after the failover.
const DOWNLOAD_SIZE: usize = 4 << 20;
const DOWNLOAD_FILE: &str = "big.bin";

/// The keepalived.conf of director `i`: the same on both but for router_id, state and
/// priority, as in the README's sample (`lb-user/src/keepalived/two-directors.conf`).
fn keepalived_conf(tb: &Testbed, i: usize) -> String {
    let vip = tb.vip();
    let router_id = director_name(i);
    let (state, priority) = (STATE[i], PRIORITY[i]);
    let mut text = format!(
        "! {router_id}: keepalived runs the vrrp_instance (--vrrp), lbd --config the \
         virtual_servers
global_defs {{
    router_id {router_id}
}}
vrrp_instance VI_1 {{
    state {state}
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int 1
    garp_master_delay 1
    authentication {{
        auth_type PASS
        auth_pass lb-vrrp
    }}
    virtual_ipaddress {{
        {vip}/32 dev eth0
    }}
}}
"
    );
    for (port, check) in [
        (
            SERVICE_PORT,
            "HTTP_GET {
            url {
                path /
                status_code 200
            }
            connect_timeout 3
            retry 3
            delay_before_retry 1
        }",
        ),
        (
            ECHO_PORT,
            "TCP_CHECK {
            connect_timeout 3
            retry 3
            delay_before_retry 1
        }",
        ),
    ] {
        text += &format!(
            "virtual_server {vip} {port} {{
    delay_loop 3
    lb_algo mh
    mh-port
    lb_kind DR
    protocol TCP
"
        );
        for r in 1..=REAL_SERVERS {
            text += &format!(
                "    real_server {} {port} {{
        weight 1
        {check}
    }}
",
                tb.rip(r)
            );
        }
        text += "}\n";
    }
    text
}

/// The testbed's name of director `i`.
fn director_name(i: usize) -> &'static str {
    ["director", "director2"][i]
}

/// One entry of `lbadm -Lnc`: the whole line, and its source and destination.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ConnEntry {
    line: String,
    client: String,
    real: String,
}

/// Parses `-Lnc` (ipvsadm's `pro expire state source virtual destination`).
fn parse_connections(text: &str) -> Vec<ConnEntry> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() >= 6).then(|| ConnEntry {
                line: line.to_owned(),
                client: f[3].to_owned(),
                real: f[5].to_owned(),
            })
        })
        .collect()
}

/// Two directors running lbd and keepalived on the testbed; dropping it stops them (printing
/// both directors' logs and tables first if the test failed), then the testbed goes.
struct Pair {
    keepalived: [Option<Daemon>; 2],
    lbd: [Option<Lbd>; 2],
    files: [LbdFiles; 2],
    confs: [PathBuf; 2],
    /// Last: torn down after the daemons.
    tb: Testbed,
}

impl Pair {
    /// Builds the topology, starts lbd on both directors with their keepalived.conf, then
    /// keepalived on the first (it becomes master) and on the second (it stays backup).
    fn start() -> Pair {
        assert!(
            cmd::on_path("keepalived"),
            "keepalived is not installed: run `cargo xtask setup`"
        );
        let tb = Testbed::builder()
            .backup_director()
            .real_servers(REAL_SERVERS)
            .build();
        let files = [0, 1].map(|i| {
            let dir = tb.dir().join(director_name(i));
            std::fs::create_dir_all(&dir).expect("director dir");
            LbdFiles::in_dir(&dir)
        });
        let confs = [0, 1].map(|i| {
            let path = tb.dir().join(director_name(i)).join("keepalived.conf");
            std::fs::write(&path, keepalived_conf(&tb, i)).expect("write keepalived.conf");
            path
        });
        let mut pair = Pair {
            keepalived: [None, None],
            lbd: [None, None],
            files,
            confs,
            tb,
        };
        for i in [A, B] {
            let conf = pair.confs[i].display().to_string();
            pair.lbd[i] = Some(Lbd::start_with(
                &pair.host(i).ns,
                pair.tb.director_ifaces(),
                pair.tb.xdp_mode(),
                &pair.files[i],
                // As the README's set-up: the new master picks up connections mid-flow.
                &["--config", &conf, "--sysctl", "net.ipv4.vs.sloppy_tcp=1"],
            ));
        }
        for i in [A, B] {
            pair.wait_all_reals_listed(i);
        }
        pair.start_keepalived(A);
        pair.wait_master(A);
        pair.start_keepalived(B);
        wait::wait_ok(
            "director2's keepalived to enter BACKUP state",
            VRRP_TIMEOUT,
            || {
                pair.assert_keepalived_running(B);
                if pair.keepalived_log(B).contains("Entering BACKUP STATE") {
                    Ok(())
                } else {
                    Err(cmd::tail(&pair.keepalived_log(B), 10))
                }
            },
        );
        assert!(
            pair.holds_vip(A) && !pair.holds_vip(B),
            "the VIP moved when the backup's keepalived started\n{}",
            pair.report()
        );
        pair
    }

    fn host(&self, i: usize) -> &Host {
        match i {
            A => &self.tb.director,
            _ => self
                .tb
                .director2
                .as_ref()
                .expect("a testbed with a backup director"),
        }
    }

    fn dir(&self, i: usize) -> PathBuf {
        self.tb.dir().join(director_name(i))
    }

    // ----- keepalived -----

    /// Starts keepalived in director `i` as a VRRP-only daemon in the foreground, with its own
    /// pid files (two instances on one machine must not find each other's) and its log on
    /// stderr, captured in `<dir>/keepalived.log`.
    fn start_keepalived(&mut self, i: usize) {
        assert!(self.keepalived[i].is_none(), "keepalived already runs");
        let dir = self.dir(i);
        let path = |name: &str| dir.join(name).display().to_string();
        let log = dir.join("keepalived.log");
        let argv = self.host(i).ns.argv(&[
            "keepalived",
            "--vrrp",
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--no-syslog",
            "--use-file",
            &self.confs[i].display().to_string(),
            "--pid",
            &path("keepalived.pid"),
            "--vrrp_pid",
            &path("vrrp.pid"),
            "--checkers_pid",
            &path("checkers.pid"),
        ]);
        let what = format!("keepalived in {}", director_name(i));
        self.keepalived[i] = Some(Daemon::spawn(&what, argv, &log, &log));
    }

    /// Stops director `i`'s keepalived with SIGTERM: as master it sends a priority-0 advert
    /// and removes the VIP.
    fn stop_keepalived(&mut self, i: usize) {
        let mut daemon = self.keepalived[i].take().expect("keepalived is running");
        let status = daemon.stop(libc::SIGTERM, Duration::from_secs(15));
        assert!(
            status.success(),
            "{} exited with {}\n{}",
            daemon.what(),
            cmd::describe_status(status),
            daemon.report()
        );
    }

    #[track_caller]
    fn assert_keepalived_running(&mut self, i: usize) {
        if let Some(daemon) = self.keepalived[i].as_mut() {
            daemon.assert_running();
        }
    }

    fn keepalived_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir(i).join("keepalived.log")).unwrap_or_default()
    }

    /// Whether the VIP is an address of director `i`'s eth0.
    fn holds_vip(&self, i: usize) -> bool {
        let host = self.host(i);
        let ran = host.ns.try_run(
            &["ip", "-4", "-o", "address", "show", "dev", host.iface()],
            None,
        );
        let want = format!("inet {}/32 ", self.tb.vip());
        ran.stdout.contains(&want)
    }

    /// Waits until director `i` holds the VIP and the other does not.
    #[track_caller]
    fn wait_master(&mut self, i: usize) {
        let other = 1 - i;
        wait::wait_ok(
            format!("{} to hold the VIP alone", director_name(i)),
            VRRP_TIMEOUT,
            || {
                self.assert_keepalived_running(i);
                let (mine, theirs) = (self.holds_vip(i), self.holds_vip(other));
                if mine && !theirs {
                    Ok(())
                } else {
                    Err(format!(
                        "VIP on {}: {mine}, on {}: {theirs}\n{}",
                        director_name(i),
                        director_name(other),
                        cmd::tail(&self.keepalived_log(i), 10)
                    ))
                }
            },
        );
    }

    // ----- lbd -----

    #[track_caller]
    fn lbadm(&self, i: usize, args: &[&str]) -> String {
        let ran = lbd::lbadm(&self.host(i).ns, &self.files[i].socket, args, None);
        assert!(
            ran.success(),
            "lbadm on {} failed:\n{ran}\n{}",
            director_name(i),
            self.report()
        );
        ran.stdout
    }

    /// Director `i`'s `-Ln --stats --exact`, parsed.
    #[track_caller]
    fn stats(&self, i: usize) -> Vec<ServiceStats> {
        let text = self.lbadm(i, &["-Ln", "--stats", "--exact"]);
        listing::parse_stats(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The counters of service VIP:`port` on director `i`.
    #[track_caller]
    fn service_stats(&self, i: usize, port: u16) -> ServiceStats {
        listing::find(&self.stats(i), "TCP", &self.tb.vip_port(port)).clone()
    }

    /// Director `i`'s connection table (`-Lnc`).
    #[track_caller]
    fn connections(&self, i: usize) -> Vec<ConnEntry> {
        parse_connections(&self.lbadm(i, &["-Lnc"]))
    }

    /// Waits until director `i`'s lbd lists every real server in both services.
    #[track_caller]
    fn wait_all_reals_listed(&self, i: usize) {
        wait::wait_ok(
            format!("{}'s lbd to list every real server", director_name(i)),
            LISTING_TIMEOUT,
            || {
                let stats = self.stats(i);
                for port in [SERVICE_PORT, ECHO_PORT] {
                    let listed = stats
                        .iter()
                        .find(|s| s.addr == self.tb.vip_port(port))
                        .map_or(0, |s| s.reals.len());
                    if listed != REAL_SERVERS {
                        return Err(format!("{listed} real servers on port {port}"));
                    }
                }
                Ok(())
            },
        );
    }

    /// Requests `http://VIP/` until one is answered through director `i` (its lbd counts a
    /// new connection).
    #[track_caller]
    fn wait_requests_through(&self, i: usize) {
        let before = self.service_stats(i, SERVICE_PORT).totals.conns;
        wait::wait_ok(
            format!("a request to the VIP answered through {}", director_name(i)),
            TRAFFIC_TIMEOUT,
            || {
                let tally = self.tb.curl_vip(SERVICE_PORT, 1);
                let conns = self.service_stats(i, SERVICE_PORT).totals.conns;
                let ok = tally.replies.len() == 1 && tally.replies[0].status == 200;
                if ok && conns > before {
                    Ok(())
                } else {
                    Err(format!(
                        "{} connections (from {before}); curl:\n{tally}",
                        conns
                    ))
                }
            },
        );
    }

    /// Both directors' keepalived and lbd logs, tables and data-path counters.
    fn report(&self) -> String {
        let mut text = String::new();
        for i in [A, B] {
            let name = director_name(i);
            let host = self.host(i);
            text += &format!(
                "== {name} ({}) holds the VIP: {}\n",
                host.ip,
                self.holds_vip(i)
            );
            text += &format!(
                "{name} keepalived log:\n{}",
                cmd::tail(&self.keepalived_log(i), 40)
            );
            let log = std::fs::read_to_string(&self.files[i].log).unwrap_or_default();
            text += &format!("{name} lbd log:\n{}", cmd::tail(&log, 30));
            for args in [["-Ln", "--stats"].as_slice(), &["-Lnc"]] {
                let ran = lbd::lbadm(&host.ns, &self.files[i].socket, args, None);
                text += &format!(
                    "{name} $ lbadm {}\n{}{}",
                    args.join(" "),
                    ran.stdout,
                    ran.stderr
                );
            }
            let counters = lbd::data_path_counters(&host.ns, host.iface())
                .map(|c| lbd::name_counters(&c))
                .unwrap_or_else(|e| format!("(unavailable: {e})"));
            text += &format!("{name} data-path counters: {counters}\n");
        }
        text
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- failover: both directors at the failure ----");
            eprint!("{}", self.report());
            eprintln!("---- end of both directors ----");
        }
        // keepalived first (its VRRP child goes with it), then lbd (Lbd's drop), then the
        // testbed.
        for daemon in self.keepalived.iter_mut().flatten() {
            daemon.signal(libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while daemon.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

// ----- long-lived connections -----

/// Reads from `stream` into `buf` until `done(buf)` holds (`Ok(true)`) or the peer closes
/// (`Ok(false)`); an error if `deadline` passes first.
fn read_until(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    done: impl Fn(&[u8]) -> bool,
) -> Result<bool, String> {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| format!("setting a read timeout: {e}"))?;
    let mut chunk = [0u8; 64 * 1024];
    while !done(buf) {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    return Err(format!("nothing more after {} bytes: timed out", buf.len()));
                }
            }
            Err(e) => return Err(format!("after {} bytes: {e}", buf.len())),
        }
    }
    Ok(true)
}

/// [`read_until`] where the peer closing first is an error too.
fn read_until_done(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    done: impl Fn(&[u8]) -> bool,
) -> Result<(), String> {
    match read_until(stream, buf, deadline, done)? {
        true => Ok(()),
        false => Err(format!("closed by the peer after {} bytes", buf.len())),
    }
}

fn connect(tb: &Testbed, port: u16) -> Result<TcpStream, String> {
    let to = SocketAddr::V4(SocketAddrV4::new(tb.vip(), port));
    tb.client
        .ns
        .enter(|| TcpStream::connect_timeout(&to, Duration::from_secs(3)))
        .map_err(|e| format!("connecting to {to}: {e}"))
}

fn local_port(stream: &TcpStream) -> u16 {
    stream.local_addr().expect("a connected socket").port()
}

/// A connection to the TCP echo behind VIP:23: greeted with the real server's name, then
/// every line comes back.
struct EchoSession {
    stream: TcpStream,
    port: u16,
    /// The real server that greeted (`rs2`).
    real: String,
    exchanges: u32,
}

impl EchoSession {
    fn open(tb: &Testbed) -> Result<EchoSession, String> {
        let mut stream = connect(tb, ECHO_PORT)?;
        let port = local_port(&stream);
        let mut greeting = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        read_until_done(&mut stream, &mut greeting, deadline, |b| b.ends_with(b"\n"))
            .map_err(|e| format!("echo session from port {port}: greeting: {e}"))?;
        let real = String::from_utf8_lossy(&greeting).trim().to_owned();
        Ok(EchoSession {
            stream,
            port,
            real,
            exchanges: 0,
        })
    }

    /// Sends one line and reads it back.
    fn exchange(&mut self, what: &str) -> Result<(), String> {
        self.exchanges += 1;
        let line = format!("{what} #{} from port {}\n", self.exchanges, self.port);
        let fail = |e: String| format!("echo session from port {} ({}): {e}", self.port, self.real);
        self.stream
            .write_all(line.as_bytes())
            .map_err(|e| fail(format!("writing: {e}")))?;
        let mut back = Vec::new();
        let deadline = Instant::now() + SESSION_TIMEOUT;
        read_until_done(&mut self.stream, &mut back, deadline, |b| {
            b.len() >= line.len()
        })
        .map_err(fail)?;
        if back != line.as_bytes() {
            return Err(fail(format!(
                "sent {line:?}, got back {:?}",
                String::from_utf8_lossy(&back)
            )));
        }
        Ok(())
    }
}

/// An HTTP download of `/files/<DOWNLOAD_FILE>` from VIP:80 that the test reads in steps.
/// While it does not read, the client's closed receive window holds the rest back at the
/// real server, so the connection has data to come when the VIP moves.
struct Download {
    stream: TcpStream,
    port: u16,
    /// Everything received: the header, then the body.
    received: Vec<u8>,
}

impl Download {
    fn start(tb: &Testbed) -> Result<Download, String> {
        let mut stream = connect(tb, SERVICE_PORT)?;
        let port = local_port(&stream);
        let request = format!(
            "GET /files/{DOWNLOAD_FILE} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            tb.vip()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("download from port {port}: sending the request: {e}"))?;
        Ok(Download {
            stream,
            port,
            received: Vec::new(),
        })
    }

    /// Where the body starts, once the header is in.
    fn body_start(received: &[u8]) -> Option<usize> {
        received
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4)
    }

    /// Reads until at least `bytes` of the body are in.
    fn read_body(&mut self, bytes: usize) -> Result<(), String> {
        let deadline = Instant::now() + SESSION_TIMEOUT;
        read_until_done(&mut self.stream, &mut self.received, deadline, |r| {
            Self::body_start(r).is_some_and(|start| r.len() - start >= bytes)
        })
        .map_err(|e| format!("download from port {}: {e}", self.port))
    }

    /// Reads to the end (nginx closes) and returns the body, after checking the status.
    fn finish(mut self) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + SESSION_TIMEOUT;
        let port = self.port;
        // Never done: read until nginx closes (`Connection: close`).
        read_until(&mut self.stream, &mut self.received, deadline, |_| false)
            .map_err(|e| format!("download from port {port}: {e}"))?;
        let start = Self::body_start(&self.received)
            .ok_or_else(|| format!("download from port {port}: no complete header"))?;
        let header = String::from_utf8_lossy(&self.received[..start]).into_owned();
        if !header.starts_with("HTTP/1.1 200 ") {
            return Err(format!("download from port {port}: header {header:?}"));
        }
        Ok(self.received.split_off(start))
    }
}

/// The sessions a test holds open across VRRP transitions.
struct Sessions {
    echo: Vec<EchoSession>,
    downloads: Vec<Download>,
    content: Vec<u8>,
}

impl Sessions {
    /// Opens echo sessions until there are [`ECHO_SESSIONS`] spread over at least two real
    /// servers (with `mh-port` each client port hashes on its own), and the downloads.
    fn open(pair: &Pair) -> Sessions {
        let tb = &pair.tb;
        let mut echo: Vec<EchoSession> = Vec::new();
        let spread = |echo: &[EchoSession]| {
            let mut reals: Vec<&str> = echo.iter().map(|s| s.real.as_str()).collect();
            reals.sort_unstable();
            reals.dedup();
            reals.len()
        };
        while echo.len() < ECHO_SESSIONS || spread(&echo) < 2 {
            assert!(
                echo.len() < MAX_ECHO_SESSIONS,
                "{MAX_ECHO_SESSIONS} echo sessions all went to {:?}: mh-port does not spread \
                 client ports\n{}",
                echo[0].real,
                pair.report()
            );
            echo.push(EchoSession::open(tb).unwrap_or_else(|e| panic!("{e}\n{}", pair.report())));
        }
        let content: Vec<u8> = (0..DOWNLOAD_SIZE as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        tb.publish_file(DOWNLOAD_FILE, &content);
        let mut downloads = Vec::new();
        for _ in 0..DOWNLOADS {
            let mut d = Download::start(tb).unwrap_or_else(|e| panic!("{e}\n{}", pair.report()));
            d.read_body(64 * 1024)
                .unwrap_or_else(|e| panic!("{e}\n{}", pair.report()));
            downloads.push(d);
        }
        let by_real: Vec<String> = echo
            .iter()
            .map(|s| format!("{}->{}", s.port, s.real))
            .collect();
        println!(
            "opened {} echo sessions ({}) and {DOWNLOADS} downloads (ports {:?})",
            echo.len(),
            by_real.join(" "),
            downloads.iter().map(|d| d.port).collect::<Vec<_>>()
        );
        Sessions {
            echo,
            downloads,
            content,
        }
    }

    /// One more line on every echo session, and every download read on to `body_bytes`.
    #[track_caller]
    fn talk(&mut self, pair: &Pair, what: &str, body_bytes: usize) {
        for session in &mut self.echo {
            session
                .exchange(what)
                .unwrap_or_else(|e| panic!("{e}\n{}", pair.report()));
        }
        for d in &mut self.downloads {
            d.read_body(body_bytes)
                .unwrap_or_else(|e| panic!("{e}\n{}", pair.report()));
        }
    }

    /// Every session in director `i`'s connection table, to the real server `expected`
    /// gives for its client port (the echo sessions' greeting; for the downloads, where the
    /// first director sent them).
    #[track_caller]
    fn assert_in_table(&self, pair: &Pair, i: usize, expected: &[(u16, String)]) {
        let table = pair.connections(i);
        let client = pair.tb.client.ip;
        for (port, real) in expected {
            let source = format!("{client}:{port}");
            let entry = table.iter().find(|c| c.client == source);
            assert!(
                entry.is_some_and(|c| &c.real == real),
                "{} sends the client's connection from port {port} to {:?}, not {real}\n{}",
                director_name(i),
                entry.map(|c| &c.line),
                pair.report()
            );
        }
    }

    /// `(client port, real server address:port)` of every echo session, from its greeting.
    fn echo_reals(&self, tb: &Testbed) -> Vec<(u16, String)> {
        self.echo
            .iter()
            .map(|s| {
                let n: usize = s
                    .real
                    .strip_prefix("rs")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("greeted by {:?}", s.real));
                (s.port, format!("{}:{ECHO_PORT}", tb.rip(n)))
            })
            .collect()
    }

    /// `(client port, real server)` of every download in director `i`'s table.
    #[track_caller]
    fn download_reals(&self, pair: &Pair, i: usize) -> Vec<(u16, String)> {
        let table = pair.connections(i);
        let client = pair.tb.client.ip;
        self.downloads
            .iter()
            .map(|d| {
                let source = format!("{client}:{}", d.port);
                let entry = table
                    .iter()
                    .find(|c| c.client == source)
                    .unwrap_or_else(|| {
                        panic!(
                            "no entry for the download from port {} on {}\n{}",
                            d.port,
                            director_name(i),
                            pair.report()
                        )
                    });
                (d.port, entry.real.clone())
            })
            .collect()
    }

    /// Reads every download to its end and checks it byte for byte, and that the real server
    /// `reals` names logged it (one request each, no retry on another connection).
    #[track_caller]
    fn finish(self, pair: &Pair, reals: &[(u16, String)]) {
        let tb = &pair.tb;
        for d in self.downloads {
            let port = d.port;
            let body = d
                .finish()
                .unwrap_or_else(|e| panic!("{e}\n{}", pair.report()));
            assert!(
                body == self.content,
                "the download from port {port} is corrupt: {} bytes of {}",
                body.len(),
                self.content.len()
            );
            let (_, real) = reals.iter().find(|(p, _)| *p == port).expect("known port");
            let local = tb.vip_port(SERVICE_PORT);
            let remote = format!("{}:{port} 200", tb.client.ip);
            let logged: Vec<String> = (1..=REAL_SERVERS)
                .filter(|&r| {
                    let log = tb.dir().join(format!("rs{r}")).join("access.log");
                    std::fs::read_to_string(log)
                        .unwrap_or_default()
                        .lines()
                        .any(|l| l == format!("{local} {remote}"))
                })
                .map(|r| format!("{}:{SERVICE_PORT}", tb.rip(r)))
                .collect();
            assert_eq!(
                logged,
                std::slice::from_ref(real),
                "which real servers logged the download from port {port}"
            );
        }
        println!(
            "every download complete and intact; {} echo sessions still answering",
            self.echo.len()
        );
    }
}

/// Scenario steps 1 and 2: both directors agree, the client's traffic goes through the
/// master, and the long-lived connections are open. Returns the sessions and where the
/// master sent the downloads.
fn before_failover(pair: &Pair) -> (Sessions, Vec<(u16, String)>) {
    let tb = &pair.tb;
    // Same file, same table: with no traffic yet the listings are identical.
    assert_eq!(
        pair.lbadm(A, &["-Ln"]),
        pair.lbadm(B, &["-Ln"]),
        "the directors' tables differ"
    );
    let tally = tb.curl_vip(SERVICE_PORT, 6);
    tally.assert_all_ok();
    println!("through director: {:?}", tally.counts());
    assert!(
        pair.service_stats(A, SERVICE_PORT).totals.conns >= 6,
        "the master did not count the requests\n{}",
        pair.report()
    );
    let mut sessions = Sessions::open(pair);
    sessions.talk(pair, "before the failover", 128 * 1024);
    sessions.assert_in_table(pair, A, &sessions.echo_reals(tb));
    let download_reals = sessions.download_reals(pair, A);
    // The backup has seen none of it: the master alone answers for the VIP.
    for port in [SERVICE_PORT, ECHO_PORT] {
        let totals = pair.service_stats(B, port).totals;
        assert_eq!(
            (totals.conns, totals.in_pkts),
            (0, 0),
            "director2 forwarded VIP:{port} traffic while backup\n{}",
            pair.report()
        );
    }
    (sessions, download_reals)
}

/// Scenario step 3, after the master failed: the backup holds the VIP, new requests go
/// through it, and the connections opened through the master carry on through it, each to the
/// same real server.
fn after_failover(
    pair: &mut Pair,
    failed: Instant,
    sessions: &mut Sessions,
    downloads: &[(u16, String)],
) {
    pair.wait_master(B);
    let moved = failed.elapsed();
    pair.wait_requests_through(B);
    println!(
        "after the failure, director2 held the VIP within {moved:?} and answered a request \
         within {:?}",
        failed.elapsed()
    );
    let tb = &pair.tb;
    let before = pair.service_stats(B, SERVICE_PORT).totals.conns;
    let tally = tb.curl_vip(SERVICE_PORT, 6);
    tally.assert_all_ok();
    println!("through director2: {:?}", tally.counts());
    let web = pair.service_stats(B, SERVICE_PORT).totals;
    assert!(
        web.conns >= before + 6,
        "director2 counted {} new connections for 6 requests\n{}",
        web.conns - before,
        pair.report()
    );

    sessions.talk(pair, "after the failover", 1 << 20);
    // director2 picked them up mid-flow, each to the real server director had chosen.
    sessions.assert_in_table(pair, B, &sessions.echo_reals(tb));
    sessions.assert_in_table(pair, B, downloads);
    let echo = pair.service_stats(B, ECHO_PORT).totals;
    assert!(
        echo.conns >= sessions.echo.len() as u64 && echo.in_pkts > 0,
        "director2 did not count the echo sessions: {echo}\n{}",
        pair.report()
    );
    println!("director2: web {web}; echo {echo}");
}

/// The master's keepalived stops (SIGTERM: it sends a priority-0 advert and removes the VIP):
/// the backup takes over and the connections survive; then the master comes back, preempts,
/// and they survive that too.
#[test]
fn backup_takes_over_when_master_keepalived_stops() {
    let mut pair = Pair::start();
    // The README's sample is one keepalived accepts, in a namespace with an eth0.
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../lb-user/src/keepalived/two-directors.conf"
    );
    let ran = pair
        .tb
        .director
        .ns
        .try_run(&["keepalived", "--config-test", "--use-file", sample], None);
    assert!(
        ran.success(),
        "keepalived refuses the README's sample:\n{ran}"
    );

    let (mut sessions, downloads) = before_failover(&pair);

    let failed = Instant::now();
    pair.stop_keepalived(A);
    after_failover(&mut pair, failed, &mut sessions, &downloads);

    // The master returns: it has the higher priority, so it preempts.
    let back = Instant::now();
    pair.start_keepalived(A);
    pair.wait_master(A);
    let moved = back.elapsed();
    pair.wait_requests_through(A);
    println!(
        "after its keepalived restarted, director held the VIP again within {moved:?} and \
         answered a request within {:?}",
        back.elapsed()
    );
    sessions.talk(&pair, "after the master came back", 2 << 20);
    sessions.assert_in_table(&pair, A, &sessions.echo_reals(&pair.tb));
    sessions.assert_in_table(&pair, A, &downloads);
    sessions.finish(&pair, &downloads);
    pair.tb.curl_vip(SERVICE_PORT, 6).assert_all_ok();
}

/// The master's link fails (its switch port goes down, as a pulled cable): it can no longer
/// forward anything, keepalived on the backup hears no more adverts and takes the VIP, and
/// the connections survive through the backup alone.
#[test]
fn backup_takes_over_when_master_link_fails() {
    let mut pair = Pair::start();
    let (mut sessions, downloads) = before_failover(&pair);

    let failed = Instant::now();
    let port = pair.tb.director.switch_port.clone();
    pair.tb
        .switch()
        .run(&["ip", "link", "set", "dev", &port, "down"]);
    after_failover(&mut pair, failed, &mut sessions, &downloads);
    sessions.talk(&pair, "later", 2 << 20);
    sessions.finish(&pair, &downloads);
    // The link down is what director's keepalived saw.
    assert!(
        pair.keepalived_log(A).contains("Entering FAULT STATE"),
        "director's keepalived did not notice its link going down\n{}",
        pair.report()
    );
}
