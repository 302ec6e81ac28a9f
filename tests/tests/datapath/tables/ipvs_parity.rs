//! Scheduling parity with the kernel's IPVS, flow by flow: `sh`, `dh`, `mh` (with their `-b`
//! flags and real servers at weight 0), the `rr` and `wrr` sequences (from the first flow on),
//! and the
//! connection-count schedulers (`lc`, `wlc`, `sed`, `nq`, `fo`, `ovf`, `lblc`, `lblcr`), whose
//! SYNs stay half-open and count as active for the ones after them, in IPVS and here alike,
//! upper thresholds (`-x`) and persistence (`-p`, `-M`).
//!
//! `cargo xtask ipvs-golden` recorded, with the real ipvsadm against IPVS in a Debian 6.12 VM,
//! which real server each of a few hundred SYNs was given (`tests/golden/ipvs-sched/*.txt`,
//! see its README). Each file becomes a fixture: the same service and real servers (added in
//! the same order, with the same weights and flags) written to the maps as lbd writes them,
//! the table built by [`sched::build_ipvs_order`] as lbd builds it, and the same SYNs sent in
//! the same order through the real program. Each must reach the real server IPVS gave it, or
//! be dropped where IPVS found no destination ("none"). Nothing here computes an expected
//! real server: the answers are IPVS's.
//!
//! The VM used the fixture world's addresses: VIP 203.0.113.10:80, real servers A–D at
//! 10.1.0.11–14 (direct routing, real port 80).

use std::{fs, path::Path};

use lb_common::{
    Addr, RealServer, SERVICE_F_HASH_FALLBACK, SERVICE_F_HASH_PORT, SERVICE_F_PERSISTENT, Service,
    Stat, tcp_state::SYN_RECV,
};
use lb_user::{
    model::{SchedFlags, Scheduler},
    sched::{self, Candidate},
};

use crate::{
    fixture::{Expect, Fixture, Send, Step},
    harness::Change,
    world::{
        A, B, C, D, HTTP, RealDef, VIP, director_iface, flow_of, new_flow, real_server,
        service_key, tcp,
    },
};

/// One recorded case.
pub struct Case {
    pub name: String,
    pub scheduler: Scheduler,
    pub flags: SchedFlags,
    /// `-p TIMEOUT` and `-M NETMASK` (255.255.255.255 without `-M`), when persistent.
    pub persistence: Option<(u32, std::net::Ipv4Addr)>,
    /// Real servers with their weights and thresholds (`-x`, `-y`; 0: none), in the order
    /// they were added.
    pub reals: Vec<(&'static RealDef, u32, (u32, u32))>,
    /// Client address and port, and IPVS's real server (`None`: no destination).
    pub flows: Vec<(std::net::Ipv4Addr, u16, Option<&'static RealDef>)>,
}

/// `-p` without `-M`: one client address per template.
const HOST_MASK: std::net::Ipv4Addr = std::net::Ipv4Addr::BROADCAST;

fn real(name: &str) -> &'static RealDef {
    match name {
        "A" => &A,
        "B" => &B,
        "C" => &C,
        "D" => &D,
        _ => panic!("unknown real server {name:?}"),
    }
}

/// Parses a recording: `service -s SCHED [-b FLAGS]`, `real NAME WEIGHT`,
/// `flow ADDR:PORT NAME|none`; `#` lines are comments.
pub fn parse(name: &str, text: &str) -> Case {
    let mut case = Case {
        name: name.to_owned(),
        scheduler: Scheduler::Rr,
        flags: SchedFlags::default(),
        persistence: None,
        reals: Vec::new(),
        flows: Vec::new(),
    };
    let mut scheduled = false;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["service", options @ ..] => {
                for pair in options.chunks(2) {
                    match pair {
                        ["-s", s] => {
                            case.scheduler = s.parse().expect("scheduler");
                            scheduled = true;
                        }
                        ["-b", flags] => {
                            for flag in flags.split(',') {
                                match flag {
                                    "sh-fallback" | "mh-fallback" => case.flags.fallback = true,
                                    "sh-port" | "mh-port" => case.flags.port = true,
                                    _ => panic!("{name}: unknown flag {flag:?}"),
                                }
                            }
                        }
                        ["-p", timeout] => {
                            let mask = case.persistence.map_or(HOST_MASK, |(_, m)| m);
                            case.persistence = Some((timeout.parse().expect("-p"), mask));
                        }
                        ["-M", mask] => {
                            let (timeout, _) = case.persistence.expect("-M after -p");
                            case.persistence = Some((timeout, mask.parse().expect("-M")));
                        }
                        _ => panic!("{name}: unknown service option in {line:?}"),
                    }
                }
            }
            ["real", r, weight, options @ ..] => {
                let mut thresholds = (0, 0);
                for pair in options.chunks(2) {
                    match pair {
                        ["-x", n] => thresholds.0 = n.parse().expect("-x"),
                        ["-y", n] => thresholds.1 = n.parse().expect("-y"),
                        _ => panic!("{name}: unknown real server option in {line:?}"),
                    }
                }
                case.reals
                    .push((real(r), weight.parse().expect("weight"), thresholds));
            }
            ["flow", client, to] => {
                let (addr, port) = client.rsplit_once(':').expect("ADDR:PORT");
                let to = (*to != "none").then(|| real(to));
                case.flows.push((
                    addr.parse().expect("address"),
                    port.parse().expect("port"),
                    to,
                ));
            }
            _ => panic!("{name}: cannot read {line:?}"),
        }
    }
    assert!(scheduled, "{name}: no `service -s` line");
    assert!(!case.flows.is_empty(), "{name}: no flows");
    case
}

