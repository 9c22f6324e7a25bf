//! Reading the config folder: find the files, parse each, merge the
//! sections, validate them and assemble the [`Config`].

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml_edit::{ImDocument, Item as TomlItem, Value};

use super::admin::{self, RawAdmin};
use super::admission::{self, RawAdmission};
use super::dialplan;
use super::error::{ConfigErrors, Diag, FileId, Loc};
use super::extension::{self, RawExtension};
use super::media::{self, RawMedia};
use super::secrets::{self, SECRETS_FILE};
use super::sip::{self, RawSip};
use super::site::{self, RawSite};
use super::Config;

/// The top-level names a config file may use. New sections are added here
/// and in [`merge_section`].
const SECTIONS: &str = "[sip], [media], [admission], [[site]], [[extension]], [admin], \
                        [dialplan], [[ring_group]], [[trunk]], [[inbound_rule]], \
                        [[outbound_rule]], [[office_hours]]";

/// A single table and the file it came from.
pub(crate) struct Section<T> {
    pub file: FileId,
    /// Where the table starts (its `[name]` header), for errors about the
    /// table as a whole.
    pub header: Loc,
    pub value: T,
}

/// One entry of an array of tables and the file it came from.
pub(crate) struct Item<T> {
    pub file: FileId,
    pub value: T,
}

/// All files' sections, merged.
#[derive(Default)]
struct Merged {
    /// Where each single table was first defined, even if it did not parse.
    defined: HashMap<&'static str, Loc>,
    sip: Option<Section<RawSip>>,
    media: Option<Section<RawMedia>>,
    extensions: Vec<Item<RawExtension>>,
    admission: Option<Section<RawAdmission>>,
    admin: Option<Section<RawAdmin>>,
    sites: Vec<Item<RawSite>>,
    /// `[dialplan]`, `[[ring_group]]`, `[[trunk]]`, the rules and schedules.
    routing: dialplan::Sections,
}

pub(crate) fn load(dir: &Path, provision: bool) -> Result<(Config, Option<PathBuf>), ConfigErrors> {
    let mut diag = Diag::new();
    let merged = read_all(dir, &mut diag);
    let sip = match merged.sip {
        Some(section) => sip::build(section, &mut diag),
        None => {
            if !merged.defined.contains_key("sip") && diag.error_count() == 0 {
                diag.whole(
                    dir,
                    "no [sip] section in any config file; it needs at least `listen` and `domain`",
                );
            }
            None
        }
    };
    let media = media::build(merged.media, &mut diag);
    let admin = admin::build(merged.admin, &mut diag);
    let declared_extensions = merged
        .extensions
        .iter()
        .map(|i| i.value.number().to_owned())
        .collect();
    let mut extensions = extension::build(merged.extensions, &mut diag);
    let routing = dialplan::build(
        merged.routing,
        &extensions,
        declared_extensions,
        dir,
        &mut diag,
    );
    let (admission, site_names) = admission::build(merged.admission, merged.sites, &mut diag);
    site::check_pins(&site_names, &extensions, &mut diag);

    if let (Some(sip), Some(media)) = (&sip, &media) {
        check_port_overlap(sip, media, dir, &mut diag);
    }

    let stored = secrets::read(dir, &mut diag);
    secrets::apply(&stored, &mut extensions, &mut diag);

    let (Some(sip), Some(media), Some(admission), Some(admin), Some(routing), 0) =
        (sip, media, admission, admin, routing, diag.error_count())
    else {
        return Err(diag.finish());
    };
    // Only a valid config gets passwords written for it.
    let secrets_path = if provision {
        let path = secrets::provision(&stored, &mut extensions, &mut diag);
        if diag.error_count() > 0 {
            return Err(diag.finish());
        }
        path
    } else {
        None
    };
    // A vector of its own: collecting in place would keep the allocation of
    // the larger `Built` values for as long as the daemon runs.
    let mut extension_list = Vec::with_capacity(extensions.len());
    extension_list.extend(extensions.into_iter().map(|b| b.extension));
    let config = Config {
        sip,
        media,
        admission,
        admin,
        extensions: extension_list,
        dialplan: routing.dialplan,
        trunks: routing.trunks,
        dir: dir.to_path_buf(),
    };
    Ok((config, secrets_path))
}

