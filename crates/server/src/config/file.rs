//! Reading the TOML config file key by key, so that every problem is found
//! and each points at its line.
//!
//! The document is parsed with `toml_edit`, which keeps the byte span of
//! every key and value; each value is then checked on its own (one-value
//! settings through `settings`, channel options by deserializing the single
//! key into `hub::NamespaceOptions`), then each options table as a whole
//! (`NamespaceOptions::validate`), then namespace names and duplicates. A
//! TOML syntax error stops the walk: there is no document to walk.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use hub::{NamespaceConfig, NamespaceOptions, Namespaces};
use serde::de::IntoDeserializer;
use serde::Deserialize;
use toml_edit::{Item, TableLike};

use super::settings::{self, Layer, Raw, SetError};
use super::{Origin, Problem};

/// Turns byte offsets into file positions.
struct Lines<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Lines<'_> {
    /// The 1-based line of `span`'s start, or `fallback` without a span.
    fn at(&self, span: Option<Range<usize>>, fallback: usize) -> usize {
        match span {
            Some(span) => {
                let end = span.start.min(self.text.len());
                self.text.as_bytes()[..end]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count()
                    + 1
            }
            None => fallback,
        }
    }

    fn origin(&self, line: usize) -> Origin {
        Origin::File {
            path: self.path.to_owned(),
            line,
        }
    }

    fn problem(&self, line: usize, message: impl Into<String>) -> Problem {
        Problem::new(self.origin(line), message)
    }
}

/// Applies the file's settings to `layer`; returns every problem found.
pub(super) fn apply(layer: &mut Layer, text: &str, path: &Path) -> Vec<Problem> {
    let lines = Lines { text, path };
    let doc = match toml_edit::ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let line = lines.at(e.span(), 1);
            return vec![lines.problem(
                line,
                format!("invalid TOML: {}", e.message().trim().replace('\n', "; ")),
            )];
        }
    };
    let root = doc.as_table();
    let mut problems = Vec::new();
    for (key, item) in root.iter() {
        let key_line = lines.at(root.key(key).and_then(|k| k.span()), 1);
        match key {
            "client" => client(layer, item, key_line, &lines, &mut problems),
            "channel" => {
                let Some(table) = item.as_table_like() else {
                    problems.push(lines.problem(key_line, "`channel` must be a table ([channel])"));
                    layer.record("channel", lines.origin(key_line), false);
                    continue;
                };
                let header = lines.at(item.span(), key_line);
                let options = options(table, &[], "[channel]", header, &lines, &mut problems);
                let ok = match &options {
                    Some(o) => match o.validate() {
                        Ok(()) => true,
                        Err(reason) => {
                            problems.push(lines.problem(header, format!("[channel]: {reason}")));
                            false
                        }
                    },
                    None => false,
                };
                if ok {
                    layer.channel = options;
                }
                layer.record("channel", lines.origin(header), ok);
            }
            "namespaces" => namespaces(layer, item, key_line, &lines, &mut problems),
            k if settings::TOP_KEYS.contains(&k) => match item.as_value() {
                Some(value) => {
                    let line = lines.at(value.span(), key_line);
                    if let Err(e) = layer.set(k, Raw::Toml(value), lines.origin(line)) {
                        problems.push(lines.problem(line, format!("`{k}`: {e}")));
                    }
                }
                None => problems.push(lines.problem(
                    key_line,
                    format!("`{k}` must be a single value, not a table"),
                )),
            },
            other => {
                let candidates = settings::TOP_KEYS
                    .iter()
                    .chain(settings::TABLE_KEYS)
                    .copied();
                problems.push(lines.problem(key_line, unknown(other, candidates)));
            }
        }
    }
    problems
}

fn unknown<'a>(key: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match settings::suggest(key, candidates) {
        Some(s) => format!("unknown key `{key}` (did you mean `{s}`?)"),
        None => format!("unknown key `{key}`"),
    }
}

fn client(
    layer: &mut Layer,
    item: &Item,
    key_line: usize,
    lines: &Lines<'_>,
    problems: &mut Vec<Problem>,
) {
    let Some(table) = item.as_table_like() else {
        problems.push(lines.problem(key_line, "`client` must be a table ([client])"));
        return;
    };
    for (key, item) in table.iter() {
        let line = lines.at(table.key(key).and_then(|k| k.span()), key_line);
        if !settings::CLIENT_KEYS.contains(&key) {
            let msg = unknown(key, settings::CLIENT_KEYS.iter().copied());
            problems.push(lines.problem(line, format!("[client]: {msg}")));
            continue;
        }
        let Some(value) = item.as_value() else {
            problems.push(lines.problem(line, format!("`client.{key}` must be a single value")));
            continue;
        };
        let line = lines.at(value.span(), line);
        match layer.set(
            &format!("client.{key}"),
            Raw::Toml(value),
            lines.origin(line),
        ) {
            Ok(()) => {}
            Err(SetError::Unknown(_)) => problems.push(lines.problem(line, unknown(key, []))),
            Err(e) => problems.push(lines.problem(line, format!("`client.{key}`: {e}"))),
        }
    }
}

/// The option names `NamespaceOptions` accepts, asked from its own
/// `Deserialize` impl (so that new options in `hub` are known here at once).
pub(super) fn option_names() -> &'static [&'static str] {
    let mut fields = None;
    let _ = NamespaceOptions::deserialize(FieldNames(&mut fields));
    fields.unwrap_or(&[])
}

