//! The IPVS table keepalived sets up when it starts, before any health check has run
//! (`init_services` in keepalived's ipwrapper.c), as lb commands.

use super::conf::{LvsConfig, VirtualServer};
use crate::model::{Command, RealSpec};

impl LvsConfig {
    /// The commands that set the configuration up from scratch: `-C` if `lvs_flush`, the
    /// `lvs_timeouts`, then each virtual service and the real servers it starts with.
    pub fn commands(&self) -> Vec<Command> {
        let mut commands = Vec::new();
        if self.flush {
            commands.push(Command::Clear);
        }
        if let Some(timeouts) = self.timeouts {
            commands.push(Command::SetTimeouts { timeouts });
        }
        for vs in &self.services {
            commands.push(Command::AddService {
                service: vs.spec.clone(),
            });
            commands.extend(vs.startup_reals().into_iter().map(|real| Command::AddReal {
                service: vs.spec.addr,
                real,
            }));
        }
        commands
    }
}

impl VirtualServer {
    /// The real servers of the service when keepalived starts, as keepalived decides:
    ///
    /// - A real server starts up, unless one of its checks has `alpha`: then it starts failed,
    ///   and is left out, or put in with weight 0 if `inhibit_on_failure`.
    /// - If the weight of the live real servers is under `quorum + hysteresis` and there is a
    ///   sorry server, the sorry server takes their place (those with `inhibit_on_failure`
    ///   stay, with weight 0).
    /// - Otherwise a sorry server with `sorry_server_inhibit` is put in with weight 0, ready.
    pub fn startup_reals(&self) -> Vec<RealSpec> {
        let mut live_weight = 0u64;
        // (spec, live, inhibit_on_failure)
        let mut reals: Vec<(RealSpec, bool, bool)> = Vec::new();
        for rs in &self.reals {
            let starts_failed = rs.checks.iter().any(|c| c.alpha);
            if !starts_failed {
                live_weight += u64::from(rs.spec.weight);
                reals.push((rs.spec.clone(), true, rs.inhibit_on_failure));
            } else if rs.inhibit_on_failure {
                reals.push((quiesced(&rs.spec), false, true));
            }
        }
        let quorum_up = live_weight >= u64::from(self.quorum) + u64::from(self.hysteresis);
        let mut out: Vec<RealSpec> = Vec::new();
        match &self.sorry_server {
            Some(sorry) if !quorum_up => {
                for (spec, live, inhibit) in reals {
                    match (live, inhibit) {
                        (true, true) => out.push(quiesced(&spec)),
                        (true, false) => {}
                        (false, _) => out.push(spec),
                    }
                }
                // The sorry server may be one of the real servers: it replaces that entry.
                match out.iter_mut().find(|r| same_dest(r, &sorry.spec)) {
                    Some(entry) => *entry = sorry.spec.clone(),
                    None => out.push(sorry.spec.clone()),
                }
            }
            sorry => {
                out.extend(reals.into_iter().map(|(spec, _, _)| spec));
                if let Some(sorry) = sorry
                    && sorry.inhibit
                    && !out.iter().any(|r| same_dest(r, &sorry.spec))
                {
                    out.push(quiesced(&sorry.spec));
                }
            }
        }
        out
    }
}

fn quiesced(spec: &RealSpec) -> RealSpec {
    RealSpec {
        weight: 0,
        ..spec.clone()
    }
}

fn same_dest(a: &RealSpec, b: &RealSpec) -> bool {
    a.addr == b.addr && a.port == b.port
}
