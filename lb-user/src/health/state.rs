//! keepalived's rules for one checker as a pure state machine: no I/O, no clock. The caller
//! passes the time in, starts an attempt when [`CheckState::poll`] says so and reports how it
//! went with [`CheckState::complete`], which says when the checker's state changes.
//!
//! The rules are keepalived's, checker by checker: `tcp_epilog()` (check_tcp.c), `epilog()`
//! and `timeout_epilog()` (check_http.c), `misc_check_child_thread()` (check_misc.c), with the
//! start-up settings of check_data.c and `update_svr_checker_state()` (ipwrapper.c):
//!
//! - A checker starts **up** with its retries already spent, so a real server that is dead at
//!   start-up is declared down on its first failed attempt rather than after `retry` more.
//!   With `alpha` it starts **down**, and a first failure is reported too (keepalived runs the
//!   `notify_down` script then).
//! - While up, a failed attempt is retried after `delay_before_retry`, up to `retry` times; the
//!   attempt after the last retry that still fails declares the checker down. Any success
//!   rearms the retries.
//! - TCP_CHECK: while down, the next attempt comes after `delay_loop`; the first success
//!   declares it up.
//! - HTTP_GET checks its urls one per attempt, `delay_loop` apart. A url that fails (after its
//!   retries) is tried again every `max(delay_before_retry, delay_loop)`; once it passes, all
//!   the urls are checked again from the first, and the checker is up when the whole round
//!   passes. `fast_recovery` runs that round (and the first one) back to back.
//! - MISC_CHECK: delays count from the start of the previous run of the program, not its end.
//! - Otherwise every delay counts from the end of the previous attempt.

use std::time::{Duration, Instant};

/// Which checker's rules apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    Tcp,
    /// `urls` (at least one) checked one per attempt.
    Http {
        urls: usize,
        fast_recovery: bool,
    },
    Misc,
}

/// How often a checker runs and how many failures it tolerates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub rules: Rules,
    /// Interval between attempts while all is well (`delay_loop`).
    pub delay_loop: Duration,
    /// Failed attempts retried before the checker is declared down (`retry`).
    pub retry: u32,
    /// Interval before a retry (`delay_before_retry`).
    pub delay_before_retry: Duration,
    /// `alpha`: starts down.
    pub alpha: bool,
}

/// A change of a checker's state, as [`CheckState::complete`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Up,
    /// `retries` failed retries followed the first failed attempt.
    Down {
        retries: u32,
    },
    /// The first failure of an `alpha` checker, which was down already: no change, but news
    /// for the notify scripts.
    FirstDown,
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
    /// keepalived's `has_run`: a verdict was reached since start.
    has_run: bool,
    /// keepalived's `retry_it`.
    retry_it: u32,
    /// HTTP_GET: the url the next attempt checks.
    url: usize,
    /// HTTP_GET: a url failed and is being retried until it passes.
    failed_url: bool,
    /// Failed attempts in a row, for reporting.
    failures: u32,
    phase: Phase,
}

/// Longest delay ever scheduled, so that `Instant` arithmetic cannot overflow.
const MAX_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

