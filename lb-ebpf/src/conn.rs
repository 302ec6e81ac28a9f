//! The connection table: every packet of a flow goes to the real server its first packet was
//! scheduled to, whatever happens to weights or the real-server list afterwards (as in IPVS).
//! TCP state follows IPVS's state table so listings and timeouts mean what they mean there.
//! NAT connections also have a reply entry, found by the reply's own 5-tuple.

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use lb_common::{
    CONN_F_REPLY, Conn, FlowKey, IPPROTO_TCP, Persist, PersistKey, REAL_F_REMOVED, RealServer,
    SERVICE_F_PERSISTENT, SETTINGS_F_SLOPPY_TCP, Service, Stat, method,
    tcp_state::{self, Direction},
};

use crate::{
    Verdict, counts, drop,
    maps::{self, CONNS, PERSIST},
    stage::Packet,
    stats,
};

/// `last_seen_ns` is refreshed at most this often, to keep established flows from writing
/// the shared entry on every packet.
const TOUCH_INTERVAL_NS: u64 = 1_000_000_000;

/// What the connection table knows about a packet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// A packet from the client: send it to the real server written out.
    Forward,
    /// A NAT real server's reply: rewrite it back to the virtual service (its reply entry
    /// written out).
    Reply,
    /// A new flow, including a SYN that reuses the ports of a finished connection.
    Miss,
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: coarse clock read, no arguments.
    unsafe { bpf_ktime_get_coarse_ns() }
}

/// Advances the TCP state of `conn` for a packet with `flags` seen in `direction`.
#[inline(always)]
fn touch(conn: &mut Conn, is_tcp: bool, flags: u8, direction: Direction) {
    let now = now();
    if is_tcp {
        let state = tcp_state::next(conn.state, flags, direction);
        if state != conn.state {
            counts::moved(conn.real, conn.state, state);
            conn.state = state;
            conn.last_seen_ns = now;
        }
    }
    if now.wrapping_sub(conn.last_seen_ns) > TOUCH_INTERVAL_NS {
        conn.last_seen_ns = now;
    }
}

/// The direction IPVS's state table uses for a client packet to a real server forwarded with
/// `method`: NAT sees both halves, DR and TUN only the client's.
#[inline(always)]
fn input_direction(real_method: u8) -> Direction {
    if real_method == method::MASQ {
        Direction::Input
    } else {
        Direction::InputOnly
    }
}

/// The connection this packet belongs to, written to `conn` (and its real server to `real`).
#[inline(always)]
pub fn lookup(packet: &Packet, conn_out: &mut Conn, real_out: &mut RealServer) -> Hit {
    let Some(entry) = CONNS.get_ptr_mut(&packet.flow) else {
        return Hit::Miss;
    };
    // SAFETY: LRU hash values stay valid for the program's run (RCU); concurrent writers of
    // the same flow race benignly on plain stores of state and timestamp.
    let conn = unsafe { &mut *entry };
    let is_tcp = packet.flow.proto == IPPROTO_TCP;
    if conn.flags & CONN_F_REPLY != 0 {
        *conn_out = *conn;
        // The state lives in the client-direction entry.
        let key = FlowKey {
            saddr: packet.flow.daddr,
            daddr: conn_out.vaddr,
            sport: packet.flow.dport,
            dport: conn_out.vport,
            proto: packet.flow.proto,
            _pad: 0,
            _pad16: 0,
        };
        if let Some(forward) = CONNS.get_ptr_mut(&key) {
            // SAFETY: as above.
            touch(
                unsafe { &mut *forward },
                is_tcp,
                packet.tcp_flags,
                Direction::Output,
            );
        }
        stats::count(Stat::ConnHit);
        return Hit::Reply;
    }
    let real = maps::real(conn.real);
    let gone = real.is_none_or(|r| r.flags & REAL_F_REMOVED != 0);
    if is_tcp && is_new_syn(conn.state, packet.tcp_flags, gone) {
        // Scheduled afresh; the new entry replaces this one.
        counts::closed(conn.real, conn.state);
        return Hit::Miss;
    }
    let Some(real) = real else {
        return Hit::Miss;
    };
    touch(conn, is_tcp, packet.tcp_flags, input_direction(real.method));
    stats::count(Stat::ConnHit);
    *conn_out = *conn;
    *real_out = *real;
    Hit::Forward
}

/// Whether a packet that belongs to no connection may open one, as IPVS decides
/// (`tcp_conn_schedule`): any UDP datagram; for TCP a SYN without RST, or with `sloppy_tcp`
/// any segment without RST. Others go to the kernel, as IPVS accepts them to the local stack
/// (which answers a stray ACK to its own VIP with a reset): a spoofed ACK flood creates no
/// connections.
#[inline(always)]
pub fn may_open(packet: &Packet) -> Result<(), Verdict> {
    if packet.flow.proto != IPPROTO_TCP {
        return Ok(());
    }
    let flags = packet.tcp_flags;
    if flags & tcp_state::TCP_RST == 0
        && (flags & tcp_state::TCP_SYN != 0 || maps::setting(SETTINGS_F_SLOPPY_TCP))
    {
        return Ok(());
    }
    Err(crate::pass(Stat::PassNotSyn))
}

