//! Readiness for systemd (`Type=notify`): `READY=1` once lbd serves, `RELOADING=1` and
//! `READY=1` around a reload, `STOPPING=1` on the way out. Nothing is sent unless systemd
//! set `NOTIFY_SOCKET` (the `sd-notify` crate checks), so lbd started by hand or by the tests
//! is unaffected. Messages go from lbd's main process, as `NotifyAccess=main` wants.

use sd_notify::NotifyState;
use tracing::warn;

/// lbd serves: its data path is attached and its control socket answers.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// lbd re-reads its configuration. systemd (253 and newer) wants the monotonic time with it.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

/// lbd shuts down.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        // Under systemd this ends in a start timeout; say why.
        warn!("telling systemd ({}) failed: {e}", describe(states));
    }
}

fn describe(states: &[NotifyState]) -> String {
    states
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_described_as_sent() {
        assert_eq!(
            describe(&[NotifyState::Ready, NotifyState::Status("serving")]),
            "READY=1 STATUS=serving"
        );
    }
}