/// Every recording in `tests/golden/ipvs-sched`, by name.
pub fn cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/ipvs-sched");
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            parse(&name, &fs::read_to_string(p).expect("reading a recording"))
        })
        .collect()
}

/// The maps as lbd writes them for HTTP with the case's real servers, scheduler and flags.
fn setup(case: &Case) -> Vec<Change> {
    let mut changes = vec![director_iface()];
    let mut candidates = Vec::new();
    for &(def, weight, (upper_threshold, lower_threshold)) in &case.reals {
        changes.push(Change::Real {
            id: def.id,
            real: RealServer {
                weight,
                upper_threshold,
                lower_threshold,
                ..real_server(def, &HTTP)
            },
        });
        candidates.push(Candidate {
            id: def.id,
            weight,
            addr: def.addr.into(),
            port: HTTP.port,
        });
    }
    let table = sched::build_ipvs_order(case.scheduler, case.flags, &candidates);
    let mut flags = 0;
    if case.flags.port {
        flags |= SERVICE_F_HASH_PORT;
    }
    if case.flags.fallback {
        flags |= SERVICE_F_HASH_FALLBACK;
    }
    let (persist_timeout, persist_mask) = match case.persistence {
        Some((timeout, mask)) => {
            flags |= SERVICE_F_PERSISTENT;
            (timeout, Addr::v4(u32::from_ne_bytes(mask.octets())))
        }
        None => (0, Addr::ZERO),
    };
    let len = table.len() as u32;
    if case.scheduler == Scheduler::Wrr {
        // Where lbd starts a new service's weighted walk (IPVS's first round after its
        // `-a`s is the cycle's last: every real server once).
        changes.push(Change::RrPosition {
            service: HTTP.id,
            position: sched::wrr_mark_ipvs_order(None, &candidates).start,
        });
    }
    changes.push(Change::Slots {
        offset: HTTP.table_offset,
        ids: table,
    });
    changes.push(Change::Service {
        key: service_key(&HTTP),
        service: Service {
            id: HTTP.id,
            scheduler: case.scheduler.code(),
            flags,
            table_offset: HTTP.table_offset,
            table_len: len,
            persist_timeout,
            persist_mask,
        },
    });
    changes
}

fn steps(case: &Case) -> Vec<Step> {
    // Persistent services: the client networks that already have a template (the counter
    // `persist_hit` goes up for their flows; which real server they get is still IPVS's).
    let mut templates = std::collections::HashSet::new();
    case.flows
        .iter()
        .enumerate()
        .map(|(i, &(addr, port, to))| {
            let frame = tcp(addr, VIP, port, HTTP.port, crate::packet::SYN);
            match to {
                Some(real) => {
                    let what = format!(
                        "flow #{} {addr}:{port}: IPVS gave {}",
                        i + 1,
                        super::sched_counts::name(real)
                    );
                    let send = new_flow(&what, &frame, real, &HTTP, SYN_RECV);
                    match case.persistence {
                        Some((_, mask)) if !templates.insert(addr.to_bits() & mask.to_bits()) => {
                            send.counts(&[Stat::PersistHit]).into()
                        }
                        _ => send.into(),
                    }
                }
                None => Send::drop(
                    format!("flow #{} {addr}:{port}: IPVS found no destination", i + 1),
                    frame.bytes(),
                    Stat::DropNoReal,
                )
                .expect([Expect::NoConn(flow_of(&frame))])
                .into(),
            }
        })
        .collect()
}

pub fn fixtures() -> Vec<Fixture> {
    let cases = cases();
    assert!(cases.len() >= 10, "only {} recordings", cases.len());
    cases
        .iter()
        .map(|case| Fixture {
            name: String::leak(format!(
                "{} ({} flows) as IPVS scheduled them",
                case.name,
                case.flows.len()
            )),
            setup: setup(case),
            steps: steps(case),
        })
        .collect()
}
