//! What `lbadm` says when it refuses a command line, worded and exited as ipvsadm does.
//!
//! ipvsadm has three ways out on a bad invocation, and scripts see the difference in `$?`:
//! `fail(2, ...)` for the usage errors it explains itself, the popt error or the
//! "Try `ipvsadm -h' ..." hint with status 255 (`exit(-1)`), and 255 again when the kernel
//! refuses a change (the -1 of the libipvs call becomes the exit status). Listing a service that
//! does not exist exits 1.

use super::PROGRAM;

/// A refused command line or request; [`CliError::exit_code`] is the status ipvsadm exits with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// A usage error ipvsadm explains (its `fail(2, ...)`), e.g. "illegal weight specified".
    #[error("{0}")]
    Usage(String),
    /// No command came first: ipvsadm only prints its hint.
    #[error("Try `{PROGRAM} -h' or '{PROGRAM} --help' for more information.")]
    TryHelp,
    /// An option popt itself rejected: `option` is the argument as written.
    #[error("{option}: {reason}")]
    BadOption {
        option: String,
        reason: &'static str,
    },
    /// Valid for ipvsadm but a feature lb does not have (fwmark, SCTP, sync daemon, ...).
    #[error("{0}")]
    Unsupported(String),
    /// A change the kernel (here lbd) refuses, with libipvs' wording, e.g. "No such service".
    #[error("{0}")]
    Refused(String),
    /// A listing that cannot be produced, e.g. `-L -t` of a service that does not exist.
    #[error("{0}")]
    ListFailed(String),
    /// A line of `-R` input that does not parse; the first line is ipvsadm's own message.
    #[error("{source}\n  in line {line} of the restore input: {text}")]
    Restore {
        /// 1-based line number.
        line: usize,
        /// The line as read, without its end of line.
        text: String,
        source: Box<CliError>,
    },
}

impl CliError {
    /// The exit status ipvsadm uses for the same failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) | CliError::Unsupported(_) => 2,
            CliError::TryHelp | CliError::BadOption { .. } | CliError::Refused(_) => 255,
            CliError::ListFailed(_) => 1,
            CliError::Restore { source, .. } => source.exit_code(),
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    pub(crate) fn unsupported(what: &str) -> Self {
        CliError::Unsupported(format!("{what} not supported by lb"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_ipvsadm() {
        assert_eq!(CliError::usage("illegal weight specified").exit_code(), 2);
        assert_eq!(CliError::TryHelp.exit_code(), 255);
        let popt = CliError::BadOption {
            option: "--bogus".into(),
            reason: "unknown option",
        };
        assert_eq!(popt.exit_code(), 255);
        assert_eq!(popt.to_string(), "--bogus: unknown option");
        assert_eq!(
            CliError::Refused("Service already exists".into()).exit_code(),
            255
        );
        assert_eq!(
            CliError::ListFailed("No such service".into()).exit_code(),
            1
        );
        assert_eq!(CliError::unsupported("IPv6 is").exit_code(), 2);
    }

    #[test]
    fn try_help_names_lbadm() {
        assert_eq!(
            CliError::TryHelp.to_string(),
            "Try `lbadm -h' or 'lbadm --help' for more information."
        );
    }

    #[test]
    fn restore_error_keeps_ipvsadm_message_first() {
        let e = CliError::Restore {
            line: 3,
            text: "-a -t 1.2.3.4:80 -r x -w 70000".into(),
            source: Box::new(CliError::usage("illegal weight specified")),
        };
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "illegal weight specified\n  in line 3 of the restore input: -a -t 1.2.3.4:80 -r x -w 70000"
        );
    }
}
