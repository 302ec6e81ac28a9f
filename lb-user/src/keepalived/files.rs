//! Reading configuration files and expanding `include` patterns the way keepalived's `glob()`
//! call does: csh-style braces (`{a,b}`), then `*`, `?` and `[...]` per path component, names
//! starting with `.` only matched by a pattern starting with `.`, results sorted.
//!
//! File access goes through [`Files`] so that tests can use an in-memory tree.

use std::{
    io,
    path::{Path, PathBuf},
};

/// What the parser needs from a file system.
pub(super) trait Files {
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Names of the entries of a directory (no `.` / `..`).
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn exists(&self, path: &Path) -> bool;
}

/// The real file system.
pub(super) struct RealFiles;

impl Files for RealFiles {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

/// The files an include pattern names, sorted, without duplicates. A pattern without
/// wildcards names its file only if it exists.
pub(super) fn glob(files: &dyn Files, pattern: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for pattern in expand_braces(pattern) {
        glob_one(files, &pattern, &mut found);
    }
    found.sort();
    found.dedup();
    found
}

fn glob_one(files: &dyn Files, pattern: &str, found: &mut Vec<PathBuf>) {
    let mut candidates = vec![if pattern.starts_with('/') {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    }];
    for component in pattern.split('/').filter(|c| !c.is_empty()) {
        if !has_wildcard(component) {
            for candidate in &mut candidates {
                candidate.push(unescape(component));
            }
            continue;
        }
        let mut next = Vec::new();
        for dir in &candidates {
            let Ok(mut names) = files.list(dir) else {
                continue;
            };
            names.sort();
            for name in names {
                let hidden_ok = !name.starts_with('.') || component.starts_with('.');
                if hidden_ok && wildcard_match(component.as_bytes(), name.as_bytes()) {
                    next.push(dir.join(name));
                }
            }
        }
        candidates = next;
    }
    found.extend(candidates.into_iter().filter(|p| files.exists(p)));
}

fn has_wildcard(component: &str) -> bool {
    component.contains(['*', '?', '['])
}

fn unescape(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    let mut chars = component.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    out
}

/// fnmatch(3) without flags beyond what glob uses: `*`, `?`, `[...]` (with `!` or `^`
/// negation and `a-z` ranges), `\` quoting the next character.
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.first() {
        None => name.is_empty(),
        Some(b'*') => (0..=name.len()).any(|skip| wildcard_match(&pattern[1..], &name[skip..])),
        Some(b'?') => !name.is_empty() && wildcard_match(&pattern[1..], &name[1..]),
        Some(b'[') => match (bracket(&pattern[1..], name.first().copied()), name.first()) {
            (Some((true, rest)), Some(_)) => wildcard_match(rest, &name[1..]),
            (Some(_), _) => false,
            // No closing `]`: the `[` is an ordinary character.
            (None, Some(b'[')) => wildcard_match(&pattern[1..], &name[1..]),
            (None, _) => false,
        },
        Some(b'\\') if pattern.len() > 1 => {
            name.first() == Some(&pattern[1]) && wildcard_match(&pattern[2..], &name[1..])
        }
        Some(&c) => name.first() == Some(&c) && wildcard_match(&pattern[1..], &name[1..]),
    }
}

/// Matches `c` against the bracket expression after `[`: whether it matched and the pattern
/// after the closing `]`, or `None` if there is no closing `]`.
fn bracket(pattern: &[u8], c: Option<u8>) -> Option<(bool, &[u8])> {
    let (negate, mut i) = match pattern.first() {
        Some(b'!' | b'^') => (true, 1),
        _ => (false, 0),
    };
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() {
        let lo = pattern[i];
        if lo == b']' && !first {
            return Some((matched != negate, &pattern[i + 1..]));
        }
        first = false;
        if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            let hi = pattern[i + 2];
            matched |= c.is_some_and(|c| lo <= c && c <= hi);
            i += 3;
        } else {
            matched |= c == Some(lo);
            i += 1;
        }
    }
    None
}

