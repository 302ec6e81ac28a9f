//! Services managed from a keepalived.conf (`lbd --config FILE`): the file's virtual servers
//! kept in the running configuration with their real servers' health applied, as keepalived's
//! checker keeps IPVS's table. A failed real server is removed, or kept with weight 0 with
//! `inhibit_on_failure`; the sorry server stands in while too few are up; a reload applies
//! only what changed, so no established flow is disturbed.
//!
//! Pure: the daemon feeds it health verdicts and asks for the commands to apply.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use crate::{
    config::{self, Config, Desired},
    health::{CheckSpec, Target, TargetKey},
    keepalived::{self, CheckKind, ConfigErrors, LvsConfig, RealServerConf, VirtualServer},
    model::{Command, RealSpec, ServiceAddr},
};

pub struct Managed {
    path: PathBuf,
    conf: LvsConfig,
    /// Services the file defined when last applied: removed from the file, they go.
    owned: Vec<ServiceAddr>,
    /// Health verdicts by real server; a real server without one is as it starts (up, unless
    /// a check has `alpha`).
    health: HashMap<TargetKey, bool>,
}

impl Managed {
    /// Reads and validates `path`; nothing is applied yet.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        Ok(Managed {
            path: path.to_owned(),
            conf: keepalived::parse_file(path)?,
            owned: Vec::new(),
            health: HashMap::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> &LvsConfig {
        &self.conf
    }

    /// Re-reads the file. An invalid file changes nothing and says why.
    pub fn reload(&mut self) -> Result<(), ConfigErrors> {
        self.conf = keepalived::parse_file(&self.path)?;
        let keys: Vec<TargetKey> = self.targets().into_iter().map(|t| t.key).collect();
        self.health.retain(|k, _| keys.contains(k));
        Ok(())
    }

    /// Records a health verdict. Returns whether it changed anything.
    pub fn set_health(&mut self, key: TargetKey, up: bool) -> bool {
        self.health.insert(key, up) != Some(up)
    }

    /// The services the file wants, health applied.
    pub fn desired(&self) -> Vec<Desired> {
        self.conf
            .services
            .iter()
            .map(|vs| Desired {
                spec: vs.spec.clone(),
                reals: reals_given(vs, |rs| self.is_up(vs.spec.addr, rs)),
            })
            .collect()
    }

    fn is_up(&self, service: ServiceAddr, rs: &RealServerConf) -> bool {
        let key = TargetKey {
            service,
            real: rs.spec.addr,
            port: rs.spec.port,
        };
        match self.health.get(&key) {
            Some(&up) => up,
            None => !rs.checks.iter().any(|c| c.alpha),
        }
    }

    /// The commands that bring `current` to what the file wants now, and remembers which
    /// services the file owns from here on.
    pub fn commands(&mut self, current: &Config) -> Vec<Command> {
        let desired = self.desired();
        let mut commands = Vec::new();
        if let Some(timeouts) = self.conf.timeouts
            && timeouts != current.timeouts
        {
            commands.push(Command::SetTimeouts { timeouts });
        }
        commands.extend(config::diff(current, &self.owned, &desired));
        self.owned = desired.iter().map(|d| d.spec.addr).collect();
        commands
    }

    /// The current verdict of every checked real server (as it starts when no check has
    /// reported yet).
    pub fn verdicts(&self) -> Vec<(TargetKey, bool)> {
        let mut out = Vec::new();
        for vs in &self.conf.services {
            for rs in vs.reals.iter().filter(|rs| !rs.checks.is_empty()) {
                let key = TargetKey {
                    service: vs.spec.addr,
                    real: rs.spec.addr,
                    port: rs.spec.port,
                };
                out.push((key, self.is_up(vs.spec.addr, rs)));
            }
        }
        out
    }

    /// What the health checker should check.
    pub fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for vs in &self.conf.services {
            for rs in &vs.reals {
                if rs.checks.is_empty() {
                    continue;
                }
                let mut checks = Vec::new();
                let mut addr = rs.spec.addr;
                for check in &rs.checks {
                    addr = check.addr;
                    match &check.kind {
                        CheckKind::Tcp => checks.push(CheckSpec::Tcp {
                            port: check.port,
                            connect_timeout: check.connect_timeout,
                            retry: check.retry,
                            delay_before_retry: check.delay_before_retry,
                            delay_loop: check.delay_loop,
                        }),
                        CheckKind::Http(http) => {
                            for url in &http.urls {
                                // The checker matches one code or any 2xx.
                                let status_code = match url.status_codes.ranges() {
                                    [(lo, hi)] if lo == hi => Some(*lo),
                                    _ => None,
                                };
                                checks.push(CheckSpec::Http {
                                    port: check.port,
                                    path: url.path.clone(),
                                    status_code,
                                    connect_timeout: check.connect_timeout,
                                    retry: check.retry,
                                    delay_before_retry: check.delay_before_retry,
                                    delay_loop: check.delay_loop,
                                });
                            }
                        }
                    }
                }
                targets.push(Target {
                    key: TargetKey {
                        service: vs.spec.addr,
                        real: rs.spec.addr,
                        port: rs.spec.port,
                    },
                    addr,
                    checks,
                });
            }
        }
        targets
    }
}

/// The real servers a virtual server has in IPVS's table when `up` says which are alive, as
/// keepalived's checker keeps them (`ipwrapper.c`):
///
/// - a live real server is in with its weight; a failed one is out, or in with weight 0 if
///   `inhibit_on_failure`;
/// - while the live weight is under `quorum + hysteresis` and there is a sorry server, it
///   takes their place (the inhibited ones stay, with weight 0);
/// - otherwise a sorry server with `sorry_server_inhibit` waits in with weight 0.
pub fn reals_given(vs: &VirtualServer, up: impl Fn(&RealServerConf) -> bool) -> Vec<RealSpec> {
    let quiesced = |spec: &RealSpec| RealSpec {
        weight: 0,
        ..spec.clone()
    };
    let same = |a: &RealSpec, b: &RealSpec| a.addr == b.addr && a.port == b.port;
    let mut live_weight = 0u64;
    let mut out = Vec::new();
    let mut standing_in = Vec::new();
    for rs in &vs.reals {
        if up(rs) {
            live_weight += u64::from(rs.spec.weight);
            out.push(rs.spec.clone());
            standing_in.push(rs.inhibit_on_failure);
        } else if rs.inhibit_on_failure {
            out.push(quiesced(&rs.spec));
            standing_in.push(true);
        }
    }
    let quorum_up = live_weight >= u64::from(vs.quorum) + u64::from(vs.hysteresis);
    match &vs.sorry_server {
        Some(sorry) if !quorum_up => {
            // Live ones step aside (inhibited ones stay at weight 0), the sorry server comes in.
            let mut kept: Vec<RealSpec> = out
                .into_iter()
                .zip(standing_in)
                .filter(|(_, inhibit)| *inhibit)
                .map(|(spec, _)| quiesced(&spec))
                .collect();
            match kept.iter_mut().find(|r| same(r, &sorry.spec)) {
                Some(entry) => *entry = sorry.spec.clone(),
                None => kept.push(sorry.spec.clone()),
            }
            kept
        }
        sorry => {
            if let Some(sorry) = sorry
                && sorry.inhibit
                && !out.iter().any(|r| same(r, &sorry.spec))
            {
                out.push(quiesced(&sorry.spec));
            }
            out
        }
    }
}
