use std::net::IpAddr;

use lb_common::{AF_INET, Addr};

use super::*;
use crate::ipvsadm::{NoNames, parse_restore_with};

fn config(rules: &str) -> Config {
    let commands = parse_restore_with(rules, &NoNames).unwrap();
    Config::default().apply_all(&commands).unwrap()
}

/// The same services on two directors, their real servers added in other orders (so other
/// ids).
const MASTER: &str = "\
-A -t 10.0.0.99:80 -s rr
-a -t 10.0.0.99:80 -r 10.0.0.12:80 -g
-a -t 10.0.0.99:80 -r 10.0.0.13:80 -g
-A -t 10.0.0.99:443 -s wlc -p 360 -M 255.255.255.0
-a -t 10.0.0.99:443 -r 10.0.0.12:443 -g
-a -t 10.0.0.99:443 -r 10.0.0.13:443 -g
-A -u 10.0.0.99:53 -s rr
-a -u 10.0.0.99:53 -r 172.16.0.5:5353 -m
";
const BACKUP: &str = "\
-A -u 10.0.0.99:53 -s rr
-a -u 10.0.0.99:53 -r 172.16.0.5:5353 -m
-A -t 10.0.0.99:443 -s rr -p 600 -M 255.255.255.0
-a -t 10.0.0.99:443 -r 10.0.0.13:443 -g
-a -t 10.0.0.99:443 -r 10.0.0.12:443 -g
-A -t 10.0.0.99:80 -s wlc
-a -t 10.0.0.99:80 -r 10.0.0.13:80 -g
-a -t 10.0.0.99:80 -r 10.0.0.12:80 -g
";

const NOW: u64 = 10_000 * NS;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn id_of(config: &Config, port: u16, real: &str) -> (u32, u32) {
    let s = config
        .services
        .iter()
        .find(|s| s.spec.addr.port == port)
        .unwrap();
    let r = s.reals.iter().find(|r| r.spec.addr == ip(real)).unwrap();
    (s.id, r.id)
}

fn flow(cport: u16, vport: u16, proto: u8) -> FlowKey {
    FlowKey {
        saddr: Addr::from(ip("10.0.0.1")),
        daddr: Addr::from(ip("10.0.0.99")),
        sport: cport.to_be(),
        dport: vport.to_be(),
        proto,
        family: AF_INET,
        _pad16: 0,
    }
}

#[test]
fn a_connection_goes_to_the_same_real_server_by_address() {
    let (master, backup) = (config(MASTER), config(BACKUP));
    let (m_svc, m_real) = id_of(&master, 80, "10.0.0.13");
    let key = flow(40000, 80, IPPROTO_TCP);
    let conn = Conn {
        real: m_real,
        service: m_svc,
        vaddr: Addr::from(ip("10.0.0.99")),
        vport: 80u16.to_be(),
        state: tcp_state::ESTABLISHED,
        flags: 0,
        _pad: 0,
        last_seen_ns: 5,
    };
    let sent = sync_conn_of(&key, &conn, &Lookup::new(&master)).unwrap();
    assert_eq!(
        sent,
        SyncConn {
            protocol: 6,
            flags: flags::DROUTE,
            state: 1,
            caddr: ip("10.0.0.1"),
            cport: 40000,
            vaddr: ip("10.0.0.99"),
            vport: 80,
            daddr: ip("10.0.0.13"),
            dport: 80,
            fwmark: 0,
            timeout: 900,
            seq: None,
            pe_data: None,
            pe_name: None,
        }
    );
    let (b_svc, b_real) = id_of(&backup, 80, "10.0.0.13");
    assert_ne!((b_svc, b_real), (m_svc, m_real));
    let got = entry_of(&sent, &Lookup::new(&backup), NOW).unwrap();
    assert_eq!(
        got,
        Entry::Conn {
            key,
            conn: Conn {
                real: b_real,
                service: b_svc,
                last_seen_ns: NOW,
                ..conn
            },
            reply: None,
        }
    );
}

#[test]
fn closing_states_are_inactive_and_short_timeouts_shorten_the_copy() {
    let master = config(MASTER);
    let (svc, real) = id_of(&master, 80, "10.0.0.12");
    let conn = Conn {
        real,
        service: svc,
        state: tcp_state::FIN_WAIT,
        ..Conn::default()
    };
    let sent = sync_conn_of(&flow(1, 80, IPPROTO_TCP), &conn, &Lookup::new(&master)).unwrap();
    assert_eq!(sent.flags, flags::DROUTE | flags::INACTIVE);
    assert_eq!((sent.state, sent.timeout), (4, 120));
    // A master whose FIN_WAIT lasts 60 s: the copy expires 60 s from now, lb's being 120 s.
    let backup = config(BACKUP);
    let short = SyncConn {
        timeout: 60,
        ..sent.clone()
    };
    let Entry::Conn { conn, .. } = entry_of(&short, &Lookup::new(&backup), NOW).unwrap() else {
        panic!("a connection")
    };
    assert_eq!(conn.last_seen_ns, NOW - 60 * NS);
    // A longer one: lb's own.
    let long = SyncConn {
        timeout: 1000,
        ..sent
    };
    let Entry::Conn { conn, .. } = entry_of(&long, &Lookup::new(&backup), NOW).unwrap() else {
        panic!("a connection")
    };
    assert_eq!(conn.last_seen_ns, NOW);
}

