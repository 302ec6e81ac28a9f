//! The `regex` of an `HTTP_GET` url (keepalived's check_http.c, where it is PCRE2): the body
//! (what follows the response's head, as received) must match, or with `regex_no_match` must
//! not, with the match starting at `regex_min_offset` or later and at `regex_max_offset` or
//! earlier.
//!
//! The pattern is compiled by the `regex` crate, whose syntax is PCRE2's for what both have.
//! What differs, and how lb deals with it:
//! - no backreferences, lookaround, atomic groups, possessive quantifiers, recursion,
//!   conditionals, `\K`, `\G`, `\Z`, `\C`, callouts or `(*VERB)`s: such a pattern does not
//!   compile, and the file is refused at the regex's line with the crate's message;
//! - what the crate reads otherwise than PCRE2 is refused too: a quantifier right after
//!   another (`a++`, possessive in PCRE2, a repeated repetition for the crate), a class inside
//!   a class and class set operations (`[a[bc]]`, `[a-z&&[^x]]`, literal in PCRE2);
//! - PCRE2's `$` (without `multiline`) also matches before a newline that ends the body: lb
//!   tries the body without that newline too, so `OK$` matches `...OK\n` as in keepalived
//!   (with `dollar_endonly`, only at the very end);
//! - without `utf`/`ucp` the match is on bytes with ASCII classes, as PCRE2's default; `utf`
//!   or `ucp` turns Unicode on (both, in effect);
//! - `regex_options` that only bound or speed up PCRE2 (`auto_callout`, `no_auto_capture`,
//!   `no_auto_possess`, `no_dotstar_anchor`, `no_start_optimize`, `never_backslash_c`,
//!   `never_ucp`, `never_utf`, `use_offset_limit`, `dupnames`, `match_unset_backref`,
//!   `alt_verbnames`) change nothing a pattern lb accepts matches; `allow_empty_class`,
//!   `alt_bsux` and `alt_circumflex` change the meaning of patterns and are refused.

use std::{
    fmt,
    hash::{Hash, Hasher},
    sync::Arc,
};

use regex::bytes::{Regex, RegexBuilder};
use regex_syntax::ast::{self, Ast, ClassSetBinaryOp, ClassSetItem, Visitor};

/// Refuses what the regex crate reads otherwise than PCRE2 (see the module's notes).
struct PcreMeaning;

impl Visitor for PcreMeaning {
    type Output = ();
    type Err = &'static str;

    fn finish(self) -> Result<(), Self::Err> {
        Ok(())
    }

    fn visit_pre(&mut self, ast: &Ast) -> Result<(), Self::Err> {
        match ast {
            Ast::Repetition(r) if matches!(*r.ast, Ast::Repetition(_)) => Err(
                "a quantifier right after another (a++, a*+: possessive in PCRE2) is a repeated \
                 repetition for lb's regex engine: write an atomic-free pattern, e.g. a+",
            ),
            _ => Ok(()),
        }
    }

    fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), Self::Err> {
        match item {
            ClassSetItem::Bracketed(_) => Err(
                "a '[' inside a character class is a nested class for lb's regex engine, a \
                 literal for PCRE2: escape it (\\[)",
            ),
            _ => Ok(()),
        }
    }

    fn visit_class_set_binary_op_pre(&mut self, _: &ClassSetBinaryOp) -> Result<(), Self::Err> {
        Err(
            "&&, -- and ~~ in a character class are set operations for lb's regex engine, \
             literals for PCRE2: escape them",
        )
    }
}

/// `regex_options` words that change what the pattern matches, and that lb implements.
const IMPLEMENTED: &[&str] = &[
    "caseless",
    "dotall",
    "extended",
    "multiline",
    "ungreedy",
    "utf",
    "ucp",
    "dollar_endonly",
    "firstline",
];

/// `regex_options` words without effect on what a pattern lb accepts matches.
const NO_EFFECT: &[&str] = &[
    "auto_callout",
    "no_auto_capture",
    "no_auto_possess",
    "no_dotstar_anchor",
    "no_start_optimize",
    "never_backslash_c",
    "never_ucp",
    "never_utf",
    "use_offset_limit",
    "dupnames",
    "match_unset_backref",
    "alt_verbnames",
];

/// `regex_options` words whose meaning lb does not have.
const REFUSED: &[&str] = &["allow_empty_class", "alt_bsux", "alt_circumflex"];

