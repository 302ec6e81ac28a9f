//! Services managed from a keepalived.conf (`lbd --config FILE`): the file's virtual servers
//! kept in the running configuration with their real servers' health applied, as keepalived's
//! checker keeps IPVS's table. A failed real server is removed, or kept with weight 0 with
//! `inhibit_on_failure`; the sorry server stands in while the quorum is lost; a reload applies
//! only what changed, so no established flow is disturbed. It also says which of keepalived's
//! scripts (`notify_*`, `quorum_*`) a change calls for.
//!
//! Pure: the daemon feeds it health verdicts and asks for the commands to apply.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use crate::{
    config::{self, Config, Desired},
    health::{CheckSpec, HttpProbe, MiscProbe, Probe, ScriptSpec, Target, TargetKey, UrlProbe},
    keepalived::{
        self, CheckKind, ConfigErrors, HealthCheck, LvsConfig, RealServerConf, VirtualServer,
    },
    model::{Command, RealSpec, ServiceAddr},
};

#[derive(Clone)]
pub struct Managed {
    path: PathBuf,
    conf: LvsConfig,
    /// Health verdicts by real server, with the weight the checks give it; a real server
    /// without one is as it starts (up with its weight, unless a check has `alpha`).
    health: HashMap<TargetKey, (bool, u32)>,
    /// keepalived's `quorum_state_up` by virtual server.
    quorum: HashMap<ServiceAddr, bool>,
}

/// A script to run because of a change, as keepalived runs it (`notify_up`, `notify_down`,
/// `quorum_up`, `quorum_down`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// Which keyword's script, e.g. `notify_down`.
    pub what: &'static str,
    /// For whom: `TCP 10.0.0.1:80 -> 10.0.0.12:80`, `TCP 10.0.0.1:80`.
    pub subject: String,
    pub script: ScriptSpec,
}