#[test]
fn nat_udp_gets_its_reply_entry() {
    let (master, backup) = (config(MASTER), config(BACKUP));
    let (svc, real) = id_of(&master, 53, "172.16.0.5");
    let key = flow(33000, 53, IPPROTO_UDP);
    let conn = Conn {
        real,
        service: svc,
        vaddr: Addr::from(ip("10.0.0.99")),
        vport: 53u16.to_be(),
        state: tcp_state::UDP,
        ..Conn::default()
    };
    let sent = sync_conn_of(&key, &conn, &Lookup::new(&master)).unwrap();
    assert_eq!(
        (sent.flags, sent.state, sent.dport, sent.timeout),
        (flags::MASQ | flags::INACTIVE, 0, 5353, 300)
    );
    let Entry::Conn {
        key: got_key,
        conn: got,
        reply,
    } = entry_of(&sent, &Lookup::new(&backup), NOW).unwrap()
    else {
        panic!("a connection")
    };
    assert_eq!(got_key, key);
    assert_eq!(got.state, tcp_state::UDP);
    assert_eq!(
        reply,
        Some(FlowKey {
            saddr: Addr::from(ip("172.16.0.5")),
            daddr: Addr::from(ip("10.0.0.1")),
            sport: 5353u16.to_be(),
            dport: 33000u16.to_be(),
            proto: IPPROTO_UDP,
            family: AF_INET,
            _pad16: 0,
        })
    );
    // The reply entry itself is never sent.
    let reply_entry = Conn {
        flags: CONN_F_REPLY,
        ..conn
    };
    assert_eq!(
        sync_conn_of(&reply.unwrap(), &reply_entry, &Lookup::new(&master)),
        None
    );
}

#[test]
fn persistence_templates_both_ways() {
    let (master, backup) = (config(MASTER), config(BACKUP));
    let (svc, real) = id_of(&master, 443, "10.0.0.12");
    let key = PersistKey {
        service: svc,
        client: Addr::from(ip("10.0.0.0")),
    };
    let template = Persist {
        real,
        _pad: 0,
        last_seen_ns: 0,
    };
    let lookup = Lookup::new(&master);
    let sent = sync_template_of(&key, &template, &lookup).unwrap();
    assert_eq!(
        (
            sent.flags,
            sent.state,
            sent.caddr,
            sent.cport,
            sent.vport,
            sent.timeout
        ),
        (
            flags::TEMPLATE | flags::DROUTE,
            1,
            ip("10.0.0.0"),
            0,
            443,
            360
        )
    );
    assert_eq!(template_timeout(&lookup, svc), Some(360));
    let (b_svc, b_real) = id_of(&backup, 443, "10.0.0.12");
    assert_eq!(
        entry_of(&sent, &Lookup::new(&backup), NOW).unwrap(),
        Entry::Template {
            key: PersistKey {
                service: b_svc,
                client: Addr::from(ip("10.0.0.0")),
            },
            template: Persist {
                real: b_real,
                _pad: 0,
                // The master's 360 s, shorter than the backup's 600.
                last_seen_ns: NOW - 240 * NS,
            },
        }
    );
    // A connection of a persistent service is marked so (never rescheduled by a SYN).
    let conn = SyncConn {
        flags: flags::DROUTE,
        cport: 5000,
        caddr: ip("10.0.0.7"),
        timeout: 900,
        ..sent
    };
    let Entry::Conn { conn, .. } = entry_of(&conn, &Lookup::new(&backup), NOW).unwrap() else {
        panic!("a connection")
    };
    assert_eq!(conn.flags, CONN_F_TEMPLATED);
}

#[test]
fn what_a_backup_cannot_take() {
    let backup = config(BACKUP);
    let lookup = Lookup::new(&backup);
    let good = SyncConn {
        protocol: 6,
        flags: flags::DROUTE,
        state: 1,
        caddr: ip("10.0.0.1"),
        cport: 1,
        vaddr: ip("10.0.0.99"),
        vport: 80,
        daddr: ip("10.0.0.12"),
        dport: 80,
        fwmark: 0,
        timeout: 900,
        seq: None,
        pe_data: None,
        pe_name: None,
    };
    assert!(entry_of(&good, &lookup, NOW).is_ok());
    let skip = |c: SyncConn| entry_of(&c, &lookup, NOW).unwrap_err();
    assert_eq!(
        skip(SyncConn {
            protocol: 132,
            ..good.clone()
        }),
        Skip::Protocol
    );
    assert_eq!(
        skip(SyncConn {
            state: 11,
            ..good.clone()
        }),
        Skip::State
    );
    assert_eq!(
        skip(SyncConn {
            fwmark: 3,
            ..good.clone()
        }),
        Skip::Fwmark
    );
    assert_eq!(
        skip(SyncConn {
            pe_data: Some(vec![1]),
            ..good.clone()
        }),
        Skip::PersistenceEngine
    );
    assert_eq!(
        skip(SyncConn {
            vport: 81,
            ..good.clone()
        }),
        Skip::NoService
    );
    assert_eq!(
        skip(SyncConn {
            daddr: ip("10.0.0.14"),
            ..good.clone()
        }),
        Skip::NoReal
    );
    // UDP has one state.
    assert_eq!(
        skip(SyncConn {
            protocol: 17,
            vport: 53,
            state: 1,
            ..good
        }),
        Skip::State
    );
}