/// A deserializer that only records the field list a struct asks for.
struct FieldNames<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(serde::de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Deserializes options from `entries` written as one inline table.
fn options_from(entries: &[(&str, &toml_edit::Value)]) -> Result<NamespaceOptions, String> {
    let mut table = toml_edit::InlineTable::new();
    for (key, value) in entries {
        table.insert(*key, (*value).clone());
    }
    NamespaceOptions::deserialize(toml_edit::Value::InlineTable(table).into_deserializer())
        .map_err(|e| e.message().trim().to_owned())
}

/// Checks each option of `table` on its own (keys in `skip` are someone
/// else's); `None` when any is wrong.
fn options(
    table: &dyn TableLike,
    skip: &[&str],
    what: &str,
    header: usize,
    lines: &Lines<'_>,
    problems: &mut Vec<Problem>,
) -> Option<NamespaceOptions> {
    let names = option_names();
    let mut entries = Vec::new();
    let mut ok = true;
    for (key, item) in table.iter() {
        if skip.contains(&key) {
            continue;
        }
        let line = lines.at(table.key(key).and_then(|k| k.span()), header);
        if !names.contains(&key) {
            let candidates = names.iter().chain(skip).copied();
            problems.push(lines.problem(line, format!("{what}: {}", unknown(key, candidates))));
            ok = false;
            continue;
        }
        let Some(value) = item.as_value() else {
            problems.push(lines.problem(line, format!("{what}: `{key}` must be a single value")));
            ok = false;
            continue;
        };
        let line = lines.at(value.span(), line);
        if let Err(e) = options_from(&[(key, value)]) {
            problems.push(lines.problem(line, format!("{what}: `{key}`: {e}")));
            ok = false;
            continue;
        }
        entries.push((key, value));
    }
    if !ok {
        return None;
    }
    match options_from(&entries) {
        Ok(options) => Some(options),
        Err(e) => {
            problems.push(lines.problem(header, format!("{what}: {e}")));
            None
        }
    }
}

fn namespaces(
    layer: &mut Layer,
    item: &Item,
    key_line: usize,
    lines: &Lines<'_>,
    problems: &mut Vec<Problem>,
) {
    let mut tables: Vec<(&dyn TableLike, usize)> = Vec::new();
    let mut shape_ok = true;
    match item {
        Item::ArrayOfTables(array) => {
            for table in array.iter() {
                tables.push((table as &dyn TableLike, lines.at(table.span(), key_line)));
            }
        }
        Item::Value(toml_edit::Value::Array(array)) => {
            for value in array.iter() {
                let line = lines.at(value.span(), key_line);
                match value.as_inline_table() {
                    Some(table) => tables.push((table as &dyn TableLike, line)),
                    None => {
                        problems.push(lines.problem(
                            line,
                            format!(
                                "`namespaces` entries must be tables, found {}",
                                settings::type_name(value)
                            ),
                        ));
                        shape_ok = false;
                    }
                }
            }
        }
        _ => {
            problems.push(lines.problem(
                key_line,
                "`namespaces` must be an array of tables ([[namespaces]] with a name)",
            ));
            layer.record("namespaces", lines.origin(key_line), false);
            return;
        }
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut list = Vec::new();
    let mut ok = shape_ok;
    for (table, header) in tables {
        let name = match table.get("name") {
            None => {
                problems.push(lines.problem(header, "[[namespaces]]: missing `name`"));
                None
            }
            Some(item) => {
                let line = lines.at(table.key("name").and_then(|k| k.span()), header);
                match item.as_value() {
                    Some(toml_edit::Value::String(s)) => {
                        let name = s.value().clone();
                        let probe = NamespaceConfig {
                            name: name.clone(),
                            options: NamespaceOptions::default(),
                        };
                        if let Err(e) = Namespaces::new(NamespaceOptions::default(), [probe]) {
                            problems.push(lines.problem(line, format!("[[namespaces]]: {e}")));
                            None
                        } else if let Some(first) = seen.get(&name) {
                            problems.push(lines.problem(
                                line,
                                format!(
                                    "namespace {name:?} is defined twice (first on line {first})"
                                ),
                            ));
                            None
                        } else {
                            seen.insert(name.clone(), line);
                            Some(name)
                        }
                    }
                    Some(other) => {
                        problems.push(lines.problem(
                            line,
                            format!(
                                "[[namespaces]]: `name` must be a string, found {}",
                                settings::type_name(other)
                            ),
                        ));
                        None
                    }
                    None => {
                        problems
                            .push(lines.problem(line, "[[namespaces]]: `name` must be a string"));
                        None
                    }
                }
            }
        };
        let what = match table.get("name").and_then(Item::as_str) {
            Some(name) => format!("namespace {name:?}"),
            None => "[[namespaces]]".to_owned(),
        };
        let options = options(table, &["name"], &what, header, lines, problems);
        let (Some(name), Some(options)) = (name, options) else {
            ok = false;
            continue;
        };
        if let Err(reason) = options.validate() {
            problems.push(lines.problem(header, format!("{what}: {reason}")));
            ok = false;
            continue;
        }
        list.push(NamespaceConfig { name, options });
    }
    if ok {
        layer.namespaces = Some(list);
    }
    layer.record("namespaces", lines.origin(key_line), ok);
}
