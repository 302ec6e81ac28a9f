//! Layouts compared byte for byte with what ipvsadm prints for the same table.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::{
    ipvsadm::{
        names::NoNames,
        parse::parse_restore_with,
        testutil::{FakeNames, LONG_NAME},
    },
    model::{Command, Netmask, Persistence, Rates, RealSpec, ServiceSpec, Stats},
};

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn ip6(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn addr(protocol: Protocol, a: IpAddr, port: u16) -> ServiceAddr {
    ServiceAddr {
        protocol,
        addr: a,
        port,
    }
}

fn svc(addr: ServiceAddr, scheduler: Scheduler, reals: Vec<RealStatus>) -> ServiceStatus {
    ServiceStatus {
        spec: ServiceSpec {
            addr,
            scheduler,
            persistence: None,
            sched_flags: SchedFlags::default(),
        },
        stats: Stats::default(),
        rates: Rates::default(),
        reals,
    }
}

fn rs(
    a: IpAddr,
    port: u16,
    forward: Forward,
    weight: u32,
    active: u32,
    inactive: u32,
) -> RealStatus {
    RealStatus {
        spec: RealSpec {
            addr: a,
            port,
            forward,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: Default::default(),
        },
        active_conns: active,
        inactive_conns: inactive,
        persistent_conns: 0,
        stats: Stats::default(),
        rates: Rates::default(),
    }
}

fn snapshot(services: Vec<ServiceStatus>) -> Snapshot {
    Snapshot {
        conn_table_size: 4096,
        services,
        timeouts: Timeouts::default(),
    }
}

fn numeric() -> ListOptions {
    ListOptions {
        numeric: true,
        ..ListOptions::default()
    }
}

fn list(snap: &Snapshot, opts: ListOptions) -> String {
    format_list(snap, &opts, &FakeNames::new()).unwrap()
}

/// Two services of seed 001 given out of order, real servers out of order too.
fn nat_pair() -> Snapshot {
    let vip = ip(192, 168, 10, 100);
    let rs1 = ip(172, 16, 20, 100);
    let rs2 = ip(172, 16, 20, 1);
    snapshot(vec![
        svc(
            addr(Protocol::Tcp, vip, 80),
            Scheduler::Rr,
            vec![
                rs(rs1, 80, Forward::Masq, 3, 0, 0),
                rs(rs2, 80, Forward::Masq, 1, 0, 0),
            ],
        ),
        svc(
            addr(Protocol::Tcp, vip, 23),
            Scheduler::Rr,
            vec![
                rs(rs1, 23, Forward::Masq, 1, 0, 0),
                rs(rs2, 23, Forward::Masq, 1, 0, 0),
            ],
        ),
    ])
}

#[test]
fn plain_listing_sorted_like_ipvsadm() {
    assert_eq!(
        list(&nat_pair(), numeric()),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  192.168.10.100:23 rr\n  \
         -> 172.16.20.1:23               Masq    1      0          0         \n  \
         -> 172.16.20.100:23             Masq    1      0          0         \n\
         TCP  192.168.10.100:80 rr\n  \
         -> 172.16.20.1:80               Masq    1      0          0         \n  \
         -> 172.16.20.100:80             Masq    3      0          0         \n"
    );
}

/// `--nosort` shows services in lbd's order and real servers newest first, as IPVS keeps them.
#[test]
fn nosort_keeps_lbd_order() {
    let out = list(
        &nat_pair(),
        ListOptions {
            nosort: true,
            ..numeric()
        },
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[3], "TCP  192.168.10.100:80 rr");
    assert!(lines[4].starts_with("  -> 172.16.20.1:80 "), "{out}");
    assert!(lines[5].starts_with("  -> 172.16.20.100:80 "), "{out}");
    assert_eq!(lines[6], "TCP  192.168.10.100:23 rr");
}

#[test]
fn services_sort_by_protocol_then_address_then_port() {
    let a = |o: u8| ip(10, 0, 0, o);
    let snap = snapshot(vec![
        svc(addr(Protocol::Udp, a(1), 53), Scheduler::Rr, vec![]),
        svc(addr(Protocol::Tcp, a(2), 80), Scheduler::Rr, vec![]),
        svc(addr(Protocol::Tcp, a(1), 443), Scheduler::Rr, vec![]),
        svc(addr(Protocol::Tcp, a(1), 80), Scheduler::Rr, vec![]),
    ]);
    let out = list(&snap, numeric());
    let rows: Vec<&str> = out.lines().skip(3).collect();
    assert_eq!(
        rows,
        [
            "TCP  10.0.0.1:80 rr",
            "TCP  10.0.0.1:443 rr",
            "TCP  10.0.0.2:80 rr",
            "UDP  10.0.0.1:53 rr",
        ]
    );
}

#[test]
fn empty_table() {
    let snap = Snapshot {
        conn_table_size: 1048576,
        ..Snapshot::default()
    };
    assert_eq!(
        list(&snap, ListOptions::default()),
        "IP Virtual Server version 1.2.1 (size=1048576)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    );
}

#[test]
fn one_service_has_no_version_header() {
    let opts = ListOptions {
        service: Some(addr(Protocol::Tcp, ip(192, 168, 10, 100), 23)),
        ..numeric()
    };
    assert_eq!(
        list(&nat_pair(), opts),
        "Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  192.168.10.100:23 rr\n  \
         -> 172.16.20.1:23               Masq    1      0          0         \n  \
         -> 172.16.20.100:23             Masq    1      0          0         \n"
    );
    let missing = ListOptions {
        service: Some(addr(Protocol::Udp, ip(192, 168, 10, 100), 23)),
        ..numeric()
    };
    let e = format_list(&nat_pair(), &missing, &NoNames).unwrap_err();
    assert_eq!(e.to_string(), "No such service");
    assert_eq!(e.exit_code(), 1);
}

#[test]
fn persistence_mask_and_scheduler_flags() {
    let mut s = svc(
        addr(Protocol::Tcp, ip(10, 1, 1, 1), 443),
        Scheduler::Sh,
        vec![rs(ip(10, 2, 0, 1), 443, Forward::Route, 1, 5, 7)],
    );
    s.spec.persistence = Some(Persistence {
        timeout: 600,
        netmask: Netmask::V4(Ipv4Addr::new(255, 255, 255, 0)),
    });
    s.spec.sched_flags = SchedFlags {
        fallback: true,
        port: true,
        flag3: false,
    };
    let mut t = svc(
        addr(Protocol::Udp, ip(10, 1, 1, 1), 53),
        Scheduler::Rr,
        vec![],
    );
    t.spec.persistence = Some(Persistence {
        timeout: 300,
        netmask: Netmask::V4(Ipv4Addr::BROADCAST),
    });
    t.spec.sched_flags = SchedFlags {
        fallback: false,
        port: true,
        flag3: true,
    };
    let mut m = svc(
        addr(Protocol::Tcp, ip(10, 1, 1, 2), 80),
        Scheduler::Mh,
        vec![],
    );
    m.spec.sched_flags = SchedFlags {
        fallback: true,
        ..SchedFlags::default()
    };
    // ipvsadm names only sh's own flags for sh, so a lone flag-3 shows as "()".
    let mut odd = svc(
        addr(Protocol::Tcp, ip(10, 1, 1, 3), 80),
        Scheduler::Sh,
        vec![],
    );
    odd.spec.sched_flags = SchedFlags {
        flag3: true,
        ..SchedFlags::default()
    };
    let out = list(&snapshot(vec![s, t, m, odd]), numeric());
    let rows: Vec<&str> = out.lines().skip(3).collect();
    assert_eq!(
        rows,
        [
            "TCP  10.1.1.1:443 sh (sh-fallback,sh-port) persistent 600 mask 255.255.255.0",
            "  -> 10.2.0.1:443                 Route   1      5          7         ",
            "TCP  10.1.1.2:80 mh (mh-fallback)",
            "TCP  10.1.1.3:80 sh ()",
            "UDP  10.1.1.1:53 rr (flag-2,flag-3) persistent 300",
        ]
    );
}

#[test]
fn forwarding_labels_and_wide_numbers() {
    let snap = snapshot(vec![svc(
        addr(Protocol::Tcp, ip(10, 10, 24, 88), 80),
        Scheduler::Wlc,
        vec![
            rs(
                ip(10, 10, 24, 21),
                80,
                Forward::Tunnel,
                65535,
                1234567,
                1234567890,
            ),
            rs(ip(10, 10, 24, 22), 80, Forward::Route, 0, 0, 10214),
        ],
    )]);
    let out = list(&snap, numeric());
    let rows: Vec<&str> = out.lines().skip(4).collect();
    assert_eq!(
        rows,
        [
            "  -> 10.10.24.21:80               Tunnel  65535  1234567    1234567890",
            "  -> 10.10.24.22:80               Route   0      0          10214     ",
        ]
    );
}

#[test]
fn names_unless_numeric() {
    let snap = snapshot(vec![svc(
        addr(Protocol::Tcp, ip(10, 0, 0, 1), 80),
        Scheduler::Rr,
        vec![
            rs(ip(10, 0, 0, 2), 8080, Forward::Masq, 1, 0, 0),
            rs(ip(10, 0, 0, 3), 22, Forward::Masq, 1, 0, 0),
        ],
    )]);
    let out = list(&snap, ListOptions::default());
    let rows: Vec<&str> = out.lines().skip(3).collect();
    // The real server's name is cut to 28 bytes, as ipvsadm cuts it.
    assert_eq!(
        rows,
        [
            "TCP  web1.example.com:http rr",
            &format!(
                "  -> {} Masq    1      0          0         ",
                &LONG_NAME[..28]
            ),
            "  -> 10.0.0.3:ssh                 Masq    1      0          0         ",
        ]
    );
    let numeric_out = list(&snap, numeric());
    assert!(numeric_out.contains("TCP  10.0.0.1:80 rr\n"));
}

#[test]
fn long_service_names_are_cut_to_33_bytes() {
    let snap = snapshot(vec![svc(
        addr(Protocol::Tcp, ip(10, 0, 0, 2), 443),
        Scheduler::Rr,
        vec![],
    )]);
    let out = list(&snap, ListOptions::default());
    let row = out.lines().nth(3).unwrap();
    assert_eq!(row, format!("TCP  {} rr", &LONG_NAME[..28]));
}

#[test]
fn stats_layout_of_seed_001() {
    let mut snap = snapshot(vec![svc(
        addr(Protocol::Tcp, ip(192, 168, 10, 100), 80),
        Scheduler::Wlc,
        vec![
            rs(ip(172, 16, 20, 100), 80, Forward::Masq, 3, 0, 0),
            rs(ip(172, 16, 20, 1), 80, Forward::Masq, 1, 0, 0),
        ],
    )]);
    let service = &mut snap.services[0];
    service.stats = Stats {
        conns: 8334,
        in_pkts: 276749,
        out_pkts: 276376,
        in_bytes: 19924288,
        out_bytes: 32466424,
    };
    service.reals[0].stats = Stats {
        conns: 5611,
        in_pkts: 175271,
        out_pkts: 175037,
        in_bytes: 12618432,
        out_bytes: 20560985,
    };
    service.reals[1].stats = Stats {
        conns: 2723,
        in_pkts: 101478,
        out_pkts: 101339,
        in_bytes: 7305856,
        out_bytes: 11905439,
    };
    let opts = ListOptions {
        stats: true,
        ..numeric()
    };
    assert_eq!(
        list(&snap, opts),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  \
         -> RemoteAddress:Port\n\
         TCP  192.168.10.100:80                8334   276749   276376 19924288 32466424\n  \
         -> 172.16.20.1:80                   2723   101478   101339  7305856 11905439\n  \
         -> 172.16.20.100:80                 5611   175271   175037 12618432 20560985\n"
    );
}

#[test]
fn large_numbers_abbreviate_unless_exact() {
    let cases: [(u64, &str, &str); 8] = [
        (0, "        0", "        0"),
        (99_999_999, " 99999999", " 99999999"),
        (100_000_000, "  100000K", " 100000000"),
        (999_999_999, "  999999K", " 999999999"),
        (1_000_000_000, "    1000M", " 1000000000"),
        (99_999_999_999, "   99999M", " 99999999999"),
        (100_000_000_000, "     100G", " 100000000000"),
        (123_456_789_012_345_678, "  123456T", " 123456789012345678"),
    ];
    for (n, short, exact) in cases {
        let mut s = String::new();
        large_number(&mut s, n, false);
        assert_eq!(s, short, "{n}");
        let mut s = String::new();
        large_number(&mut s, n, true);
        assert_eq!(s, exact, "{n}");
    }
}

#[test]
fn stats_exact() {
    let mut snap = snapshot(vec![svc(
        addr(Protocol::Tcp, ip(10, 0, 0, 9), 80),
        Scheduler::Rr,
        vec![],
    )]);
    snap.services[0].stats = Stats {
        conns: 1,
        in_pkts: 123_456_789,
        out_pkts: 2,
        in_bytes: 98_765_432_109,
        out_bytes: 3,
    };
    let abbreviated = list(
        &snap,
        ListOptions {
            stats: true,
            ..numeric()
        },
    );
    assert_eq!(
        abbreviated.lines().nth(3).unwrap(),
        "TCP  10.0.0.9:80                         1  123456K        2   98765M        3"
    );
    let exact = list(
        &snap,
        ListOptions {
            stats: true,
            exact: true,
            ..numeric()
        },
    );
    assert_eq!(
        exact.lines().nth(3).unwrap(),
        "TCP  10.0.0.9:80                         1 123456789        2 98765432109        3"
    );
}

#[test]
fn rate_layout() {
    let mut snap = snapshot(vec![svc(
        addr(Protocol::Tcp, ip(192, 168, 1, 99), 80),
        Scheduler::Rr,
        vec![rs(ip(192, 168, 1, 12), 80, Forward::Route, 1, 0, 0)],
    )]);
    snap.services[0].rates = Rates {
        cps: 12,
        in_pps: 340,
        out_pps: 330,
        in_bps: 25000,
        out_bps: 400_000_000,
    };
    snap.services[0].reals[0].rates = Rates {
        cps: 12,
        in_pps: 340,
        out_pps: 330,
        in_bps: 25000,
        out_bps: 400_000_000,
    };
    let out = list(
        &snap,
        ListOptions {
            rate: true,
            ..numeric()
        },
    );
    assert_eq!(
        out,
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  \
         -> RemoteAddress:Port\n\
         TCP  192.168.1.99:80                    12      340      330    25000  400000K\n  \
         -> 192.168.1.12:80                    12      340      330    25000  400000K\n"
    );
}

#[test]
fn thresholds_persistent_conn_and_tunnel_info_layouts() {
    let mut real = rs(ip(192, 168, 1, 12), 80, Forward::Tunnel, 2, 3, 4);
    real.spec.upper_threshold = 100;
    real.spec.lower_threshold = 75;
    real.persistent_conns = 9;
    let snap = snapshot(vec![svc(
        addr(Protocol::Tcp, ip(192, 168, 1, 99), 80),
        Scheduler::Rr,
        vec![real, rs(ip(192, 168, 1, 13), 80, Forward::Route, 1, 0, 0)],
    )]);
    assert_eq!(
        list(
            &snap,
            ListOptions {
                thresholds: true,
                ..numeric()
            }
        ),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n  \
         -> RemoteAddress:Port\n\
         TCP  192.168.1.99:80 rr\n  \
         -> 192.168.1.12:80              100        75         3          4         \n  \
         -> 192.168.1.13:80              0          0          0          0         \n"
    );
    assert_eq!(
        list(
            &snap,
            ListOptions {
                persistent_conn: true,
                ..numeric()
            }
        ),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn \n  \
         -> RemoteAddress:Port\n\
         TCP  192.168.1.99:80 rr\n  \
         -> 192.168.1.12:80              2         9           3          4         \n  \
         -> 192.168.1.13:80              1         0           0          0         \n"
    );
    assert_eq!(
        list(
            &snap,
            ListOptions {
                tun_info: true,
                ..numeric()
            }
        ),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n\
         TCP  192.168.1.99:80 rr\n  \
         -> 192.168.1.12:80              Tunnel  ipip          2      3          4         \n  \
         -> 192.168.1.13:80              Route   n/a           1      0          0         \n"
    );
}

// ---- save ---------------------------------------------------------------------------------

#[test]
fn save_like_ipvsadm() {
    let mut snap = nat_pair();
    let web = &mut snap.services[0];
    web.spec.persistence = Some(Persistence {
        timeout: 600,
        netmask: Netmask::V4(Ipv4Addr::new(255, 255, 255, 0)),
    });
    web.spec.scheduler = Scheduler::Sh;
    web.spec.sched_flags = SchedFlags {
        fallback: true,
        port: false,
        flag3: false,
    };
    assert_eq!(
        format_save(&snap, true, &FakeNames::new()),
        "-A -t 192.168.10.100:23 -s rr\n\
         -a -t 192.168.10.100:23 -r 172.16.20.1:23 -m -w 1\n\
         -a -t 192.168.10.100:23 -r 172.16.20.100:23 -m -w 1\n\
         -A -t 192.168.10.100:80 -s sh -p 600 -M 255.255.255.0 -b sh-fallback\n\
         -a -t 192.168.10.100:80 -r 172.16.20.1:80 -m -w 1\n\
         -a -t 192.168.10.100:80 -r 172.16.20.100:80 -m -w 3\n"
    );
}

#[test]
fn save_without_numeric_writes_names() {
    let snap = snapshot(vec![svc(
        addr(Protocol::Tcp, ip(10, 0, 0, 1), 80),
        Scheduler::Wrr,
        vec![rs(ip(10, 0, 0, 2), 8080, Forward::Masq, 2, 0, 0)],
    )]);
    assert_eq!(
        format_save(&snap, false, &FakeNames::new()),
        format!(
            "-A -t web1.example.com:http -s wrr\n\
             -a -t web1.example.com:http -r {LONG_NAME}:8080 -m -w 2\n"
        )
    );
}

#[test]
fn save_keeps_thresholds_and_every_flag() {
    let mut real = rs(ip(10, 0, 0, 5), 53, Forward::Tunnel, 1, 0, 0);
    real.spec.upper_threshold = 200;
    real.spec.lower_threshold = 150;
    let mut s = svc(
        addr(Protocol::Udp, ip(10, 0, 0, 9), 53),
        Scheduler::Sh,
        vec![real],
    );
    s.spec.persistence = Some(Persistence {
        timeout: 300,
        netmask: Netmask::V4(Ipv4Addr::BROADCAST),
    });
    s.spec.sched_flags = SchedFlags {
        fallback: false,
        port: true,
        flag3: true,
    };
    assert_eq!(
        format_save(&snapshot(vec![s]), true, &NoNames),
        "-A -u 10.0.0.9:53 -s sh -p 300 -b sh-port,flag-3\n\
         -a -u 10.0.0.9:53 -r 10.0.0.5:53 -i -w 1 --tun-type ipip -x 200 -y 150\n"
    );
}

/// What lbd would hold after these commands (enough of it for save/restore).
fn apply_all(commands: &[Command]) -> Snapshot {
    let mut snap = snapshot(vec![]);
    for command in commands {
        match command {
            Command::AddService { service } => snap.services.push(ServiceStatus {
                spec: service.clone(),
                stats: Stats::default(),
                rates: Rates::default(),
                reals: vec![],
            }),
            Command::AddReal { service, real } => {
                let s = snap
                    .services
                    .iter_mut()
                    .find(|s| s.spec.addr == *service)
                    .unwrap();
                s.reals.push(RealStatus {
                    spec: real.clone(),
                    active_conns: 0,
                    inactive_conns: 0,
                    persistent_conns: 0,
                    stats: Stats::default(),
                    rates: Rates::default(),
                });
            }
            other => panic!("not in a save: {other:?}"),
        }
    }
    snap
}

#[test]
fn save_then_restore_gives_the_same_commands() {
    let rules = "\
-A -t 10.0.0.1:80 -s wlc
-a -t 10.0.0.1:80 -r 10.1.0.1:80 -g -w 1
-a -t 10.0.0.1:80 -r 10.1.0.2:80 -i -w 5 --tun-type ipip -x 1000
-A -t 10.0.0.1:443 -s sh -p 3600 -M 255.255.0.0 -b sh-fallback,sh-port
-a -t 10.0.0.1:443 -r 10.1.0.3:8443 -m -w 0 -x 10 -y 5
-A -t 10.0.0.2:0 -s rr -p 300
-a -t 10.0.0.2:0 -r 10.1.0.4:0 -g -w 1
-A -t 10.0.0.3:80 -s mh -b mh-port,flag-3
-A -t 10.0.0.4:80 -s rr -b flag-1,flag-2,flag-3
-A -u 10.0.0.1:53 -s lblcr
-a -u 10.0.0.1:53 -r 10.1.0.5:5353 -m -w 65535
";
    let names = FakeNames::new();
    let commands = parse_restore_with(rules, &names).unwrap();
    let saved = format_save(&apply_all(&commands), true, &names);
    // Already in ipvsadm's order, so the text itself comes back.
    assert_eq!(saved, rules);
    assert_eq!(parse_restore_with(&saved, &names).unwrap(), commands);
    // Saved with names, restored through the same names: same commands.
    let named = format_save(&apply_all(&commands), false, &names);
    assert_ne!(named, saved);
    assert_eq!(parse_restore_with(&named, &names).unwrap(), commands);
}

// ---- connections and timeouts -------------------------------------------------------------

fn conn(
    protocol: Protocol,
    expires_in: u32,
    state: &str,
    client: (IpAddr, u16),
    real: (IpAddr, u16),
) -> ConnectionStatus {
    ConnectionStatus {
        protocol,
        expires_in,
        state: state.to_owned(),
        client,
        virtual_addr: (ip(192, 168, 1, 99), 80),
        real,
    }
}

#[test]
fn connection_table() {
    let conns = [
        conn(
            Protocol::Tcp,
            14 * 60 + 58,
            "ESTABLISHED",
            (ip(192, 168, 1, 50), 51234),
            (ip(192, 168, 1, 12), 80),
        ),
        conn(
            Protocol::Tcp,
            65,
            "FIN_WAIT",
            (ip(10, 0, 0, 1), 40000),
            (ip(10, 0, 0, 3), 22),
        ),
        conn(
            Protocol::Udp,
            6000 * 60 + 5,
            "UDP",
            (ip(192, 168, 1, 51), 5353),
            (ip(192, 168, 1, 13), 80),
        ),
    ];
    assert_eq!(
        format_connections(&conns, &numeric(), &FakeNames::new()),
        "IPVS connection entries\n\
         pro expire state       source             virtual            destination\n\
         TCP 14:58  ESTABLISHED 192.168.1.50:51234 192.168.1.99:80    192.168.1.12:80\n\
         TCP 01:05  FIN_WAIT    10.0.0.1:40000     192.168.1.99:80    10.0.0.3:22\n\
         UDP 6000:05 UDP         192.168.1.51:5353  192.168.1.99:80    192.168.1.13:80\n"
    );
    let named = format_connections(&conns[1..2], &ListOptions::default(), &FakeNames::new());
    assert_eq!(
        named.lines().nth(2).unwrap(),
        "TCP 01:05  FIN_WAIT    web1.example.com:40000 192.168.1.99:http  10.0.0.3:ssh"
    );
}

#[test]
fn connection_table_with_persistence_columns() {
    let opts = ListOptions {
        connection: true,
        persistent_conn: true,
        ..numeric()
    };
    assert_eq!(
        format_connections(&[], &opts, &NoNames),
        "IPVS connection entries\n\
         pro expire state       source             virtual            destination        pe name          pe_data\n"
    );
}

#[test]
fn timeouts_and_daemon() {
    assert_eq!(
        format_timeouts(&Timeouts::default()),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    assert_eq!(
        format_timeouts(&Timeouts {
            tcp: 7200,
            tcp_fin: 60,
            udp: 30
        }),
        "Timeout (tcp tcpfin udp): 7200 60 30\n"
    );
    assert_eq!(format_daemon(&Default::default()), "");
}

/// libipvs compares addresses as a signed 32-bit difference: 192.168.x before 10.x, in
/// listings and in `-S`, services and real servers alike.
#[test]
fn addresses_sort_as_libipvs_compares_them() {
    let snap = snapshot(vec![
        svc(
            addr(Protocol::Tcp, ip(10, 0, 0, 1), 80),
            Scheduler::Rr,
            vec![
                rs(ip(10, 1, 0, 1), 80, Forward::Masq, 1, 0, 0),
                rs(ip(192, 168, 0, 1), 80, Forward::Masq, 1, 0, 0),
            ],
        ),
        svc(
            addr(Protocol::Tcp, ip(192, 168, 1, 1), 80),
            Scheduler::Rr,
            vec![],
        ),
        svc(
            addr(Protocol::Tcp, ip(172, 16, 0, 1), 80),
            Scheduler::Rr,
            vec![],
        ),
    ]);
    let out = list(&snap, numeric());
    let rows: Vec<&str> = out.lines().skip(3).map(str::trim_end).collect();
    assert_eq!(
        rows,
        [
            "TCP  172.16.0.1:80 rr",
            "TCP  192.168.1.1:80 rr",
            "TCP  10.0.0.1:80 rr",
            "  -> 192.168.0.1:80               Masq    1      0          0",
            "  -> 10.1.0.1:80                  Masq    1      0          0",
        ]
    );
}

#[test]
fn a_cyclic_order_is_sorted_without_panicking() {
    // 10.x < 100.x < 192.168.x < 10.x: no total order; glibc's merge sort still gives one.
    let snap = snapshot(
        [ip(192, 168, 0, 1), ip(100, 0, 0, 1), ip(10, 0, 0, 1)]
            .into_iter()
            .map(|a| svc(addr(Protocol::Tcp, a, 80), Scheduler::Rr, vec![]))
            .collect(),
    );
    let out = list(&snap, numeric());
    let rows: Vec<&str> = out.lines().skip(3).collect();
    // msort: [192.168] | [100, 10] -> [10, 100]; merge 192.168 vs 10: 192.168 first; then
    // 10 and 100.
    assert_eq!(
        rows,
        [
            "TCP  192.168.0.1:80 rr",
            "TCP  10.0.0.1:80 rr",
            "TCP  100.0.0.1:80 rr",
        ]
    );
}

// ---- IPv6 ---------------------------------------------------------------------------------
// The expected rows are those of the real ipvsadm 1.31 for the same table
// (tests/golden/ipvsadm/ipv6.golden).

fn persistent(mut service: ServiceStatus, timeout: u32, netmask: Netmask) -> ServiceStatus {
    service.spec.persistence = Some(Persistence { timeout, netmask });
    service
}

/// Both families, a tunnel service mixing them, a long IPv6 real server and service, and
/// persistence by prefix length.
fn dual_stack() -> Snapshot {
    let v6 = ip6("2001:db8::1");
    let long = ip6("2001:db8:1234:5678:9abc:def0:1234:5678");
    snapshot(vec![
        svc(
            addr(Protocol::Tcp, v6, 80),
            Scheduler::Rr,
            vec![
                rs(ip6("2001:db8::12"), 80, Forward::Route, 2, 0, 0),
                rs(long, 80, Forward::Route, 3, 0, 0),
                rs(ip(10, 0, 1, 1), 80, Forward::Tunnel, 1, 0, 0),
            ],
        ),
        persistent(
            svc(
                addr(Protocol::Udp, v6, 53),
                Scheduler::Sh,
                vec![rs(ip6("2001:db8::31"), 5353, Forward::Masq, 1, 0, 0)],
            ),
            600,
            Netmask::V6(64),
        ),
        persistent(
            svc(
                addr(Protocol::Tcp, ip6("2001:db8::2"), 443),
                Scheduler::Wlc,
                vec![],
            ),
            360,
            Netmask::V6(48),
        ),
        persistent(
            svc(
                addr(Protocol::Tcp, ip6("2001:db8::3"), 443),
                Scheduler::Wlc,
                vec![],
            ),
            100,
            Netmask::V6(128),
        ),
        svc(addr(Protocol::Tcp, long, 65535), Scheduler::Rr, vec![]),
        svc(
            addr(Protocol::Tcp, ip6("::ffff:10.0.0.9"), 80),
            Scheduler::Rr,
            vec![],
        ),
        svc(addr(Protocol::Tcp, ip6("::"), 80), Scheduler::Rr, vec![]),
        svc(
            addr(Protocol::Tcp, ip(10, 0, 0, 1), 80),
            Scheduler::Wlc,
            vec![
                rs(ip6("2001:db8::21"), 80, Forward::Tunnel, 5, 0, 0),
                rs(ip(10, 0, 1, 2), 80, Forward::Tunnel, 1, 0, 0),
            ],
        ),
    ])
}

#[test]
fn ipv6_listing_brackets_sorts_and_does_not_cut() {
    assert_eq!(
        list(&dual_stack(), numeric()),
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  10.0.0.1:80 wlc\n  \
         -> 10.0.1.2:80                  Tunnel  1      0          0         \n  \
         -> [2001:db8::21]:80            Tunnel  5      0          0         \n\
         TCP  [::]:80 rr\n\
         TCP  [::ffff:10.0.0.9]:80 rr\n\
         TCP  [2001:db8::1]:80 rr\n  \
         -> 10.0.1.1:80                  Tunnel  1      0          0         \n  \
         -> [2001:db8::12]:80            Route   2      0          0         \n  \
         -> [2001:db8:1234:5678:9abc:def0:1234:5678]:80 Route   3      0          0         \n\
         TCP  [2001:db8::2]:443 wlc persistent 360 mask 48\n\
         TCP  [2001:db8::3]:443 wlc persistent 100\n\
         TCP  [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 rr\n\
         UDP  [2001:db8::1]:53 sh persistent 600 mask 64\n  \
         -> [2001:db8::31]:5353          Masq    1      0          0         \n"
    );
}

#[test]
fn ipv6_stats_and_thresholds_rows() {
    let stats = list(
        &dual_stack(),
        ListOptions {
            stats: true,
            ..numeric()
        },
    );
    let rows: Vec<&str> = stats.lines().collect();
    assert!(rows.contains(
        &"TCP  [2001:db8:1234:5678:9abc:def0:1234:5678]:65535        0        0        0        0        0"
    ));
    assert!(rows.contains(
        &"  -> [2001:db8:1234:5678:9abc:def0:1234:5678]:80        0        0        0        0        0"
    ));
    assert!(rows.contains(
        &"TCP  [2001:db8::1]:80                    0        0        0        0        0"
    ));
    assert!(rows.contains(
        &"  -> [2001:db8::12]:80                   0        0        0        0        0"
    ));
    let thresholds = list(
        &dual_stack(),
        ListOptions {
            thresholds: true,
            ..numeric()
        },
    );
    assert!(thresholds.lines().any(|l| l
        == "  -> [2001:db8:1234:5678:9abc:def0:1234:5678]:80 0          0          0          0         "));
}

#[test]
fn ipv6_save_writes_prefix_lengths_and_brackets() {
    assert_eq!(
        format_save(&dual_stack(), true, &NoNames),
        "-A -t 10.0.0.1:80 -s wlc\n\
         -a -t 10.0.0.1:80 -r 10.0.1.2:80 -i -w 1 --tun-type ipip\n\
         -a -t 10.0.0.1:80 -r [2001:db8::21]:80 -i -w 5 --tun-type ipip\n\
         -A -t [::]:80 -s rr\n\
         -A -t [::ffff:10.0.0.9]:80 -s rr\n\
         -A -t [2001:db8::1]:80 -s rr\n\
         -a -t [2001:db8::1]:80 -r 10.0.1.1:80 -i -w 1 --tun-type ipip\n\
         -a -t [2001:db8::1]:80 -r [2001:db8::12]:80 -g -w 2\n\
         -a -t [2001:db8::1]:80 -r [2001:db8:1234:5678:9abc:def0:1234:5678]:80 -g -w 3\n\
         -A -t [2001:db8::2]:443 -s wlc -p 360 -M 48\n\
         -A -t [2001:db8::3]:443 -s wlc -p 100\n\
         -A -t [2001:db8:1234:5678:9abc:def0:1234:5678]:65535 -s rr\n\
         -A -u [2001:db8::1]:53 -s sh -p 600 -M 64\n\
         -a -u [2001:db8::1]:53 -r [2001:db8::31]:5353 -m -w 1\n"
    );
    // What -S writes, -R reads back as the same commands.
    let saved = format_save(&dual_stack(), true, &NoNames);
    let restored = parse_restore_with(&saved, &NoNames).unwrap();
    assert_eq!(restored.len(), 14);
    assert!(restored.contains(&Command::AddService {
        service: ServiceSpec {
            addr: addr(Protocol::Udp, ip6("2001:db8::1"), 53),
            scheduler: Scheduler::Sh,
            persistence: Some(Persistence {
                timeout: 600,
                netmask: Netmask::V6(64)
            }),
            sched_flags: SchedFlags::default(),
        }
    }));
}

#[test]
fn ipv6_names_keep_their_brackets() {
    // ipvsadm prints a named IPv6 host in brackets too.
    let snap = snapshot(vec![svc(
        addr(Protocol::Tcp, ip6("2001:db8::1"), 80),
        Scheduler::Rr,
        vec![rs(ip6("2001:db8::1"), 80, Forward::Route, 1, 0, 0)],
    )]);
    let named = list(&snap, ListOptions::default());
    assert!(
        named.contains("TCP  [web6.example.com]:http rr\n"),
        "{named}"
    );
    assert!(
        named.contains("  -> [web6.example.com]:http      Route   1"),
        "{named}"
    );
}

#[test]
fn ipv6_connections() {
    let conns = [ConnectionStatus {
        protocol: Protocol::Tcp,
        expires_in: 14 * 60 + 58,
        state: "ESTABLISHED".to_owned(),
        client: (ip6("2001:db8:ff::50"), 51234),
        virtual_addr: (ip6("2001:db8::1"), 80),
        real: (ip6("2001:db8::12"), 80),
    }];
    assert_eq!(
        format_connections(&conns, &numeric(), &NoNames),
        "IPVS connection entries\n\
         pro expire state       source             virtual            destination\n\
         TCP 14:58  ESTABLISHED [2001:db8:ff::50]:51234 [2001:db8::1]:80   [2001:db8::12]:80\n"
    );
}