/// The config files of `dir`: `*.toml` in name order, without the secrets
/// files (`secrets.toml`, `*.secrets.toml`) and hidden files.
pub(crate) fn config_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let wanted = name.ends_with(".toml")
            && name != SECRETS_FILE
            && !name.ends_with(".secrets.toml")
            && !name.starts_with('.');
        // `is_file` follows symlinks, so linked files count.
        if wanted && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_all(dir: &Path, diag: &mut Diag) -> Merged {
    let mut merged = Merged::default();
    let files = match config_files(dir) {
        Ok(files) => files,
        Err(e) => {
            diag.whole(dir, format!("cannot read the config folder: {e}"));
            return merged;
        }
    };
    if files.is_empty() {
        diag.whole(dir, "no *.toml config files in this folder");
    }
    for path in files {
        let text = match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    diag.whole(&path, "not UTF-8 text");
                    continue;
                }
            },
            Err(e) => {
                diag.whole(&path, format!("cannot read: {e}"));
                continue;
            }
        };
        let file = diag.add_source(path, text);
        read_file(&mut merged, file, diag);
    }
    merged
}

/// Puts one top-level entry of a file into its section. Each section, and
/// each entry of an array of tables, is deserialized on its own so that one
/// bad entry does not hide the errors of the others.
fn merge_section(
    merged: &mut Merged,
    file: FileId,
    name: &str,
    at: Range<usize>,
    item: &TomlItem,
    diag: &mut Diag,
) {
    match name {
        "sip" => {
            let value = table(file, &at, item, diag);
            merge_table(
                &mut merged.sip,
                &mut merged.defined,
                "sip",
                file,
                at,
                value,
                diag,
            );
        }
        "media" => {
            let value = table(file, &at, item, diag);
            merge_table(
                &mut merged.media,
                &mut merged.defined,
                "media",
                file,
                at,
                value,
                diag,
            );
        }
        "admission" => {
            let value = table(file, &at, item, diag);
            merge_table(
                &mut merged.admission,
                &mut merged.defined,
                "admission",
                file,
                at,
                value,
                diag,
            );
        }
        "admin" => {
            let value = table(file, &at, item, diag);
            merge_table(
                &mut merged.admin,
                &mut merged.defined,
                "admin",
                file,
                at,
                value,
                diag,
            );
        }
        "site" => {
            let entries = array_of_tables(file, "site", &at, item, diag);
            merged
                .sites
                .extend(entries.into_iter().map(|value| Item { file, value }));
        }
        "dialplan" => {
            let value = table(file, &at, item, diag);
            merge_table(
                &mut merged.routing.dialplan,
                &mut merged.defined,
                "dialplan",
                file,
                at,
                value,
                diag,
            );
        }
        "ring_group" => {
            let entries = array_of_tables(file, "ring_group", &at, item, diag);
            merged
                .routing
                .ring_groups
                .extend(entries.into_iter().map(|value| Item { file, value }));
        }
        "trunk" => {
            let entries = array_of_tables(file, "trunk", &at, item, diag);
            merged
                .routing
                .trunks
                .extend(entries.into_iter().map(|value| Item { file, value }));
        }
        "inbound_rule" => {
            let entries = array_of_tables(file, "inbound_rule", &at, item, diag);
            merged
                .routing
                .inbound_rules
                .extend(entries.into_iter().map(|value| Item { file, value }));
        }
        "outbound_rule" => {
            let entries = array_of_tables(file, "outbound_rule", &at, item, diag);
            merged
                .routing
                .outbound_rules
                .extend(entries.into_iter().map(|value| Item { file, value }));
        }
        "office_hours" => {
            let entries = array_of_tables(file, "office_hours", &at, item, diag);
            merged
                .routing
                .office_hours
                .extend(entries.into_iter().map(|value| Item { file, value }));
        }
        "extension" => {
            let entries = array_of_tables(file, "extension", &at, item, diag);
            merged
                .extensions
                .extend(entries.into_iter().map(|value| Item { file, value }));
        }
        other => diag.at(
            &Loc { file, span: at },
            format!("unknown section `{other}`; a config file may hold {SECTIONS}"),
        ),
    }
}

