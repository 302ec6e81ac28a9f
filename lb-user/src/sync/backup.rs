//! Between sync entries and lb's tables, both ways. Pure: the configuration says which
//! service and real server an entry is about (by address and port, as IPVS's
//! `ip_vs_find_dest` finds them: the ids differ from director to director).

use std::collections::HashMap;

use lb_common::{
    CONN_F_REPLY, CONN_F_TEMPLATED, Conn, FlowKey, IPPROTO_TCP, IPPROTO_UDP, Persist, PersistKey,
    tcp_state,
};

use super::wire::{SyncConn, flags};
use crate::{
    config::{Config, ServiceEntry},
    model::{Forward, Protocol, RealSpec, ServiceAddr, Timeouts, family},
    sweep,
};

const NS: u64 = 1_000_000_000;

/// A persistence template's state once a connection under it was established
/// (`IP_VS_CTPL_S_ASSURED`).
const TEMPLATE_ASSURED: u16 = 1;

/// IPVS's TCP states are lb's (`tcp_state`, NONE to SYNACK); UDP has one state, 0.
const TCP_STATES: u16 = 11;

/// The configuration, indexed for both directions.
pub struct Lookup<'a> {
    by_addr: HashMap<ServiceAddr, &'a ServiceEntry>,
    by_id: HashMap<u32, &'a ServiceEntry>,
    reals: HashMap<u32, &'a RealSpec>,
    timeouts: Timeouts,
}

impl<'a> Lookup<'a> {
    pub fn new(config: &'a Config) -> Lookup<'a> {
        Lookup {
            by_addr: config.services.iter().map(|s| (s.spec.addr, s)).collect(),
            by_id: config.services.iter().map(|s| (s.id, s)).collect(),
            // Real servers removed with -d keep their connections, which are still sent.
            reals: config
                .services
                .iter()
                .flat_map(|s| s.reals.iter().map(|r| (r.id, &r.spec)))
                .chain(config.trash.iter().map(|t| (t.id, &t.spec)))
                .collect(),
            timeouts: config.timeouts,
        }
    }
}

/// A received entry, as lb's tables hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A connection: its client-direction entry, and a NAT connection's reply key.
    Conn {
        key: FlowKey,
        conn: Conn,
        reply: Option<FlowKey>,
    },
    Template {
        key: PersistKey,
        template: Persist,
    },
}

/// Why a received entry was not taken (counted and logged at debug level).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Skip {
    #[error("a protocol lb does not balance")]
    Protocol,
    #[error("a state the protocol does not have")]
    State,
    #[error("a firewall-mark service")]
    Fwmark,
    #[error("a persistence engine's data")]
    PersistenceEngine,
    #[error("no such virtual service here")]
    NoService,
    #[error("no such real server in the service here")]
    NoReal,
}

/// `last_seen_ns` for an entry that expires `timeout` seconds from `now_ns` where lb's own
/// timeout for it is `local` seconds (lb times entries from their last use): the master's
/// timeout when it is the shorter one, the backup's otherwise.
fn last_seen_for(now_ns: u64, timeout: u32, local: u64) -> u64 {
    let timeout = u64::from(timeout);
    if timeout == 0 || timeout >= local {
        now_ns
    } else {
        now_ns.saturating_sub((local - timeout) * NS)
    }
}

fn protocol_of(number: u8) -> Option<Protocol> {
    match number {
        IPPROTO_TCP => Some(Protocol::Tcp),
        IPPROTO_UDP => Some(Protocol::Udp),
        _ => None,
    }
}

