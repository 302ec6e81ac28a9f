//! The tokio shell around [`super::state`]: one task per real server, which starts the
//! attempts its checks' state machines ask for (each in a task of its own, so the checks of a
//! server run concurrently too), feeds their results back and reports the server's changes.

use std::{
    collections::{HashMap, HashSet},
    net::Ipv4Addr,
    time::Instant,
};

use tokio::{
    sync::{mpsc, watch},
    task::{AbortHandle, JoinHandle, JoinSet},
};
use tracing::{debug, info};

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
/// Every real server starts up, and nothing is sent for that. Must be called within a tokio
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
}

impl Slot {
    fn new(spec: CheckSpec, now: Instant) -> Self {
        let state = CheckState::new(spec.policy(), now);
        Slot {
            spec,
            state,
            attempt: None,
        }
    }
}

/// A real server's checks and the state last reported for it.
struct Server {
    key: TargetKey,
    addr: Ipv4Addr,
    slots: Vec<Slot>,
    up: bool,
}

impl Server {
    fn new(target: Target, now: Instant) -> Self {
        Server {
            key: target.key,
            addr: target.addr,
            slots: target
                .checks
                .into_iter()
                .map(|c| Slot::new(c, now))
                .collect(),
            up: true,
        }
    }

    fn all_checks_up(&self) -> bool {
        self.slots.iter().all(|s| s.state.is_up())
    }

    /// Starts the attempts due at `now`.
    fn start_due(&mut self, attempts: &mut JoinSet<Outcome>, now: Instant) {
        for slot in &mut self.slots {
            if slot.state.poll(now) {
                let (addr, spec) = (self.addr, slot.spec.clone());
                let handle = attempts.spawn(async move { probe::attempt(addr, &spec).await });
                slot.attempt = Some(handle);
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
        // An attempt of a check removed meanwhile finds no slot.
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.attempt.as_ref().is_some_and(|a| a.id() == id))?;
        slot.attempt = None;
        debug!(real_server = %self.key, success = outcome.success, "{}", outcome.reason);
        let reason = match slot.state.complete(outcome.success, now)? {
            Change::Up | Change::Down { retries: 0 } => outcome.reason,
            Change::Down { retries: 1 } => format!("{} (after 1 retry)", outcome.reason),
            Change::Down { retries } => format!("{} (after {retries} retries)", outcome.reason),
        };
        let up = self.all_checks_up();
        if up == self.up {
            // A check changed but another one still keeps the server down.
            info!(real_server = %self.key, "{reason}; real server stays down");
            return None;
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
        let kept: Vec<&CheckSpec> = match target.addr == self.addr {
            true => old.iter().flatten().map(|s| &s.spec).collect(),
            false => Vec::new(),
        };
        let new: Vec<&CheckSpec> = target.checks.iter().collect();
        let from = state::carry_over(&kept, &new);
        self.slots = target
            .checks
            .into_iter()
            .zip(from)
            .map(|(spec, from)| match from.and_then(|i| old[i].take()) {
                Some(slot) => slot,
                None => Slot::new(spec, now),
            })
            .collect();
        for slot in old.into_iter().flatten() {
            if let Some(attempt) = slot.attempt {
                attempt.abort();
            }
        }
        self.addr = target.addr;
        debug!(real_server = %self.key, "health checks reconfigured");
        let up = self.all_checks_up();
        (up != self.up).then(|| {
            let reason = match up {
                true => "reconfigured: no failing check left",
                false => "reconfigured: a check is failing",
            };
            self.report(up, reason.into())
        })
    }

    fn report(&mut self, up: bool, reason: String) -> Event {
        self.up = up;
        match up {
            true => info!(real_server = %self.key, "real server up: {reason}"),
            false => info!(real_server = %self.key, "real server down: {reason}"),
        }
        Event {
            key: self.key,
            up,
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
