//! Health checks of real servers, as keepalived's checkers do them (`TCP_CHECK`, `HTTP_GET`).
//!
//! Each check of a real server runs every `delay_loop`; a failed attempt is retried `retry`
//! times, `delay_before_retry` apart, before the check is declared down, and a down check is
//! up again on its first success. A real server is up while all its checks are. The rules are
//! the pure state machine of [`state`]; [`spawn`] runs them on tokio, one task per real server,
//! and reports each change of a real server's state as an [`Event`].
//!
//! Real servers start **up** (keepalived's default without `alpha`), and no event is sent for
//! that: a real server dead at start-up is reported down after its first failed attempt.

mod probe;
mod runner;
pub mod state;

#[cfg(test)]
mod io_tests;

use std::{fmt, net::Ipv4Addr, time::Duration};

use crate::model::ServiceAddr;

pub use runner::{EVENT_QUEUE, HealthChecker, spawn};

/// keepalived's defaults for the settings a check leaves out.
pub mod defaults {
    use std::time::Duration;

    /// `delay_loop` (a virtual server's default).
    pub const DELAY_LOOP: Duration = Duration::from_secs(60);
    /// `connect_timeout` (a virtual server's default).
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// `retry` of TCP_CHECK and HTTP_GET.
    pub const RETRY: u32 = 1;
    /// `delay_before_retry` of TCP_CHECK.
    pub const TCP_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);
    /// `delay_before_retry` of HTTP_GET.
    pub const HTTP_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(3);
}

/// Which real server of which service a target is: the identity events are reported under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetKey {
    pub service: ServiceAddr,
    pub real: Ipv4Addr,
    pub port: u16,
}

impl fmt::Display for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}:{}", self.service, self.real, self.port)
    }
}

/// A real server to check: where, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub key: TargetKey,
    /// Address the checks connect to (usually the real server's own, keepalived's default
    /// when `connect_ip` is not given).
    pub addr: Ipv4Addr,
    /// All must pass for the real server to be up; none means it is always up.
    pub checks: Vec<CheckSpec>,
}

/// One check of a real server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CheckSpec {
    /// `TCP_CHECK`: a TCP connection can be established.
    Tcp {
        port: u16,
        connect_timeout: Duration,
        retry: u32,
        delay_before_retry: Duration,
        delay_loop: Duration,
    },
    /// `HTTP_GET`: an HTTP/1.0 GET of `path` answers with `status_code` (any 2xx when
    /// `None`) within `connect_timeout` for the connection and again for the status line.
    Http {
        port: u16,
        path: String,
        status_code: Option<u16>,
        connect_timeout: Duration,
        retry: u32,
        delay_before_retry: Duration,
        delay_loop: Duration,
    },
}

impl CheckSpec {
    /// `TCP_CHECK` on `port` with keepalived's defaults.
    pub fn tcp(port: u16) -> Self {
        CheckSpec::Tcp {
            port,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            retry: defaults::RETRY,
            delay_before_retry: defaults::TCP_DELAY_BEFORE_RETRY,
            delay_loop: defaults::DELAY_LOOP,
        }
    }

    /// `HTTP_GET` of `path` on `port` with keepalived's defaults (any 2xx status passes).
    pub fn http(port: u16, path: impl Into<String>) -> Self {
        CheckSpec::Http {
            port,
            path: path.into(),
            status_code: None,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            retry: defaults::RETRY,
            delay_before_retry: defaults::HTTP_DELAY_BEFORE_RETRY,
            delay_loop: defaults::DELAY_LOOP,
        }
    }

