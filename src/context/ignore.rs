//! `.dockerignore`: Docker's patternmatcher semantics. Patterns are cleaned and made relative;
//! a path is excluded when the last pattern matching it or one of its parents is not a `!`
//! exception.

use super::pattern::glob_match;

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    exception: bool,
}

#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

/// Cleans a path as Go's filepath.Clean would, relative to the context root.
pub fn clean_relative(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl IgnoreRules {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> IgnoreRules {
        let rules = text
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    return None;
                }
                let (exception, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let pattern = clean_relative(pattern);
                (!pattern.is_empty()).then_some(Rule { pattern, exception })
            })
            .collect();
        IgnoreRules { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Is the context-relative `path` excluded?
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean_relative(path);
        if path.is_empty() {
            return false;
        }
        let mut excluded = false;
        for rule in &self.rules {
            if matches_or_parent(&rule.pattern, &path) {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    /// Could some file below the excluded dir `dir` be re-included by an exception? If not,
    /// the walk can skip the whole dir.
    pub fn may_reinclude_below(&self, dir: &str) -> bool {
        let dir = clean_relative(dir);
        self.rules.iter().any(|r| {
            r.exception
                && (r.pattern.starts_with(&format!("{dir}/"))
                    || r.pattern.contains("**")
                    || r.pattern.starts_with('*'))
        })
    }
}

fn matches_or_parent(pattern: &str, path: &str) -> bool {
    if glob_match(pattern, path) {
        return true;
    }
    let mut end = path.len();
    while let Some(slash) = path[..end].rfind('/') {
        if glob_match(pattern, &path[..slash]) {
            return true;
        }
        end = slash;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_rules() {
        let rules = IgnoreRules::parse(
            "# comment\n*.log\n!keep.log\nbuild/\n**/secret*\n/abs/path\ndocs\n!docs/README.md\n",
        );
        let table = [
            ("a.log", true),
            ("keep.log", false),
            ("sub/a.log", false),
            ("build/out.bin", true),
            ("build", true),
            ("x/y/secret.txt", true),
            ("secret", true),
            ("abs/path/f", true),
            ("docs/guide.md", true),
            ("docs/README.md", false),
            ("src/main.rs", false),
            ("Dockerfile", false),
        ];
        for (path, want) in table {
            assert_eq!(rules.is_excluded(path), want, "{path}");
        }
        assert!(rules.may_reinclude_below("docs"));
        assert!(!rules.may_reinclude_below("build"));
    }

    #[test]
    fn clean_relative_behaves_like_filepath_clean() {
        assert_eq!(clean_relative("/a/./b//c/"), "a/b/c");
        assert_eq!(clean_relative("a/../b"), "b");
        assert_eq!(clean_relative("../../x"), "x");
        assert_eq!(clean_relative("."), "");
    }
}
