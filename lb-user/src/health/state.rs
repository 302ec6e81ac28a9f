//! keepalived's rules for one checker as a pure state machine: no I/O, no clock. The caller
//! passes the time in, starts an attempt when [`CheckState::poll`] says so and reports how it
//! went with [`CheckState::complete`], which says when the checker's state changes.
//!
//! The rules are those of keepalived's `tcp_epilog()` (check_tcp.c) and `epilog()`
//! (check_http.c), with the start-up settings of check_data.c:
//!
//! - A checker starts **up** (keepalived's default; `alpha` would start it down and is not
//!   offered) and with its retries already spent, so a real server that is dead at start-up is
//!   declared down on its first failed attempt rather than after `retry` more.
//! - While up, a failed attempt is retried after `delay_before_retry`, up to `retry` times; the
//!   attempt after the last retry that still fails declares the checker down. The retry count
//!   is rearmed by any success.
//! - While down, failures are not retried: the next attempt comes after the down interval
//!   (`delay_loop` for TCP_CHECK, the larger of `delay_before_retry` and `delay_loop` for
//!   HTTP_GET). The first success declares it up again.
//! - After a success, and after the attempt that declares it down, the next attempt comes after
//!   `delay_loop`; every delay counts from the end of the previous attempt.

use std::time::{Duration, Instant};

/// How often a checker runs and how many failures it tolerates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Interval between attempts while all is well (`delay_loop`).
    pub delay_loop: Duration,
    /// Failed attempts retried before the checker is declared down (`retry`).
    pub retry: u32,
    /// Interval before a retry (`delay_before_retry`).
    pub delay_before_retry: Duration,
    /// Interval between attempts once down.
    pub delay_while_down: Duration,
}

/// A change of a checker's state, as [`CheckState::complete`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Up,
    /// `retries` failed retries followed the first failed attempt.
    Down {
        retries: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Idle until this instant.
    Waiting(Instant),
    /// An attempt is under way.
    Running,
}

/// One checker of one real server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckState {
    policy: Policy,
    up: bool,
    /// Retries spent in the current run of failures (keepalived's `retry_it`).
    retries_spent: u32,
    /// Failed attempts in a row, for reporting.
    failures: u32,
    phase: Phase,
}

/// Longest delay ever scheduled, so that `Instant` arithmetic cannot overflow.
const MAX_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

impl CheckState {
    /// A checker that is up, with its first attempt due at `now`.
    pub fn new(policy: Policy, now: Instant) -> Self {
        CheckState {
            policy,
            up: true,
            retries_spent: policy.retry,
            failures: 0,
            phase: Phase::Waiting(now),
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// When the next attempt is due; `None` while one is under way.
    pub fn next_attempt(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting(at) => Some(at),
            Phase::Running => None,
        }
    }

    /// True when an attempt is due at `now`: the caller must start it, and report its result
    /// with [`complete`](Self::complete). The checker is then running until it does.
    pub fn poll(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Waiting(at) if at <= now => {
                self.phase = Phase::Running;
                true
            }
            _ => false,
        }
    }

    /// The result of the attempt under way, which ended at `now`. Schedules the next attempt
    /// and returns the checker's change of state, if any.
    pub fn complete(&mut self, success: bool, now: Instant) -> Option<Change> {
        debug_assert_eq!(self.phase, Phase::Running, "no attempt was under way");
        let (delay, change) = if success {
            self.retries_spent = 0;
            self.failures = 0;
            let change = (!self.up).then_some(Change::Up);
            self.up = true;
            (self.policy.delay_loop, change)
        } else {
            self.failures = self.failures.saturating_add(1);
            if !self.up {
                (self.policy.delay_while_down, None)
            } else if self.retries_spent >= self.policy.retry {
                self.retries_spent = 0;
                self.up = false;
                let retries = self.failures - 1;
                (self.policy.delay_while_down, Some(Change::Down { retries }))
            } else {
                self.retries_spent += 1;
                (self.policy.delay_before_retry, None)
            }
        };
        self.phase = Phase::Waiting(now + delay.min(MAX_DELAY));
        change
    }
}

