//! Which connections a master sends, and when. Pure: it sees the connection table as lbd's
//! sweep reads it (about once a second) and remembers what it sent.
//!
//! IPVS decides per packet (`ip_vs_sync_conn_needed`): a TCP connection is sent when it
//! enters ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT or TIME_WAIT (states before those are
//! never sent), UDP once it has seen `sync_threshold` packets, and then again every
//! `sync_period` packets (or, with `sync_refresh_period`, when its timer moved by more than
//! that or half its timeout). lb's data path counts no packets per connection, so lb sends
//! from the table instead: an entry in one of those states when it is first seen, when its
//! state or real server changed, and again while it has traffic, once half its timeout (at
//! least 10 s) has passed since it was last sent, so that the backup's copy never times out
//! while the flow lives. Persistence templates likewise.

use std::{collections::HashMap, hash::Hash};

use lb_common::{CONN_F_REPLY, Conn, FlowKey, IPPROTO_TCP, Persist, PersistKey, tcp_state};

const NS: u64 = 1_000_000_000;

/// The least time between two sends of an entry that has not changed (IPVS's floor on
/// `sync_refresh_period`'s half timeout).
const MIN_REFRESH_NS: u64 = 10 * NS;

/// What was last sent of one entry.
#[derive(Clone, Copy, Debug)]
struct Sent {
    state: u8,
    real: u32,
    at_ns: u64,
    /// The pass that last saw it in the table.
    seen: u64,
}

/// The entries of one table sent so far.
#[derive(Debug)]
struct Memory<K> {
    sent: HashMap<K, Sent>,
    pass: u64,
}

impl<K> Default for Memory<K> {
    fn default() -> Self {
        Memory {
            sent: HashMap::new(),
            pass: 0,
        }
    }
}

impl<K: Eq + Hash> Memory<K> {
    /// Whether to send `key` now, in `state` to `real`, last used at `last_seen_ns`, given
    /// its timeout; remembered as sent if so.
    fn observe(
        &mut self,
        key: K,
        (state, real, last_seen_ns): (u8, u32, u64),
        now_ns: u64,
        timeout_secs: u64,
    ) -> bool {
        let pass = self.pass;
        let send = match self.sent.get_mut(&key) {
            None => true,
            Some(prev) => {
                prev.seen = pass;
                let refresh = (timeout_secs * NS / 2).max(MIN_REFRESH_NS);
                prev.state != state
                    || prev.real != real
                    || (last_seen_ns > prev.at_ns && now_ns.saturating_sub(prev.at_ns) >= refresh)
            }
        };
        if send {
            self.sent.insert(
                key,
                Sent {
                    state,
                    real,
                    at_ns: now_ns,
                    seen: pass,
                },
            );
        }
        send
    }

    /// Records `key` as just sent in `state` to `real`: an entry received from another
    /// director is not sent back to them unless it changes here.
    fn received(&mut self, key: K, state: u8, real: u32, now_ns: u64) {
        let seen = self.pass;
        self.sent.insert(
            key,
            Sent {
                state,
                real,
                at_ns: now_ns,
                seen,
            },
        );
    }

    /// Forgets the entries the pass that ends did not see (they left the table).
    fn end_pass(&mut self) {
        let pass = self.pass;
        self.sent.retain(|_, s| s.seen == pass);
        self.pass += 1;
    }
}

/// A master's memory of what it sent.
#[derive(Debug, Default)]
pub struct Tracker {
    conns: Memory<FlowKey>,
    templates: Memory<PersistKey>,
}

/// Whether IPVS ever sends a TCP connection in `state`.
fn synced_tcp_state(state: u8) -> bool {
    matches!(
        state,
        tcp_state::ESTABLISHED
            | tcp_state::FIN_WAIT
            | tcp_state::CLOSE
            | tcp_state::CLOSE_WAIT
            | tcp_state::TIME_WAIT
    )
}

