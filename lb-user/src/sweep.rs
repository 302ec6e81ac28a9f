//! The periodic sweep of the connection table and the persistence templates, as pure logic:
//! which entries expire (IPVS's per-state timeouts), how many active and inactive connections
//! each real server has, which templates stay and which are refreshed.
//!
//! The director reads the maps a chunk at a time (`bpf_batch`), hands every entry here, then
//! deletes and writes what was decided. The half-open table is read whole every tick, and its
//! fresh count replaces the data path's running one. The buffers are kept from one sweep to
//! the next, so a sweep of a full table allocates nothing once they have grown: at a million
//! connections a second, per-entry allocations and system calls were the daemon's CPU.

use std::collections::{HashMap, HashSet};

use lb_common::{Addr, CONN_F_REPLY, Conn, FlowKey, Persist, PersistKey, tcp_state};

use crate::model::Timeouts;

/// Connection counts of one real server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnCounts {
    pub active: u32,
    pub inactive: u32,
    /// Live persistence templates pointing at the real server.
    pub persistent: u32,
}

/// Seconds of inactivity after which IPVS expires a connection in `state`, given the
/// configurable timeouts (the table is `lb_common::tcp_state::timeout_secs`, which the data
/// path reads too).
pub fn tcp_timeout(state: u8, t: &Timeouts) -> u64 {
    u64::from(tcp_state::timeout_secs(state, t.tcp, t.tcp_fin, t.udp))
}

/// Whole seconds since `last_seen_ns`.
pub fn idle_secs(now_ns: u64, last_seen_ns: u64) -> u64 {
    now_ns.saturating_sub(last_seen_ns) / 1_000_000_000
}

/// Whether a connection is over: idle past its timeout. The data path treats it as gone from
/// then on (a packet of it opens a new connection if it may, or goes to the kernel) and no
/// longer changes it.
pub fn expired(conn: &Conn, now_ns: u64, timeouts: &Timeouts) -> bool {
    idle_secs(now_ns, conn.last_seen_ns) >= tcp_timeout(conn.state, timeouts)
}

/// How long after its timeout the sweep removes an entry. The data path may still be acting
/// on an entry just before its timeout (changing its state and moving its real server's
/// counts); an entry past its timeout it only removes. Removing entries only this much later
/// means the sweep never removes one whose state the data path is changing, so the state it
/// takes off the counts with the entry is the entry's last.
pub const REMOVAL_MARGIN_SECS: u64 = 1;

/// Whether the sweep removes an entry: [`REMOVAL_MARGIN_SECS`] past its timeout.
pub fn removable(conn: &Conn, now_ns: u64, timeouts: &Timeouts) -> bool {
    idle_secs(now_ns, conn.last_seen_ns) >= tcp_timeout(conn.state, timeouts) + REMOVAL_MARGIN_SECS
}

/// The client-direction key of a NAT reply entry.
pub fn forward_key(reply_key: &FlowKey, reply: &Conn) -> FlowKey {
    FlowKey {
        saddr: reply_key.daddr,
        daddr: reply.vaddr,
        sport: reply_key.dport,
        dport: reply.vport,
        proto: reply_key.proto,
        family: reply_key.family,
        _pad16: 0,
    }
}

/// What the sweep needs to know of the configuration.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub timeouts: Timeouts,
    /// Persistent services: id → (netmask as in the data path, timeout in seconds).
    pub persistence: HashMap<u32, (Addr, u64)>,
    /// Real servers forwarding with NAT: only their connections have reply entries.
    pub masq: HashSet<u32>,
}

/// What becomes of a persistence template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// Within its timeout.
    Keep,
    /// Past its timeout while its client still has connections: IPVS keeps such a template
    /// alive, so it is written back as seen now.
    Refresh,
    /// Past its timeout with no connection left, or of a service no longer persistent.
    Expire,
}

/// A pass over the connection table, and what the last complete pass found. A pass may take
/// several ticks (a big table is read a part at a time): expiry is decided entry by entry as
/// they are read, whatever depends on the whole table at the end of the pass. The buffers are
/// kept from pass to pass.
#[derive(Debug, Default)]
pub struct Sweep {
    now_ns: u64,
    /// Entries to delete from the connection table, this tick, as read.
    pub expired: Vec<(FlowKey, Conn)>,
    /// Entries to delete from the half-open table, this tick, as read.
    pub half_open_expired: Vec<(FlowKey, Conn)>,
    /// The half-open table's connections by real server id, as counted this tick.
    half_open: Vec<ConnCounts>,
    /// Counts by real server id: of the pass under way, and of the last complete one.
    counting: Vec<ConnCounts>,
    counts: Vec<ConnCounts>,
    /// Client-direction keys of live NAT connections, and of those expired in this pass.
    live_nat: HashSet<FlowKey>,
    expired_nat: HashSet<FlowKey>,
    /// NAT reply entries: their key, their connection's client-direction key, and the entry.
    replies: Vec<(FlowKey, FlowKey, Conn)>,
    /// Clients of persistent services with live connections.
    clients: HashSet<PersistKey>,
}