impl Managed {
    /// Reads and validates `path`; nothing is applied yet.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        Self::from_config(path, keepalived::parse_file(path)?)
    }

    /// [`load`](Self::load) of a configuration already read.
    pub fn from_config(path: &Path, conf: LvsConfig) -> Result<Self, ConfigErrors> {
        let mut managed = Managed {
            path: path.to_owned(),
            conf,
            health: HashMap::new(),
            quorum: HashMap::new(),
        };
        managed.init_quorum(&HashMap::new());
        Ok(managed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> &LvsConfig {
        &self.conf
    }

    /// The scripts keepalived runs at start (`update_quorum_state(init)`): `quorum_down` of a
    /// virtual server with a sorry server that starts without its quorum.
    pub fn startup_notifications(&self) -> Vec<Notification> {
        let mut out = Vec::new();
        for vs in self.leaders() {
            if vs.sorry_server.is_some() && !self.quorum_up(vs) {
                out.extend(quorum_notification(vs, false));
            }
        }
        out
    }

    /// Re-reads the file. An invalid file changes nothing and says why. Real servers keep
    /// their verdicts; quorum states are worked out afresh as keepalived does on a reload
    /// (`set_quorum_states`). Returns the scripts to run: those of new virtual servers that
    /// start without their quorum and have a sorry server.
    pub fn reload(&mut self) -> Result<Vec<Notification>, ConfigErrors> {
        self.conf = keepalived::parse_file(&self.path)?;
        self.adopt_config();
        let before = std::mem::take(&mut self.quorum);
        self.init_quorum(&before);
        Ok(self
            .conf
            .services
            .iter()
            .filter(|vs| !follows(&self.conf.services, vs))
            .filter(|vs| !before.contains_key(&vs.spec.addr))
            .filter(|vs| vs.sorry_server.is_some() && !self.quorum_up(vs))
            .flat_map(|vs| quorum_notification(vs, false))
            .collect())
    }

    /// Keeps the verdicts of the real servers still checked. A real server's weight is the new
    /// configured one at once (keepalived #1354 was a reload that left the old one in IPVS),
    /// unless a `misc_dynamic` check sets it: the health checker then reports the weight that
    /// follows.
    fn adopt_config(&mut self) {
        // Every checked real server of every service (a group's followers included).
        let checked: Vec<(TargetKey, u32, bool)> = self
            .conf
            .services
            .iter()
            .flat_map(|vs| {
                vs.reals
                    .iter()
                    .filter(|rs| !rs.checks.is_empty())
                    .map(|rs| {
                        let dynamic = rs
                            .checks
                            .iter()
                            .any(|c| matches!(&c.kind, CheckKind::Misc(m) if m.dynamic));
                        (Self::key(vs.spec.addr, rs), rs.spec.weight, dynamic)
                    })
            })
            .collect();
        self.health
            .retain(|k, _| checked.iter().any(|(key, _, _)| key == k));
        for (key, configured, dynamic) in checked {
            if let Some((_, weight)) = self.health.get_mut(&key)
                && !dynamic
            {
                *weight = configured;
            }
        }
    }

    fn init_quorum(&mut self, _before: &HashMap<ServiceAddr, bool>) {
        for vs in &self.conf.services {
            let live = self.live_weight(vs);
            let up = live >= u64::from(vs.quorum) + u64::from(vs.hysteresis);
            self.quorum.insert(vs.spec.addr, up);
        }
    }

    fn quorum_up(&self, vs: &VirtualServer) -> bool {
        self.quorum.get(&vs.spec.addr).copied().unwrap_or(true)
    }

    /// Whether each virtual server of the file has its quorum (keepalived's `quorum_state_up`):
    /// a director announces a VIP through BIRD only while it has.
    pub fn quorum_states(&self) -> std::collections::BTreeMap<ServiceAddr, bool> {
        self.conf
            .services
            .iter()
            .map(|vs| (vs.spec.addr, self.quorum_up(vs)))
            .collect()
    }

    /// Records a health verdict and the weight the checks give. Returns whether it changed
    /// anything, and the scripts keepalived would run for it: the real server's `notify_up`
    /// or `notify_down` when it comes up or goes down (or, with `alpha`, fails its first
    /// check), then the virtual server's `quorum_up` or `quorum_down` when its live weight
    /// crosses `quorum + hysteresis` upwards or `quorum - hysteresis` downwards.
    ///
    /// The services of a `virtual_server group` share the verdicts of their real servers:
    /// one verdict applies to the same real server of each, and its scripts run once.
    pub fn set_health(
        &mut self,
        key: TargetKey,
        up: bool,
        weight: u32,
    ) -> (bool, Vec<Notification>) {
        let Some(vs) = self
            .conf
            .services
            .iter()
            .find(|vs| vs.spec.addr == key.service)
        else {
            return (false, Vec::new());
        };
        let Some(index) = vs
            .reals
            .iter()
            .position(|rs| rs.spec.addr == key.real && rs.spec.port == key.port)
        else {
            return (false, Vec::new());
        };
        let Some(group) = vs.group.clone() else {
            return self.set_health_of(key, up, weight);
        };
        let members: Vec<TargetKey> = self
            .conf
            .services
            .iter()
            .filter(|v| v.group.as_ref() == Some(&group))
            .filter_map(|v| v.reals.get(index).map(|rs| Self::key(v.spec.addr, rs)))
            .collect();
        let mut changed = false;
        let mut notes = Vec::new();
        for (i, member) in members.into_iter().enumerate() {
            let (c, n) = self.set_health_of(member, up, weight);
            changed |= c;
            if i == 0 {
                notes = n;
            }
        }
        (changed, notes)
    }

    fn set_health_of(
        &mut self,
        key: TargetKey,
        up: bool,
        weight: u32,
    ) -> (bool, Vec<Notification>) {
        let Some(vs) = self
            .conf
            .services
            .iter()
            .find(|vs| vs.spec.addr == key.service)
        else {
            return (false, Vec::new());
        };
        let Some(rs) = vs
            .reals
            .iter()
            .find(|rs| rs.spec.addr == key.real && rs.spec.port == key.port)
        else {
            return (false, Vec::new());
        };
        let was_up = self.is_up(vs.spec.addr, rs);
        let previous = self.health.insert(key, (up, weight));
        if previous == Some((up, weight)) {
            return (false, Vec::new());
        }
        let mut notes = Vec::new();
        // update_svr_checker_state(): a change of state, or an alpha real server's first
        // verdict of failure.
        if was_up != up || (previous.is_none() && !up) {
            let (what, script) = match up {
                true => ("notify_up", &rs.notify_up),
                false => ("notify_down", &rs.notify_down),
            };
            if let Some(script) = script {
                notes.push(Notification {
                    what,
                    subject: key.to_string(),
                    script: script.spec.clone(),
                });
            }
        }
        // update_quorum_state().
        let live = self.live_weight(vs);
        let quorum_up = self.quorum_up(vs);
        let (quorum, hysteresis) = (i64::from(vs.quorum), i64::from(vs.hysteresis));
        let threshold = if quorum_up {
            quorum - hysteresis
        } else {
            quorum + hysteresis
        };
        let live = i64::try_from(live).unwrap_or(i64::MAX);
        let new_state = if !quorum_up && live >= threshold {
            Some(true)
        } else if quorum_up && (live == 0 || live < threshold) {
            Some(false)
        } else {
            None
        };
        if let Some(state) = new_state {
            self.quorum.insert(vs.spec.addr, state);
            notes.extend(quorum_notification(vs, state));
        }
        (true, notes)
    }

    /// What keepalived runs when it stops (`clear_services` with `omega`): the `notify_down`
    /// of each live real server and the `quorum_down` of each virtual server that has `omega`.
    pub fn shutdown_notifications(&self) -> Vec<Notification> {
        let mut out = Vec::new();
        for vs in self.leaders().filter(|vs| vs.omega) {
            for rs in &vs.reals {
                if self.is_up(vs.spec.addr, rs)
                    && let Some(script) = &rs.notify_down
                {
                    let key = TargetKey {
                        service: vs.spec.addr,
                        real: rs.spec.addr,
                        port: rs.spec.port,
                    };
                    out.push(Notification {
                        what: "notify_down",
                        subject: key.to_string(),
                        script: script.spec.clone(),
                    });
                }
            }
            out.extend(quorum_notification(vs, false));
        }
        out
    }

    /// The services the file wants, health applied.
    pub fn desired(&self) -> Vec<Desired> {
        self.conf
            .services
            .iter()
            .map(|vs| Desired {
                spec: vs.spec.clone(),
                reals: reals_given(vs, |rs| self.weight(vs.spec.addr, rs), self.quorum_up(vs)),
            })
            .collect()
    }

    fn key(service: ServiceAddr, rs: &RealServerConf) -> TargetKey {
        TargetKey {
            service,
            real: rs.spec.addr,
            port: rs.spec.port,
        }
    }

    fn is_up(&self, service: ServiceAddr, rs: &RealServerConf) -> bool {
        match self.health.get(&Self::key(service, rs)) {
            Some(&(up, _)) => up,
            None => !rs.checks.iter().any(|c| c.alpha),
        }
    }

    /// The weight of a live real server, `None` for a failed one.
    fn weight(&self, service: ServiceAddr, rs: &RealServerConf) -> Option<u32> {
        match self.health.get(&Self::key(service, rs)) {
            Some(&(up, weight)) => up.then_some(weight),
            None => (!rs.checks.iter().any(|c| c.alpha)).then_some(rs.spec.weight),
        }
    }

    /// keepalived's `weigh_live_realservers()`.
    fn live_weight(&self, vs: &VirtualServer) -> u64 {
        vs.reals
            .iter()
            .filter_map(|rs| self.weight(vs.spec.addr, rs))
            .map(u64::from)
            .sum()
    }

    /// The commands that bring `current` to what the file wants now. The services the file
    /// owned before are those `current` records ([`Config::keepalived`], kept in the state
    /// file across restarts): those no longer in the file are deleted. Apply them with
    /// [`owned`](Self::owned) (`Director::apply_managed`), so the record follows.
    pub fn commands(&self, current: &Config) -> Vec<Command> {
        let desired = self.desired();
        let mut commands = Vec::new();
        if let Some(timeouts) = self.conf.timeouts
            && timeouts != current.timeouts
        {
            commands.push(Command::SetTimeouts { timeouts });
        }
        commands.extend(config::diff(current, &current.keepalived, &desired));
        commands
    }

    /// The services the file defines: those it owns once its commands are applied.
    pub fn owned(&self) -> Vec<ServiceAddr> {
        self.conf.services.iter().map(|vs| vs.spec.addr).collect()
    }

    /// The current verdict of every checked real server (as it starts when no check has
    /// reported yet).
    pub fn verdicts(&self) -> Vec<(TargetKey, bool)> {
        let mut out = Vec::new();
        for vs in &self.conf.services {
            for rs in vs.reals.iter().filter(|rs| !rs.checks.is_empty()) {
                out.push((Self::key(vs.spec.addr, rs), self.is_up(vs.spec.addr, rs)));
            }
        }
        out
    }

    /// The services but the second and later of each `virtual_server group`.
    fn leaders(&self) -> impl Iterator<Item = &VirtualServer> {
        self.conf
            .services
            .iter()
            .filter(|vs| !follows(&self.conf.services, vs))
    }

    /// What the health checker should check (a group's real servers once, under its first
    /// service).
    pub fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for vs in self.leaders() {
            for rs in &vs.reals {
                if rs.checks.is_empty() {
                    continue;
                }
                targets.push(Target {
                    key: Self::key(vs.spec.addr, rs),
                    weight: rs.spec.weight,
                    checks: rs.checks.iter().map(check_spec).collect(),
                    suspend_unless_local: vs.ha_suspend.then_some(vs.spec.addr.addr),
                });
            }
        }
        targets
    }
}

