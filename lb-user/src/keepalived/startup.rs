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
        let weight = |rs: &super::RealServerConf| {
            (!rs.checks.iter().any(|c| c.alpha)).then_some(rs.spec.weight)
        };
        let live: u64 = self.reals.iter().filter_map(weight).map(u64::from).sum();
        // set_quorum_states().
        let quorum_up = live >= u64::from(self.quorum) + u64::from(self.hysteresis);
        crate::managed::reals_given(self, weight, quorum_up)
    }
}