impl Tracker {
    /// Whether to send the connection-table entry `key` → `conn` now; `timeout_secs` is its
    /// state's timeout. NAT reply entries are never sent (the backup rebuilds them).
    pub fn connection(
        &mut self,
        key: &FlowKey,
        conn: &Conn,
        now_ns: u64,
        timeout_secs: u64,
    ) -> bool {
        if conn.flags & CONN_F_REPLY != 0 {
            return false;
        }
        if key.proto == IPPROTO_TCP && !synced_tcp_state(conn.state) {
            return false;
        }
        self.conns.observe(
            *key,
            (conn.state, conn.real, conn.last_seen_ns),
            now_ns,
            timeout_secs,
        )
    }

    /// The connection table's pass ended: entries it no longer holds are forgotten.
    pub fn end_connections_pass(&mut self) {
        self.conns.end_pass();
    }

    /// Whether to send the persistence template `key` → `template` now, of a service with
    /// persistence timeout `timeout_secs`.
    pub fn template(
        &mut self,
        key: &PersistKey,
        template: &Persist,
        now_ns: u64,
        timeout_secs: u64,
    ) -> bool {
        self.templates.observe(
            *key,
            (0, template.real, template.last_seen_ns),
            now_ns,
            timeout_secs,
        )
    }

    /// The templates were all read.
    pub fn end_templates_pass(&mut self) {
        self.templates.end_pass();
    }

    /// A connection a backup received and put in the table: as IPVS sends only the
    /// connections its own packets move, it is not sent on from here until it changes here
    /// (a director that is master and backup at once, in an active-active group, does not
    /// echo what the others send).
    pub fn received_connection(&mut self, key: &FlowKey, conn: &Conn, now_ns: u64) {
        self.conns.received(*key, conn.state, conn.real, now_ns);
    }

    /// As [`Tracker::received_connection`], for a persistence template.
    pub fn received_template(&mut self, key: &PersistKey, template: &Persist, now_ns: u64) {
        self.templates.received(*key, 0, template.real, now_ns);
    }

    /// How many connections and templates it remembers.
    pub fn len(&self) -> (usize, usize) {
        (self.conns.sent.len(), self.templates.sent.len())
    }
}

#[cfg(test)]
mod tests {
    use lb_common::{AF_INET, Addr, IPPROTO_UDP};

    use super::*;

    fn key(port: u16, proto: u8) -> FlowKey {
        FlowKey {
            saddr: Addr::v4(0x0a00_0001),
            daddr: Addr::v4(0x0a00_0063),
            sport: port.to_be(),
            dport: 80u16.to_be(),
            proto,
            family: AF_INET,
            _pad16: 0,
        }
    }

    fn conn(state: u8, real: u32, last_seen_ns: u64) -> Conn {
        Conn {
            real,
            state,
            last_seen_ns,
            ..Conn::default()
        }
    }

    #[test]
    fn tcp_is_sent_from_established_on_and_on_each_change() {
        let mut t = Tracker::default();
        let k = key(40000, IPPROTO_TCP);
        // Half-open states are not sent.
        assert!(!t.connection(&k, &conn(tcp_state::SYN_RECV, 1, 0), NS, 900));
        assert!(t.connection(&k, &conn(tcp_state::ESTABLISHED, 1, NS), NS, 900));
        // Unchanged: not again, even with traffic, before half the timeout.
        assert!(!t.connection(&k, &conn(tcp_state::ESTABLISHED, 1, 2 * NS), 2 * NS, 900));
        assert!(!t.connection(
            &k,
            &conn(tcp_state::ESTABLISHED, 1, 400 * NS),
            400 * NS,
            900
        ));
        // Half the timeout on, with traffic since: refreshed.
        assert!(t.connection(
            &k,
            &conn(tcp_state::ESTABLISHED, 1, 451 * NS),
            451 * NS,
            900
        ));
        // A state change is sent at once.
        assert!(t.connection(&k, &conn(tcp_state::FIN_WAIT, 1, 452 * NS), 452 * NS, 120));
        assert!(!t.connection(&k, &conn(tcp_state::FIN_WAIT, 1, 452 * NS), 453 * NS, 120));
        // A real server change too (the port reused for a new connection).
        assert!(t.connection(&k, &conn(tcp_state::FIN_WAIT, 2, 453 * NS), 453 * NS, 120));
        // LAST_ACK is never sent.
        assert!(!t.connection(&k, &conn(tcp_state::LAST_ACK, 2, 454 * NS), 454 * NS, 30));
    }