/// What received entry `sc` becomes here, at `now_ns` (the data path's coarse clock).
pub fn entry_of(sc: &SyncConn, lookup: &Lookup<'_>, now_ns: u64) -> Result<Entry, Skip> {
    let protocol = protocol_of(sc.protocol).ok_or(Skip::Protocol)?;
    if sc.fwmark != 0 {
        return Err(Skip::Fwmark);
    }
    if sc.pe_data.is_some() {
        return Err(Skip::PersistenceEngine);
    }
    let template = sc.flags & flags::TEMPLATE != 0;
    let state = match protocol {
        _ if template => tcp_state::NONE,
        Protocol::Tcp if sc.state < TCP_STATES => sc.state as u8,
        Protocol::Udp if sc.state == 0 => tcp_state::UDP,
        _ => return Err(Skip::State),
    };
    let service = lookup
        .by_addr
        .get(&ServiceAddr {
            protocol,
            addr: sc.vaddr,
            port: sc.vport,
        })
        .ok_or(Skip::NoService)?;
    let real = service
        .reals
        .iter()
        .find(|r| r.spec.addr == sc.daddr && r.spec.port == sc.dport)
        .ok_or(Skip::NoReal)?;
    if template {
        let persistence = service.spec.persistence.ok_or(Skip::NoService)?;
        let local = u64::from(persistence.timeout);
        return Ok(Entry::Template {
            key: PersistKey {
                service: service.id,
                client: lb_common::Addr::from(sc.caddr).and(&persistence.netmask.to_addr()),
            },
            template: Persist {
                real: real.id,
                _pad: 0,
                last_seen_ns: last_seen_for(now_ns, sc.timeout, local),
            },
        });
    }
    let fam = family(sc.caddr);
    let key = FlowKey {
        saddr: sc.caddr.into(),
        daddr: sc.vaddr.into(),
        sport: sc.cport.to_be(),
        dport: sc.vport.to_be(),
        proto: sc.protocol,
        family: fam,
        _pad16: 0,
    };
    let local = sweep::tcp_timeout(state, &lookup.timeouts);
    let conn = Conn {
        real: real.id,
        service: service.id,
        vaddr: sc.vaddr.into(),
        vport: sc.vport.to_be(),
        state,
        flags: if service.spec.persistence.is_some() {
            CONN_F_TEMPLATED
        } else {
            0
        },
        _pad: 0,
        last_seen_ns: last_seen_for(now_ns, sc.timeout, local),
    };
    // NAT: the replies come from the real server's address and port to the client.
    let reply = (real.spec.forward == Forward::Masq).then(|| FlowKey {
        saddr: real.spec.addr.into(),
        daddr: sc.caddr.into(),
        sport: if real.spec.port == 0 {
            sc.vport
        } else {
            real.spec.port
        }
        .to_be(),
        dport: sc.cport.to_be(),
        proto: sc.protocol,
        family: fam,
        _pad16: 0,
    });
    Ok(Entry::Conn { key, conn, reply })
}

/// IPVS's flag for a forwarding method.
fn forward_flag(forward: Forward) -> u32 {
    match forward {
        Forward::Masq => flags::MASQ,
        Forward::Tunnel => flags::TUNNEL,
        Forward::Route => flags::DROUTE,
    }
}

/// The entry a master sends for connection `key` → `conn`; `None` for an entry the
/// configuration no longer explains, or a NAT reply entry.
pub fn sync_conn_of(key: &FlowKey, conn: &Conn, lookup: &Lookup<'_>) -> Option<SyncConn> {
    if conn.flags & CONN_F_REPLY != 0 {
        return None;
    }
    let service = lookup.by_id.get(&conn.service)?;
    let real = lookup.reals.get(&conn.real)?;
    let (state, inactive) = if conn.state == tcp_state::UDP {
        (0, true)
    } else {
        (u16::from(conn.state), !tcp_state::is_active(conn.state))
    };
    Some(SyncConn {
        protocol: key.proto,
        flags: forward_flag(real.forward) | if inactive { flags::INACTIVE } else { 0 },
        state,
        caddr: key.saddr.to_ip(key.family),
        cport: u16::from_be(key.sport),
        vaddr: key.daddr.to_ip(key.family),
        vport: u16::from_be(key.dport),
        daddr: real.addr,
        dport: if real.port == 0 {
            u16::from_be(key.dport)
        } else {
            real.port
        },
        fwmark: 0,
        timeout: sweep::tcp_timeout(conn.state, &lookup.timeouts) as u32,
        seq: None,
        pe_data: None,
        pe_name: None,
    })
    .filter(|_| service.spec.addr.protocol.number() == key.proto)
}

/// The entry a master sends for persistence template `key` → `template`: IPVS's template
/// `<protocol, client & netmask, 0, VIP, service port, real server, its port>`.
pub fn sync_template_of(
    key: &PersistKey,
    template: &Persist,
    lookup: &Lookup<'_>,
) -> Option<SyncConn> {
    let service = lookup.by_id.get(&key.service)?;
    let persistence = service.spec.persistence?;
    let real = lookup.reals.get(&template.real)?;
    let addr = service.spec.addr;
    Some(SyncConn {
        protocol: addr.protocol.number(),
        flags: flags::TEMPLATE | forward_flag(real.forward),
        // IP_VS_CTPL_S_ASSURED: an lb template lasts its timeout after its last connection,
        // which is what IPVS does with an assured one (a template none of whose connections
        // was ever established goes with them there).
        state: TEMPLATE_ASSURED,
        caddr: key.client.to_ip(addr.family()),
        cport: 0,
        vaddr: addr.addr,
        vport: addr.port,
        daddr: real.addr,
        dport: real.port,
        fwmark: 0,
        timeout: persistence.timeout,
        seq: None,
        pe_data: None,
        pe_name: None,
    })
}

/// The timeout of a persistence template of service `id`, in seconds.
pub fn template_timeout(lookup: &Lookup<'_>, service: u32) -> Option<u64> {
    let s = lookup.by_id.get(&service)?;
    Some(u64::from(s.spec.persistence?.timeout))
}

#[cfg(test)]
mod tests;
