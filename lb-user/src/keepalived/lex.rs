//! keepalived.conf's words, as keepalived's reader (`lib/parser.c`) sees them.
//!
//! - A statement is a line: a keyword and its values. `{` and `}` stand on their own wherever
//!   they are (`url { path / }` is three lines to keepalived: `url`, `{`, `path /`, `}`).
//! - `#` and `!` start a comment anywhere outside quotes; `\#` and `\!` are the characters.
//! - `"..."` and `'...'` quote, whitespace and braces included, and join the text around them
//!   into one word (`ab"c d"e` is `abc de`); `\` escapes as the man page describes (`\n`,
//!   `\t`, `\xHH`, `\nnn`, `\cC`, `\"`, `\\`, ...).
//! - A line that starts with `include FILE` (or `includer`, `includem`, `includew`,
//!   `includeb`, `includea`) is replaced by the files FILE names: a glob pattern, relative to
//!   the directory of the file that includes it. The rest of such a line is taken as it is,
//!   without quote processing, as keepalived does.
//!
//! - `@id ...` lines count only when `id` is the configuration id (keepalived's `-i`, by default
//!   the host name up to its first dot), `@^id ...` lines only when it is not.
//!
//! keepalived's other advanced features (`$NAME=value` definitions and substitution, `~SEQ` /
//! `~LST` blocks) are refused rather than misread.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    error::{ErrorKind, Location, Report},
    files::{Files, glob},
};

/// Includes nested deeper than this are refused (a chain of distinct files that long is a
/// mistake too).
const MAX_INCLUDE_DEPTH: usize = 32;
/// Files read through includes, in all: beyond it the rest are refused (files that include
/// each other's directories would otherwise be read a factorial number of times).
const MAX_INCLUDED_FILES: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Tok {
    Word(String),
    Open,
    Close,
    /// End of a line, the end of a statement.
    Eol,
}

#[derive(Clone, Debug)]
pub(super) struct Token {
    pub tok: Tok,
    pub location: Location,
}

/// The words of `text` (named `name`, its includes relative to `name`'s directory).
/// `config_id` decides which `@id` lines apply.
pub(super) fn lex(
    files: &dyn Files,
    text: &str,
    name: &str,
    config_id: &str,
    report: &mut Report,
) -> Vec<Token> {
    let mut lexer = Lexer {
        files,
        report,
        config_id,
        tokens: Vec::new(),
        depth: 0,
        chain: vec![name.to_owned()],
        included: 0,
    };
    lexer.text(text, name);
    lexer.tokens
}

struct Lexer<'a> {
    files: &'a dyn Files,
    report: &'a mut Report,
    config_id: &'a str,
    tokens: Vec<Token>,
    depth: usize,
    /// The files being read, outermost first: an include of one of them is a loop.
    chain: Vec<String>,
    /// Files read through includes so far.
    included: usize,
}

/// How strict an include is about missing files (keepalived's `include_check` levels,
/// simplified: see [`Lexer::include`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum IncludeKind {
    /// `include`: keepalived only logs missing or unreadable files.
    Plain,
    /// `includer`: no match is fine, an unreadable match is an error.
    Readable,
    /// `includem`, `includew`, `includeb`, `includea`: no match is an error too.
    Strict,
}

