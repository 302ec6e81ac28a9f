//! The tokio shell around [`super::state`]: one task per real server, which starts the
//! attempts its checks' state machines ask for (each in a task of its own, so the checks of a
//! server run concurrently too), feeds their results back and reports the server's changes.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use tokio::{
    sync::{mpsc, watch},
    task::{AbortHandle, JoinHandle, JoinSet},
};
use tracing::{debug, info};

use crate::model::MAX_WEIGHT;

use super::{
    CheckSpec, Event, Target, TargetError, TargetKey,
    probe::{self, Outcome},
    state::{self, Change, CheckState},
};

/// Capacity of the event channel. Events are changes of state, so it does not fill unless the
/// receiver stops reading; a full channel holds back the sending real server's checks only.
pub const EVENT_QUEUE: usize = 1024;

/// Starts checking `targets`; their changes of state arrive on the returned receiver.
///
/// Every real server starts up (down if a check has `alpha`), and nothing is sent for that. Must be called within a tokio
/// runtime, whose tasks then run the checks.
pub fn spawn(targets: Vec<Target>) -> Result<(HealthChecker, mpsc::Receiver<Event>), TargetError> {
    let (events, receiver) = mpsc::channel(EVENT_QUEUE);
    let mut checker = HealthChecker {
        events,
        running: HashMap::new(),
    };
    checker.replace(targets)?;
    Ok((checker, receiver))
}

/// The running health checks. Dropping it stops them all, like [`stop`](Self::stop).
pub struct HealthChecker {
    events: mpsc::Sender<Event>,
    running: HashMap<TargetKey, Running>,
}

struct Running {
    target: Target,
    config: watch::Sender<Target>,
    task: JoinHandle<()>,
}

impl HealthChecker {
    /// Adopts a new target set (on a configuration reload), all or nothing.
    ///
    /// Targets already checked with the same address and checks go on undisturbed. A target
    /// whose checks changed keeps the state of those it still has, and an event is sent if that
    /// changes its state (say, the only failing check was removed). Others start afresh, up;
    /// removed ones stop, though an event of theirs already queued may still be received.
    pub fn replace(&mut self, targets: Vec<Target>) -> Result<(), TargetError> {
        let mut keys = HashSet::with_capacity(targets.len());
        for target in &targets {
            target.validate()?;
            if !keys.insert(target.key) {
                return Err(TargetError::DuplicateKey(target.key));
            }
        }
        let mut old = std::mem::take(&mut self.running);
        for target in targets {
            let key = target.key;
            let running = match old.remove(&key) {
                Some(running) if running.task.is_finished() => self.start(target),
                Some(running) if running.target == target => running,
                Some(mut running) => {
                    running.config.send_replace(target.clone());
                    running.target = target;
                    running
                }
                None => self.start(target),
            };
            self.running.insert(key, running);
        }
        for (key, running) in old {
            running.task.abort();
            debug!(real_server = %key, "health checks stopped");
        }
        Ok(())
    }

    /// Stops all checks. Once their tasks are gone, the event receiver reports the end.
    pub fn stop(self) {}

    /// The targets being checked, in no particular order.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.running.values().map(|r| &r.target)
    }

    fn start(&self, target: Target) -> Running {
        let (config, config_rx) = watch::channel(target.clone());
        debug!(real_server = %target.key, "health checks started");
        let task = tokio::spawn(run(target.clone(), config_rx, self.events.clone()));
        Running {
            target,
            config,
            task,
        }
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        for running in self.running.values() {
            running.task.abort();
        }
    }
}

/// One check of the real server, with its attempt under way if any.
struct Slot {
    spec: CheckSpec,
    state: CheckState,
    attempt: Option<AbortHandle>,
    /// When the attempt under way started.
    started: Instant,
    /// The last passing exit status of a `misc_dynamic` check (`None` once it failed), from
    /// which its share of the weight follows (keepalived's `cur_weight`).
    dynamic_status: Option<u8>,
}

impl Slot {
    fn new(spec: CheckSpec, now: Instant) -> Self {
        Self::starting(spec, now, false)
    }

    /// A new check; `failed`: it starts failed, as with `alpha`.
    fn starting(spec: CheckSpec, now: Instant, failed: bool) -> Self {
        let mut policy = spec.policy();
        policy.alpha |= failed;
        let state = CheckState::new(policy, now + first_delay(&spec));
        Slot {
            spec,
            state,
            attempt: None,
            started: now,
            dynamic_status: None,
        }
    }
}

/// Without a `warmup`, first checks are still spread over up to this (and their check's
/// `delay_loop`, if shorter): a thousand real servers' checks started in the same instant
/// would connect in the same instant on every round after.
pub const FIRST_CHECK_SPREAD: Duration = Duration::from_secs(1);