/// Whether `vs` is the second or later service of its `virtual_server group`.
fn follows(services: &[VirtualServer], vs: &VirtualServer) -> bool {
    vs.group.as_ref().is_some_and(|g| {
        services
            .iter()
            .find(|v| v.group.as_ref() == Some(g))
            .is_some_and(|first| first.spec.addr != vs.spec.addr)
    })
}

/// A check as the health checker runs it.
fn check_spec(check: &HealthCheck) -> CheckSpec {
    let probe = match &check.kind {
        CheckKind::Tcp => Probe::Tcp,
        CheckKind::Http(http) => Probe::Http(HttpProbe {
            urls: http
                .urls
                .iter()
                .map(|url| UrlProbe {
                    path: url.path.clone(),
                    status_codes: url.status_codes.clone(),
                    host: url.virtualhost.clone(),
                    digest: url.digest,
                    regex: url.regex.clone(),
                })
                .collect(),
            protocol: http.protocol,
            fast_recovery: http.fast_recovery,
            tls: http.tls,
            client_cert: http.client_cert.clone(),
        }),
        CheckKind::Misc(misc) => Probe::Misc(MiscProbe {
            script: misc.script.clone(),
            timeout: misc.timeout,
            dynamic: misc.dynamic,
        }),
        CheckKind::Smtp { helo_name } => Probe::Smtp {
            helo_name: helo_name.clone(),
        },
        CheckKind::Udp(udp) => Probe::Udp(udp.clone()),
        CheckKind::Dns(dns) => Probe::Dns(dns.clone()),
        CheckKind::Ping => Probe::Ping,
    };
    CheckSpec {
        probe,
        addr: check.addr,
        port: check.port,
        bindto: check.bindto,
        bind_port: check.bind_port,
        connect_timeout: check.connect_timeout,
        retry: check.retry,
        delay_before_retry: check.delay_before_retry,
        delay_loop: check.delay_loop,
        warmup: check.warmup,
        alpha: check.alpha,
        log_all_failures: check.log_all_failures,
    }
}