/// csh brace expansion: `a{b,c{d,e}}f` is `abf acdf acef`. Unbalanced braces stay as they are.
fn expand_braces(pattern: &str) -> Vec<String> {
    let bytes = pattern.as_bytes();
    let Some(open) = bytes.iter().position(|&b| b == b'{') else {
        return vec![pattern.to_owned()];
    };
    let mut depth = 0;
    let mut commas = Vec::new();
    let mut close = None;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            b',' if depth == 1 => commas.push(i),
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![pattern.to_owned()];
    };
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(commas);
    bounds.push(close);
    let mut out = Vec::new();
    for pair in bounds.windows(2) {
        let alternative = &pattern[pair[0] + 1..pair[1]];
        out.extend(expand_braces(&format!("{head}{alternative}{tail}")));
    }
    out
}

#[cfg(test)]
pub(super) mod mem {
    //! An in-memory file tree for tests.

    use std::{
        collections::BTreeMap,
        io,
        path::{Path, PathBuf},
    };

    use super::Files;

    #[derive(Default)]
    pub struct MemFiles(pub BTreeMap<PathBuf, String>);

    impl MemFiles {
        pub fn with(mut self, path: &str, text: &str) -> Self {
            self.0.insert(PathBuf::from(path), text.to_owned());
            self
        }
    }

    impl Files for MemFiles {
        fn read(&self, path: &Path) -> io::Result<String> {
            self.0
                .get(path)
                .cloned()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }

        fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
            let mut names: Vec<String> = self
                .0
                .keys()
                .filter_map(|p| p.strip_prefix(dir).ok())
                .filter_map(|rest| rest.components().next())
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            names.dedup();
            Ok(names)
        }

        fn exists(&self, path: &Path) -> bool {
            self.0.keys().any(|p| p.starts_with(path))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{mem::MemFiles, *};

    #[test]
    fn wildcards() {
        assert!(wildcard_match(b"*.conf", b"a.conf"));
        assert!(wildcard_match(b"*.conf", b".conf"));
        assert!(!wildcard_match(b"*.conf", b"a.conf~"));
        assert!(wildcard_match(b"vs?.conf", b"vs1.conf"));
        assert!(wildcard_match(b"vs[0-9].conf", b"vs7.conf"));
        assert!(!wildcard_match(b"vs[!0-9].conf", b"vs7.conf"));
        assert!(wildcard_match(b"vs[]x].conf", b"vs].conf"));
        assert!(wildcard_match(b"a\\*", b"a*"));
        assert!(!wildcard_match(b"a\\*", b"ab"));
    }

    #[test]
    fn braces() {
        assert_eq!(expand_braces("a{b,c{d,e}}f"), ["abf", "acdf", "acef"]);
        assert_eq!(expand_braces("{x,}y"), ["xy", "y"]);
        assert_eq!(expand_braces("a{b"), ["a{b"]);
    }

    #[test]
    fn globbing_sorts_and_skips_hidden_files() {
        let files = MemFiles::default()
            .with("/etc/k/conf.d/b.conf", "")
            .with("/etc/k/conf.d/a.conf", "")
            .with("/etc/k/conf.d/.hidden.conf", "")
            .with("/etc/k/conf.d/notes.txt", "")
            .with("/etc/k/other/c.conf", "");
        assert_eq!(
            glob(&files, "/etc/k/conf.d/*.conf"),
            [
                PathBuf::from("/etc/k/conf.d/a.conf"),
                PathBuf::from("/etc/k/conf.d/b.conf")
            ]
        );
        assert_eq!(
            glob(&files, "/etc/k/{other,conf.d}/[ac].conf"),
            [
                PathBuf::from("/etc/k/conf.d/a.conf"),
                PathBuf::from("/etc/k/other/c.conf")
            ]
        );
        assert_eq!(
            glob(&files, "/etc/k/*/c.conf"),
            [PathBuf::from("/etc/k/other/c.conf")]
        );
        assert!(glob(&files, "/etc/k/missing.conf").is_empty());
    }
}