/// Whether `word` is a `regex_options` word lb takes; `Err` says why not.
pub fn check_option(word: &str) -> Result<(), String> {
    if IMPLEMENTED.contains(&word) || NO_EFFECT.contains(&word) {
        Ok(())
    } else if REFUSED.contains(&word) {
        Err(format!(
            "regex option '{word}' changes what patterns mean in a way lb's regex engine (the \
             regex crate) does not have: write the pattern without it"
        ))
    } else {
        Err(format!(
            "unknown regex option '{word}': expected one of {}, {}",
            IMPLEMENTED.join(", "),
            NO_EFFECT.join(", ")
        ))
    }
}

/// An url's `regex` with its settings, compiled.
#[derive(Clone)]
pub struct BodyRegex {
    pattern: String,
    /// The `regex_options` words, sorted, without repeats.
    options: Vec<String>,
    /// `regex_no_match`: the check passes when the body does not match.
    pub no_match: bool,
    /// `regex_min_offset`: the earliest offset in the body a match may start at.
    pub min_offset: usize,
    /// `regex_max_offset`: the latest offset a match may start at.
    pub max_offset: Option<usize>,
    regex: Arc<Regex>,
}

impl BodyRegex {
    /// `Err` when the pattern does not compile or an option is not taken ([`check_option`]).
    pub fn new(
        pattern: &str,
        options: &[String],
        no_match: bool,
        min_offset: usize,
        max_offset: Option<usize>,
    ) -> Result<Self, String> {
        let mut options = options.to_vec();
        options.sort();
        options.dedup();
        for word in &options {
            check_option(word)?;
        }
        let has = |w: &str| options.iter().any(|o| o == w);
        let syntax = ast::parse::ParserBuilder::new()
            .ignore_whitespace(has("extended"))
            .build()
            .parse(pattern)
            .map_err(|e| format!("invalid regex {pattern:?}: {e}"))?;
        ast::visit(&syntax, PcreMeaning).map_err(|e| format!("invalid regex {pattern:?}: {e}"))?;
        let regex = RegexBuilder::new(pattern)
            .case_insensitive(has("caseless"))
            .dot_matches_new_line(has("dotall"))
            .ignore_whitespace(has("extended"))
            .multi_line(has("multiline"))
            .swap_greed(has("ungreedy"))
            .unicode(has("utf") || has("ucp"))
            .build()
            .map_err(|e| format!("invalid regex {pattern:?}: {e}"))?;
        Ok(BodyRegex {
            pattern: pattern.to_owned(),
            options,
            no_match,
            min_offset,
            max_offset,
            regex: Arc::new(regex),
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    fn has(&self, word: &str) -> bool {
        self.options.iter().any(|o| o == word)
    }

    /// Whether the body matches between the offsets.
    pub fn matches(&self, body: &[u8]) -> bool {
        let found = |subject: &[u8]| -> bool {
            let start = self.min_offset;
            if start > subject.len() {
                return false;
            }
            let Some(m) = self.regex.find_at(subject, start) else {
                return false;
            };
            if self.max_offset.is_some_and(|max| m.start() > max) {
                return false;
            }
            // firstline: the match starts at or before the first newline from the start.
            if self.has("firstline")
                && let Some(newline) = subject[start..].iter().position(|&b| b == b'\n')
                && m.start() > start + newline
            {
                return false;
            }
            true
        };
        if found(body) {
            return true;
        }
        let dollar_before_last_newline = !self.has("dollar_endonly") && !self.has("multiline");
        match body.strip_suffix(b"\n") {
            Some(stripped) if dollar_before_last_newline => found(stripped),
            _ => false,
        }
    }

    /// Whether the check passes with this body: it matches, or with `regex_no_match` it does
    /// not.
    pub fn passes(&self, body: &[u8]) -> bool {
        self.matches(body) != self.no_match
    }

    fn key(&self) -> (&str, &[String], bool, usize, Option<usize>) {
        (
            &self.pattern,
            &self.options,
            self.no_match,
            self.min_offset,
            self.max_offset,
        )
    }
}

impl PartialEq for BodyRegex {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for BodyRegex {}

impl Hash for BodyRegex {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl fmt::Debug for BodyRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyRegex")
            .field("pattern", &self.pattern)
            .field("options", &self.options)
            .field("no_match", &self.no_match)
            .field("min_offset", &self.min_offset)
            .field("max_offset", &self.max_offset)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(pattern: &str, options: &[&str]) -> BodyRegex {
        let options: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        BodyRegex::new(pattern, &options, false, 0, None).unwrap()
    }

    #[test]
    fn options_change_the_match_as_pcre2_s_do() {
        assert!(!re("status: ok", &[]).matches(b"Status: OK"));
        assert!(re("status: ok", &["caseless"]).matches(b"Status: OK"));
        assert!(!re("a.b", &[]).matches(b"a\nb"));
        assert!(re("a.b", &["dotall"]).matches(b"a\nb"));
        assert!(re("a b # comment", &["extended"]).matches(b"ab"));
        assert!(!re("^ok$", &[]).matches(b"x\nok\ny"));
        assert!(re("^ok$", &["multiline"]).matches(b"x\nok\ny"));
        // ungreedy: a+ takes one; with $ the match still needs them all.
        assert!(re("^a+b", &["ungreedy"]).matches(b"aaab"));
        assert!(BodyRegex::new("a+", &["ungreedy".into()], false, 0, Some(0)).is_ok());
        // Bytes and ASCII classes by default, Unicode with utf.
        assert!(!re(r"^\w$", &[]).matches("é".as_bytes()));
        assert!(re(r"^\w$", &["utf"]).matches("é".as_bytes()));
        assert!(re(r"^\w$", &["ucp"]).matches("é".as_bytes()));
    }

    #[test]
    fn dollar_matches_before_a_final_newline_unless_dollar_endonly() {
        assert!(re("OK$", &[]).matches(b"all OK\n"));
        assert!(re("OK$", &[]).matches(b"all OK"));
        assert!(!re("OK$", &[]).matches(b"all OK\n\n"));
        assert!(!re("OK$", &["dollar_endonly"]).matches(b"all OK\n"));
        assert!(re("OK$", &["dollar_endonly"]).matches(b"all OK"));
        assert!(re("OK\n$", &[]).matches(b"all OK\n"));
    }

    #[test]
    fn offsets_bound_where_the_match_starts() {
        let body = b"0123 ok 89 ok";
        let at = |min, max| BodyRegex::new("ok", &[], false, min, max).unwrap();
        assert!(at(0, None).matches(body));
        assert!(at(5, Some(5)).matches(body), "from 5 up to 5");
        assert!(!at(0, Some(4)).matches(body), "the first starts at 5");
        assert!(at(6, None).matches(body), "the second, at 11");
        assert!(!at(6, Some(10)).matches(body));
        assert!(!at(12, None).matches(body));
        assert!(!at(100, None).matches(body));
        // Anchors and word boundaries see what comes before the minimum offset.
        assert!(
            !BodyRegex::new("^ok", &[], false, 5, None)
                .unwrap()
                .matches(body)
        );
        assert!(
            BodyRegex::new(r"\Bk", &[], false, 2, None)
                .unwrap()
                .matches(b"okk")
        );
        // firstline: the match starts on the first line (from the start offset).
        assert!(!re("ok", &["firstline"]).matches(b"no\nok"));
        assert!(re("ok", &["firstline"]).matches(b"ok\nno"));
        assert!(re("\nok", &["firstline"]).matches(b"no\nok"));
    }

    #[test]
    fn regex_no_match_inverts_the_verdict() {
        let ok = BodyRegex::new("error", &[], true, 0, None).unwrap();
        assert!(ok.passes(b"all fine"));
        assert!(!ok.passes(b"an error"));
        assert!(re("fine", &[]).passes(b"all fine"));
    }

    #[test]
    fn what_lb_cannot_match_is_refused() {
        for pattern in [
            r"(a)\1", "a(?=b)", "(?<=a)b", "a++", "a*+", "a{2}+", r"\Z", "[a[b]", "[a&&b]",
        ] {
            let e = BodyRegex::new(pattern, &[], false, 0, None).unwrap_err();
            assert!(e.starts_with("invalid regex"), "{pattern}: {e}");
        }
        assert!(
            check_option("alt_bsux")
                .unwrap_err()
                .contains("does not have")
        );
        assert!(
            check_option("casless")
                .unwrap_err()
                .contains("unknown regex option")
        );
        assert!(check_option("no_start_optimize").is_ok());
    }

    #[test]
    fn equal_by_their_settings() {
        let a = re("ok", &["caseless", "dotall"]);
        let b = re("ok", &["dotall", "caseless", "dotall"]);
        assert_eq!(a, b);
        assert_ne!(a, re("ok", &["caseless"]));
    }
}
