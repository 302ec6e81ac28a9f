//! lbd's log on standard error: plain text, coloured only when standard error is a terminal
//! (not a file, a pipe or the journal), or one JSON object per line (`--log-format json`) for
//! log shippers.

use std::io::IsTerminal as _;

use tracing_subscriber::{EnvFilter, fmt::MakeWriter, util::SubscriberInitExt as _};

/// The variable that sets lbd's log filter (`info` when unset or invalid).
pub const FILTER_ENV: &str = "LBD_LOG";

/// How lbd writes its log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per event: `timestamp`, `level`, `message` and the event's fields.
    Json,
}

/// Installs lbd's logger on standard error (and forwards the `log` crate's records to it).
/// Colour only on a terminal, and never when `NO_COLOR` is set (<https://no-color.org>).
pub fn init(format: LogFormat) {
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let filter = EnvFilter::try_from_env(FILTER_ENV).unwrap_or_else(|_| "info".into());
    // A second call (tests) keeps the first logger.
    let _ = subscriber(format, ansi, filter, std::io::stderr).try_init();
}

/// The subscriber [`init`] installs, writing to `writer`.
pub fn subscriber<W>(
    format: LogFormat,
    ansi: bool,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        // Fields at the top level, as shippers (Vector, Fluent Bit, Loki's json stage) expect;
        // JSON is never coloured.
        LogFormat::Json => Box::new(
            builder
                .with_ansi(false)
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Logs two events through [`subscriber`] and returns what it wrote.
    fn logged(format: LogFormat, ansi: bool) -> String {
        let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = {
            let buffer = Arc::clone(&buffer);
            move || Capture(Arc::clone(&buffer))
        };
        let sub = subscriber(format, ansi, EnvFilter::new("info"), writer);
        tracing::subscriber::with_default(sub, || {
            tracing::info!(socket = "/run/lb/lbd.sock", "lbd ready");
            tracing::debug!("filtered out");
            tracing::warn!(iface = "eth0", "a \"quoted\" warning");
        });
        String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
    }

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_has_no_escape_codes_unless_asked() {
        let plain = logged(LogFormat::Text, false);
        assert!(!plain.contains('\x1b'), "{plain:?}");
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines.len(), 2, "{plain}");
        assert!(
            lines[0].contains(" INFO lbd ready socket=\"/run/lb/lbd.sock\""),
            "{plain}"
        );
        assert!(lines[1].contains(" WARN a \"quoted\" warning iface=\"eth0\""));
        // The switch is what decides: on a terminal the same events are coloured.
        assert!(logged(LogFormat::Text, true).contains("\x1b["));
    }

    #[test]
    fn json_is_one_object_per_line_with_top_level_fields() {
        // Even when asked for colour.
        let text = logged(LogFormat::Json, true);
        assert!(!text.contains('\x1b'), "{text:?}");
        let events: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(events.len(), 2, "{text}");
        assert_eq!(events[0]["level"], "INFO");
        assert_eq!(events[0]["message"], "lbd ready");
        assert_eq!(events[0]["socket"], "/run/lb/lbd.sock");
        assert!(events[0]["timestamp"].is_string());
        assert_eq!(events[1]["level"], "WARN");
        assert_eq!(events[1]["message"], "a \"quoted\" warning");
        assert_eq!(events[1]["iface"], "eth0");
    }
}
