//! Connection synchronisation, IPVS's way (`ipvsadm --start-daemon master|backup`): a master
//! multicasts the connections and persistence templates of its connection table in IPVS's
//! sync protocol (version 1); a backup reads them and puts them in its own table, so that
//! packets of those flows go to the same real servers once it takes the traffic.
//!
//! - [`wire`]: the protocol's bytes (pure).
//! - [`master`]: which entries to send, and when (pure).
//! - [`backup`]: what a received entry becomes in lb's tables (pure).
//! - [`socket`]: the multicast sockets.
//! - [`running`]: the daemons as they run in lbd.
//! - here: the daemons' settings, as `--start-daemon` gives them and `-L --daemon` lists them.

pub mod backup;
pub mod master;
pub mod running;
pub mod socket;
pub mod wire;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// A sync daemon's role (`IP_VS_STATE_MASTER`, `IP_VS_STATE_BACKUP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Master,
    Backup,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Backup => "backup",
        }
    }
}

/// ipvsadm's default `--mcast-interface` (`DEF_MCAST_IFN`).
pub const DEFAULT_MCAST_IFN: &str = "eth0";

/// A sync daemon's settings (ipvsadm's `ipvs_daemon_t`). As `--start-daemon` gives them,
/// 0 and `None` mean "the kernel's default"; once started they hold what it runs with
/// ([`SyncDaemon::with_defaults`]), as the kernel reports them to `-L --daemon`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDaemon {
    pub role: Role,
    pub mcast_ifn: String,
    pub syncid: u8,
    pub sync_maxlen: u16,
    pub mcast_group: Option<IpAddr>,
    pub mcast_port: u16,
    pub mcast_ttl: u8,
}

impl SyncDaemon {
    /// What the kernel runs a daemon with (`start_sync_thread`): group 224.0.0.81, port 8848,
    /// TTL 1, and messages of at most the MTU (the interface's for a backup, at least 1500;
    /// 1500 for a master) less the IP and UDP headers, or `--sync-maxlen` kept between 1
    /// (a backup: 1024) and 65535 less those headers.
    pub fn with_defaults(mut self, iface_mtu: u32) -> SyncDaemon {
        let group = *self
            .mcast_group
            .get_or_insert(IpAddr::V4(wire::DEFAULT_GROUP));
        if self.mcast_port == 0 {
            self.mcast_port = wire::DEFAULT_PORT;
        }
        if self.mcast_ttl == 0 {
            self.mcast_ttl = 1;
        }
        let headers: u32 = if group.is_ipv6() { 40 + 8 } else { 20 + 8 };
        let (mtu, min) = match self.role {
            Role::Backup => (iface_mtu.clamp(1500, 65535), 1024),
            Role::Master => (1500, 1),
        };
        let maxlen = match self.sync_maxlen {
            0 => mtu - headers,
            given => u32::from(given).clamp(min, 65535 - headers),
        };
        self.sync_maxlen = maxlen as u16;
        self
    }

    /// The multicast group, or the default.
    pub fn group(&self) -> IpAddr {
        self.mcast_group.unwrap_or(IpAddr::V4(wire::DEFAULT_GROUP))
    }

    /// ipvsadm's `-L --daemon` line (`list_daemon`): the fields the kernel reported, those
    /// that are 0 left out.
    pub fn listing(&self) -> String {
        let mut line = format!(
            "{} sync daemon (mcast={}, syncid={}",
            self.role.name(),
            self.mcast_ifn,
            self.syncid
        );
        if self.sync_maxlen != 0 {
            line += &format!(", maxlen={}", self.sync_maxlen);
        }
        if let Some(group) = self.mcast_group {
            line += &format!(", group={group}");
        }
        if self.mcast_port != 0 {
            line += &format!(", port={}", self.mcast_port);
        }
        if self.mcast_ttl != 0 {
            line += &format!(", ttl={}", self.mcast_ttl);
        }
        line + ")\n"
    }
}

/// The running sync daemons: at most one master and one backup, as in IPVS.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDaemons {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<SyncDaemon>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<SyncDaemon>,
}

impl SyncDaemons {
    pub fn get(&self, role: Role) -> Option<&SyncDaemon> {
        match role {
            Role::Master => self.master.as_ref(),
            Role::Backup => self.backup.as_ref(),
        }
    }

    pub fn slot(&mut self, role: Role) -> &mut Option<SyncDaemon> {
        match role {
            Role::Master => &mut self.master,
            Role::Backup => &mut self.backup,
        }
    }

    /// Master first, as the kernel lists them.
    pub fn iter(&self) -> impl Iterator<Item = &SyncDaemon> {
        self.master.iter().chain(self.backup.iter())
    }

    pub fn is_empty(&self) -> bool {
        self.master.is_none() && self.backup.is_none()
    }
}

/// `-L --daemon`: one line per running daemon, master first.
pub fn format_daemons(daemons: &SyncDaemons) -> String {
    daemons.iter().map(SyncDaemon::listing).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(role: Role) -> SyncDaemon {
        SyncDaemon {
            role,
            mcast_ifn: "eth0".to_owned(),
            syncid: 0,
            sync_maxlen: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
        }
    }

    #[test]
    fn kernel_defaults() {
        let master = asked(Role::Master).with_defaults(9000);
        assert_eq!(
            master.listing(),
            "master sync daemon (mcast=eth0, syncid=0, maxlen=1472, group=224.0.0.81, \
             port=8848, ttl=1)\n"
        );
        // A backup reads up to its interface's MTU (at least 1500).
        assert_eq!(asked(Role::Backup).with_defaults(9000).sync_maxlen, 8972);
        assert_eq!(asked(Role::Backup).with_defaults(1280).sync_maxlen, 1472);
        // IPv6 headers are 20 bytes longer.
        let v6 = SyncDaemon {
            mcast_group: Some("ff02::81".parse().unwrap()),
            ..asked(Role::Master)
        }
        .with_defaults(1500);
        assert_eq!(v6.sync_maxlen, 1452);
        // --sync-maxlen is clamped as the kernel does.
        let given = |role, maxlen| {
            SyncDaemon {
                sync_maxlen: maxlen,
                ..asked(role)
            }
            .with_defaults(1500)
            .sync_maxlen
        };
        assert_eq!(given(Role::Master, 100), 100);
        assert_eq!(given(Role::Backup, 100), 1024);
        assert_eq!(given(Role::Master, 65507), 65507);
        // Given values stay.
        let custom = SyncDaemon {
            syncid: 9,
            mcast_group: Some("239.1.2.3".parse().unwrap()),
            mcast_port: 9000,
            mcast_ttl: 4,
            ..asked(Role::Backup)
        }
        .with_defaults(1500);
        assert_eq!(
            custom.listing(),
            "backup sync daemon (mcast=eth0, syncid=9, maxlen=1472, group=239.1.2.3, \
             port=9000, ttl=4)\n"
        );
    }

    #[test]
    fn listing_order_and_absent_fields() {
        let mut daemons = SyncDaemons::default();
        assert_eq!(format_daemons(&daemons), "");
        *daemons.slot(Role::Backup) = Some(asked(Role::Backup));
        *daemons.slot(Role::Master) = Some(SyncDaemon {
            syncid: 3,
            ..asked(Role::Master)
        });
        assert_eq!(
            format_daemons(&daemons),
            "master sync daemon (mcast=eth0, syncid=3)\nbackup sync daemon (mcast=eth0, syncid=0)\n"
        );
    }
}
