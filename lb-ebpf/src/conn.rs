//! The connection table: every packet of a flow goes to the real server its first packet was
//! scheduled to, whatever happens to weights or the real-server list afterwards (as in IPVS).
//! TCP state follows IPVS's state table so listings and timeouts mean what they mean there.
//! NAT connections also have a reply entry, found by the reply's own 5-tuple.
//!
//! A new connection starts in the half-open table (`HALF_OPEN`, LRU) and moves to the
//! connection table (`CONNS`, never evicted from) with its first packet after the opening one
//! that shows it is real: the TCP handshake's ACK (ESTABLISHED), a UDP flow's second datagram
//! (either way, for NAT). A flood of SYNs from spoofed sources, or of one-off datagrams, churns
//! the half-open table only: established connections are never evicted to make room. (A flood
//! that completes handshakes, which a DR director cannot tell from real clients as it never
//! sees the replies, fills the connection table; then new connections stay in the half-open
//! table, where they still work, and nothing established is lost.)

use core::intrinsics::{AtomicOrdering, atomic_cxchg};

use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use lb_common::{
    CONN_F_REPLY, CONN_F_TEMPLATED, Conn, FlowKey, IPPROTO_TCP, Persist, PersistKey,
    REAL_F_REMOVED, RealServer, SERVICE_F_PERSISTENT, SETTINGS_F_CONN_REUSE_FIN_WAIT,
    SETTINGS_F_CONN_REUSE_OFF, SETTINGS_F_EXPIRE_NODEST_CONN, SETTINGS_F_EXPIRE_QUIESCENT_TEMPLATE,
    SETTINGS_F_SLOPPY_TCP, Service, Stat, method,
    tcp_state::{self, Direction},
};

use crate::{
    Verdict,
    counts::{self, Table},
    drop,
    maps::{self, CONNS, HALF_OPEN, PERSIST},
    parse::is_icmp,
    stage::{ENTRY_HALF_OPEN, ENTRY_REFRESHED, LATER_FRAGMENT, Packet},
    stats,
};

/// `bpf_map_update_elem` flags.
const BPF_ANY: u64 = 0;
const BPF_NOEXIST: u64 = 1;
/// The kernel's `EEXIST`, as map helpers return it (negated).
const EEXIST: i32 = 17;

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

/// Advances the TCP state of `conn` for a packet with `flags` seen in `direction`; true when
/// it wrote the entry's timestamp (a state change, or the first packet after
/// [`TOUCH_INTERVAL_NS`]).
#[inline(always)]
fn touch(
    conn: &mut Conn,
    now: u64,
    is_tcp: bool,
    flags: u8,
    direction: Direction,
    table: Table,
) -> bool {
    let mut refreshed = false;
    if is_tcp {
        let old = conn.state;
        let state = tcp_state::next(old, flags, direction);
        // Of two CPUs moving the same connection (a NAT client's packet and its real
        // server's), only the one whose change lands counts it.
        if state != old && set_state(conn, old, state) {
            counts::moved(conn.real, old, state, table);
            conn.last_seen_ns = now;
            refreshed = true;
        }
    }
    if now.wrapping_sub(conn.last_seen_ns) > TOUCH_INTERVAL_NS {
        conn.last_seen_ns = now;
        refreshed = true;
    }
    refreshed
}

/// Whether `conn` has been idle past its state's timeout at `now`: then it is over, as IPVS's
/// timer would have ended it, and no packet may change it any more (lbd's sweep removes such
/// an entry only a margin later, so the two never act on one entry at once: the state and
/// counts lbd takes off with an entry are the ones it read). Checked only for an entry idle
/// longer than [`TOUCH_INTERVAL_NS`] (the shortest timeout is a second), so a busy flow pays
/// one comparison.
#[inline(always)]
fn over(conn: &Conn, now: u64) -> bool {
    // (A timestamp ahead of the clock, written by lbd, is not idle.)
    let idle = now.saturating_sub(conn.last_seen_ns);
    idle > TOUCH_INTERVAL_NS && idle >= maps::timeout_ns(conn.state)
}

/// Removes the client-direction entry `key` of `table`, over at its timeout, and takes it off
/// its real server's counts if this call removed it (lbd's sweep may have removed it first).
#[inline(always)]
fn end(table: Table, key: &FlowKey, conn: &Conn) {
    if remove(table, key) {
        counts::closed(conn.real, conn.state, table);
    }
}

