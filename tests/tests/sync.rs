//! Connection synchronisation, ipvsadm's way (issue #15): `lbadm --start-daemon master` on
//! one director, `--start-daemon backup` on the other, IPVS's sync protocol between them over
//! multicast, and the backup takes over established connections whichever real server its
//! own scheduler would pick.
//!
//! The topology is the DR LAN with a second director (`lb_tests::testbed`): client .10,
//! director .11 (the master), director2 .9 (the backup), rs1..rs3, the VIP on whichever
//! director the test gives it (no VRRP here: the test moves the VIP and the client's
//! neighbour entry itself, which is what keepalived's gratuitous ARPs do).
//!
//! The two directors have the same services but not the same weights, so that the backup's
//! scheduler would send every rescheduled flow elsewhere: on the master the echo service
//! (VIP:23, `rr`) spreads over rs1, rs2 and rs3, on the backup only rs3 has weight; the
//! persistent web service (VIP:80, `-p`) has only rs2 on the master and only rs1 on the
//! backup. Without synchronisation the backup answers the sessions on rs1 and rs2 with
//! resets (no connection entry; a mid-flow segment is not a SYN) and sends the client's new
//! connection to rs1; with it, every session goes on with its real server and the new
//! connection follows the client's persistence template to rs2.

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{SocketAddr, SocketAddrV4, TcpStream},
    time::{Duration, Instant},
};

use lb_tests::{
    ECHO_PORT, SERVICE_PORT, Testbed,
    lbd::{self, Lbd, LbdFiles},
    testbed::Host,
    wait,
};

const MASTER: usize = 0;
const BACKUP: usize = 1;
const REAL_SERVERS: usize = 3;
/// Echo sessions held open across the failover (`rr` on the master: two per real server).
const SESSIONS: usize = 6;
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
const SESSION_TIMEOUT: Duration = Duration::from_secs(20);
const SYNCID: &str = "7";

struct Pair {
    lbd: [Option<Lbd>; 2],
    files: [LbdFiles; 2],
    /// Last: torn down after the daemons.
    tb: Testbed,
}

impl Pair {
    fn start() -> Pair {
        let tb = Testbed::builder()
            .backup_director()
            .real_servers(REAL_SERVERS)
            .build();
        let files = ["master", "backup"].map(|name| {
            let dir = tb.dir().join(name);
            std::fs::create_dir_all(&dir).expect("director dir");
            LbdFiles::in_dir(&dir)
        });
        let mut pair = Pair {
            lbd: [None, None],
            files,
            tb,
        };
        for i in [MASTER, BACKUP] {
            pair.start_lbd(i);
        }
        pair
    }

    fn host(&self, i: usize) -> &Host {
        match i {
            MASTER => &self.tb.director,
            _ => self.tb.director2.as_ref().expect("a second director"),
        }
    }

    fn start_lbd(&mut self, i: usize) {
        self.lbd[i] = Some(Lbd::start_with(
            &self.host(i).ns,
            self.tb.director_ifaces(),
            self.tb.xdp_mode(),
            &self.files[i],
            &[],
        ));
    }

    fn stop_lbd(&mut self, i: usize) {
        let status = self.lbd[i].take().expect("lbd runs").stop();
        assert!(
            status.success(),
            "lbd exited with {status}\n{}",
            self.report()
        );
    }

    fn try_lbadm(&self, i: usize, args: &[&str]) -> lb_tests::cmd::Ran {
        lbd::lbadm(&self.host(i).ns, &self.files[i].socket, args, None)
    }

    #[track_caller]
    fn lbadm(&self, i: usize, args: &[&str]) -> String {
        let ran = self.try_lbadm(i, args);
        assert!(
            ran.success(),
            "lbadm {args:?} failed:\n{ran}\n{}",
            self.report()
        );
        ran.stdout
    }

    /// Director `i`'s services: the echo service over every real server (weights
    /// `echo_weights`), the persistent web service likewise (`web_weights`).
    fn configure(&self, i: usize, echo_weights: [u32; 3], web_weights: [u32; 3]) {
        let vip = self.tb.vip();
        let mut rules =
            format!("-A -t {vip}:{ECHO_PORT} -s rr\n-A -t {vip}:{SERVICE_PORT} -s rr -p 600\n");
        for r in 1..=REAL_SERVERS {
            let rip = self.tb.rip(r);
            rules += &format!(
                "-a -t {vip}:{ECHO_PORT} -r {rip} -g -w {}\n-a -t {vip}:{SERVICE_PORT} -r {rip} -g -w {}\n",
                echo_weights[r - 1],
                web_weights[r - 1]
            );
        }
        let ran = lbd::lbadm(
            &self.host(i).ns,
            &self.files[i].socket,
            &["-R"],
            Some(&rules),
        );
        assert!(ran.success(), "lbadm -R:\n{ran}");
    }

