//! Splits a command line into options and plain arguments the way popt (ipvsadm's option
//! library) does, so every spelling that works with ipvsadm works with lbadm:
//!
//! - bundled short options, `-Ln`, `-Sn`, with an argument attached or next: `-t1.2.3.4:80`,
//!   `-t 1.2.3.4:80`, `-p=600`;
//! - long options with the argument next or after `=`: `--weight 3`, `--weight=3`;
//! - an optional argument (`-p [timeout]`) is taken only when the next word does not start
//!   with `-`;
//! - words that are not options are kept in order as plain arguments (`--set 900 120 300`),
//!   wherever they appear; after `--` every word is a plain argument.
//!
//! Options come out one at a time so that errors surface in the order ipvsadm reports them.

use super::{
    error::CliError,
    options::{ArgKind, Opt, Spec, find_long, find_short},
};

/// One option occurrence, or one plain argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    Opt(OptToken),
    Arg(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OptToken {
    pub opt: Opt,
    pub value: Option<String>,
    /// The last command-line word read for this option (popt's "bad option" text).
    pub written: String,
}

/// popt's wording for an option it cannot use.
const UNKNOWN: &str = "unknown option";
const MISSING: &str = "missing argument";

pub(crate) struct Tokens<'a> {
    args: &'a [String],
    /// Next word to read.
    next: usize,
    /// Inside a bundle of short options: the word and the byte offset of the next letter.
    bundle: Option<(usize, usize)>,
    /// Seen `--`: everything after is a plain argument.
    rest_are_args: bool,
}

impl<'a> Tokens<'a> {
    pub fn new(args: &'a [String]) -> Self {
        Tokens {
            args,
            next: 0,
            bundle: None,
            rest_are_args: false,
        }
    }

    fn bad(&self, word: usize, reason: &'static str) -> CliError {
        CliError::BadOption {
            option: self.args[word].clone(),
            reason,
        }
    }

    fn token(&self, spec: &Spec, value: Option<String>) -> Token {
        Token::Opt(OptToken {
            opt: spec.opt,
            value,
            written: self.args[self.next - 1].clone(),
        })
    }

    /// The argument of `spec` from the following word, if it takes one.
    fn value_from_next_word(
        &mut self,
        spec: &Spec,
        word: usize,
    ) -> Result<Option<String>, CliError> {
        match (spec.arg, self.args.get(self.next)) {
            (ArgKind::None, _) => Ok(None),
            (ArgKind::Optional, None) => Ok(None),
            (ArgKind::Required, None) => Err(self.bad(word, MISSING)),
            (ArgKind::Optional, Some(next)) if next.starts_with('-') => Ok(None),
            (_, Some(next)) => {
                let value = next.clone();
                self.next += 1;
                Ok(Some(value))
            }
        }
    }

    fn long(&mut self, word: usize, body: &str) -> Result<Token, CliError> {
        let (name, attached) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let spec = find_long(name).ok_or_else(|| self.bad(word, UNKNOWN))?;
        let value = match (spec.arg, attached) {
            // popt ignores `=value` on an option without argument.
            (ArgKind::None, _) => None,
            (_, Some(value)) => Some(value.to_owned()),
            (_, None) => self.value_from_next_word(spec, word)?,
        };
        Ok(self.token(spec, value))
    }

    fn short(&mut self, word: usize, offset: usize) -> Result<Token, CliError> {
        let text = &self.args[word];
        let rest = &text[offset..];
        let Some(letter) = rest.chars().next() else {
            return Err(self.bad(word, UNKNOWN));
        };
        let spec = find_short(letter).ok_or_else(|| self.bad(word, UNKNOWN))?;
        let mut after = offset + letter.len_utf8();
        // popt skips one `=` after a letter (`-p=600`); what follows it, even nothing, is the
        // rest of the word.
        let equals = text[after..].starts_with('=');
        if equals {
            after += 1;
        }
        let remaining = &text[after..];
        let value = match spec.arg {
            ArgKind::None => {
                if equals || !remaining.is_empty() {
                    self.bundle = Some((word, after));
                }
                None
            }
            _ if equals || !remaining.is_empty() => Some(remaining.to_owned()),
            _ => self.value_from_next_word(spec, word)?,
        };
        Ok(self.token(spec, value))
    }
}

