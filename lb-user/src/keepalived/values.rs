//! Values as keepalived reads them (`read_unsigned`, `read_timer`, `inet_stosockaddr`,
//! `check_true_false`), with lb's messages. A refused value is an [`Invalid`] or, for what
//! keepalived accepts but lb cannot do (IPv6), an [`Unsupported`] problem.
//!
//! [`Invalid`]: ErrorKind::Invalid
//! [`Unsupported`]: ErrorKind::Unsupported

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use super::error::ErrorKind;

/// Why a value is refused.
pub(super) type Problem = (ErrorKind, String);

fn invalid(message: String) -> Problem {
    (ErrorKind::Invalid, message)
}

/// An address of either family (keepalived's `inet_stosockaddr`: `inet_pton`, so no short
/// IPv4 forms; IPv6 scoped addresses, `fe80::1%eth0`, are not taken by lb).
pub(super) fn ip(text: &str, what: &str) -> Result<IpAddr, Problem> {
    if text.contains('%') {
        return Err((
            ErrorKind::Unsupported,
            format!("{what} {text}: scoped (link-local) IPv6 addresses are not supported by lb"),
        ));
    }
    text.parse().map_err(|_| {
        invalid(format!(
            "invalid {what} '{text}': not an IPv4 or IPv6 address"
        ))
    })
}

/// An IPv4 address in dotted-quad form (keepalived uses `inet_pton`, so no short forms).
pub(super) fn ipv4(text: &str, what: &str) -> Result<Ipv4Addr, Problem> {
    if text.contains(':') {
        return Err((
            ErrorKind::Unsupported,
            format!("{what} {text}: IPv6 is not supported here by lb"),
        ));
    }
    text.parse()
        .map_err(|_| invalid(format!("invalid {what} '{text}': not an IPv4 address")))
}

/// A port after an address: 1-65535, or 0 (any number of zeros) for "no port", which
/// keepalived also takes as no port.
pub(super) fn port_or_none(text: &str, what: &str) -> Result<u16, Problem> {
    match digits(text).and_then(|n| u16::try_from(n).ok()) {
        Some(port) => Ok(port),
        None => Err(invalid(format!(
            "invalid {what} port '{text}': must be 1-65535"
        ))),
    }
}

/// A port value of its own (`connect_port`, `bind_port`): 1-65535.
pub(super) fn port(text: &str, what: &str) -> Result<u16, Problem> {
    match digits(text).and_then(|n| u16::try_from(n).ok()) {
        Some(port) if port > 0 => Ok(port),
        _ => Err(invalid(format!("invalid {what} '{text}': must be 1-65535"))),
    }
}

/// An unsigned decimal number in `min..=max`.
pub(super) fn unsigned(text: &str, min: u32, max: u32, what: &str) -> Result<u32, Problem> {
    let Some(n) = digits(text) else {
        return Err(invalid(format!(
            "invalid {what} '{text}': not a whole number"
        )));
    };
    match u32::try_from(n) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(format!(
            "{what} {text} is out of range: must be {min}-{max}"
        ))),
    }
}

/// The value of a string of ASCII digits (saturating), `None` if it is not one.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// keepalived's TIMER: seconds with up to 6 decimals (`3`, `2.5`, `0.000001`), within
/// `min..=max` microseconds.
pub(super) fn timer(text: &str, min_us: u64, max_us: u64, what: &str) -> Result<Duration, Problem> {
    let bad = || {
        invalid(format!(
            "invalid {what} '{text}': expected seconds, e.g. 5 or 2.5 (at most 6 decimals)"
        ))
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if (whole.is_empty() && fraction.is_empty())
        || fraction.len() > 6
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole = if whole.is_empty() {
        0
    } else {
        digits(whole).ok_or_else(bad)?
    };
    let fraction_us = format!("{fraction:0<6}")
        .parse::<u64>()
        .map_err(|_| bad())?;
    let us = whole.saturating_mul(1_000_000).saturating_add(fraction_us);
    if !(min_us..=max_us).contains(&us) {
        return Err(invalid(format!(
            "{what} {text} is out of range: must be {}-{} seconds",
            seconds(min_us),
            seconds(max_us)
        )));
    }
    Ok(Duration::from_micros(us))
}

/// Microseconds as keepalived would write the seconds: `5`, `0.000001`.
fn seconds(us: u64) -> String {
    if us.is_multiple_of(1_000_000) {
        (us / 1_000_000).to_string()
    } else {
        let text = format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
        text.trim_end_matches('0').to_owned()
    }
}

/// keepalived's BOOL: on|off|true|false|yes|no.
pub(super) fn boolean(text: &str, what: &str) -> Result<bool, Problem> {
    match text {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(invalid(format!(
            "invalid {what} value '{text}': expected on|off|true|false|yes|no"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers() {
        let t = |s| timer(s, 1, u64::from(u32::MAX), "delay_loop");
        assert_eq!(t("6"), Ok(Duration::from_secs(6)));
        assert_eq!(t("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(t(".5"), Ok(Duration::from_millis(500)));
        assert_eq!(t("0.000001"), Ok(Duration::from_micros(1)));
        assert_eq!(
            t("0").unwrap_err().1,
            "delay_loop 0 is out of range: must be 0.000001-4294.967295 seconds"
        );
        assert!(t("1.0000001").is_err());
        assert!(t("-1").is_err());
        assert!(t("1e3").is_err());
        assert!(t(".").is_err());
        assert!(t("").is_err());
    }

    #[test]
    fn numbers_and_ports() {
        assert_eq!(unsigned("65535", 0, 65535, "weight"), Ok(65535));
        assert_eq!(
            unsigned("65536", 0, 65535, "weight").unwrap_err().1,
            "weight 65536 is out of range: must be 0-65535"
        );
        assert_eq!(
            unsigned("99999999999999999999", 0, 65535, "weight")
                .unwrap_err()
                .1,
            "weight 99999999999999999999 is out of range: must be 0-65535"
        );
        assert!(unsigned("+1", 0, 9, "x").is_err());
        assert_eq!(port_or_none("000", "real_server"), Ok(0));
        assert_eq!(port_or_none("443", "real_server"), Ok(443));
        assert!(port_or_none("65536", "real_server").is_err());
        assert!(port("0", "connect_port").is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(ipv4("10.0.0.1", "x"), Ok(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(ipv4("::1", "x").unwrap_err().0, ErrorKind::Unsupported);
        assert_eq!(ipv4("10.0.0", "x").unwrap_err().0, ErrorKind::Invalid);
        assert_eq!(ipv4("web1", "x").unwrap_err().0, ErrorKind::Invalid);
    }
}