/// Changes `conn`'s state from `old` to `new` if it is still `old`, atomically (a compare-
/// and-exchange of the 32-bit word that holds it with the virtual port and the flags, which
/// never change); false if another CPU changed it first.
#[inline(always)]
fn set_state(conn: &mut Conn, old: u8, new: u8) -> bool {
    const SHIFT: u32 = 8 * (STATE_OFFSET - WORD_OFFSET) as u32;
    const WORD_OFFSET: usize = core::mem::offset_of!(Conn, vport);
    const STATE_OFFSET: usize = core::mem::offset_of!(Conn, state);
    const _: () = assert!(WORD_OFFSET % 4 == 0 && STATE_OFFSET - WORD_OFFSET < 4);
    let word = (&raw mut *conn)
        .cast::<u8>()
        .wrapping_add(WORD_OFFSET)
        .cast::<u32>();
    // SAFETY: a 4-byte-aligned word inside the entry (checked above); the BPF target is
    // little-endian, so the state byte sits at bits SHIFT..SHIFT+8.
    unsafe {
        let current = core::ptr::read_volatile(word) & !(0xff << SHIFT);
        let expected = current | (u32::from(old) << SHIFT);
        let desired = current | (u32::from(new) << SHIFT);
        atomic_cxchg::<u32, { AtomicOrdering::SeqCst }, { AtomicOrdering::SeqCst }>(
            word, expected, desired,
        )
        .1
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

/// The connection this packet belongs to, written to `conn` (and its real server to `real`):
/// looked up in the connection table, then in the half-open table.
#[inline(always)]
pub fn lookup(
    packet: &mut Packet,
    conn_out: &mut Conn,
    real_out: &mut RealServer,
) -> Result<Hit, Verdict> {
    if let Some(entry) = CONNS.get_ptr_mut(&packet.flow) {
        // SAFETY: hash values stay valid for the program's run (RCU); concurrent writers of
        // the same flow race benignly on plain stores of state and timestamp.
        return found(
            packet,
            unsafe { &mut *entry },
            Table::Conns,
            conn_out,
            real_out,
        );
    }
    if let Some(entry) = HALF_OPEN.get_ptr_mut(&packet.flow) {
        packet.entry = ENTRY_HALF_OPEN;
        // SAFETY: as above.
        return found(
            packet,
            unsafe { &mut *entry },
            Table::HalfOpen,
            conn_out,
            real_out,
        );
    }
    Ok(Hit::Miss)
}

/// The entry `conn` of `table` that `packet` matched.
#[inline(always)]
fn found(
    packet: &mut Packet,
    conn: &mut Conn,
    table: Table,
    conn_out: &mut Conn,
    real_out: &mut RealServer,
) -> Result<Hit, Verdict> {
    let is_tcp = packet.flow.proto == IPPROTO_TCP;
    let now = now();
    if conn.flags & CONN_F_REPLY != 0 {
        *conn_out = *conn;
        // The state lives in the client-direction entry.
        let key = FlowKey {
            saddr: packet.flow.daddr,
            daddr: conn_out.vaddr,
            sport: packet.flow.dport,
            dport: conn_out.vport,
            proto: packet.flow.proto,
            family: packet.flow.family,
            _pad16: 0,
        };
        if let Some(forward) = get_ptr_mut(table, &key) {
            // SAFETY: as in `lookup`.
            let forward = unsafe { &mut *forward };
            if over(forward, now) {
                // The connection is over: the reply goes to the kernel as IPVS passes a
                // packet of no connection, and both entries go.
                let _ = remove(table, &packet.flow);
                end(table, &key, forward);
                return Ok(Hit::Miss);
            }
            let _ = touch(
                forward,
                now,
                is_tcp,
                packet.tcp_flags,
                Direction::Output,
                table,
            );
            // A UDP flow answered: both entries move. (Not with a later fragment: more of a
            // datagram, not a second one, as on the client's side.)
            if table == Table::HalfOpen && !is_tcp && packet.fragment != LATER_FRAGMENT {
                let _ = promote(&key, forward, Some(&packet.flow));
            }
        }
        stats::count(Stat::ConnHit);
        return Ok(Hit::Reply);
    }
    let Some(real) = maps::real(conn.real) else {
        // Its slot was freed: a stale entry, as if it were not there.
        return Ok(Hit::Miss);
    };
    if over(conn, now) {
        // Past its timeout: a new flow on the same ports, if it may open one.
        expire(&packet.flow, conn, real, table);
        return Ok(Hit::Miss);
    }
    // A SYN without RST, as IPVS's `tcp_conn_schedule` takes for a new connection.
    if is_tcp
        && packet.tcp_flags & (tcp_state::TCP_SYN | tcp_state::TCP_RST) == tcp_state::TCP_SYN
        && (reusable(conn, real) || real.flags & REAL_F_REMOVED != 0)
    {
        // A new connection on the ports of a finished one: this one goes, and the new one is
        // scheduled afresh. (On the ports of a connection to a deleted real server too: IPVS
        // drops such a SYN unless `expire_nodest_conn` is set, which stalls a client that
        // reuses its port until the old connection expires; lb does not.)
        expire(&packet.flow, conn, real, table);
        return Ok(Hit::Miss);
    }
    if real.flags & REAL_F_REMOVED != 0 {
        // IPVS: the destination is no longer available.
        if !maps::setting(SETTINGS_F_EXPIRE_NODEST_CONN) {
            return Err(drop(Stat::DropNoDest));
        }
        expire(&packet.flow, conn, real, table);
        return Ok(Hit::Miss);
    }
    if touch(
        conn,
        now,
        is_tcp,
        packet.tcp_flags,
        input_direction(real.method),
        table,
    ) {
        packet.entry |= ENTRY_REFRESHED;
    }
    // (A later fragment is more of the same datagram, not a second one.)
    if table == Table::HalfOpen
        && packet.fragment != LATER_FRAGMENT
        && (!is_tcp || conn.state == tcp_state::ESTABLISHED)
    {
        let reply = reply_key(&packet.flow, real);
        let reply = if real.method == method::MASQ {
            Some(&reply)
        } else {
            None
        };
        if promote(&packet.flow, conn, reply) {
            packet.entry &= !ENTRY_HALF_OPEN;
        }
    }
    stats::count(Stat::ConnHit);
    *conn_out = *conn;
    *real_out = *real;
    Ok(Hit::Forward)
}

/// The entry of `key` in `table`.
#[inline(always)]
fn get_ptr_mut(table: Table, key: &FlowKey) -> Option<*mut Conn> {
    match table {
        Table::Conns => CONNS.get_ptr_mut(key),
        Table::HalfOpen => HALF_OPEN.get_ptr_mut(key),
    }
}

/// Removes the entry of `key` from `table`; true if this call removed it (so that exactly
/// one of the data path and lbd's sweep, whichever removes an entry, takes it off the counts).
#[inline(always)]
fn remove(table: Table, key: &FlowKey) -> bool {
    match table {
        Table::Conns => CONNS.remove(key).is_ok(),
        Table::HalfOpen => HALF_OPEN.remove(key).is_ok(),
    }
}

/// Moves the connection of flow `key` (its client entry `conn`, and for NAT its reply entry
/// `reply`) from the half-open table to the connection table. When the connection table is
/// full it stays where it is (counted): it keeps working there. When another CPU moved it
/// first, nothing more is done. True if the connection is in the connection table now.
#[inline(always)]
fn promote(key: &FlowKey, conn: &Conn, reply: Option<&FlowKey>) -> bool {
    if let Some(reply_key) = reply {
        let entry = Conn {
            flags: CONN_F_REPLY,
            ..*conn
        };
        if CONNS.insert(reply_key, &entry, BPF_ANY).is_err() {
            stats::count(Stat::ConnTableFull);
            return false;
        }
    }
    match CONNS.insert(key, conn, BPF_NOEXIST) {
        Ok(()) => {}
        Err(e) if e == -EEXIST => return true,
        Err(_) => {
            if let Some(reply_key) = reply {
                let _ = CONNS.remove(reply_key);
            }
            stats::count(Stat::ConnTableFull);
            return false;
        }
    }
    counts::opened(conn.real, conn.state, Table::Conns);
    if HALF_OPEN.remove(key).is_ok() {
        counts::closed(conn.real, conn.state, Table::HalfOpen);
    }
    if let Some(reply_key) = reply {
        let _ = HALF_OPEN.remove(reply_key);
    }
    stats::count(Stat::Promoted);
    true
}

/// Whether a SYN on `conn`'s ports starts a new connection rather than continuing it, as
/// IPVS decides with its `conn_reuse_mode` (default 1) and `expire_nodest_conn` sysctls: the
/// connection is finished (TIME_WAIT, CLOSE; with mode bit 2 also FIN_WAIT of DR and TUN,
/// which see one direction only) and not under a persistence template, or its real server
/// has weight 0 and `expire_nodest_conn` is set.
#[inline(always)]
fn reusable(conn: &Conn, real: &RealServer) -> bool {
    let settings = maps::settings();
    if settings & SETTINGS_F_CONN_REUSE_OFF != 0 {
        return false;
    }
    if settings & SETTINGS_F_EXPIRE_NODEST_CONN != 0 && real.weight == 0 {
        return true;
    }
    if conn.flags & CONN_F_TEMPLATED != 0 {
        return false;
    }
    match conn.state {
        tcp_state::TIME_WAIT | tcp_state::CLOSE => true,
        tcp_state::FIN_WAIT => {
            settings & SETTINGS_F_CONN_REUSE_FIN_WAIT != 0 && real.method != method::MASQ
        }
        _ => false,
    }
}

/// Ends `conn` (of `table`) now: its timeout passed, a SYN reuses its ports, or its real
/// server is gone and `expire_nodest_conn` is set. Both of its entries go, and its real server's counts with
/// them if this call removed it.
#[inline(always)]
fn expire(flow: &FlowKey, conn: &Conn, real: &RealServer, table: Table) {
    if real.method == method::MASQ {
        let _ = remove(table, &reply_key(flow, real));
    }
    end(table, flow, conn);
}

/// A NAT connection's two entries may part: the half-open table's LRU may evict one and not
/// the other, and lbd's sweep removes one after the other. When the reply entry has gone
/// while the client's is still used, the client's packet puts it back before the real server
/// answers (otherwise the answer would reach the kernel unrewritten, and the client would see
/// the real server's own address).
///
/// Looked at only when this packet has just refreshed the client's entry (`touch`: at most
/// about once a second per flow, and on every state change), not on every packet: an entry
/// the LRU evicts has gone unused for a while, and the flow's next packet refreshes.
#[inline(always)]
pub fn keep_reply_entry(packet: &Packet, conn: &Conn, real: &RealServer) {
    if is_icmp(packet.flow.proto) {
        // A relayed ICMP error: its `flow` is the error's, not the connection's.
        return;
    }
    if packet.entry & ENTRY_REFRESHED == 0 {
        return;
    }
    let key = reply_key(&packet.flow, real);
    let table = if packet.entry & ENTRY_HALF_OPEN != 0 {
        Table::HalfOpen
    } else {
        Table::Conns
    };
    if get_ptr_mut(table, &key).is_some() {
        return;
    }
    let reply = Conn {
        flags: CONN_F_REPLY,
        ..*conn
    };
    let restored = match table {
        Table::Conns => CONNS.insert(&key, &reply, BPF_ANY),
        Table::HalfOpen => HALF_OPEN.insert(&key, &reply, BPF_ANY),
    };
    if restored.is_ok() {
        stats::count(Stat::ReplyRestored);
    }
}

/// The key of a NAT connection's reply entry: the real server's address and port to the
/// client.
#[inline(always)]
fn reply_key(flow: &FlowKey, real: &RealServer) -> FlowKey {
    FlowKey {
        saddr: real.addr,
        daddr: flow.saddr,
        sport: real.port_for(flow.dport),
        dport: flow.sport,
        proto: flow.proto,
        family: flow.family,
        _pad16: 0,
    }
}

/// Whether a packet that belongs to no connection may open one, as IPVS decides
/// (`tcp_conn_schedule`): any UDP datagram; for TCP a SYN without RST, or with `sloppy_tcp`
/// any segment without RST. Others go to the kernel, as IPVS accepts them to the local stack
/// (which answers a stray ACK to its own VIP with a reset): a spoofed ACK flood creates no
/// connections.
#[inline(always)]
pub fn may_open(packet: &Packet) -> Result<(), Verdict> {
    if packet.fragment == LATER_FRAGMENT {
        // Its first fragment opened no connection (or it was evicted): nothing to follow.
        return Err(crate::pass(Stat::PassFragment));
    }
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

/// Schedules a new flow of `service` to a real server and remembers the choice in the
/// half-open table, written to `conn_out` and `real_out`.
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
        flags: if service.flags & SERVICE_F_PERSISTENT != 0 {
            CONN_F_TEMPLATED
        } else {
            0
        },
        _pad: 0,
        last_seen_ns: now,
    };
    if real.method == method::MASQ {
        // Replies come from the real server's address and port to the client.
        let reply_key = reply_key(&packet.flow, real);
        let reply = Conn {
            flags: CONN_F_REPLY,
            ..conn
        };
        if HALF_OPEN.insert(&reply_key, &reply, BPF_ANY).is_err() {
            return Err(drop(Stat::DropConnTableFull));
        }
    }
    if HALF_OPEN.insert(&packet.flow, &conn, BPF_ANY).is_err() {
        return Err(drop(Stat::DropConnTableFull));
    }
    counts::opened(real_id, state, Table::HalfOpen);
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
        client: packet.flow.saddr.and(&service.persist_mask),
    };
    if persistent && let Some(template) = PERSIST.get_ptr_mut(&key) {
        // SAFETY: LRU hash value, valid for this run; benign races on the timestamp.
        let template = unsafe { &mut *template };
        let timeout_ns = u64::from(service.persist_timeout) * 1_000_000_000;
        // IPVS's ip_vs_check_template: a template to a deleted real server is stale, and so
        // is one to a quiesced (weight 0) one with `expire_quiescent_template`.
        if now.wrapping_sub(template.last_seen_ns) < timeout_ns
            && let Some(real) = maps::real(template.real)
            && real.flags & REAL_F_REMOVED == 0
            && (real.weight != 0 || !maps::setting(SETTINGS_F_EXPIRE_QUIESCENT_TEMPLATE))
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
