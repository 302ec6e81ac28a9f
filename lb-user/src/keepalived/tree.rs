//! Statements and their `{ }` blocks, from the words. The opening `{` may be on the
//! keyword's line or on a line of its own after it, as keepalived allows.

use super::{
    error::{ErrorKind, Location, Report},
    lex::{Tok, Token},
};

/// A keyword line, its values and its block if it has one.
#[derive(Clone, Debug)]
pub(super) struct Stmt {
    /// The keyword then its values; never empty.
    pub words: Vec<String>,
    pub block: Option<Vec<Stmt>>,
    /// Where the keyword is.
    pub location: Location,
}

impl Stmt {
    pub fn keyword(&self) -> &str {
        &self.words[0]
    }

    pub fn args(&self) -> &[String] {
        &self.words[1..]
    }
}

/// The statements of a token stream; brace errors go to `report`.
pub(super) fn build(tokens: Vec<Token>, report: &mut Report) -> Vec<Stmt> {
    let mut tokens = tokens.into_iter().peekable();
    block(&mut tokens, None, report)
}

type Tokens = std::iter::Peekable<std::vec::IntoIter<Token>>;

/// Statements up to the `}` closing the block opened at `open` (`None`: the top level, up to
/// the end).
fn block(tokens: &mut Tokens, open: Option<&Location>, report: &mut Report) -> Vec<Stmt> {
    let mut stmts = Vec::new();
    while let Some(token) = tokens.next() {
        match token.tok {
            Tok::Eol => {}
            Tok::Close => match open {
                Some(_) => return stmts,
                None => report.error(
                    ErrorKind::Syntax,
                    &token.location,
                    "'}' without a matching '{'",
                ),
            },
            Tok::Open => {
                report.error(
                    ErrorKind::Syntax,
                    &token.location,
                    "'{' without a keyword before it",
                );
                // Read the stray block so that its '}' does not close ours.
                block(tokens, Some(&token.location), report);
            }
            Tok::Word(first) => {
                let mut words = vec![first];
                while let Some(Token {
                    tok: Tok::Word(_), ..
                }) = tokens.peek()
                {
                    if let Some(Token {
                        tok: Tok::Word(w), ..
                    }) = tokens.next()
                    {
                        words.push(w);
                    }
                }
                // The block may open on a following line.
                while tokens.peek().is_some_and(|t| t.tok == Tok::Eol) {
                    tokens.next();
                }
                let block = match tokens.peek() {
                    Some(t) if t.tok == Tok::Open => {
                        let open = t.location.clone();
                        tokens.next();
                        Some(block(tokens, Some(&open), report))
                    }
                    _ => None,
                };
                stmts.push(Stmt {
                    words,
                    block,
                    location: token.location,
                });
            }
        }
    }
    if let Some(open) = open {
        report.error(
            ErrorKind::Syntax,
            open,
            "'{' is never closed: a '}' is missing",
        );
    }
    stmts
}

#[cfg(test)]
mod tests {
    use super::{
        super::{files::mem::MemFiles, lex::lex},
        *,
    };

    fn parse(text: &str) -> (Vec<Stmt>, Report) {
        let mut report = Report::default();
        let tokens = lex(&MemFiles::default(), text, "t", "lb1", &mut report);
        let stmts = build(tokens, &mut report);
        (stmts, report)
    }

    #[test]
    fn blocks_open_on_the_same_or_a_later_line() {
        let (stmts, report) = parse("a 1 {\n b 2\n}\nc\n{\n d { e } \n}\nf");
        assert!(report.errors.is_empty());
        let shape: Vec<(Vec<String>, usize, u32)> = stmts
            .iter()
            .map(|s| {
                (
                    s.words.clone(),
                    s.block.as_ref().map_or(0, Vec::len),
                    s.location.line,
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                (vec!["a".to_owned(), "1".to_owned()], 1, 1),
                (vec!["c".to_owned()], 1, 4),
                (vec!["f".to_owned()], 0, 8),
            ]
        );
        let d = &stmts[1].block.as_ref().unwrap()[0];
        assert_eq!(d.words, ["d"]);
        assert_eq!(d.block.as_ref().unwrap()[0].words, ["e"]);
    }

    #[test]
    fn brace_errors() {
        let (_, report) = parse("}\na {\n b\n");
        let errors: Vec<(u32, &str)> = report
            .errors
            .iter()
            .map(|e| (e.location.line, e.message.as_str()))
            .collect();
        assert_eq!(
            errors,
            [
                (1, "'}' without a matching '{'"),
                (2, "'{' is never closed: a '}' is missing")
            ]
        );
        let (_, report) = parse("a {}\n{ b }\n");
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.errors[0].location.line, 2);
    }
}