    /// Gives the VIP to director `to` (and takes it from the other), and points the client's
    /// neighbour entry for it at `to`, as a VRRP failover with gratuitous ARP does.
    fn move_vip(&self, to: usize) {
        let vip = format!("{}/32", self.tb.vip());
        let from = self.host(1 - to);
        from.ns
            .try_run(&["ip", "address", "del", &vip, "dev", from.iface()], None);
        let host = self.host(to);
        host.ns
            .run(&["ip", "address", "replace", &vip, "dev", host.iface()]);
        let client = &self.tb.client;
        client.ns.run(&[
            "ip",
            "neigh",
            "replace",
            &self.tb.vip().to_string(),
            "lladdr",
            &host.mac(),
            "dev",
            client.iface(),
            "nud",
            "permanent",
        ]);
    }

    /// Director `i`'s `-Lnc`: (protocol, state, client, virtual, real) per entry.
    fn connections(&self, i: usize) -> Vec<[String; 5]> {
        self.lbadm(i, &["-Lnc"])
            .lines()
            .skip(2)
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                (f.len() == 6).then(|| [f[0], f[2], f[3], f[4], f[5]].map(|s| s.to_owned()))
            })
            .collect()
    }

    fn report(&self) -> String {
        let mut text = String::new();
        for (i, name) in ["master", "backup"].iter().enumerate() {
            let log = std::fs::read_to_string(&self.files[i].log).unwrap_or_default();
            text += &format!(
                "--- {name}'s lbd log (last lines) ---\n{}\n--- {name}'s -Lnc ---\n{}\n",
                lb_tests::cmd::tail(&log, 30),
                self.try_lbadm(i, &["-Lnc"]).stdout
            );
        }
        text
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
        for lbd in self.lbd.iter_mut().filter_map(Option::take) {
            lbd.stop();
        }
    }
}

/// A session with the TCP echo behind VIP:23, greeted with its real server's name.
struct Session {
    stream: TcpStream,
    port: u16,
    real: String,
    lines: u32,
}

impl Session {
    fn open(tb: &Testbed) -> Session {
        let to = SocketAddr::V4(SocketAddrV4::new(tb.vip(), ECHO_PORT));
        let stream = tb
            .client
            .ns
            .enter(|| TcpStream::connect_timeout(&to, Duration::from_secs(3)))
            .unwrap_or_else(|e| panic!("connecting to {to}: {e}"));
        let port = stream.local_addr().expect("connected").port();
        let mut session = Session {
            stream,
            port,
            real: String::new(),
            lines: 0,
        };
        let greeting = session.read_line().expect("the echo server's greeting");
        session.real = greeting.trim().to_owned();
        session
    }