/// When a check's first attempt comes: after a random delay up to its `warmup`, as keepalived
/// staggers first checks, or up to [`FIRST_CHECK_SPREAD`] without one.
fn first_delay(spec: &CheckSpec) -> Duration {
    if spec.warmup.is_zero() {
        random_up_to(FIRST_CHECK_SPREAD.min(spec.delay_loop))
    } else {
        random_up_to(spec.warmup)
    }
}

/// A random delay up to `max`.
fn random_up_to(max: Duration) -> Duration {
    use std::hash::{BuildHasher as _, RandomState};
    if max.is_zero() {
        return Duration::ZERO;
    }
    // A fresh RandomState is randomly keyed: enough to spread checks.
    let r = RandomState::new().hash_one(Instant::now());
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(r % nanos.saturating_add(1))
}

/// True when `addr` is on one of this host's interfaces.
fn is_local(addr: IpAddr) -> bool {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        // Cannot tell: do not suspend the checks.
        return true;
    }
    let mut found = false;
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*cursor };
        if !entry.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its type.
            let family = unsafe { (*entry.ifa_addr).sa_family };
            let local = if i32::from(family) == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            } else if i32::from(family) == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            } else {
                None
            };
            if local == Some(addr) {
                found = true;
                break;
            }
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// A real server's checks and the state last reported for it.
struct Server {
    key: TargetKey,
    weight: u32,
    suspend_unless_local: Option<IpAddr>,
    slots: Vec<Slot>,
    up: bool,
    /// The weight last reported.
    effective_weight: u32,
}

impl Server {
    fn new(target: Target, now: Instant) -> Self {
        let slots: Vec<Slot> = target
            .checks
            .into_iter()
            .map(|c| Slot::new(c, now))
            .collect();
        let mut server = Server {
            key: target.key,
            weight: target.weight,
            suspend_unless_local: target.suspend_unless_local,
            up: true,
            slots,
            effective_weight: target.weight,
        };
        server.up = server.all_checks_up();
        server
    }

    fn all_checks_up(&self) -> bool {
        self.slots.iter().all(|s| s.state.is_up())
    }

    /// keepalived's `real_weight(effective_weight)`: the configured weight plus each
    /// `misc_dynamic` check's `cur_weight` (status - 2 - configured weight; 0 for status 0),
    /// worked out again when the configured weight changes (`migrate_misc_check`).
    fn weight_now(&self) -> u32 {
        let weight = i64::from(self.weight);
        let cur_weight = |status: u8| match status {
            0 => 0,
            s => i64::from(s) - 2 - weight,
        };
        let sum: i64 = weight
            + self
                .slots
                .iter()
                .filter_map(|s| s.dynamic_status)
                .map(cur_weight)
                .sum::<i64>();
        u32::try_from(sum.clamp(0, i64::from(MAX_WEIGHT))).unwrap_or(0)
    }

    /// Starts the attempts due at `now` (or skips them while suspended).
    fn start_due(&mut self, attempts: &mut JoinSet<Outcome>, now: Instant) {
        let mut suspended = None;
        for slot in &mut self.slots {
            if slot.state.poll(now) {
                let suspend = *suspended.get_or_insert_with(|| {
                    self.suspend_unless_local.is_some_and(|vip| !is_local(vip))
                });
                if suspend {
                    debug!(real_server = %self.key, "check suspended: the virtual address is not here (ha_suspend)");
                    slot.state.skip(now);
                    continue;
                }
                let (spec, url) = (slot.spec.clone(), slot.state.url());
                let handle = attempts.spawn(async move { probe::attempt(&spec, url).await });
                slot.attempt = Some(handle);
                slot.started = now;
            }
        }
    }