fn read_file(merged: &mut Merged, file: FileId, diag: &mut Diag) {
    let doc = match ImDocument::parse(diag.text(file).to_owned()) {
        Ok(doc) => doc,
        Err(e) => return diag.syntax(file, &e),
    };
    let root = doc.as_table();
    for (name, item) in root.iter() {
        let key_span = root.key(name).and_then(|k| k.span());
        // A `[name]` header has a span; dotted keys (`sip.domain = ..`) only the key.
        let at = item.span().or(key_span).unwrap_or(0..0);
        merge_section(merged, file, name, at, item, diag);
    }
}

/// A single table deserialized into its raw shape.
fn table<T: DeserializeOwned>(
    file: FileId,
    at: &Range<usize>,
    item: &TomlItem,
    diag: &mut Diag,
) -> Option<T> {
    let value = to_value(item)?;
    T::deserialize(value.into_deserializer())
        .map_err(|e| diag.shape(file, at.clone(), &e))
        .ok()
}

/// The entries of an array of tables (`[[name]]`, or `name = [{..}, ..]`).
fn array_of_tables<T: DeserializeOwned>(
    file: FileId,
    name: &str,
    at: &Range<usize>,
    item: &TomlItem,
    diag: &mut Diag,
) -> Vec<T> {
    let entries: Vec<(Range<usize>, Value)> = match item {
        TomlItem::ArrayOfTables(tables) => tables
            .iter()
            .map(|t| {
                (
                    t.span().unwrap_or(at.clone()),
                    Value::InlineTable(t.clone().into_inline_table()),
                )
            })
            .collect(),
        TomlItem::Value(Value::Array(values)) => values
            .iter()
            .map(|v| (v.span().unwrap_or(at.clone()), v.clone()))
            .collect(),
        _ => {
            diag.at(
                &Loc {
                    file,
                    span: at.clone(),
                },
                format!("`{name}` must be an array of tables: write each entry under [[{name}]]"),
            );
            return Vec::new();
        }
    };
    entries
        .into_iter()
        .filter_map(|(span, value)| {
            T::deserialize(value.into_deserializer())
                .map_err(|e| diag.shape(file, span, &e))
                .ok()
        })
        .collect()
}

fn to_value(item: &TomlItem) -> Option<Value> {
    match item {
        TomlItem::None => None,
        TomlItem::Value(v) => Some(v.clone()),
        TomlItem::Table(t) => Some(Value::InlineTable(t.clone().into_inline_table())),
        TomlItem::ArrayOfTables(a) => Some(Value::Array(a.clone().into_array())),
    }
}

/// A single table may come from one file only.
fn merge_table<T>(
    slot: &mut Option<Section<T>>,
    defined: &mut HashMap<&'static str, Loc>,
    name: &'static str,
    file: FileId,
    at: Range<usize>,
    value: Option<T>,
    diag: &mut Diag,
) {
    let header = Loc { file, span: at };
    if let Some(first) = defined.get(name) {
        let first = diag.describe(first);
        diag.at(
            &header,
            format!("[{name}] is already defined in {first}; define each table in one file only"),
        );
        return;
    }
    defined.insert(name, header.clone());
    if let Some(value) = value {
        *slot = Some(Section {
            file,
            header,
            value,
        });
    }
}

/// The relay must not take the SIP port on a shared address.
fn check_port_overlap(
    sip: &super::SipConfig,
    media: &super::MediaConfig,
    dir: &Path,
    diag: &mut Diag,
) {
    for spec in &sip.listen {
        let port = spec.addr.port();
        let same_ip = spec.addr.ip() == media.bind
            || spec.addr.ip().is_unspecified()
            || media.bind.is_unspecified();
        if same_ip
            && spec.transport == ::sip::TransportKind::Udp
            && (media.port_min..=media.port_max).contains(&port)
        {
            diag.whole(
                dir,
                format!(
                    "[sip] listen `{spec}` uses a port inside [media] rtp_ports {}-{}",
                    media.port_min, media.port_max
                ),
            );
        }
    }
}