/// For each of `new`, the index in `old` of an equal element to take over, each old one taken
/// at most once: how a reconfigured real server keeps the state of its unchanged checks.
pub fn carry_over<T: PartialEq>(old: &[T], new: &[T]) -> Vec<Option<usize>> {
    let mut taken = vec![false; old.len()];
    new.iter()
        .map(|n| {
            let i = (0..old.len()).find(|&i| !taken[i] && old[i] == *n)?;
            taken[i] = true;
            Some(i)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy(retry: u32) -> Policy {
        Policy {
            delay_loop: 1000 * MS,
            retry,
            delay_before_retry: 100 * MS,
            delay_while_down: 2000 * MS,
        }
    }

    /// Runs one attempt at `now` with `success`, returning the change and the next due time
    /// as an offset from `t0`.
    fn attempt(
        c: &mut CheckState,
        t0: Instant,
        now: Duration,
        success: bool,
    ) -> (Option<Change>, Duration) {
        assert!(c.poll(t0 + now), "attempt not due at {now:?}");
        let change = c.complete(success, t0 + now);
        (change, c.next_attempt().unwrap() - t0)
    }

    #[test]
    fn starts_up_with_first_attempt_due_now() {
        let t0 = Instant::now();
        let mut c = CheckState::new(policy(3), t0);
        assert!(c.is_up());
        assert_eq!(c.next_attempt(), Some(t0));
        assert!(c.poll(t0));
        assert_eq!(c.next_attempt(), None);
        assert!(!c.poll(t0 + 10_000 * MS), "one attempt at a time");
    }

    #[test]
    fn not_due_before_its_time() {
        let t0 = Instant::now();
        let mut c = CheckState::new(policy(3), t0);
        attempt(&mut c, t0, Duration::ZERO, true);
        assert!(!c.poll(t0 + 999 * MS));
        assert!(c.poll(t0 + 1000 * MS));
    }

    #[test]
    fn success_while_up_changes_nothing_and_waits_delay_loop() {
        let t0 = Instant::now();
        let mut c = CheckState::new(policy(3), t0);
        assert_eq!(attempt(&mut c, t0, Duration::ZERO, true), (None, 1000 * MS));
        // Delays count from the end of the attempt.
        assert_eq!(attempt(&mut c, t0, 1030 * MS, true), (None, 2030 * MS));
        assert!(c.is_up());
    }

    #[test]
    fn dead_at_start_goes_down_on_first_failure() {
        let t0 = Instant::now();
        let mut c = CheckState::new(policy(3), t0);
        let r = attempt(&mut c, t0, Duration::ZERO, false);
        assert_eq!(r, (Some(Change::Down { retries: 0 }), 2000 * MS));
        assert!(!c.is_up());
    }

    #[test]
    fn failures_while_up_are_retried_before_going_down() {
        let t0 = Instant::now();
        let mut c = CheckState::new(policy(3), t0);
        attempt(&mut c, t0, Duration::ZERO, true);
        // First failure, then three retries delay_before_retry apart; the third retry fails it.
        assert_eq!(attempt(&mut c, t0, 1000 * MS, false), (None, 1100 * MS));
        assert_eq!(attempt(&mut c, t0, 1100 * MS, false), (None, 1200 * MS));
        assert_eq!(attempt(&mut c, t0, 1200 * MS, false), (None, 1300 * MS));
        assert!(c.is_up());
        let r = attempt(&mut c, t0, 1300 * MS, false);
        assert_eq!(r, (Some(Change::Down { retries: 3 }), 3300 * MS));
        assert!(!c.is_up());
    }

    #[test]
    fn zero_retry_goes_down_on_first_failure() {
        let t0 = Instant::now();
        let mut c = CheckState::new(policy(0), t0);
        attempt(&mut c, t0, Duration::ZERO, true);
        let r = attempt(&mut c, t0, 1000 * MS, false);
        assert_eq!(r, (Some(Change::Down { retries: 0 }), 3000 * MS));
    }

    #[test]
    fn success_during_retries_rearms_them() {
        let t0 = Instant::now();
        let mut c = CheckState::new(policy(2), t0);
        attempt(&mut c, t0, Duration::ZERO, true);
        assert_eq!(attempt(&mut c, t0, 1000 * MS, false), (None, 1100 * MS));
        assert_eq!(attempt(&mut c, t0, 1100 * MS, false), (None, 1200 * MS));
        assert_eq!(attempt(&mut c, t0, 1200 * MS, true), (None, 2200 * MS));
        // All two retries are available again.
        assert_eq!(attempt(&mut c, t0, 2200 * MS, false), (None, 2300 * MS));
        assert_eq!(attempt(&mut c, t0, 2300 * MS, false), (None, 2400 * MS));
        let r = attempt(&mut c, t0, 2400 * MS, false);
        assert_eq!(r, (Some(Change::Down { retries: 2 }), 4400 * MS));
    }

    #[test]
    fn down_is_not_retried_and_first_success_brings_it_up() {
        let t0 = Instant::now();
        let mut c = CheckState::new(policy(2), t0);
        attempt(&mut c, t0, Duration::ZERO, false);
        assert!(!c.is_up());
        assert_eq!(attempt(&mut c, t0, 2000 * MS, false), (None, 4000 * MS));
        assert_eq!(attempt(&mut c, t0, 4000 * MS, false), (None, 6000 * MS));
        assert_eq!(
            attempt(&mut c, t0, 6000 * MS, true),
            (Some(Change::Up), 7000 * MS)
        );
        assert!(c.is_up());
        // Back up, it has its retries again.
        assert_eq!(attempt(&mut c, t0, 7000 * MS, false), (None, 7100 * MS));
        assert_eq!(attempt(&mut c, t0, 7100 * MS, false), (None, 7200 * MS));
        let r = attempt(&mut c, t0, 7200 * MS, false);
        assert_eq!(r, (Some(Change::Down { retries: 2 }), 9200 * MS));
    }

    #[test]
    fn huge_delays_do_not_overflow() {
        let t0 = Instant::now();
        let p = Policy {
            delay_loop: Duration::MAX,
            ..policy(1)
        };
        let mut c = CheckState::new(p, t0);
        let (_, next) = attempt(&mut c, t0, Duration::ZERO, true);
        assert_eq!(next, MAX_DELAY);
    }

    #[test]
    fn carry_over_matches_equal_elements_once() {
        assert_eq!(
            carry_over(&["a", "b", "a"], &["b", "a", "c", "a", "a"]),
            [Some(1), Some(0), None, Some(2), None]
        );
        assert_eq!(carry_over::<u8>(&[], &[1]), [None]);
        assert_eq!(carry_over(&[1], &[]), Vec::<Option<usize>>::new());
    }
}