impl Sweep {
    /// Starts a pass, forgetting what the last one collected (but not its counts).
    pub fn begin_pass(&mut self) {
        self.counting
            .iter_mut()
            .for_each(|c| *c = ConnCounts::default());
        self.live_nat.clear();
        self.expired_nat.clear();
        self.replies.clear();
        self.clients.clear();
    }

    /// Starts a tick of the pass at `now_ns` (the data path's clock).
    pub fn tick(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
        self.expired.clear();
    }

    fn count(counts: &mut Vec<ConnCounts>, real: u32) -> &mut ConnCounts {
        let i = real as usize;
        if i >= counts.len() {
            counts.resize(i + 1, ConnCounts::default());
        }
        &mut counts[i]
    }

    /// Takes in one connection-table entry.
    pub fn connection(&mut self, rules: &Rules, key: &FlowKey, conn: &Conn) {
        if conn.flags & CONN_F_REPLY != 0 {
            // Decided once every client-direction entry has been seen.
            self.replies.push((*key, forward_key(key, conn), *conn));
            return;
        }
        let nat = rules.masq.contains(&conn.real);
        let active = tcp_state::is_active(conn.state);
        if removable(conn, self.now_ns, &rules.timeouts) {
            self.expired.push((*key, *conn));
            if nat {
                self.expired_nat.insert(*key);
            }
            return;
        }
        if nat {
            self.live_nat.insert(*key);
        }
        if let Some(&(mask, _)) = rules.persistence.get(&conn.service) {
            self.clients.insert(PersistKey {
                service: conn.service,
                client: key.saddr.and(&mask),
            });
        }
        let c = Self::count(&mut self.counting, conn.real);
        if active {
            c.active += 1;
        } else {
            c.inactive += 1;
        }
    }

    /// Ends the pass over the connection table: a reply entry lives as long as its client-
    /// direction entry. The walk is no snapshot, and a connection opened meanwhile may show its
    /// reply entry (inserted first) without its client entry, so a reply entry whose client
    /// entry was neither seen live nor expired in this pass goes only if `in_table` says it is
    /// gone.
    pub fn end_connections(&mut self, in_table: impl Fn(&FlowKey) -> bool) {
        for (key, forward, reply) in &self.replies {
            if self.live_nat.contains(forward) {
                continue;
            }
            if self.expired_nat.contains(forward) || !in_table(forward) {
                self.expired.push((*key, *reply));
            }
        }
    }

    /// Starts this tick's read of the half-open table.
    pub fn begin_half_open(&mut self) {
        self.half_open_expired.clear();
        self.half_open
            .iter_mut()
            .for_each(|c| *c = ConnCounts::default());
    }

    /// Takes in one half-open entry. Each of a NAT connection's two entries there expires by
    /// its own timeout: the LRU may have evicted the other, and the data path puts a missing
    /// reply entry back while the client's is used.
    pub fn half_open_entry(&mut self, rules: &Rules, key: &FlowKey, conn: &Conn) {
        if removable(conn, self.now_ns, &rules.timeouts) {
            self.half_open_expired.push((*key, *conn));
            return;
        }
        if conn.flags & CONN_F_REPLY != 0 {
            return;
        }
        if let Some(&(mask, _)) = rules.persistence.get(&conn.service) {
            self.clients.insert(PersistKey {
                service: conn.service,
                client: key.saddr.and(&mask),
            });
        }
        let c = Self::count(&mut self.half_open, conn.real);
        if tcp_state::is_active(conn.state) {
            c.active += 1;
        } else {
            c.inactive += 1;
        }
    }

    /// Real server `id`'s connections in the half-open table, as counted this tick.
    pub fn half_open(&self, id: u32) -> ConnCounts {
        self.half_open.get(id as usize).copied().unwrap_or_default()
    }

    /// Decides a persistence template's fate (after [`Sweep::end_connections`]); a kept or
    /// refreshed one counts for its real server.
    pub fn template(&mut self, rules: &Rules, key: &PersistKey, template: &Persist) -> Template {
        let Some(&(_, timeout)) = rules.persistence.get(&key.service) else {
            return Template::Expire;
        };
        let verdict = if idle_secs(self.now_ns, template.last_seen_ns) < timeout {
            Template::Keep
        } else if self.clients.contains(key) {
            Template::Refresh
        } else {
            return Template::Expire;
        };
        Self::count(&mut self.counting, template.real).persistent += 1;
        verdict
    }