    pub fn port(&self) -> u16 {
        match *self {
            CheckSpec::Tcp { port, .. } | CheckSpec::Http { port, .. } => port,
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        match *self {
            CheckSpec::Tcp {
                connect_timeout, ..
            }
            | CheckSpec::Http {
                connect_timeout, ..
            } => connect_timeout,
        }
    }

    /// The retry and scheduling rules of this check.
    pub fn policy(&self) -> state::Policy {
        match *self {
            CheckSpec::Tcp {
                retry,
                delay_before_retry,
                delay_loop,
                ..
            } => state::Policy {
                delay_loop,
                retry,
                delay_before_retry,
                // tcp_epilog(): a down checker is tried again after delay_loop.
                delay_while_down: delay_loop,
            },
            CheckSpec::Http {
                retry,
                delay_before_retry,
                delay_loop,
                ..
            } => state::Policy {
                delay_loop,
                retry,
                delay_before_retry,
                // epilog() in check_http.c: with a failed URL, the larger of the two.
                delay_while_down: delay_before_retry.max(delay_loop),
            },
        }
    }

    /// Refuses what keepalived's parser refuses, and what would make a check spin.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.policy().delay_loop.is_zero() {
            return Err(SpecError::ZeroDelayLoop);
        }
        if self.connect_timeout().is_zero() {
            return Err(SpecError::ZeroConnectTimeout);
        }
        if self.port() == 0 {
            return Err(SpecError::ZeroPort);
        }
        if let CheckSpec::Http {
            path, status_code, ..
        } = self
        {
            // The path goes verbatim into the request line.
            if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_whitespace() || b < 0x20) {
                return Err(SpecError::BadPath(path.clone()));
            }
            if let Some(code) = *status_code
                && !(100..=599).contains(&code)
            {
                return Err(SpecError::BadStatusCode(code));
            }
        }
        Ok(())
    }
}

impl Target {
    pub fn validate(&self) -> Result<(), TargetError> {
        for check in &self.checks {
            check.validate().map_err(|error| TargetError::Check {
                key: self.key,
                error,
            })?;
        }
        Ok(())
    }
}

/// A check that cannot run as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("delay_loop must be positive")]
    ZeroDelayLoop,
    #[error("connect_timeout must be positive")]
    ZeroConnectTimeout,
    #[error("port must not be 0")]
    ZeroPort,
    #[error("invalid HTTP path {0:?}: must start with '/' and contain no spaces or controls")]
    BadPath(String),
    #[error("invalid HTTP status code {0}: must be 100-599")]
    BadStatusCode(u16),
}

/// A target set that cannot be adopted; nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{key}: {error}")]
    Check { key: TargetKey, error: SpecError },
    #[error("{0}: listed more than once")]
    DuplicateKey(TargetKey),
}

/// A real server changed state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub key: TargetKey,
    pub up: bool,
    /// What decided it, e.g. `HTTP_GET http://10.0.0.12:80/ returned 503`.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_keepalived_s() {
        let p = CheckSpec::tcp(80).policy();
        assert_eq!(p.retry, 1);
        assert_eq!(p.delay_before_retry, Duration::from_secs(1));
        assert_eq!(p.delay_loop, Duration::from_secs(60));
        assert_eq!(p.delay_while_down, Duration::from_secs(60));
        let h = CheckSpec::http(80, "/");
        assert_eq!(h.connect_timeout(), Duration::from_secs(5));
        assert_eq!(h.policy().delay_before_retry, Duration::from_secs(3));
    }

    #[test]
    fn http_down_interval_is_the_larger_delay() {
        let h = CheckSpec::Http {
            port: 80,
            path: "/".into(),
            status_code: None,
            connect_timeout: Duration::from_secs(1),
            retry: 1,
            delay_before_retry: Duration::from_secs(90),
            delay_loop: Duration::from_secs(10),
        };
        assert_eq!(h.policy().delay_while_down, Duration::from_secs(90));
    }

    #[test]
    fn validation() {
        assert_eq!(CheckSpec::tcp(80).validate(), Ok(()));
        assert_eq!(CheckSpec::tcp(0).validate(), Err(SpecError::ZeroPort));
        assert_eq!(CheckSpec::http(80, "/health?x=1").validate(), Ok(()));
        for bad in ["", "health", "/a b", "/a\r\nX: y"] {
            assert_eq!(
                CheckSpec::http(80, bad).validate(),
                Err(SpecError::BadPath(bad.into()))
            );
        }
        let mut tcp = CheckSpec::tcp(80);
        if let CheckSpec::Tcp { delay_loop, .. } = &mut tcp {
            *delay_loop = Duration::ZERO;
        }
        assert_eq!(tcp.validate(), Err(SpecError::ZeroDelayLoop));
        let mut http = CheckSpec::http(80, "/");
        if let CheckSpec::Http { status_code, .. } = &mut http {
            *status_code = Some(600);
        }
        assert_eq!(http.validate(), Err(SpecError::BadStatusCode(600)));
    }
}