/// A scheduler: the real server for a new flow of a service at a time, if any (`sched`).
pub type Picker = fn(&Service, &FlowKey, u64) -> Option<u32>;

/// Schedules a new flow of `service` to a real server and remembers the choice, written to
/// `conn_out` and `real_out`.
#[inline(always)]
pub fn schedule(
    packet: &Packet,
    service: &Service,
    conn_out: &mut Conn,
    real_out: &mut RealServer,
    pick: Picker,
) -> Result<(), Verdict> {
    let now = now();
    let (real_id, real) = choose(packet, service, now, pick)?;
    let state = if packet.flow.proto == IPPROTO_TCP {
        tcp_state::next(
            tcp_state::NONE,
            packet.tcp_flags,
            input_direction(real.method),
        )
    } else {
        tcp_state::UDP
    };
    let conn = Conn {
        real: real_id,
        service: service.id,
        vaddr: packet.flow.daddr,
        vport: packet.flow.dport,
        state,
        flags: 0,
        last_seen_ns: now,
    };
    if real.method == method::MASQ {
        // Replies come from the real server's address and port to the client.
        let reply_key = FlowKey {
            saddr: real.addr,
            daddr: packet.flow.saddr,
            sport: real.port_for(packet.flow.dport),
            dport: packet.flow.sport,
            proto: packet.flow.proto,
            _pad: 0,
            _pad16: 0,
        };
        let reply = Conn {
            flags: CONN_F_REPLY,
            ..conn
        };
        if CONNS.insert(&reply_key, &reply, 0).is_err() {
            return Err(drop(Stat::DropConnTableFull));
        }
    }
    if CONNS.insert(&packet.flow, &conn, 0).is_err() {
        return Err(drop(Stat::DropConnTableFull));
    }
    counts::opened(real_id, state);
    stats::new_connection(service.id, real_id);
    *conn_out = conn;
    *real_out = *real;
    Ok(())
}

/// The real server for a new connection: the client's persistence template if the service
/// is persistent and the template is live, else the scheduler's choice (remembered in a new
/// template for persistent services).
#[inline(always)]
fn choose(
    packet: &Packet,
    service: &Service,
    now: u64,
    pick: Picker,
) -> Result<(u32, &'static RealServer), Verdict> {
    let persistent = service.flags & SERVICE_F_PERSISTENT != 0;
    let key = PersistKey {
        service: service.id,
        client: packet.flow.saddr & service.persist_mask,
    };
    if persistent && let Some(template) = PERSIST.get_ptr_mut(&key) {
        // SAFETY: LRU hash value, valid for this run; benign races on the timestamp.
        let template = unsafe { &mut *template };
        let timeout_ns = u64::from(service.persist_timeout) * 1_000_000_000;
        if now.wrapping_sub(template.last_seen_ns) < timeout_ns
            && let Some(real) = maps::real(template.real)
            && real.flags & REAL_F_REMOVED == 0
        {
            template.last_seen_ns = now;
            stats::count(Stat::PersistHit);
            return Ok((template.real, real));
        }
    }
    let Some(real_id) = pick(service, &packet.flow, now) else {
        return Err(drop(Stat::DropNoReal));
    };
    let Some(real) = maps::real(real_id) else {
        return Err(drop(Stat::DropNoReal));
    };
    if persistent {
        let template = Persist {
            real: real_id,
            _pad: 0,
            last_seen_ns: now,
        };
        // A full template table only costs stickiness, never the connection.
        let _ = PERSIST.insert(&key, &template, 0);
    }
    Ok((real_id, real))
}

/// A SYN on a connection that is closing or closed starts a new connection (the client reused
/// its port), which is scheduled afresh rather than pinned to the old real server; so is one
/// whose real server was removed (IPVS's `conn_reuse_mode` and `expire_nodest_conn`: a client
/// must not keep landing on a server that is gone because its ports come round again).
#[inline(always)]
fn is_new_syn(state: u8, flags: u8, real_gone: bool) -> bool {
    flags & tcp_state::TCP_SYN != 0
        && flags & tcp_state::TCP_ACK == 0
        && (real_gone
            || matches!(
                state,
                tcp_state::TIME_WAIT
                    | tcp_state::CLOSE
                    | tcp_state::FIN_WAIT
                    | tcp_state::CLOSE_WAIT
                    | tcp_state::LAST_ACK
            ))
}