impl CheckState {
    /// A checker with its first attempt due at `first` (now, or after a warmup).
    pub fn new(policy: Policy, first: Instant) -> Self {
        CheckState {
            policy,
            up: !policy.alpha,
            has_run: false,
            retry_it: policy.retry,
            url: 0,
            failed_url: false,
            failures: 0,
            phase: Phase::Waiting(first),
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// HTTP_GET: the index of the url the attempt (due or under way) checks.
    pub fn url(&self) -> usize {
        self.url
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

    /// Skips the attempt that [`poll`](Self::poll) started (a suspended checker, keepalived's
    /// `!checker->enabled`): nothing changes, and the next is due `delay_loop` after `now`.
    pub fn skip(&mut self, now: Instant) {
        debug_assert_eq!(self.phase, Phase::Running, "no attempt was under way");
        self.phase = Phase::Waiting(now + self.policy.delay_loop.min(MAX_DELAY));
    }

    /// The result of the attempt under way, which started at `started` and ended at `ended`.
    /// Schedules the next attempt and returns the checker's change of state, if any.
    pub fn complete(&mut self, success: bool, started: Instant, ended: Instant) -> Option<Change> {
        debug_assert_eq!(self.phase, Phase::Running, "no attempt was under way");
        if success {
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
        }
        let (change, next) = match self.policy.rules {
            Rules::Tcp => {
                let (change, delay) = self.tcp(success);
                (change, ended + delay.min(MAX_DELAY))
            }
            Rules::Http {
                urls,
                fast_recovery,
            } => {
                let (change, delay) = self.http(success, urls.max(1), fast_recovery);
                (change, ended + delay.min(MAX_DELAY))
            }
            Rules::Misc => {
                let (change, delay) = self.misc(success);
                (change, started + delay.min(MAX_DELAY))
            }
        };
        self.phase = Phase::Waiting(next);
        change
    }

    /// `update_svr_checker_state()`: the checker's verdict.
    fn set(&mut self, alive: bool) -> Option<Change> {
        let first = !self.has_run;
        self.has_run = true;
        if self.up == alive {
            // Only an alpha checker's first failure is news (to the notify scripts).
            return (first && !alive).then_some(Change::FirstDown);
        }
        self.up = alive;
        Some(match alive {
            true => Change::Up,
            false => Change::Down {
                retries: self.failures.saturating_sub(1),
            },
        })
    }

    /// `tcp_epilog()`.
    fn tcp(&mut self, success: bool) -> (Option<Change>, Duration) {
        let p = self.policy;
        let mut delay = p.delay_loop;
        let mut change = None;
        if success || ((self.up || !self.has_run) && self.retry_it >= p.retry) {
            self.retry_it = 0;
            if success && (!self.up || !self.has_run) {
                change = self.set(true);
            } else if !success && (self.up || !self.has_run) {
                change = self.set(false);
            }
        } else if self.up {
            delay = p.delay_before_retry;
            self.retry_it += 1;
        }
        self.has_run = true;
        (change, delay)
    }

    /// `epilog()` and `timeout_epilog()` of check_http.c.
    fn http(
        &mut self,
        success: bool,
        urls: usize,
        fast_recovery: bool,
    ) -> (Option<Change>, Duration) {
        #[derive(PartialEq)]
        enum Method {
            /// The url passed.
            New,
            /// It failed while up (or before any verdict): retry it.
            Retry,
            /// It failed while down.
            Failed,
        }
        let p = self.policy;
        let method = if success {
            Method::New
        } else if self.up || !self.has_run {
            self.has_run = true;
            Method::Retry
        } else {
            Method::Failed
        };
        match method {
            Method::New => {
                self.url += 1;
                self.retry_it = 0;
            }
            Method::Retry => self.retry_it += 1,
            Method::Failed => {}
        }
        let mut change = None;
        if method == Method::New && self.url >= urls && !self.failed_url {
            // A whole round passed.
            if !self.up || !self.has_run {
                change = self.set(true);
            }
            self.has_run = true;
            self.url = 0;
            self.retry_it = 0;
        } else if method == Method::Retry && self.retry_it > p.retry {
            if self.up || !self.has_run {
                change = self.set(false);
            }
            self.failed_url = true;
        } else if method == Method::New && self.failed_url {
            // The failed url is back: check them all again.
            self.failed_url = false;
            self.url = 0;
            self.retry_it = 0;
        }
        let delay = if method == Method::New {
            if !self.has_run {
                self.retry_it = p.retry;
            }
            p.delay_loop
        } else if self.failed_url {
            p.delay_before_retry.max(p.delay_loop)
        } else {
            p.delay_before_retry
        };
        if fast_recovery && (!self.has_run || (!self.up && !self.failed_url)) {
            return (change, Duration::ZERO);
        }
        (change, delay)
    }

    /// `misc_check_child_thread()`.
    fn misc(&mut self, success: bool) -> (Option<Change>, Duration) {
        let p = self.policy;
        let mut change = None;
        if success {
            if !self.up || !self.has_run {
                change = self.set(true);
            }
            self.retry_it = 0;
        } else if self.up || !self.has_run {
            if self.retry_it < p.retry {
                self.retry_it += 1;
            } else {
                self.retry_it = 0;
                change = self.set(false);
            }
        }
        self.has_run = true;
        let delay = match self.retry_it {
            0 => p.delay_loop,
            _ => p.delay_before_retry,
        };
        (change, delay)
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

    fn policy(rules: Rules, retry: u32) -> Policy {
        Policy {
            rules,
            delay_loop: 1000 * MS,
            retry,
            delay_before_retry: 100 * MS,
            alpha: false,
        }
    }

    fn tcp(retry: u32) -> Policy {
        policy(Rules::Tcp, retry)
    }

    fn http(urls: usize, retry: u32) -> Policy {
        Policy {
            delay_before_retry: 3000 * MS,
            ..policy(
                Rules::Http {
                    urls,
                    fast_recovery: false,
                },
                retry,
            )
        }
    }

    /// Runs one attempt at `now` (taking no time) with `success`, returning the change and the
    /// next due time as an offset from `t0`.
    fn attempt(
        c: &mut CheckState,
        t0: Instant,
        now: Duration,
        success: bool,
    ) -> (Option<Change>, Duration) {
        assert!(c.poll(t0 + now), "attempt not due at {now:?}");
        let change = c.complete(success, t0 + now, t0 + now);
        (change, c.next_attempt().unwrap() - t0)
    }

    #[test]
    fn starts_up_with_first_attempt_due_at_first() {
        let t0 = Instant::now();
        let mut c = CheckState::new(tcp(3), t0 + 50 * MS);
        assert!(c.is_up());
        assert!(!c.poll(t0));
        assert!(c.poll(t0 + 50 * MS));
        assert_eq!(c.next_attempt(), None);
        assert!(!c.poll(t0 + 10_000 * MS), "one attempt at a time");
    }

    #[test]
    fn success_while_up_changes_nothing_and_waits_delay_loop() {
        let t0 = Instant::now();
        let mut c = CheckState::new(tcp(3), t0);
        assert_eq!(attempt(&mut c, t0, Duration::ZERO, true), (None, 1000 * MS));
        assert!(!c.poll(t0 + 999 * MS));
        // Delays count from the end of the attempt.
        assert!(c.poll(t0 + 1030 * MS));
        assert_eq!(c.complete(true, t0 + 1030 * MS, t0 + 1040 * MS), None);
        assert_eq!(c.next_attempt(), Some(t0 + 2040 * MS));
    }

    #[test]
    fn dead_at_start_goes_down_on_first_failure() {
        let t0 = Instant::now();
        for rules in [
            Rules::Tcp,
            Rules::Misc,
            Rules::Http {
                urls: 1,
                fast_recovery: false,
            },
        ] {
            let mut c = CheckState::new(policy(rules, 3), t0);
            let (change, _) = attempt(&mut c, t0, Duration::ZERO, false);
            assert_eq!(change, Some(Change::Down { retries: 0 }), "{rules:?}");
            assert!(!c.is_up());
        }
    }

    #[test]
    fn tcp_failures_while_up_are_retried_before_going_down() {
        let t0 = Instant::now();
        let mut c = CheckState::new(tcp(3), t0);
        attempt(&mut c, t0, Duration::ZERO, true);
        assert_eq!(attempt(&mut c, t0, 1000 * MS, false), (None, 1100 * MS));
        assert_eq!(attempt(&mut c, t0, 1100 * MS, false), (None, 1200 * MS));
        assert_eq!(attempt(&mut c, t0, 1200 * MS, false), (None, 1300 * MS));
        assert!(c.is_up());
        let r = attempt(&mut c, t0, 1300 * MS, false);
        assert_eq!(r, (Some(Change::Down { retries: 3 }), 2300 * MS));
        // Down: tried every delay_loop; the first success brings it up.
        assert_eq!(attempt(&mut c, t0, 2300 * MS, false), (None, 3300 * MS));
        let r = attempt(&mut c, t0, 3300 * MS, true);
        assert_eq!(r, (Some(Change::Up), 4300 * MS));
    }

    #[test]
    fn tcp_success_during_retries_rearms_them() {
        let t0 = Instant::now();
        let mut c = CheckState::new(tcp(2), t0);
        attempt(&mut c, t0, Duration::ZERO, true);
        assert_eq!(attempt(&mut c, t0, 1000 * MS, false), (None, 1100 * MS));
        assert_eq!(attempt(&mut c, t0, 1100 * MS, false), (None, 1200 * MS));
        assert_eq!(attempt(&mut c, t0, 1200 * MS, true), (None, 2200 * MS));
        assert_eq!(attempt(&mut c, t0, 2200 * MS, false), (None, 2300 * MS));
        assert_eq!(attempt(&mut c, t0, 2300 * MS, false), (None, 2400 * MS));
        let r = attempt(&mut c, t0, 2400 * MS, false);
        assert_eq!(r, (Some(Change::Down { retries: 2 }), 3400 * MS));
    }

    #[test]
    fn alpha_starts_down_and_reports_its_first_verdict() {
        let t0 = Instant::now();
        let alpha = Policy {
            alpha: true,
            ..tcp(1)
        };
        let mut c = CheckState::new(alpha, t0);
        assert!(!c.is_up());
        assert_eq!(
            attempt(&mut c, t0, Duration::ZERO, true).0,
            Some(Change::Up)
        );
        let mut c = CheckState::new(alpha, t0);
        let (change, _) = attempt(&mut c, t0, Duration::ZERO, false);
        assert_eq!(change, Some(Change::FirstDown));
        // Later failures while down are no news.
        assert_eq!(attempt(&mut c, t0, 1000 * MS, false).0, None);
    }

    #[test]
    fn http_checks_one_url_per_delay_loop() {
        let t0 = Instant::now();
        let mut c = CheckState::new(http(3, 1), t0);
        let mut urls = Vec::new();
        for i in 0..6 {
            urls.push(c.url());
            assert_eq!(attempt(&mut c, t0, i * 1000 * MS, true).0, None);
        }
        assert_eq!(urls, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn http_failed_url_then_a_whole_round_before_up() {
        let t0 = Instant::now();
        let mut c = CheckState::new(http(2, 1), t0);
        // A first round; until it completes, one failure would be enough.
        attempt(&mut c, t0, Duration::ZERO, true);
        attempt(&mut c, t0, 1000 * MS, true);
        assert_eq!(attempt(&mut c, t0, 2000 * MS, true), (None, 3000 * MS));
        assert_eq!(c.url(), 1);
        // url 1 fails: retried after delay_before_retry (3 s), then down.
        assert_eq!(attempt(&mut c, t0, 3000 * MS, false), (None, 6000 * MS));
        let r = attempt(&mut c, t0, 6000 * MS, false);
        assert_eq!(r, (Some(Change::Down { retries: 1 }), 9000 * MS));
        // Down: the failed url every max(delay_before_retry, delay_loop).
        assert_eq!(c.url(), 1);
        assert_eq!(attempt(&mut c, t0, 9000 * MS, false), (None, 12_000 * MS));
        // It passes: all urls again from the first, one per delay_loop; up after the round.
        assert_eq!(attempt(&mut c, t0, 12_000 * MS, true), (None, 13_000 * MS));
        assert_eq!(c.url(), 0);
        assert_eq!(attempt(&mut c, t0, 13_000 * MS, true), (None, 14_000 * MS));
        let r = attempt(&mut c, t0, 14_000 * MS, true);
        assert_eq!(r, (Some(Change::Up), 15_000 * MS));
    }

    #[test]
    fn http_before_the_first_round_one_failure_is_enough() {
        let t0 = Instant::now();
        let mut c = CheckState::new(http(2, 3), t0);
        attempt(&mut c, t0, Duration::ZERO, true);
        let r = attempt(&mut c, t0, 1000 * MS, false);
        assert_eq!(r, (Some(Change::Down { retries: 0 }), 4000 * MS));
    }

    #[test]
    fn http_fast_recovery_runs_the_round_back_to_back() {
        let t0 = Instant::now();
        let p = Policy {
            rules: Rules::Http {
                urls: 3,
                fast_recovery: true,
            },
            alpha: true,
            ..http(3, 0)
        };
        let mut c = CheckState::new(p, t0);
        assert_eq!(
            attempt(&mut c, t0, Duration::ZERO, true),
            (None, Duration::ZERO)
        );
        assert_eq!(
            attempt(&mut c, t0, Duration::ZERO, true),
            (None, Duration::ZERO)
        );
        let r = attempt(&mut c, t0, Duration::ZERO, true);
        assert_eq!(r, (Some(Change::Up), 1000 * MS));
        // Up: one url per delay_loop again.
        assert_eq!(attempt(&mut c, t0, 1000 * MS, true), (None, 2000 * MS));
    }

    #[test]
    fn misc_delays_count_from_the_start_and_retry_defaults_apply() {
        let t0 = Instant::now();
        let mut c = CheckState::new(policy(Rules::Misc, 1), t0);
        assert!(c.poll(t0));
        assert_eq!(c.complete(true, t0, t0 + 300 * MS), None);
        assert_eq!(c.next_attempt(), Some(t0 + 1000 * MS));
        assert!(c.poll(t0 + 1000 * MS));
        assert_eq!(c.complete(false, t0 + 1000 * MS, t0 + 1300 * MS), None);
        assert_eq!(c.next_attempt(), Some(t0 + 1100 * MS));
        assert!(c.poll(t0 + 1300 * MS));
        let change = c.complete(false, t0 + 1300 * MS, t0 + 1400 * MS);
        assert_eq!(change, Some(Change::Down { retries: 1 }));
        assert_eq!(c.next_attempt(), Some(t0 + 2300 * MS));
    }

    #[test]
    fn skipping_waits_delay_loop_and_changes_nothing() {
        let t0 = Instant::now();
        let mut c = CheckState::new(tcp(1), t0);
        assert!(c.poll(t0));
        c.skip(t0);
        assert!(c.is_up());
        assert_eq!(c.next_attempt(), Some(t0 + 1000 * MS));
    }

    #[test]
    fn huge_delays_do_not_overflow() {
        let t0 = Instant::now();
        let p = Policy {
            delay_loop: Duration::MAX,
            ..tcp(1)
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