    #[test]
    fn idle_entries_are_not_refreshed_and_short_timeouts_wait_ten_seconds() {
        let mut t = Tracker::default();
        let k = key(5353, IPPROTO_UDP);
        assert!(t.connection(&k, &conn(tcp_state::UDP, 1, NS), NS, 300));
        // No traffic since the send: nothing to refresh.
        assert!(!t.connection(&k, &conn(tcp_state::UDP, 1, NS), 1000 * NS, 300));
        let k2 = key(5354, IPPROTO_UDP);
        assert!(t.connection(&k2, &conn(tcp_state::UDP, 1, 0), 0, 4));
        assert!(!t.connection(&k2, &conn(tcp_state::UDP, 1, 9 * NS), 9 * NS, 4));
        assert!(t.connection(&k2, &conn(tcp_state::UDP, 1, 10 * NS), 10 * NS, 4));
    }

    #[test]
    fn reply_entries_are_never_sent() {
        let mut t = Tracker::default();
        let reply = Conn {
            flags: CONN_F_REPLY,
            ..conn(tcp_state::ESTABLISHED, 1, 0)
        };
        assert!(!t.connection(&key(1, IPPROTO_TCP), &reply, 0, 900));
    }

    #[test]
    fn entries_gone_from_the_table_are_forgotten() {
        let mut t = Tracker::default();
        let (a, b) = (key(1, IPPROTO_TCP), key(2, IPPROTO_TCP));
        let c = conn(tcp_state::ESTABLISHED, 1, 0);
        assert!(t.connection(&a, &c, 0, 900));
        assert!(t.connection(&b, &c, 0, 900));
        t.end_connections_pass();
        // The next pass sees only `a`.
        assert!(!t.connection(&a, &c, NS, 900));
        t.end_connections_pass();
        assert_eq!(t.len(), (1, 0));
        // `b` back (its ports reused): sent again.
        assert!(t.connection(&b, &c, 2 * NS, 900));
    }

    #[test]
    fn received_entries_are_not_echoed() {
        let mut t = Tracker::default();
        let k = key(40000, IPPROTO_TCP);
        let c = conn(tcp_state::ESTABLISHED, 1, 5 * NS);
        t.received_connection(&k, &c, 5 * NS);
        assert!(!t.connection(&k, &c, 6 * NS, 900));
        // Until it moves here.
        assert!(t.connection(&k, &conn(tcp_state::FIN_WAIT, 1, 7 * NS), 7 * NS, 120));
        let p = PersistKey {
            service: 1,
            client: Addr::v4(1),
        };
        let template = Persist {
            real: 2,
            _pad: 0,
            last_seen_ns: 0,
        };
        t.received_template(&p, &template, 0);
        assert!(!t.template(&p, &template, NS, 360));
    }

    #[test]
    fn templates() {
        let mut t = Tracker::default();
        let k = PersistKey {
            service: 1,
            client: Addr::v4(0x0a00_0000),
        };
        let p = |real, last| Persist {
            real,
            _pad: 0,
            last_seen_ns: last,
        };
        assert!(t.template(&k, &p(3, 0), 0, 360));
        assert!(!t.template(&k, &p(3, 5 * NS), 5 * NS, 360));
        assert!(t.template(&k, &p(3, 180 * NS), 180 * NS, 360));
        assert!(t.template(&k, &p(4, 181 * NS), 181 * NS, 360));
        t.end_templates_pass();
        t.end_templates_pass();
        assert_eq!(t.len(), (0, 0));
    }
}