/// A virtual server's `quorum_up` or `quorum_down` script, if it has one.
fn quorum_notification(vs: &VirtualServer, up: bool) -> Option<Notification> {
    let (what, script) = match up {
        true => ("quorum_up", &vs.quorum_up),
        false => ("quorum_down", &vs.quorum_down),
    };
    script.as_ref().map(|script| Notification {
        what,
        subject: vs.spec.addr.to_string(),
        script: script.spec.clone(),
    })
}

/// The real servers a virtual server has in IPVS's table, given the weight of each live one
/// (`None`: failed) and whether the virtual server has its quorum, as keepalived's checker
/// keeps them (`ipwrapper.c`):
///
/// - a live real server is in with its weight; a failed one is out, or in with weight 0 if
///   `inhibit_on_failure`;
/// - without the quorum, a sorry server takes their place (the inhibited ones stay, with
///   weight 0);
/// - otherwise a sorry server with `sorry_server_inhibit` waits in with weight 0.
pub fn reals_given(
    vs: &VirtualServer,
    weight: impl Fn(&RealServerConf) -> Option<u32>,
    quorum_up: bool,
) -> Vec<RealSpec> {
    let quiesced = |spec: &RealSpec| RealSpec {
        weight: 0,
        ..spec.clone()
    };
    let same = |a: &RealSpec, b: &RealSpec| a.addr == b.addr && a.port == b.port;
    let mut out = Vec::new();
    let mut standing_in = Vec::new();
    for rs in &vs.reals {
        if let Some(weight) = weight(rs) {
            out.push(RealSpec {
                weight,
                ..rs.spec.clone()
            });
            standing_in.push(rs.inhibit_on_failure);
        } else if rs.inhibit_on_failure {
            out.push(quiesced(&rs.spec));
            standing_in.push(true);
        }
    }
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::Protocol;

    const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    /// A service with real servers .11 (weight 2), .12 (weight 2), .13 (weight 1), all
    /// TCP-checked, with the given virtual-server lines.
    fn managed(vs_lines: &str) -> Managed {
        let mut text = format!(
            "virtual_server {VIP} 80 {{\n protocol TCP\n lb_algo rr\n lb_kind DR\n{vs_lines}\n"
        );
        for (n, weight) in [(11, 2), (12, 2), (13, 1)] {
            text += &format!(
                " real_server 10.0.0.{n} 80 {{\n  weight {weight}\n  \
                 notify_up \"/bin/up {n}\"\n  notify_down \"/bin/down {n}\"\n  TCP_CHECK {{\n  }}\n }}\n"
            );
        }
        text += "}\n";
        let conf = keepalived::parse_str(&text, "t.conf").unwrap_or_else(|e| panic!("{e}"));
        Managed::from_config(Path::new("t.conf"), conf).unwrap()
    }

    fn key(n: u8) -> TargetKey {
        TargetKey {
            service: ServiceAddr {
                protocol: Protocol::Tcp,
                addr: VIP.into(),
                port: 80,
            },
            real: Ipv4Addr::new(10, 0, 0, n).into(),
            port: 80,
        }
    }

    /// The scripts a change runs, as their command lines.
    fn set(m: &mut Managed, n: u8, up: bool, weight: u32) -> Vec<String> {
        let (_, notes) = m.set_health(key(n), up, weight);
        notes.iter().map(|n| n.script.argv.join(" ")).collect()
    }

    fn weights(m: &Managed) -> Vec<(u8, u32)> {
        m.desired()[0]
            .reals
            .iter()
            .map(|r| {
                (
                    r.addr
                        .to_string()
                        .rsplit('.')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap(),
                    r.weight,
                )
            })
            .collect()
    }

    /// The file's commands applied to `current`, ownership recorded as `Director` records it.
    fn applied(m: &Managed, current: &Config) -> Config {
        let mut next = current.apply_all(&m.commands(current)).unwrap();
        next.keepalived = m.owned();
        next
    }

    #[test]
    fn a_service_removed_from_the_file_while_lbd_was_down_goes_at_the_next_start() {
        let other = ServiceAddr {
            protocol: Protocol::Tcp,
            addr: Ipv4Addr::new(10, 0, 0, 2).into(),
            port: 443,
        };
        let two = format!(
            "virtual_server {VIP} 80 {{\n protocol TCP\n real_server 10.0.0.11 80 {{\n }}\n}}\n\
             virtual_server {} 443 {{\n protocol TCP\n real_server 10.0.0.12 443 {{\n }}\n}}\n",
            other.addr
        );
        let first = Managed::from_config(
            Path::new("t.conf"),
            keepalived::parse_str(&two, "t.conf").unwrap(),
        )
        .unwrap();
        // A service of lbadm's own, which the file never owned.
        let mine = ServiceAddr {
            protocol: Protocol::Udp,
            addr: Ipv4Addr::new(10, 0, 0, 3).into(),
            port: 53,
        };
        let by_hand = Config::default()
            .apply_all(&[Command::AddService {
                service: crate::model::ServiceSpec {
                    addr: mine,
                    scheduler: crate::model::Scheduler::Rr,
                    persistence: None,
                    sched_flags: Default::default(),
                },
            }])
            .unwrap();
        let running = applied(&first, &by_hand);
        assert_eq!(running.keepalived.len(), 2);
        // What the state file keeps, read back by the next lbd.
        let saved: Config =
            serde_json::from_str(&serde_json::to_string(&running).unwrap()).unwrap();
        assert_eq!(saved, running);
        // The next lbd starts with a file that lost :443: a fresh Managed knows nothing of
        // the last one, the restored configuration does.
        let one = two.split("virtual_server 10.0.0.2").next().unwrap();
        let second = Managed::from_config(
            Path::new("t.conf"),
            keepalived::parse_str(one, "t.conf").unwrap(),
        )
        .unwrap();
        let restarted = applied(&second, &saved);
        assert!(restarted.service(&other).is_none(), "{restarted:?}");
        assert!(
            restarted.service(&mine).is_some(),
            "lbadm's own service stays"
        );
        assert_eq!(restarted.keepalived.len(), 1);
    }

    #[test]
    fn notify_scripts_run_on_changes_only() {
        let mut m = managed("");
        assert_eq!(set(&mut m, 11, true, 2), Vec::<String>::new());
        assert_eq!(set(&mut m, 11, false, 2), ["/bin/down 11"]);
        assert_eq!(set(&mut m, 11, false, 2), Vec::<String>::new());
        assert_eq!(set(&mut m, 11, true, 2), ["/bin/up 11"]);
    }

    #[test]
    fn hysteresis_is_a_band_around_the_quorum() {
        // quorum 4, hysteresis 1: lost below 3, regained at 5.
        let mut m = managed(
            " quorum 4\n hysteresis 1\n quorum_up \"/bin/q up\"\n quorum_down \"/bin/q down\"\n \
             sorry_server 10.0.0.99 80",
        );
        assert!(m.startup_notifications().is_empty());
        // Live weight 5 -> 3: still up (3 is not under 4 - 1).
        assert_eq!(set(&mut m, 11, false, 2), ["/bin/down 11"]);
        assert_eq!(weights(&m), [(12, 2), (13, 1)]);
        // 3 -> 2: lost; the sorry server takes over.
        assert_eq!(set(&mut m, 13, false, 1), ["/bin/down 13", "/bin/q down"]);
        assert_eq!(weights(&m), [(99, 1)]);
        // 2 -> 3 -> 4: not yet regained (needs 4 + 1).
        assert_eq!(set(&mut m, 13, true, 1), ["/bin/up 13"]);
        assert_eq!(weights(&m), [(99, 1)]);
        // 5: regained.
        assert_eq!(set(&mut m, 11, true, 2), ["/bin/up 11", "/bin/q up"]);
        assert_eq!(weights(&m), [(11, 2), (12, 2), (13, 1)]);
    }

    #[test]
    fn a_dynamic_weight_counts_towards_the_quorum() {
        let mut m = managed(" quorum 3\n quorum_down \"/bin/q down\"\n sorry_server 10.0.0.99 80");
        // misc_dynamic: weight 10 for .11.
        assert_eq!(set(&mut m, 11, true, 10), Vec::<String>::new());
        assert_eq!(weights(&m), [(11, 10), (12, 2), (13, 1)]);
        assert_eq!(set(&mut m, 12, false, 2), ["/bin/down 12"]);
        assert_eq!(set(&mut m, 13, false, 1), ["/bin/down 13"]);
        // Weight 0 is live but weighs nothing: quorum lost.
        assert_eq!(set(&mut m, 11, true, 0), ["/bin/q down"]);
        assert_eq!(weights(&m), [(99, 1)]);
    }

    #[test]
    fn a_vip_below_its_quorum_is_withdrawn_though_the_sorry_server_has_weight() {
        let mut m = managed(" quorum 4\n sorry_server 10.0.0.99 80");
        let announced = |m: &Managed| {
            let config = applied(m, &Config::default());
            let views = crate::bird::ServiceView::from_config(&config, &m.quorum_states());
            crate::bird::decide(&views, false)[0].announce
        };
        assert_eq!(m.quorum_states().values().collect::<Vec<_>>(), [&true]);
        assert!(announced(&m));
        set(&mut m, 11, false, 2);
        set(&mut m, 12, false, 2);
        // Live weight 1 < 4: the sorry server stands in, with weight, and the VIP goes.
        assert_eq!(weights(&m), [(99, 1)]);
        assert_eq!(m.quorum_states().values().collect::<Vec<_>>(), [&false]);
        assert!(!announced(&m));
        set(&mut m, 11, true, 2);
        set(&mut m, 12, true, 2);
        assert!(announced(&m));
    }

    #[test]
    fn omega_runs_the_down_scripts_on_the_way_out() {
        let mut m = managed(" omega\n quorum_down \"/bin/q down\"");
        set(&mut m, 12, false, 2);
        let scripts: Vec<String> = m
            .shutdown_notifications()
            .iter()
            .map(|n| n.script.argv.join(" "))
            .collect();
        assert_eq!(scripts, ["/bin/down 11", "/bin/down 13", "/bin/q down"]);
        assert!(managed("").shutdown_notifications().is_empty());
    }

    #[test]
    fn starting_without_quorum_runs_quorum_down_when_a_sorry_server_stands_in() {
        let m =
            managed(" quorum 5\n hysteresis 1\n quorum_down /bin/qd\n sorry_server 10.0.0.99 80");
        let scripts: Vec<String> = m
            .startup_notifications()
            .iter()
            .map(|n| n.script.argv.join(" "))
            .collect();
        // 5 < 5 + 1: starts without quorum.
        assert_eq!(scripts, ["/bin/qd"]);
        assert_eq!(weights(&m), [(99, 1)]);
    }

    #[test]
    fn a_reload_applies_new_weights_and_keeps_verdicts() {
        let dir = std::env::temp_dir().join(format!("lb-managed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.conf");
        let conf = |w12: u32| {
            format!(
                "virtual_server {VIP} 80 {{\n protocol TCP\n lb_algo rr\n lb_kind DR\n \
                 real_server 10.0.0.11 80 {{\n  weight 2\n  TCP_CHECK {{\n  }}\n }}\n \
                 real_server 10.0.0.12 80 {{\n  weight {w12}\n  TCP_CHECK {{\n  }}\n }}\n}}\n"
            )
        };
        std::fs::write(&path, conf(2)).unwrap();
        let mut m = Managed::load(&path).unwrap();
        m.set_health(key(11), false, 2);
        m.set_health(key(12), true, 2);
        std::fs::write(&path, conf(7)).unwrap();
        m.reload().unwrap();
        // .11 stays down until its checks say otherwise, .12 has its new weight.
        assert_eq!(weights(&m), [(12, 7)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// keepalived PR #596: a failed real server kept with weight 0 (`inhibit_on_failure`)
    /// stayed in IPVS when a reload removed it from the file.
    #[test]
    fn a_reload_deletes_an_inhibited_real_server_the_file_no_longer_has() {
        let dir = std::env::temp_dir().join(format!("lb-managed-596-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.conf");
        let real = |n: u8| format!(" real_server 10.0.0.{n} 80 {{\n  TCP_CHECK {{\n  }}\n }}\n");
        let conf = |reals: &str| {
            format!(
                "virtual_server {VIP} 80 {{\n protocol TCP\n lb_algo rr\n lb_kind DR\n \
                 inhibit_on_failure\n{reals}}}\n"
            )
        };
        std::fs::write(&path, conf(&(real(11) + &real(12)))).unwrap();
        let mut m = Managed::load(&path).unwrap();
        m.set_health(key(11), false, 1);
        let running = applied(&m, &Config::default());
        let addrs = |c: &Config| -> Vec<(String, u32)> {
            c.service(&key(11).service)
                .unwrap()
                .reals
                .iter()
                .map(|r| (r.spec.addr.to_string(), r.spec.weight))
                .collect()
        };
        assert_eq!(
            addrs(&running),
            [("10.0.0.11".into(), 0), ("10.0.0.12".into(), 1)]
        );
        std::fs::write(&path, conf(&real(12))).unwrap();
        m.reload().unwrap();
        let reloaded = applied(&m, &running);
        assert_eq!(addrs(&reloaded), [("10.0.0.12".to_owned(), 1)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_group_checks_its_real_servers_once_and_shares_the_verdicts() {
        let text = "virtual_server group g {\n protocol TCP\n lb_algo rr\n lb_kind DR\n \
                    quorum_down /bin/qd\n \
                    real_server 10.0.0.11 80 {\n  notify_down /bin/down\n  TCP_CHECK {\n  }\n }\n}\n\
                    virtual_server_group g {\n 10.0.0.1-3 80\n}\n";
        let conf = keepalived::parse_str(text, "t.conf").unwrap_or_else(|e| panic!("{e}"));
        let mut m = Managed::from_config(Path::new("t.conf"), conf).unwrap();
        let targets = m.targets();
        assert_eq!(targets.len(), 1);
        let (changed, notes) = m.set_health(targets[0].key, false, 1);
        assert!(changed);
        let scripts: Vec<String> = notes.iter().map(|n| n.script.argv.join(" ")).collect();
        assert_eq!(scripts, ["/bin/down", "/bin/qd"]);
        // Every address of the group lost its real server.
        assert!(m.desired().iter().all(|d| d.reals.is_empty()));
        assert!(m.verdicts().iter().all(|(_, up)| !up));
        assert_eq!(m.verdicts().len(), 3);
    }

    #[test]
    fn targets_carry_weight_and_ha_suspend() {
        let m = managed(" ha_suspend");
        let t = &m.targets()[0];
        assert_eq!(t.weight, 2);
        assert_eq!(t.suspend_unless_local, Some(VIP.into()));
        assert_eq!(managed("").targets()[0].suspend_unless_local, None);
    }
}