impl Lexer<'_> {
    fn text(&mut self, text: &str, name: &str) {
        let file: Arc<str> = Arc::from(name);
        let dir = Path::new(name)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for (i, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let location = Location {
                file: file.clone(),
                line: u32::try_from(i + 1).unwrap_or(u32::MAX),
            };
            self.report.line_read(&location);
            let mut trimmed = line.trim_start_matches([' ', '\t']);
            if let Some(conditional) = trimmed.strip_prefix('@') {
                match self.applies(conditional) {
                    Some(rest) => trimmed = rest,
                    None => continue,
                }
            }
            if let Some((kind, rest)) = include_directive(trimmed) {
                self.include(kind, rest, &location, &dir);
                continue;
            }
            let refused = match trimmed.chars().next() {
                Some('$') => Some("parameter definitions and substitution ('$NAME') are"),
                Some('~') => Some("sequence and list blocks (~SEQ, ~LST) are"),
                _ => None,
            };
            if let Some(what) = refused {
                self.report.error(
                    ErrorKind::Unsupported,
                    &location,
                    format!("{what} not supported by lb"),
                );
                continue;
            }
            self.line(trimmed, &location);
        }
    }

    /// keepalived's conditional lines: `@id rest` is `rest` when `id` is the config id,
    /// `@^id rest` when it is not; a line with nothing after the id is dropped.
    fn applies<'l>(&self, conditional: &'l str) -> Option<&'l str> {
        let (negated, conditional) = match conditional.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, conditional),
        };
        let (id, rest) = conditional.split_once([' ', '\t'])?;
        ((id == self.config_id) != negated).then(|| rest.trim_start_matches([' ', '\t']))
    }

    fn push(&mut self, tok: Tok, location: &Location) {
        self.tokens.push(Token {
            tok,
            location: location.clone(),
        });
    }

    fn line(&mut self, line: &str, location: &Location) {
        let mut word: Option<String> = None;
        let mut quote: Option<char> = None;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if let Some(q) = quote {
                if c == q {
                    quote = None;
                } else if c == '\\' {
                    match escape(&mut chars) {
                        Some(e) => word.get_or_insert_default().push(e),
                        None => self.trailing_backslash(location),
                    }
                } else {
                    word.get_or_insert_default().push(c);
                }
                continue;
            }
            match c {
                ' ' | '\t' | '\x0b' | '\x0c' => self.end_word(&mut word, location),
                '#' | '!' => break,
                '{' | '}' => {
                    self.end_word(&mut word, location);
                    let tok = if c == '{' { Tok::Open } else { Tok::Close };
                    self.push(tok, location);
                }
                '"' | '\'' => {
                    quote = Some(c);
                    word.get_or_insert_default();
                }
                '\\' => match escape(&mut chars) {
                    Some(e) => word.get_or_insert_default().push(e),
                    None => self.trailing_backslash(location),
                },
                _ => word.get_or_insert_default().push(c),
            }
        }
        if let Some(q) = quote {
            self.report.error(
                ErrorKind::Syntax,
                location,
                format!("missing closing {q} (quotes do not span lines)"),
            );
        }
        self.end_word(&mut word, location);
        self.push(Tok::Eol, location);
    }

    fn end_word(&mut self, word: &mut Option<String>, location: &Location) {
        if let Some(w) = word.take() {
            self.push(Tok::Word(w), location);
        }
    }

    fn trailing_backslash(&mut self, location: &Location) {
        self.report.error(
            ErrorKind::Syntax,
            location,
            "'\\' at the end of the line: lines cannot be continued",
        );
    }

    /// Splices in the files an include names. keepalived's `include_check` levels are
    /// simplified to: `include` notes what it cannot find or read, `includer` refuses what it
    /// cannot read, the other variants also refuse a pattern that matches nothing.
    fn include(&mut self, kind: IncludeKind, rest: &str, location: &Location, dir: &Path) {
        let pattern = strip_comment(rest).trim();
        if pattern.is_empty() {
            self.report
                .error(ErrorKind::Syntax, location, "include needs a file name");
            return;
        }
        if self.depth >= MAX_INCLUDE_DEPTH {
            self.report.error(
                ErrorKind::File,
                location,
                format!("include {pattern}: includes nested deeper than {MAX_INCLUDE_DEPTH}"),
            );
            return;
        }
        let full = if pattern.starts_with('/') || dir.as_os_str().is_empty() {
            pattern.to_owned()
        } else {
            dir.join(pattern).to_string_lossy().into_owned()
        };
        let matches: Vec<PathBuf> = glob(self.files, &full);
        if matches.is_empty() {
            let message = format!("include {pattern}: no file matches {full}");
            if kind == IncludeKind::Strict {
                self.report.error(ErrorKind::File, location, message);
            } else {
                self.report.note(location, message);
            }
            return;
        }
        for path in matches {
            let name = path.to_string_lossy().into_owned();
            if self.chain.contains(&name) {
                let from = self.chain.iter().position(|f| *f == name).unwrap_or(0);
                let cycle = &self.chain[from..];
                self.report.error(
                    ErrorKind::File,
                    location,
                    format!(
                        "include {pattern}: an include loop: {} -> {name}",
                        cycle.join(" -> ")
                    ),
                );
                continue;
            }
            if self.included >= MAX_INCLUDED_FILES {
                self.report.error(
                    ErrorKind::File,
                    location,
                    format!(
                        "include {pattern}: more than {MAX_INCLUDED_FILES} files read through \
                         includes (do files include each other's directories?)"
                    ),
                );
                return;
            }
            match self.files.read(&path) {
                Ok(text) => {
                    self.included += 1;
                    self.depth += 1;
                    self.chain.push(name.clone());
                    self.text(&text, &name);
                    self.chain.pop();
                    self.depth -= 1;
                }
                Err(e) => {
                    let message = format!("include {pattern}: cannot read {name}: {e}");
                    if kind == IncludeKind::Plain {
                        self.report.note(location, format!("{message}; skipped"));
                    } else {
                        self.report.error(ErrorKind::File, location, message);
                    }
                }
            }
        }
    }
}

