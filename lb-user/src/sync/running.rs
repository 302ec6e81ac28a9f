//! The sync daemons as they run in lbd: their sockets, the master's memory of what it sent
//! and what it is about to send, and what the backup received. The director drives it: the
//! sweep hands it the entries it reads, and it sends or applies through the director's data
//! path.

use std::collections::HashMap;

use lb_common::{Conn, FlowKey, Persist, PersistKey};
use tracing::{debug, info, warn};

use super::{
    Role, SyncDaemon, SyncDaemons,
    backup::{self, Entry, Lookup, Skip},
    master::Tracker,
    socket::{Receiver, Sender},
    wire,
};
use crate::{config::Config, netlink};

struct Master {
    daemon: SyncDaemon,
    sender: Sender,
}

struct Backup {
    daemon: SyncDaemon,
    receiver: Receiver,
}

/// What a backup made of the messages it read (for the logs).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub messages: usize,
    pub other_syncid: usize,
    pub bad: usize,
    pub entries: Vec<Entry>,
    pub skipped: HashMap<Skip, usize>,
}

/// The running daemons.
#[derive(Default)]
pub struct Running {
    master: Option<Master>,
    backup: Option<Backup>,
    tracker: Tracker,
    pending: Vec<(FlowKey, Conn)>,
    pending_templates: Vec<(PersistKey, Persist)>,
}

impl Running {
    /// Starts, restarts or stops daemons so that those of `wanted` run. One that cannot
    /// start (its interface gone, a socket refused) is logged and tried again at the next
    /// call.
    pub fn reconcile(&mut self, wanted: &SyncDaemons) {
        if self.master.as_ref().map(|m| &m.daemon) != wanted.master.as_ref() {
            if self.master.take().is_some() {
                info!("sync daemon stopped: state = MASTER");
                self.tracker = Tracker::default();
            }
            if let Some(daemon) = &wanted.master {
                match open(daemon, Sender::open) {
                    Ok(sender) => {
                        info!("sync daemon started: {}", daemon.listing().trim_end());
                        self.master = Some(Master {
                            daemon: daemon.clone(),
                            sender,
                        });
                    }
                    Err(e) => warn!("sync daemon (master) on {}: {e}", daemon.mcast_ifn),
                }
            }
        }
        if self.backup.as_ref().map(|b| &b.daemon) != wanted.backup.as_ref() {
            if self.backup.take().is_some() {
                info!("sync daemon stopped: state = BACKUP");
            }
            if let Some(daemon) = &wanted.backup {
                match open(daemon, Receiver::open) {
                    Ok(receiver) => {
                        info!("sync daemon started: {}", daemon.listing().trim_end());
                        self.backup = Some(Backup {
                            daemon: daemon.clone(),
                            receiver,
                        });
                    }
                    Err(e) => warn!("sync daemon (backup) on {}: {e}", daemon.mcast_ifn),
                }
            }
        }
    }

    pub fn is_running(&self, role: Role) -> bool {
        match role {
            Role::Master => self.master.is_some(),
            Role::Backup => self.backup.is_some(),
        }
    }

    /// The master looks at connection-table entry `key` → `conn` (of timeout `timeout_secs`
    /// in its state) and keeps it to send if it is due.
    pub fn connection(&mut self, key: &FlowKey, conn: &Conn, now_ns: u64, timeout_secs: u64) {
        if self.master.is_some() && self.tracker.connection(key, conn, now_ns, timeout_secs) {
            self.pending.push((*key, *conn));
        }
    }

    /// A pass over the connection table ended.
    pub fn end_connections_pass(&mut self) {
        if self.master.is_some() {
            self.tracker.end_connections_pass();
        }
    }

    /// As [`Running::connection`], for a persistence template.
    pub fn template(&mut self, key: &PersistKey, template: &Persist, now_ns: u64, timeout: u64) {
        if self.master.is_some() && self.tracker.template(key, template, now_ns, timeout) {
            self.pending_templates.push((*key, *template));
        }
    }

