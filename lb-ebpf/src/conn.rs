//! The connection table: every packet of a flow goes to the real server its first packet was
//! scheduled to, whatever happens to weights or the real-server list afterwards (as in IPVS).
//! TCP state follows IPVS's state table so listings and timeouts mean what they mean there.

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use lb_common::{
    Conn, IPPROTO_TCP, RealServer, Service, Stat,
    tcp_state::{self, Direction},
};

use crate::{
    Verdict, drop,
    maps::{self, CONNS},
    parse::Packet,
    sched, stats,
};

/// `last_seen_ns` is refreshed at most this often, to keep established flows from writing
/// the shared entry on every packet.
const TOUCH_INTERVAL_NS: u64 = 1_000_000_000;

/// The connection this packet belongs to and its real server, advancing the TCP state.
/// `None` for a new flow, including a SYN that reuses the ports of a finished connection.
#[inline(always)]
pub fn lookup(packet: &Packet) -> Option<(Conn, RealServer)> {
    let entry = CONNS.get_ptr_mut(&packet.flow)?;
    // SAFETY: LRU hash values stay valid for the program's run (RCU); concurrent writers of
    // the same flow race benignly on plain stores of state and timestamp.
    let conn = unsafe { &mut *entry };
    let is_tcp = packet.flow.proto == IPPROTO_TCP;
    if is_tcp && is_new_syn(conn.state, packet.tcp_flags) {
        return None;
    }
    let real = maps::real(conn.real)?;
    // SAFETY: coarse clock read, no arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if is_tcp {
        let state = tcp_state::next(conn.state, packet.tcp_flags, Direction::InputOnly);
        if state != conn.state {
            conn.state = state;
            conn.last_seen_ns = now;
        }
    }
    if now.wrapping_sub(conn.last_seen_ns) > TOUCH_INTERVAL_NS {
        conn.last_seen_ns = now;
    }
    stats::count(Stat::ConnHit);
    Some((*conn, real))
}

/// Schedule a new flow of `service` to a real server and remember the choice.
#[inline(always)]
pub fn schedule(packet: &Packet, service: &Service) -> Result<(Conn, RealServer), Verdict> {
    let Some(real_id) = sched::pick(service) else {
        return Err(drop(Stat::DropNoReal));
    };
    let Some(real) = maps::real(real_id) else {
        return Err(drop(Stat::DropNoReal));
    };
    let state = if packet.flow.proto == IPPROTO_TCP {
        tcp_state::next(tcp_state::NONE, packet.tcp_flags, Direction::InputOnly)
    } else {
        tcp_state::UDP
    };
    let conn = Conn {
        real: real_id,
        service: service.id,
        state,
        flags: 0,
        _pad: [0; 6],
        // SAFETY: coarse clock read, no arguments.
        last_seen_ns: unsafe { bpf_ktime_get_coarse_ns() },
    };
    if CONNS.insert(&packet.flow, &conn, 0).is_err() {
        return Err(drop(Stat::DropConnTableFull));
    }
    stats::new_connection(service.id, real_id);
    Ok((conn, real))
}

/// A SYN on a connection that has finished starts a new connection (the client reused its
/// port), which IPVS schedules afresh rather than pinning it to the old real server.
#[inline(always)]
fn is_new_syn(state: u8, flags: u8) -> bool {
    flags & tcp_state::TCP_SYN != 0
        && flags & tcp_state::TCP_ACK == 0
        && (state == tcp_state::TIME_WAIT || state == tcp_state::CLOSE)
}