    fn next_attempt(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| s.state.next_attempt())
            .min()
    }

    /// Feeds back the outcome of attempt `id`; returns the event to send, if any.
    fn complete(&mut self, id: tokio::task::Id, outcome: Outcome, now: Instant) -> Option<Event> {
        let key = self.key;
        // An attempt of a check removed meanwhile finds no slot.
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.attempt.as_ref().is_some_and(|a| a.id() == id))?;
        slot.attempt = None;
        debug!(real_server = %key, success = outcome.success, "{}", outcome.reason);
        if !outcome.success && slot.spec.log_all_failures && slot.state.is_up() {
            info!(real_server = %key, "check failed: {}", outcome.reason);
        }
        if let Some(status) = outcome.dynamic_status {
            // check_misc.c: the weight becomes status - 2 (0 leaves the configured one).
            slot.dynamic_status = Some(status);
        }
        let change = slot.state.complete(outcome.success, slot.started, now);
        // A failed check gives the weight back (keepalived zeroes its cur_weight).
        if matches!(change, Some(Change::Down { .. } | Change::FirstDown)) {
            slot.dynamic_status = None;
        }
        let reason = match change {
            None | Some(Change::Up | Change::FirstDown | Change::Down { retries: 0 }) => {
                outcome.reason
            }
            Some(Change::Down { retries: 1 }) => format!("{} (after 1 retry)", outcome.reason),
            Some(Change::Down { retries }) => {
                format!("{} (after {retries} retries)", outcome.reason)
            }
        };
        let up = self.all_checks_up();
        let weight_now = self.weight_now();
        if up == self.up && weight_now == self.effective_weight {
            match change {
                // An alpha check's first failure: news for the notify scripts.
                Some(Change::FirstDown) => {}
                Some(_) => {
                    info!(real_server = %self.key, "{reason}; real server stays {}", if up { "up" } else { "down" });
                    return None;
                }
                None => return None,
            }
        }
        if weight_now != self.effective_weight {
            info!(real_server = %self.key, "weight {} -> {weight_now}: {reason}", self.effective_weight);
        }
        Some(self.report(up, reason))
    }

    /// Takes a new configuration of the same real server, keeping the state (and attempt
    /// under way) of the checks it still has; returns the event to send, if any.
    fn reconfigure(&mut self, target: Target, now: Instant) -> Option<Event> {
        let mut old: Vec<Option<Slot>> = std::mem::take(&mut self.slots)
            .into_iter()
            .map(Some)
            .collect();
        let kept: Vec<&CheckSpec> = old.iter().flatten().map(|s| &s.spec).collect();
        let new: Vec<&CheckSpec> = target.checks.iter().collect();
        let from = state::carry_over(&kept, &new);
        self.slots = target
            .checks
            .into_iter()
            .zip(from)
            .map(|(spec, from)| match from.and_then(|i| old[i].take()) {
                Some(slot) => slot,
                // A failed real server is back only once its new check passes (keepalived
                // #1720: a reload that fixes a failing check must not leave it out, nor put
                // it back unchecked).
                None => Slot::starting(spec, now, !self.up),
            })
            .collect();
        for slot in old.into_iter().flatten() {
            if let Some(attempt) = slot.attempt {
                attempt.abort();
            }
        }
        self.weight = target.weight;
        self.suspend_unless_local = target.suspend_unless_local;
        debug!(real_server = %self.key, "health checks reconfigured");
        let up = self.all_checks_up();
        let weight_now = self.weight_now();
        (up != self.up || weight_now != self.effective_weight).then(|| {
            let reason = match up {
                true => "reconfigured: no failing check left",
                false => "reconfigured: a check is failing",
            };
            self.report(up, reason.into())
        })
    }

    fn report(&mut self, up: bool, reason: String) -> Event {
        if up != self.up {
            match up {
                true => info!(real_server = %self.key, "real server up: {reason}"),
                false => info!(real_server = %self.key, "real server down: {reason}"),
            }
        }
        self.up = up;
        self.effective_weight = self.weight_now();
        Event {
            key: self.key,
            up,
            weight: self.effective_weight,
            reason,
        }
    }
}

/// The task of one real server; runs until aborted.
async fn run(target: Target, mut config: watch::Receiver<Target>, events: mpsc::Sender<Event>) {
    let mut server = Server::new(target, Instant::now());
    let mut attempts = JoinSet::new();
    loop {
        server.start_due(&mut attempts, Instant::now());
        let wake = server.next_attempt();
        let event = tokio::select! {
            Some(joined) = attempts.join_next_with_id() => {
                let (id, outcome) = match joined {
                    Ok(done) => done,
                    // Aborted: its check was removed.
                    Err(e) if e.is_cancelled() => continue,
                    Err(e) => (e.id(), Outcome {
                        success: false,
                        dynamic_status: None,
                        reason: format!("health check failed: {e}"),
                    }),
                };
                server.complete(id, outcome, Instant::now())
            }
            () = sleep_until(wake) => None,
            changed = config.changed() => {
                if changed.is_err() {
                    // The HealthChecker is gone (it aborts us, but do not spin if it did not).
                    return;
                }
                let target = config.borrow_and_update().clone();
                server.reconfigure(target, Instant::now())
            }
        };
        if let Some(event) = event {
            // Nobody listening is no reason to stop checking: the logs still say.
            let _ = events.send(event).await;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_checks_are_spread_over_a_second_their_loop_or_their_warmup() {
        let mut spec = CheckSpec::tcp(Ipv4Addr::LOCALHOST, 80);
        spec.delay_loop = Duration::from_secs(60);
        let delays: Vec<Duration> = (0..200).map(|_| first_delay(&spec)).collect();
        assert!(delays.iter().all(|d| *d <= FIRST_CHECK_SPREAD));
        // Spread, not all at once.
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(
            distinct.len() > 150,
            "{} distinct delays of 200",
            distinct.len()
        );
        spec.delay_loop = Duration::from_millis(200);
        assert!((0..200).all(|_| first_delay(&spec) <= Duration::from_millis(200)));
        spec.warmup = Duration::from_secs(5);
        let delays: Vec<Duration> = (0..200).map(|_| first_delay(&spec)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(5)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(1)));
    }
}