/// `include FILE` and its variants at the start of a line (keepalived's `is_include`): the
/// kind and the rest of the line.
fn include_directive(line: &str) -> Option<(IncludeKind, &str)> {
    let rest = line.strip_prefix("include")?;
    let (kind, rest) = match rest.chars().next() {
        None => (IncludeKind::Plain, rest),
        Some(c) if c.is_whitespace() => (IncludeKind::Plain, rest),
        Some(c @ ('r' | 'm' | 'w' | 'b' | 'a')) => {
            let after = &rest[1..];
            if !after.is_empty() && !after.starts_with(char::is_whitespace) {
                return None;
            }
            let kind = if c == 'r' {
                IncludeKind::Readable
            } else {
                IncludeKind::Strict
            };
            (kind, after)
        }
        Some(_) => return None,
    };
    Some((kind, rest))
}

/// The line up to a `#` or `!` outside double quotes (keepalived's `decomment`).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' | '!' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The character a `\` escape stands for, reading what follows the `\`; `None` at the end of
/// the line.
fn escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    let c = chars.next()?;
    let digit = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, radix: u32| {
        let d = chars.peek()?.to_digit(radix)?;
        chars.next();
        Some(d)
    };
    Some(match c {
        'x' if chars.peek().is_some_and(char::is_ascii_hexdigit) => {
            let mut value = 0;
            for _ in 0..2 {
                match digit(chars, 16) {
                    Some(d) => value = value * 16 + d,
                    None => break,
                }
            }
            char::from_u32(value).unwrap_or('\u{fffd}')
        }
        'c' if chars.peek().is_some() => {
            let control = chars.next().map_or(0, |c| u32::from(c) & 0x1f);
            char::from_u32(control).unwrap_or('\u{fffd}')
        }
        '0'..='7' => {
            let mut value = c.to_digit(8).unwrap_or(0);
            for _ in 0..2 {
                match digit(chars, 8) {
                    Some(d) => value = value * 8 + d,
                    None => break,
                }
            }
            // keepalived keeps the low byte, as a C char would.
            char::from_u32(value & 0xff).unwrap_or('\u{fffd}')
        }
        'a' => '\x07',
        'b' => '\x08',
        'E' => '\x1b',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::{super::files::mem::MemFiles, *};

    fn words(text: &str) -> Vec<String> {
        let mut report = Report::default();
        let tokens = lex(&MemFiles::default(), text, "t.conf", "lb1", &mut report);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        tokens
            .into_iter()
            .map(|t| match t.tok {
                Tok::Word(w) => w,
                Tok::Open => "{".into(),
                Tok::Close => "}".into(),
                Tok::Eol => ";".into(),
            })
            .collect()
    }

    #[test]
    fn braces_stand_alone_and_comments_end_lines() {
        assert_eq!(
            words("url{path /x}# comment\n  ! all comment\nweight 2!3"),
            ["url", "{", "path", "/x", "}", ";", ";", "weight", "2", ";"]
        );
    }

    #[test]
    fn quotes_join_and_protect() {
        assert_eq!(
            words(r#"abcd" efg h jkl "mnop 'a # b' "{}" "#),
            ["abcd efg h jkl mnop", "a # b", "{}", ";"]
        );
        assert_eq!(words(r#"x "" y"#), ["x", "", "y", ";"]);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            words(r#"a\#b "\x41\102\t\"\\" \cA"#),
            ["a#b", "AB\t\"\\", "\u{1}", ";"]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let mut report = Report::default();
        lex(
            &MemFiles::default(),
            "ok\n\"open\n~SEQ(i,1,3) x\n$A=1\ntrail \\",
            "f",
            "lb1",
            &mut report,
        );
        let lines: Vec<(u32, ErrorKind)> = report
            .errors
            .iter()
            .map(|e| (e.location.line, e.kind))
            .collect();
        assert_eq!(
            lines,
            [
                (2, ErrorKind::Syntax),
                (3, ErrorKind::Unsupported),
                (4, ErrorKind::Unsupported),
                (5, ErrorKind::Syntax),
            ]
        );
    }

    #[test]
    fn conditional_lines() {
        assert_eq!(
            words("@lb1 a 1\n@lb2 b 2\n@^lb2 c 3\n@^lb1 d 4\n  @lb1   e\n@lb1"),
            ["a", "1", ";", "c", "3", ";", "e", ";"]
        );
    }

    #[test]
    fn include_directive_forms() {
        assert!(include_directive("include a.conf").is_some());
        assert!(include_directive("includea a.conf").is_some());
        assert!(include_directive("include").is_some());
        assert!(include_directive("included x").is_none());
        assert!(include_directive("includer_x y").is_none());
    }
}
