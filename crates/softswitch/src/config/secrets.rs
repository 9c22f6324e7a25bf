//! `secrets.toml`: generated passwords for extensions the config gives none.
//!
//! Shipping a default password is how PBXs get hijacked, so the default
//! config has extensions without passwords and the first `run` generates
//! strong ones here, readable by the owner only. A password once stored is
//! never replaced; the operator may edit the file (entries are checked
//! against the same policy).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::error::{Diag, FileId, Loc};
use super::extension::Built;
use super::password;

/// The secrets file's name inside the config folder. It is not merged with
/// the config files.
pub const SECRETS_FILE: &str = "secrets.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecrets {
    passwords: Option<BTreeMap<String, Spanned<String>>>,
}

/// What `secrets.toml` holds, if it exists and parsed.
pub(crate) struct Secrets {
    path: PathBuf,
    file: Option<FileId>,
    /// Whether the file has a `passwords` table, however written.
    has_table: bool,
    passwords: BTreeMap<String, Spanned<String>>,
}

pub(crate) fn read(dir: &Path, diag: &mut Diag) -> Secrets {
    let path = dir.join(SECRETS_FILE);
    let mut secrets = Secrets {
        path: path.clone(),
        file: None,
        has_table: false,
        passwords: BTreeMap::new(),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return secrets,
        Err(e) => {
            diag.whole(&path, format!("cannot read: {e}"));
            return secrets;
        }
    };
    warn_if_readable_by_others(&path);
    let file = diag.add_source(path, text);
    secrets.file = Some(file);
    match toml::from_str::<RawSecrets>(diag.text(file)) {
        Ok(raw) => {
            secrets.has_table = raw.passwords.is_some();
            secrets.passwords = raw.passwords.unwrap_or_default();
        }
        Err(e) => diag.toml(file, &e),
    }
    secrets
}

/// Gives each extension without a password in the config files its stored
/// one, checked against the policy.
pub(crate) fn apply(secrets: &Secrets, extensions: &mut [Built], diag: &mut Diag) {
    let Some(file) = secrets.file else { return };
    for built in extensions.iter_mut() {
        let ext = &mut built.extension;
        if ext.password.is_some() {
            continue;
        }
        if let Some(pw) = secrets.passwords.get(&ext.number) {
            let loc = Loc {
                file,
                span: pw.span(),
            };
            match password::weakness(pw.get_ref(), &ext.number) {
                Some(cause) => diag.at(
                    &loc,
                    format!("extension {}: weak password: {cause}", ext.number),
                ),
                None => ext.password = Some(pw.get_ref().clone()),
            }
        }
    }
}

/// Generates and stores a password for every extension still without one.
/// Returns the secrets file's path when any extension's password is in it.
pub(crate) fn provision(
    secrets: &Secrets,
    extensions: &mut [Built],
    diag: &mut Diag,
) -> Option<PathBuf> {
    let mut new = String::new();
    for built in extensions.iter_mut() {
        let ext = &mut built.extension;
        if ext.password.is_none() {
            let pw = password::generate(&ext.number);
            // Numbers are digits and generated passwords alphanumeric: no escaping needed.
            let _ = writeln!(new, "\"{}\" = \"{pw}\"", ext.number);
            ext.password = Some(pw);
        }
    }
    if !new.is_empty() {
        if let Err(e) = store(secrets, &new) {
            diag.whole(
                &secrets.path,
                format!("cannot write generated passwords: {e}"),
            );
            return None;
        }
        tracing::info!(path = %secrets.path.display(), "generated passwords for extensions without one");
    }
    let used = extensions
        .iter()
        .any(|b| secrets.passwords.contains_key(&b.extension.number))
        || !new.is_empty();
    used.then(|| secrets.path.clone())
}

/// Adds `entries` (lines of the `[passwords]` table) to the file, keeping
/// what is there byte for byte.
fn store(secrets: &Secrets, entries: &str) -> std::io::Result<()> {
    let existing = match std::fs::read_to_string(&secrets.path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let Some(existing) = existing else {
        let mut f = create_private(&secrets.path)?;
        f.write_all(
            format!(
                "# SIP passwords generated for extensions that have none in the config.\n\
                 # Keep this file private. Edit a password here to change it.\n\
                 [passwords]\n{entries}"
            )
            .as_bytes(),
        )?;
        return f.sync_all();
    };
    let mut tail = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        tail.push('\n');
    }
    if !secrets.has_table {
        tail.push_str("[passwords]\n");
    } else if !ends_in_passwords_table(&existing) {
        // The table is written inline or with dotted keys: appending lines
        // would not extend it, so write the whole table anew.
        return rewrite(secrets, entries);
    }
    tail.push_str(entries);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&secrets.path)?;
    f.write_all(tail.as_bytes())?;
    f.sync_all()
}

/// Whether the last table header in the file is `[passwords]`, so lines
/// appended at the end land in it.
fn ends_in_passwords_table(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .rfind(|l| l.starts_with('['))
        .is_some_and(|l| l.trim_end_matches(|c: char| c != ']') == "[passwords]")
}

fn rewrite(secrets: &Secrets, entries: &str) -> std::io::Result<()> {
    let mut text = String::from("[passwords]\n");
    for (number, pw) in &secrets.passwords {
        let _ = writeln!(
            text,
            "{} = {}",
            toml::Value::String(number.clone()),
            toml::Value::String(pw.get_ref().clone())
        );
    }
    text.push_str(entries);
    let tmp = secrets.path.with_extension("toml.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = create_private(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &secrets.path)
}

/// Creates a new file readable and writable by its owner only.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{mode:o}"),
                    "secrets file is readable by other users; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_table_at_the_end() {
        assert!(ends_in_passwords_table("[passwords]\n\"1001\" = \"x\"\n"));
        assert!(ends_in_passwords_table("# c\n[passwords] # generated\n"));
        assert!(!ends_in_passwords_table(
            "passwords = { \"1001\" = \"x\" }\n"
        ));
        assert!(!ends_in_passwords_table(""));
    }
}
