//! Config errors with their position, and the collector that gathers them.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in the config, where it is and what is wrong.
///
/// `line` and `column` count from 1; both are 0 when the problem is not in a
/// file's text (an unreadable file, an empty config folder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub cause: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.cause)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.cause
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config, in file and line order. Never empty when
/// returned as an error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// One error per line.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Index of a file in [`Sources`].
pub(crate) type FileId = usize;

/// A position in one config file: which file, which bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub file: FileId,
    pub span: Range<usize>,
}

/// A config file's path and text, kept to turn byte spans into lines.
pub(crate) struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// Collects errors against the loaded files.
pub(crate) struct Diag {
    pub sources: Vec<Source>,
    errors: Vec<ConfigError>,
}

impl Diag {
    pub fn new() -> Diag {
        Diag {
            sources: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn add_source(&mut self, path: PathBuf, text: String) -> FileId {
        self.sources.push(Source { path, text });
        self.sources.len() - 1
    }

    pub fn path(&self, file: FileId) -> &Path {
        &self.sources[file].path
    }

    pub fn text(&self, file: FileId) -> &str {
        &self.sources[file].text
    }

    /// `file:line:col` of a location, for causes that point at a second place.
    pub fn describe(&self, loc: &Loc) -> String {
        let (line, column) = line_col(self.text(loc.file), loc.span.start);
        format!("{}:{line}:{column}", self.path(loc.file).display())
    }

    /// An error at a position in a loaded file.
    pub fn at(&mut self, loc: &Loc, cause: impl Into<String>) {
        let (line, column) = line_col(self.text(loc.file), loc.span.start);
        self.errors.push(ConfigError {
            file: self.path(loc.file).to_path_buf(),
            line,
            column,
            cause: cause.into(),
        });
    }

    /// An error about a path as a whole (unreadable file, empty folder).
    pub fn whole(&mut self, path: &Path, cause: impl Into<String>) {
        self.errors.push(ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            cause: cause.into(),
        });
    }

    /// A TOML syntax or shape error as reported by the `toml` crate.
    pub fn toml(&mut self, file: FileId, err: &toml::de::Error) {
        let span = err.span().unwrap_or(0..0);
        self.at(&Loc { file, span }, one_line(err.message()));
    }

    /// A TOML syntax error.
    pub fn syntax(&mut self, file: FileId, err: &toml_edit::TomlError) {
        let span = err.span().unwrap_or(0..0);
        self.at(&Loc { file, span }, one_line(err.message()));
    }

    /// A section that does not fit its shape (unknown key, wrong type,
    /// missing field); `fallback` locates errors serde gives no span, such
    /// as a missing field.
    pub fn shape(&mut self, file: FileId, fallback: Range<usize>, err: &toml_edit::de::Error) {
        let span = err.span().unwrap_or(fallback);
        self.at(&Loc { file, span }, one_line(err.message()));
    }

    pub fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// The collected errors, sorted by file and position.
    pub fn finish(mut self) -> ConfigErrors {
        self.errors
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        ConfigErrors(self.errors)
    }
}

/// Messages may carry a second line ("expected `.`, `]`"); errors are one line each.
fn one_line(message: &str) -> String {
    message.trim().replace('\n', ": ")
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 1), (1, 2));
        assert_eq!(line_col(text, 3), (2, 1));
        // 'é' is two bytes: the column after it counts characters.
        assert_eq!(line_col(text, 7), (2, 4));
        assert_eq!(line_col(text, 8), (3, 1));
        assert_eq!(line_col(text, 999), (3, 2));
    }

    #[test]
    fn display_is_file_line_col_cause() {
        let e = ConfigError {
            file: PathBuf::from("config/a.toml"),
            line: 3,
            column: 7,
            cause: "bad".into(),
        };
        assert_eq!(e.to_string(), "config/a.toml:3:7: bad");
        let whole = ConfigError {
            line: 0,
            column: 0,
            ..e
        };
        assert_eq!(whole.to_string(), "config/a.toml: bad");
    }
}
