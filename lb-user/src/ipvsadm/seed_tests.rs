//! The sessions of the seed articles (`/work/shared/seeds`), replayed with `lbadm`: every
//! command they type parses to the change ipvsadm makes, and every listing they show comes
//! out byte for byte. The articles' pasted outputs lost their trailing blanks (and sometimes
//! the column padding); the expected texts here are those outputs with ipvsadm's real spacing.

use std::net::{IpAddr, Ipv4Addr};

use super::{
    Invocation, ListOptions, format_list, format_save, names::NoNames, parse::parse_restore_with,
    parse_with, testutil::FakeNames,
};
use crate::model::{
    Command, Forward, Rates, RealSpec, RealStatus, ServiceAddr, ServiceStatus, Snapshot, Stats,
    Timeouts,
};

/// Just enough of lbd to replay the sessions: applies changes to a snapshot.
struct Director {
    snapshot: Snapshot,
}

impl Director {
    fn new() -> Self {
        Director {
            snapshot: Snapshot {
                conn_table_size: 4096,
                services: vec![],
                timeouts: Timeouts::default(),
            },
        }
    }

    fn service(&mut self, addr: ServiceAddr) -> &mut ServiceStatus {
        self.snapshot
            .services
            .iter_mut()
            .find(|s| s.spec.addr == addr)
            .unwrap_or_else(|| panic!("no service {addr}"))
    }