    fn read_line(&mut self) -> Result<String, String> {
        self.stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + SESSION_TIMEOUT;
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\n") {
            match self.stream.read(&mut byte) {
                Ok(0) => return Err(format!("closed after {buf:?}")),
                Ok(_) => buf.push(byte[0]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if Instant::now() > deadline {
                        return Err("timed out".to_owned());
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// One line there and back.
    fn exchange(&mut self) -> Result<(), String> {
        self.lines += 1;
        let line = format!("line {} from port {}\n", self.lines, self.port);
        let (port, real) = (self.port, self.real.clone());
        let fail = |e: String| format!("session from port {port} on {real}: {e}");
        self.stream
            .write_all(line.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        let back = self.read_line().map_err(fail)?;
        if back != line {
            return Err(fail(format!("sent {line:?}, got {back:?}")));
        }
        Ok(())
    }
}

#[test]
fn a_backup_takes_over_synchronised_connections_and_templates() {
    let mut pair = Pair::start();
    // The master spreads sessions over every real server, and persists on rs2; the backup's
    // own choices would be rs3 and rs1.
    pair.configure(MASTER, [1, 1, 1], [0, 1, 0]);
    pair.configure(BACKUP, [0, 0, 1], [1, 0, 0]);

    // ipvsadm's commands, messages and listing.
    pair.lbadm(
        MASTER,
        &[
            "--start-daemon",
            "master",
            "--mcast-interface",
            "eth0",
            "--syncid",
            SYNCID,
        ],
    );
    pair.lbadm(
        BACKUP,
        &[
            "--start-daemon",
            "backup",
            "--mcast-interface",
            "eth0",
            "--syncid",
            SYNCID,
        ],
    );
    assert_eq!(
        pair.lbadm(MASTER, &["-L", "--daemon"]),
        "master sync daemon (mcast=eth0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    assert_eq!(
        pair.lbadm(BACKUP, &["-L", "--daemon"]),
        "backup sync daemon (mcast=eth0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    for (args, message) in [
        (
            &["--start-daemon", "master"][..],
            "Daemon has already run\n",
        ),
        (&["--stop-daemon", "backup"][..], "No daemon is running\n"),
        (
            &["--start-daemon", "backup", "--mcast-interface", "nosuch0"][..],
            "No such device\n",
        ),
    ] {
        let ran = pair.try_lbadm(MASTER, args);
        assert_eq!(
            (ran.status.code(), ran.stderr.as_str()),
            (Some(255), message),
            "{args:?}"
        );
    }
    assert_eq!(
        pair.lbadm(MASTER, &["-L", "--daemon"]).lines().count(),
        1,
        "a refused command changed nothing"
    );

    // Sessions and a persistent request through the master.
    pair.move_vip(MASTER);
    let mut sessions: Vec<Session> = (0..SESSIONS).map(|_| Session::open(&pair.tb)).collect();
    for s in &mut sessions {
        s.exchange()
            .unwrap_or_else(|e| panic!("{e}\n{}", pair.report()));
    }
    let reals: std::collections::BTreeSet<&str> =
        sessions.iter().map(|s| s.real.as_str()).collect();
    assert_eq!(
        reals.len(),
        REAL_SERVERS,
        "rr spread the sessions: {reals:?}"
    );
    let first = pair.tb.curl_vip(SERVICE_PORT, 1);
    assert_eq!(first.names(), vec!["rs2"], "{}", first.ran);

    // The backup lists them, each with the master's real server, and the template.
    let tb = &pair.tb;
    let client = tb.client.ip.to_string();
    let vip = tb.vip();
    let mut expected: Vec<[String; 5]> = sessions
        .iter()
        .map(|s| {
            let rip = tb.rip(s.real[2..].parse().expect("rsN"));
            [
                "TCP".to_owned(),
                "ESTABLISHED".to_owned(),
                format!("{client}:{}", s.port),
                format!("{vip}:{ECHO_PORT}"),
                format!("{rip}:{ECHO_PORT}"),
            ]
        })
        .collect();
    expected.push([
        "TCP".to_owned(),
        "NONE".to_owned(),
        format!("{client}:0"),
        format!("{vip}:{SERVICE_PORT}"),
        format!("{}:{SERVICE_PORT}", tb.rip(2)),
    ]);
    expected.sort();
    wait::wait_ok(
        "the backup to list the master's connections",
        SYNC_TIMEOUT,
        || {
            let mut listed: Vec<[String; 5]> = pair
                .connections(BACKUP)
                .into_iter()
                .filter(|c| c[1] != "FIN_WAIT" && c[1] != "TIME_WAIT")
                .collect();
            listed.sort();
            if listed == expected {
                Ok(())
            } else {
                Err(format!("listed {listed:?}\nexpected {expected:?}"))
            }
        },
    );

    // The master goes; the backup takes the VIP.
    pair.stop_lbd(MASTER);
    pair.move_vip(BACKUP);
    for s in &mut sessions {
        s.exchange()
            .unwrap_or_else(|e| panic!("after the failover: {e}\n{}", pair.report()));
    }
    // The client's new connection follows its persistence template.
    let after = pair.tb.curl_vip(SERVICE_PORT, 1);
    assert_eq!(after.names(), vec!["rs2"], "{}", after.ran);
    // And it was the backup that forwarded all that.
    let stats = pair.lbadm(BACKUP, &["-Ln", "--stats", "--exact"]);
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with(&format!("TCP  {vip}:{ECHO_PORT}"))
                && l.split_whitespace().nth(3).is_some_and(|pkts| pkts != "0")),
        "the backup forwarded nothing:\n{stats}"
    );

    // The daemon's settings outlive lbd.
    pair.stop_lbd(BACKUP);
    pair.start_lbd(BACKUP);
    assert_eq!(
        pair.lbadm(BACKUP, &["-L", "--daemon"]),
        "backup sync daemon (mcast=eth0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
    );
    pair.lbadm(BACKUP, &["--stop-daemon", "backup"]);
    assert_eq!(pair.lbadm(BACKUP, &["-L", "--daemon"]), "");
}