    /// Ends the pass: its counts become those [`Sweep::counts`] gives.
    pub fn end_pass(&mut self) {
        std::mem::swap(&mut self.counting, &mut self.counts);
    }

    /// The counts of real server `id` found by the last complete pass.
    pub fn counts(&self, id: u32) -> ConnCounts {
        self.counts.get(id as usize).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;
    const NOW: u64 = 10_000 * SEC;

    fn key(client: u32, port: u16) -> FlowKey {
        FlowKey {
            saddr: Addr::v4(client),
            daddr: Addr::v4(99),
            sport: port,
            dport: 80,
            proto: 6,
            family: lb_common::AF_INET,
            _pad16: 0,
        }
    }

    fn conn(real: u32, state: u8, idle: u64) -> Conn {
        Conn {
            real,
            service: 1,
            vaddr: Addr::v4(99),
            vport: 80,
            state,
            flags: 0,
            _pad: 0,
            last_seen_ns: NOW - idle * SEC,
        }
    }

    /// The reply entry of `conn` opened by client `key` to a real server at address 50.
    fn reply_of(key: &FlowKey, conn: &Conn) -> (FlowKey, Conn) {
        let reply_key = FlowKey {
            saddr: Addr::v4(50),
            daddr: key.saddr,
            sport: 80,
            dport: key.sport,
            proto: key.proto,
            family: key.family,
            _pad16: 0,
        };
        (
            reply_key,
            Conn {
                flags: CONN_F_REPLY,
                ..*conn
            },
        )
    }

    fn keys(entries: &[(FlowKey, Conn)]) -> Vec<FlowKey> {
        entries.iter().map(|(k, _)| *k).collect()
    }

    #[test]
    fn the_half_open_table_is_counted_afresh_each_tick() {
        let rules = Rules {
            persistence: HashMap::from([(1, (Addr::v4(u32::MAX), 360))]),
            ..Rules::default()
        };
        let mut sweep = Sweep::default();
        sweep.begin_pass();
        sweep.tick(NOW);
        sweep.begin_half_open();
        // Over at 60 s (SYN_RECV), removed a margin later.
        let syn = (key(1, 1), conn(3, tcp_state::SYN_RECV, 60));
        let stale = (key(1, 2), conn(3, tcp_state::SYN_RECV, 61));
        let udp = (key(1, 3), conn(4, tcp_state::UDP, 1));
        let (reply_key, reply) = reply_of(&syn.0, &syn.1);
        for (k, c) in [&syn, &stale, &udp, &(reply_key, reply)] {
            sweep.half_open_entry(&rules, k, c);
        }
        assert_eq!(keys(&sweep.half_open_expired), vec![stale.0]);
        assert_eq!(
            (sweep.half_open(3).active, sweep.half_open(3).inactive),
            (1, 0)
        );
        assert_eq!(
            (sweep.half_open(4).active, sweep.half_open(4).inactive),
            (0, 1)
        );
        // Its client's template is kept alive by the half-open connection.
        let template = Persist {
            real: 3,
            _pad: 0,
            last_seen_ns: NOW - 400 * SEC,
        };
        let client = PersistKey {
            service: 1,
            client: Addr::v4(1),
        };
        assert_eq!(
            sweep.template(&rules, &client, &template),
            Template::Refresh
        );
        // The next tick counts from nothing: what the LRU evicted meanwhile is not counted.
        sweep.tick(NOW + SEC);
        sweep.begin_half_open();
        sweep.half_open_entry(&rules, &udp.0, &udp.1);
        assert!(sweep.half_open_expired.is_empty());
        assert_eq!(sweep.half_open(3), ConnCounts::default());
        assert_eq!(sweep.half_open(4).inactive, 1);
    }

    #[test]
    fn connections_are_removed_a_margin_past_their_state_timeout_and_the_rest_are_counted() {
        let rules = Rules::default();
        let mut sweep = Sweep::default();
        sweep.begin_pass();
        sweep.tick(NOW);
        let entries = [
            (key(1, 1), conn(3, tcp_state::ESTABLISHED, 899)),
            (key(1, 2), conn(3, tcp_state::ESTABLISHED, 901)),
            (key(1, 3), conn(3, tcp_state::FIN_WAIT, 119)),
            (key(1, 4), conn(4, tcp_state::CLOSE, 11)),
            // Over (10 s in CLOSE), but removed only a margin later: until then it counts.
            (key(1, 5), conn(4, tcp_state::CLOSE, 10)),
            (key(1, 6), conn(4, tcp_state::SYN_RECV, 0)),
        ];
        for (k, c) in &entries {
            sweep.connection(&rules, k, c);
        }
        sweep.end_connections(|_| panic!("no reply entries to ask about"));
        assert_eq!(keys(&sweep.expired), vec![key(1, 2), key(1, 4)]);
        assert_eq!(sweep.expired[0].1, entries[1].1, "as read");
        assert_eq!(
            sweep.counts(3),
            ConnCounts::default(),
            "until the pass ends"
        );
        sweep.end_pass();
        assert_eq!(
            sweep.counts(3),
            ConnCounts {
                active: 1,
                inactive: 1,
                persistent: 0
            }
        );
        assert_eq!((sweep.counts(4).active, sweep.counts(4).inactive), (1, 1));
        assert_eq!(sweep.counts(70_000), ConnCounts::default());

        // A pass over two ticks: each tick expires what it reads; the counts are the whole
        // pass's, and the last pass's stand meanwhile.
        sweep.begin_pass();
        sweep.tick(NOW + 2 * SEC);
        sweep.connection(&rules, &entries[0].0, &entries[0].1);
        assert_eq!(keys(&sweep.expired), vec![key(1, 1)]);
        sweep.tick(NOW + 3 * SEC);
        assert!(sweep.expired.is_empty());
        sweep.connection(&rules, &entries[5].0, &entries[5].1);
        sweep.connection(&rules, &entries[4].0, &entries[4].1);
        assert_eq!(keys(&sweep.expired), vec![key(1, 5)]);
        assert_eq!(sweep.counts(4).active, 1);
        sweep.end_connections(|_| true);
        sweep.end_pass();
        assert_eq!(sweep.counts(3), ConnCounts::default());
        assert_eq!((sweep.counts(4).active, sweep.counts(4).inactive), (1, 0));
    }

    #[test]
    fn nat_reply_entries_live_and_die_with_their_connection() {
        let rules = Rules {
            masq: HashSet::from([3]),
            ..Rules::default()
        };
        let live = (key(1, 1), conn(3, tcp_state::ESTABLISHED, 5));
        let dead = (key(1, 2), conn(3, tcp_state::CLOSE, 30));
        let opening = (key(1, 3), conn(3, tcp_state::SYN_RECV, 0));
        let orphan = (key(1, 4), conn(3, tcp_state::ESTABLISHED, 5));
        let mut sweep = Sweep::default();
        sweep.begin_pass();
        sweep.tick(NOW);
        // Replies first: the walk's order is the hash table's.
        for (k, c) in [&live, &dead, &opening, &orphan] {
            let (rk, rc) = reply_of(k, c);
            sweep.connection(&rules, &rk, &rc);
        }
        for (k, c) in [&live, &dead] {
            sweep.connection(&rules, k, c);
        }
        // `opening` was inserted after the walk passed its bucket; `orphan`'s client entry
        // is gone (evicted).
        sweep.end_connections(|k| *k == opening.0);
        let dead_reply = reply_of(&dead.0, &dead.1).0;
        let orphan_reply = reply_of(&orphan.0, &orphan.1).0;
        assert_eq!(keys(&sweep.expired), vec![dead.0, dead_reply, orphan_reply]);
        sweep.end_pass();
        assert_eq!((sweep.counts(3).active, sweep.counts(3).inactive), (1, 0));
    }

    #[test]
    fn templates_outlive_their_timeout_while_their_client_has_connections() {
        let rules = Rules {
            persistence: HashMap::from([(1, (Addr::v4(0x00ff_ffff), 300))]),
            ..Rules::default()
        };
        let client = |addr: u32| PersistKey {
            service: 1,
            client: Addr::v4(addr & 0x00ff_ffff),
        };
        let template = |idle: u64| Persist {
            real: 3,
            _pad: 0,
            last_seen_ns: NOW - idle * SEC,
        };
        let mut sweep = Sweep::default();
        sweep.begin_pass();
        sweep.tick(NOW);
        // A client in the template's netmask with a live connection.
        sweep.connection(
            &rules,
            &key(0x0500_0a0a, 1),
            &conn(3, tcp_state::ESTABLISHED, 1),
        );
        sweep.end_connections(|_| true);
        assert_eq!(
            sweep.template(&rules, &client(0x0a0a), &template(299)),
            Template::Keep
        );
        assert_eq!(
            sweep.template(&rules, &client(0x0a0a), &template(400)),
            Template::Refresh
        );
        assert_eq!(
            sweep.template(&rules, &client(0x0b0b), &template(400)),
            Template::Expire
        );
        let other_service = PersistKey {
            service: 2,
            client: Addr::v4(0x0a0a),
        };
        assert_eq!(
            sweep.template(&rules, &other_service, &template(1)),
            Template::Expire
        );
        sweep.end_pass();
        assert_eq!(sweep.counts(3).persistent, 2);
        assert_eq!(sweep.counts(3).active, 1);
    }
}
