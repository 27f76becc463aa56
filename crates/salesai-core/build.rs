//! Builds the message catalogue (`salesai_core::i18n`) from `messages/*.toml`: one file per
//! language, English (`en.toml`) the reference. The build fails when a language lacks a key,
//! has one English does not, or uses other `{placeholders}` than English in a text — so a
//! missing translation cannot reach anyone. Adding a language is adding its file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

struct Locale {
    code: String,
    name: String,
    messages: BTreeMap<String, String>,
}

fn read(path: &Path) -> Locale {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let table: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", path.display()));
    let field = |section: &str, key: &str| {
        table
            .get(section)
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| panic!("{} has no [{section}] {key}", path.display()))
            .to_owned()
    };
    let messages = table
        .get("messages")
        .and_then(|m| m.as_table())
        .unwrap_or_else(|| panic!("{} has no [messages]", path.display()))
        .iter()
        .map(|(k, v)| {
            let text = v
                .as_str()
                .unwrap_or_else(|| panic!("{}: {k} is not a string", path.display()));
            (k.clone(), text.to_owned())
        })
        .collect();
    Locale {
        code: field("locale", "code"),
        name: field("locale", "name"),
        messages,
    }
}

/// The `{name}` placeholders of a text.
fn placeholders(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if after[..close]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && close > 0 =>
            {
                out.insert(after[..close].to_owned());
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

/// A Rust identifier for a locale's static: `zh-TW` → `ZH_TW`.
fn ident(code: &str) -> String {
    code.replace('-', "_").to_ascii_uppercase()
}

fn main() {
    let dir = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("messages");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the messages folder")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let locales: Vec<Locale> = files.iter().map(|p| read(p)).collect();
    let english = locales
        .iter()
        .find(|l| l.code == "en")
        .expect("messages/en.toml, the reference language");
    let mut problems = Vec::new();
    for locale in &locales {
        for key in english.messages.keys() {
            match locale.messages.get(key) {
                None => problems.push(format!("{}: no {key}", locale.code)),
                Some(text) => {
                    let (want, got) = (placeholders(&english.messages[key]), placeholders(text));
                    if want != got {
                        problems.push(format!(
                            "{}: {key} has placeholders {got:?}, English {want:?}",
                            locale.code
                        ));
                    }
                    if text.trim().is_empty() {
                        problems.push(format!("{}: {key} is empty", locale.code));
                    }
                }
            }
        }
        for key in locale.messages.keys() {
            if !english.messages.contains_key(key) {
                problems.push(format!("{}: {key} is not in en.toml", locale.code));
            }
        }
    }
    if !problems.is_empty() {
        panic!(
            "the message catalogue is incomplete:\n  {}",
            problems.join("\n  ")
        );
    }
    let mut out = String::new();
    out.push_str(
        "/// Every text salesai shows people, in one language: one field per message, generated\n\
         /// from `messages/<code>.toml` (each field's documentation is its English text).\n\
         #[derive(Debug)]\npub struct Messages {\n",
    );
    for (key, text) in &english.messages {
        // The English text, quoted on one line (as a literal: no Markdown is read into it).
        let quoted = format!("{text:?}").replace('`', "'");
        writeln!(out, "    /// English: `{quoted}`").unwrap();
        writeln!(out, "    pub {key}: &'static str,").unwrap();
    }
    out.push_str("}\n\n");
    for locale in &locales {
        writeln!(
            out,
            "static {}: Messages = Messages {{",
            ident(&locale.code)
        )
        .unwrap();
        for (key, text) in &locale.messages {
            writeln!(out, "    {key}: {text:?},").unwrap();
        }
        out.push_str("};\n\n");
    }
    out.push_str("/// Every language the catalogue has, English first.\npub static LOCALES: &[Locale] = &[\n");
    let mut ordered: Vec<&Locale> = locales.iter().collect();
    ordered.sort_by_key(|l| (l.code != "en", l.code.clone()));
    for locale in ordered {
        writeln!(
            out,
            "    Locale {{ code: {:?}, name: {:?}, messages: &{} }},",
            locale.code,
            locale.name,
            ident(&locale.code)
        )
        .unwrap();
    }
    out.push_str("];\n\n/// Every key, in order (for the tests and the page scans).\npub static KEYS: &[&str] = &[\n");
    for key in english.messages.keys() {
        writeln!(out, "    {key:?},").unwrap();
    }
    out.push_str("];\n\nimpl Messages {\n    /// The text of `key`, looked up by name (what a test or a stored key needs; code uses the fields).\n    pub fn get(&self, key: &str) -> Option<&'static str> {\n        match key {\n");
    for key in english.messages.keys() {
        writeln!(out, "            {key:?} => Some(self.{key}),").unwrap();
    }
    out.push_str("            _ => None,\n        }\n    }\n}\n");
    let target = Path::new(&std::env::var("OUT_DIR").unwrap()).join("messages.rs");
    std::fs::write(target, out).expect("write the catalogue");
}
