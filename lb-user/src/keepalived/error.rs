//! Where things are in the configuration, and what lb says about them: errors (the file is
//! refused) and notes (what lb leaves to keepalived, or a default keepalived would apply with
//! a warning).

use std::{collections::HashMap, fmt, sync::Arc};

/// A line of a configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file as it was named: the path given to [`parse_file`](super::parse_file) (or the
    /// name given to [`parse_str`](super::parse_str)), or an included file's path joined to
    /// its including file's directory.
    pub file: Arc<str>,
    /// 1-based; 0 when the error concerns the file as a whole (it cannot be read).
    pub line: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

/// Something lb read but does not act on, or a default it applied where keepalived would have
/// logged a warning, e.g. "vrrp_instance VI_1 ignored: keepalived itself runs VRRP".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// The kinds of [`ConfigError`], for callers and tests that tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Braces, quotes, a missing or extra value, a block where none belongs.
    Syntax,
    /// A keyword keepalived does not have here.
    UnknownKeyword,
    /// A keepalived feature lb does not have (fwmark, SCTP, scoped IPv6 addresses, ...).
    Unsupported,
    /// A bad value: address, port, number out of range, unknown scheduler.
    Invalid,
    /// A virtual or real server defined twice.
    Duplicate,
    /// A file that cannot be read, or includes nested too deep.
    File,
}

/// One reason the configuration is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} at {location}")]
pub struct ConfigError {
    pub kind: ErrorKind,
    pub location: Location,
    pub message: String,
}

/// Every reason the configuration is refused, in file order. Never empty.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// What parsing says as it goes: errors and notes.
#[derive(Default)]
pub(super) struct Report {
    pub errors: Vec<ConfigError>,
    pub notes: Vec<Note>,
    /// The lines in reading order, includes spliced in, to put what is said in file order.
    order: HashMap<Location, usize>,
}

impl Report {
    /// Records that `location` is the next line read.
    pub fn line_read(&mut self, location: &Location) {
        let next = self.order.len() + 1;
        self.order.entry(location.clone()).or_insert(next);
    }

    /// Errors and notes in file order (a block's checks are made once it is read, after
    /// what its lines said).
    pub fn sort(&mut self) {
        let order = &self.order;
        let key = |l: &Location| order.get(l).copied().unwrap_or(0);
        self.errors.sort_by_key(|e| key(&e.location));
        self.notes.sort_by_key(|n| key(&n.location));
    }

    pub fn error(&mut self, kind: ErrorKind, location: &Location, message: impl Into<String>) {
        self.errors.push(ConfigError {
            kind,
            location: location.clone(),
            message: message.into(),
        });
    }

    pub fn note(&mut self, location: &Location, message: impl Into<String>) {
        self.notes.push(Note {
            location: location.clone(),
            message: message.into(),
        });
    }
}