    pub fn end_templates_pass(&mut self) {
        if self.master.is_some() {
            self.tracker.end_templates_pass();
        }
    }

    /// Entries a backup put in the tables at `now_ns`: its master does not send them back.
    pub fn received(&mut self, entries: &[Entry], now_ns: u64) {
        if self.master.is_none() {
            return;
        }
        for entry in entries {
            match entry {
                Entry::Conn { key, conn, .. } => {
                    self.tracker.received_connection(key, conn, now_ns)
                }
                Entry::Template { key, template } => {
                    self.tracker.received_template(key, template, now_ns);
                }
            }
        }
    }

    /// Sends what is due, as messages of the master's `sync_maxlen`.
    pub fn send(&mut self, config: &Config) {
        let Some(master) = &self.master else {
            self.pending.clear();
            self.pending_templates.clear();
            return;
        };
        if self.pending.is_empty() && self.pending_templates.is_empty() {
            return;
        }
        let lookup = Lookup::new(config);
        let entries: Vec<wire::SyncConn> = self
            .pending
            .drain(..)
            .filter_map(|(k, c)| backup::sync_conn_of(&k, &c, &lookup))
            .chain(
                self.pending_templates
                    .drain(..)
                    .filter_map(|(k, t)| backup::sync_template_of(&k, &t, &lookup)),
            )
            .collect();
        let messages = wire::pack(
            master.daemon.syncid,
            &entries,
            usize::from(master.daemon.sync_maxlen),
        );
        let mut failed = 0;
        for message in &messages {
            if let Err(e) = master.sender.send(message) {
                failed += 1;
                debug!("sync master: sending: {e}");
            }
        }
        if failed > 0 {
            warn!(
                failed,
                of = messages.len(),
                "sync master: messages not sent"
            );
        }
        debug!(
            entries = entries.len(),
            messages = messages.len(),
            "sync master sent"
        );
    }

    /// The backup's messages received since the last call, read with its syncid and made
    /// into entries of lb's tables by `config` at `now_ns`.
    pub fn receive(&mut self, config: &Config, now_ns: u64) -> Received {
        let mut received = Received::default();
        let Some(backup) = &self.backup else {
            return received;
        };
        let messages: Vec<Vec<u8>> = backup.receiver.drain().collect();
        if messages.is_empty() {
            return received;
        }
        let lookup = Lookup::new(config);
        for message in messages {
            received.messages += 1;
            let decoded = match wire::decode(&message) {
                Ok(d) => d,
                Err(e) => {
                    received.bad += 1;
                    debug!("sync backup: {e}");
                    continue;
                }
            };
            if !wire::syncid_matches(backup.daemon.syncid, decoded.syncid) {
                received.other_syncid += 1;
                continue;
            }
            if let Some(e) = decoded.error {
                received.bad += 1;
                debug!("sync backup: {e}");
            }
            for sc in &decoded.conns {
                match backup::entry_of(sc, &lookup, now_ns) {
                    Ok(entry) => received.entries.push(entry),
                    Err(skip) => {
                        debug!(
                            client = %sc.caddr, port = sc.cport, virtual_addr = %sc.vaddr,
                            vport = sc.vport, real = %sc.daddr, "sync backup: skipped: {skip}"
                        );
                        *received.skipped.entry(skip).or_default() += 1;
                    }
                }
            }
        }
        received
    }
}

/// Opens a daemon's socket on its interface.
fn open<T>(
    daemon: &SyncDaemon,
    how: impl FnOnce(&SyncDaemon, &netlink::Link) -> std::io::Result<T>,
) -> Result<T, String> {
    let link = netlink::link_by_name(&daemon.mcast_ifn).map_err(|e| e.to_string())?;
    how(daemon, &link).map_err(|e| e.to_string())
}
