//! Waiting for a condition with a deadline. Tests wait for evidence (a socket answers, a real
//! server has served requests), never for a fixed time, and never assert how long it took.

use std::{
    fmt::Display,
    time::{Duration, Instant},
};

const POLL: Duration = Duration::from_millis(25);

/// Polls `probe` until it returns `Some`, and returns that value; panics naming `what` if
/// `timeout` passes first.
#[track_caller]
pub fn wait_for<T>(
    what: impl Display,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `condition` until it holds; panics naming `what` if `timeout` passes first.
#[track_caller]
pub fn wait_until(what: impl Display, timeout: Duration, mut condition: impl FnMut() -> bool) {
    wait_for(what, timeout, || condition().then_some(()));
}

/// Polls `probe` until it returns `Ok`, and returns that value; panics naming `what` and the
/// last `Err` (the state it was stuck in) if `timeout` passes first.
#[track_caller]
pub fn wait_ok<T>(
    what: impl Display,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(state) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last state: {state}")
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}