    fn real(&mut self, service: ServiceAddr, addr: impl Into<IpAddr>) -> &mut RealStatus {
        let addr = addr.into();
        self.service(service)
            .reals
            .iter_mut()
            .find(|r| r.spec.addr == addr)
            .unwrap_or_else(|| panic!("no real server {addr}"))
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::AddService { service } => {
                assert!(
                    self.snapshot
                        .services
                        .iter()
                        .all(|s| s.spec.addr != service.addr)
                );
                self.snapshot.services.push(ServiceStatus {
                    spec: service,
                    stats: Stats::default(),
                    rates: Rates::default(),
                    reals: vec![],
                });
            }
            Command::EditService { service } => {
                let addr = service.addr;
                self.service(addr).spec = service;
            }
            Command::DeleteService { service } => {
                self.snapshot.services.retain(|s| s.spec.addr != service)
            }
            Command::AddReal { service, real } => self.service(service).reals.push(RealStatus {
                spec: real,
                active_conns: 0,
                inactive_conns: 0,
                persistent_conns: 0,
                stats: Stats::default(),
                rates: Rates::default(),
            }),
            Command::EditReal { service, real } => {
                let addr = real.addr;
                self.real(service, addr).spec = real;
            }
            Command::DeleteReal {
                service,
                addr,
                port,
            } => self
                .service(service)
                .reals
                .retain(|r| (r.spec.addr, r.spec.port) != (addr, port)),
            Command::Clear => self.snapshot.services.clear(),
            Command::Zero { service } => {
                for s in &mut self.snapshot.services {
                    if service.is_none_or(|a| a == s.spec.addr) {
                        s.stats = Stats::default();
                        s.rates = Rates::default();
                        for r in &mut s.reals {
                            r.stats = Stats::default();
                            r.rates = Rates::default();
                        }
                    }
                }
            }
            Command::SetTimeouts { timeouts } => self.snapshot.timeouts = timeouts,
            Command::SetSysctl { .. }
            | Command::StartDaemon { .. }
            | Command::StopDaemon { .. } => {}
        }
    }

    /// Runs one `ipvsadm ...` line of a session; returns what it prints.
    fn run(&mut self, line: &str) -> String {
        let words: Vec<String> = line
            .split_whitespace()
            .skip(1) // the program name
            .map(str::to_owned)
            .collect();
        let parsed =
            parse_with(&words, &FakeNames::new()).unwrap_or_else(|e| panic!("{line}: {e}"));
        match parsed.invocation {
            Invocation::Apply(commands) => {
                for c in commands {
                    self.apply(c);
                }
                String::new()
            }
            Invocation::List(opts) => format_list(&self.snapshot, &opts, &NoNames).unwrap(),
            Invocation::Save { numeric } => format_save(&self.snapshot, numeric, &NoNames),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn restore(&mut self, input: &str) {
        for c in parse_restore_with(input, &FakeNames::new()).unwrap() {
            self.apply(c);
        }
    }
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// Seed 000 (CentOS 7), LVS/TUN. The article pasted its DR listing here ("Route"); with
/// `-i` ipvsadm prints "Tunnel".
#[test]
fn seed_000_tunnel() {
    let mut d = Director::new();
    for line in [
        "ipvsadm -C",
        "ipvsadm -A -t 192.168.1.99:80 -s rr",
        "ipvsadm -a -t 192.168.1.99:80 -r 192.168.1.12 -i",
        "ipvsadm -a -t 192.168.1.99:80 -r 192.168.1.13 -i",
    ] {
        assert_eq!(d.run(line), "");
    }
    assert_eq!(
        d.run("ipvsadm -Ln"),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  192.168.1.99:80 rr\n  \
         -> 192.168.1.12:80              Tunnel  1      0          0         \n  \
         -> 192.168.1.13:80              Tunnel  1      0          0         \n"
    );
}

/// Seed 000, LVS/DR, then save with `-Sn`, clear, and restore from the saved file.
#[test]
fn seed_000_direct_routing_save_and_restore() {
    let mut d = Director::new();
    for line in [
        "ipvsadm -C",
        "ipvsadm -A -t 192.168.1.99:80 -s rr",
        "ipvsadm -a -t 192.168.1.99:80 -r 192.168.1.12 -g",
        "ipvsadm -a -t 192.168.1.99:80 -r 192.168.1.13 -g",
    ] {
        d.run(line);
    }
    let header = "IP Virtual Server version 1.2.1 (size=4096)\n\
                  Prot LocalAddress:Port Scheduler Flags\n  \
                  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
                  TCP  192.168.1.99:80 rr\n";
    assert_eq!(
        d.run("ipvsadm -Ln"),
        format!(
            "{header}  \
             -> 192.168.1.12:80              Route   1      0          0         \n  \
             -> 192.168.1.13:80              Route   1      0          0         \n"
        )
    );

    // After the curl tests of the article.
    let vip = d.snapshot.services[0].spec.addr;
    d.real(vip, ip(192, 168, 1, 12)).inactive_conns = 7;
    d.real(vip, ip(192, 168, 1, 13)).inactive_conns = 4;
    assert_eq!(
        d.run("ipvsadm -Ln"),
        format!(
            "{header}  \
             -> 192.168.1.12:80              Route   1      0          7         \n  \
             -> 192.168.1.13:80              Route   1      0          4         \n"
        )
    );

    let saved = d.run("ipvsadm -Sn");
    assert_eq!(
        saved,
        "-A -t 192.168.1.99:80 -s rr\n\
         -a -t 192.168.1.99:80 -r 192.168.1.12:80 -g -w 1\n\
         -a -t 192.168.1.99:80 -r 192.168.1.13:80 -g -w 1\n"
    );
    d.run("ipvsadm -C");
    assert_eq!(
        d.run("ipvsadm -Ln"),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    );
    // `cat ipvsadm.conf | ipvsadm --restore`
    assert_eq!(
        parse_with(&["--restore".to_owned()], &NoNames)
            .unwrap()
            .invocation,
        Invocation::Restore
    );
    d.restore(&saved);
    assert_eq!(
        d.run("ipvsadm -Ln"),
        format!(
            "{header}  \
             -> 192.168.1.12:80              Route   1      0          0         \n  \
             -> 192.168.1.13:80              Route   1      0          0         \n"
        )
    );
}

/// Seed 001 (CentOS 6), LVS/NAT with weights 3:1, switching schedulers with `-E`, zeroing
/// and reading counters, and a second service on port 23. The expected listings are the
/// article's, verbatim (its non-breaking spaces read as blanks), except three rows that lost
/// their trailing blanks in the copy.
#[test]
fn seed_001_nat() {
    const HEAD: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
";
    const STATS_HEAD: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
";
    let mut d = Director::new();
    d.run("ipvsadm -A -t 192.168.10.100:80 -s rr");
    d.run("ipvsadm -a -t 192.168.10.100:80 -r 172.16.20.100:80 -m -w 3");
    d.run("ipvsadm -a -t 192.168.10.100:80 -r 172.16.20.1:80 -m -w 1");
    assert_eq!(
        d.run("ipvsadm -l -n "),
        format!(
            "{HEAD}\
TCP  192.168.10.100:80 rr
  -> 172.16.20.1:80               Masq    1      0          0         
  -> 172.16.20.100:80             Masq    3      0          0         
"
        )
    );

    let vip = d.snapshot.services[0].spec.addr;
    let (rs1, rs2) = (ip(172, 16, 20, 100), ip(172, 16, 20, 1));
    d.run("ipvsadm -E -t 192.168.10.100:80 -s wlc");
    d.real(vip, rs2).inactive_conns = 3;
    d.real(vip, rs1).inactive_conns = 3;
    assert_eq!(
        d.run("ipvsadm -l -n"),
        format!(
            "{HEAD}\
TCP  192.168.10.100:80 wlc
  -> 172.16.20.1:80               Masq    1      0          3         
  -> 172.16.20.100:80             Masq    3      0          3         
"
        )
    );

    d.service(vip).stats.conns = 17;
    d.run("ipvsadm -Z -t 192.168.10.100:80");
    assert_eq!(
        d.run("ipvsadm -l -n --stats"),
        format!(
            "{STATS_HEAD}\
TCP  192.168.10.100:80                   0        0        0        0        0
  -> 172.16.20.1:80                      0        0        0        0        0
  -> 172.16.20.100:80                    0        0        0        0        0
"
        )
    );

    // After `ab -n 5000 -c 100`.
    let counters = |conns, in_pkts, out_pkts, in_bytes, out_bytes| Stats {
        conns,
        in_pkts,
        out_pkts,
        in_bytes,
        out_bytes,
    };
    d.service(vip).stats = counters(8334, 276749, 276376, 19924288, 32466424);
    d.real(vip, rs2).stats = counters(2723, 101478, 101339, 7305856, 11905439);
    d.real(vip, rs1).stats = counters(5611, 175271, 175037, 12618432, 20560985);
    assert_eq!(
        d.run("ipvsadm -l -n --stats"),
        format!(
            "{STATS_HEAD}\
TCP  192.168.10.100:80                8334   276749   276376 19924288 32466424
  -> 172.16.20.1:80                   2723   101478   101339  7305856 11905439
  -> 172.16.20.100:80                 5611   175271   175037 12618432 20560985
"
        )
    );
    d.real(vip, rs2).inactive_conns = 10214;
    d.real(vip, rs1).inactive_conns = 17823;
    assert_eq!(
        d.run("ipvsadm -l -n"),
        format!(
            "{HEAD}\
TCP  192.168.10.100:80 wlc
  -> 172.16.20.1:80               Masq    1      0          10214     
  -> 172.16.20.100:80             Masq    3      0          17823     
"
        )
    );

    d.run("ipvsadm -E -t 192.168.10.100:80 -s sh");
    d.real(vip, rs2).inactive_conns = 0;
    d.real(vip, rs1).inactive_conns = 0;
    assert_eq!(
        d.run("ipvsadm -l -n"),
        format!(
            "{HEAD}\
TCP  192.168.10.100:80 sh
  -> 172.16.20.1:80               Masq    1      0          0         
  -> 172.16.20.100:80             Masq    3      0          0         
"
        )
    );
    d.run("ipvsadm -Z -t 192.168.10.100:80");
    d.service(vip).stats = counters(15134, 75724, 75184, 5445456, 8826054);
    d.real(vip, rs1).stats = counters(15134, 75724, 75184, 5445456, 8826054);
    assert_eq!(
        d.run("ipvsadm -l -n --stats"),
        format!(
            "{STATS_HEAD}\
TCP  192.168.10.100:80               15134    75724    75184  5445456  8826054
  -> 172.16.20.1:80                      0        0        0        0        0
  -> 172.16.20.100:80                15134    75724    75184  5445456  8826054
"
        )
    );

    d.run("ipvsadm -E -t 192.168.10.100:80 -s wrr");
    d.real(vip, rs1).inactive_conns = 15002;
    assert_eq!(
        d.run("ipvsadm -l -n"),
        format!(
            "{HEAD}\
TCP  192.168.10.100:80 wrr
  -> 172.16.20.1:80               Masq    1      0          0         
  -> 172.16.20.100:80             Masq    3      0          15002     
"
        )
    );
    d.run("ipvsadm -Z -t 192.168.10.100:80");
    d.service(vip).stats = counters(28852, 331710, 330048, 23870364, 38780354);
    d.real(vip, rs2).stats = counters(7213, 83052, 81941, 5967600, 9626348);
    d.real(vip, rs1).stats = counters(21639, 248658, 248107, 17902764, 29154006);
    assert_eq!(
        d.run("ipvsadm -l -n --stats"),
        format!(
            "{STATS_HEAD}\
TCP  192.168.10.100:80               28852   331710   330048 23870364 38780354
  -> 172.16.20.1:80                   7213    83052    81941  5967600  9626348
  -> 172.16.20.100:80                21639   248658   248107 17902764 29154006
"
        )
    );

    // The telnet service (the article typed two blanks before -w); its last listing shows
    // port 80 back on rr with idle real servers.
    d.run("ipvsadm -A -t 192.168.10.100:23 -s rr");
    d.run("ipvsadm -a -t 192.168.10.100:23 -r 172.16.20.1:23 -m  -w 1");
    d.run("ipvsadm -a -t 192.168.10.100:23 -r 172.16.20.100:23 -m  -w 1");
    d.run("ipvsadm -E -t 192.168.10.100:80 -s rr");
    d.real(vip, rs1).inactive_conns = 0;
    assert_eq!(
        d.run("ipvsadm -l -n"),
        format!(
            "{HEAD}\
TCP  192.168.10.100:23 rr
  -> 172.16.20.1:23               Masq    1      0          0         
  -> 172.16.20.100:23             Masq    1      0          0         
TCP  192.168.10.100:80 rr
  -> 172.16.20.1:80               Masq    1      0          0         
  -> 172.16.20.100:80             Masq    3      0          0         
"
        )
    );
}

/// Seed 002: keepalived programs IPVS itself; the article only checks with `ipvsadm -Ln`.
#[test]
fn seed_002_keepalived_check() {
    let mut d = Director::new();
    d.apply(Command::AddService {
        service: crate::model::ServiceSpec {
            addr: ServiceAddr {
                protocol: crate::model::Protocol::Tcp,
                addr: ip(172, 16, 10, 50),
                port: 80,
            },
            scheduler: crate::model::Scheduler::Wrr,
            persistence: None,
            sched_flags: Default::default(),
        },
    });
    assert_eq!(
        d.run("ipvsadm -Ln"),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  172.16.10.50:80 wrr\n"
    );
}

/// Seed 003: LVS/TUN with three real servers.
#[test]
fn seed_003_tunnel_three_servers() {
    let mut d = Director::new();
    for line in [
        "$ ipvsadm -A -t 10.10.24.88:80 -s rr",
        "$ ipvsadm -a -t 10.10.24.88:80 -r 10.10.24.21:80 -i",
        "$ ipvsadm -a -t 10.10.24.88:80 -r 10.10.24.22:80 -i",
        "$ ipvsadm -a -t 10.10.24.88:80 -r 10.10.24.23:80 -i",
    ] {
        d.run(line.trim_start_matches("$ "));
    }
    assert_eq!(
        d.run("ipvsadm -ln"),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  10.10.24.88:80 rr\n  \
         -> 10.10.24.21:80               Tunnel  1      0          0         \n  \
         -> 10.10.24.22:80               Tunnel  1      0          0         \n  \
         -> 10.10.24.23:80               Tunnel  1      0          0         \n"
    );
}

/// Seed 004: the director's start/stop/status script (LVS/DR with wlc).
#[test]
fn seed_004_director_script() {
    let (vip, rip1, rip2, port) = ("172.16.16.172", "172.16.16.177", "172.16.16.178", "80");
    let mut d = Director::new();
    // start)
    d.run("/sbin/ipvsadm -C");
    d.run(&format!("/sbin/ipvsadm -A -t {vip}:{port}  -s wlc"));
    d.run(&format!(
        "/sbin/ipvsadm -a -t {vip}:{port} -r {rip1} -g -w 1"
    ));
    d.run(&format!(
        "/sbin/ipvsadm -a -t {vip}:{port} -r {rip2} -g -w 1"
    ));
    // status)
    assert_eq!(
        d.run("/sbin/ipvsadm -L -n"),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  172.16.16.172:80 wlc\n  \
         -> 172.16.16.177:80             Route   1      0          0         \n  \
         -> 172.16.16.178:80             Route   1      0          0         \n"
    );
    assert_eq!(
        d.snapshot.services[0].reals[0].spec,
        RealSpec {
            addr: ip(172, 16, 16, 177),
            port: 80,
            forward: Forward::Route,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: Default::default(),
        }
    );
    // stop)
    d.run("/sbin/ipvsadm -C");
    assert!(d.snapshot.services.is_empty());
}

/// Every ipvsadm command line found in the seeds parses.
#[test]
fn every_seed_command_line_parses() {
    let lines = [
        "-C",
        "-A -t 192.168.1.99:80 -s rr",
        "-a -t 192.168.1.99:80 -r 192.168.1.12 -i",
        "-a -t 192.168.1.99:80 -r 192.168.1.13 -g",
        "-Ln",
        "-Sn",
        "--restore",
        "-a -t 192.168.10.100:80 -r 172.16.20.100:80 -m -w 3",
        "-l -n",
        "-E -t 192.168.10.100:80 -s wlc",
        "-Z -t 192.168.10.100:80",
        "-l -n --stats",
        "-a -t 192.168.10.100:23 -r 172.16.20.1:23 -m  -w 1",
        "-ln",
        "-A -t 10.10.24.88:80 -s rr",
        "-a -t 10.10.24.88:80 -r 10.10.24.21:80 -i",
        "-A -t 172.16.16.172:80  -s wlc",
        "-a -t 172.16.16.172:80 -r 172.16.16.177 -g -w 1",
        "-L -n",
    ];
    for line in lines {
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        parse_with(&words, &NoNames).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    assert_eq!(
        parse_with(&["-Ln".to_owned()], &NoNames)
            .unwrap()
            .invocation,
        Invocation::List(ListOptions {
            numeric: true,
            ..ListOptions::default()
        })
    );
}