impl Iterator for Tokens<'_> {
    type Item = Result<Token, CliError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some((word, offset)) = self.bundle.take() {
            return Some(self.short(word, offset));
        }
        loop {
            let word = self.next;
            let text = self.args.get(word)?;
            self.next += 1;
            if self.rest_are_args || !text.starts_with('-') || text == "-" {
                return Some(Ok(Token::Arg(text.clone())));
            }
            if text == "--" {
                self.rest_are_args = true;
                continue;
            }
            return Some(match text.strip_prefix("--") {
                Some(body) => self.long(word, body),
                None => self.short(word, 1),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn tokens(line: &str) -> Vec<Result<Token, CliError>> {
        let args = words(line);
        Tokens::new(&args).collect()
    }

    fn opt(opt: Opt, value: Option<&str>, written: &str) -> Result<Token, CliError> {
        Ok(Token::Opt(OptToken {
            opt,
            value: value.map(str::to_owned),
            written: written.to_owned(),
        }))
    }

    #[test]
    fn bundled_short_options() {
        assert_eq!(
            tokens("-Ln"),
            vec![opt(Opt::List, None, "-Ln"), opt(Opt::Numeric, None, "-Ln")]
        );
        assert_eq!(
            tokens("-At 1.2.3.4:80"),
            vec![
                opt(Opt::AddService, None, "-At"),
                opt(Opt::TcpService, Some("1.2.3.4:80"), "1.2.3.4:80")
            ]
        );
        assert_eq!(
            tokens("-t1.2.3.4:80"),
            vec![opt(Opt::TcpService, Some("1.2.3.4:80"), "-t1.2.3.4:80")]
        );
    }

    #[test]
    fn long_options_with_value_next_or_attached() {
        assert_eq!(
            tokens("--weight 3 --weight=4 --numeric=ignored"),
            vec![
                opt(Opt::Weight, Some("3"), "3"),
                opt(Opt::Weight, Some("4"), "--weight=4"),
                opt(Opt::Numeric, None, "--numeric=ignored"),
            ]
        );
    }

    #[test]
    fn optional_argument_only_when_not_an_option() {
        assert_eq!(
            tokens("-p 600 -p -M 1.2.3.4 -p=60 -p"),
            vec![
                opt(Opt::Persistent, Some("600"), "600"),
                opt(Opt::Persistent, None, "-p"),
                opt(Opt::Netmask, Some("1.2.3.4"), "1.2.3.4"),
                opt(Opt::Persistent, Some("60"), "-p=60"),
                opt(Opt::Persistent, None, "-p"),
            ]
        );
    }

    #[test]
    fn required_argument_takes_any_next_word() {
        assert_eq!(
            tokens("-t -s"),
            vec![opt(Opt::TcpService, Some("-s"), "-s")]
        );
    }

    #[test]
    fn plain_arguments_and_double_dash() {
        assert_eq!(
            tokens("--set 900 - 120 -- -300"),
            vec![
                opt(Opt::Set, None, "--set"),
                Ok(Token::Arg("900".into())),
                Ok(Token::Arg("-".into())),
                Ok(Token::Arg("120".into())),
                Ok(Token::Arg("-300".into())),
            ]
        );
    }

    #[test]
    fn popt_errors() {
        let unknown = |o: &str| {
            Err(CliError::BadOption {
                option: o.into(),
                reason: UNKNOWN,
            })
        };
        assert_eq!(tokens("--bogus"), vec![unknown("--bogus")]);
        assert_eq!(tokens("--bogus=1"), vec![unknown("--bogus=1")]);
        assert_eq!(
            tokens("-Lq"),
            vec![opt(Opt::List, None, "-Lq"), unknown("-Lq")]
        );
        assert_eq!(
            tokens("-n="),
            vec![opt(Opt::Numeric, None, "-n="), unknown("-n=")]
        );
        assert_eq!(
            tokens("-w= 3"),
            vec![
                opt(Opt::Weight, Some(""), "-w="),
                Ok(Token::Arg("3".into()))
            ]
        );
        assert_eq!(
            tokens("-A -t"),
            vec![
                opt(Opt::AddService, None, "-A"),
                Err(CliError::BadOption {
                    option: "-t".into(),
                    reason: MISSING
                })
            ]
        );
        assert_eq!(
            tokens("--tcp-service")[0].clone().unwrap_err().to_string(),
            "--tcp-service: missing argument"
        );
    }
}
