//! Product lines: one binary serves every line (the original copied its whole Slack bot per
//! line and the copies drifted). A product line is configuration: its case prefix, language,
//! competitors and methodology. Built-in defaults for `ichef`, `beauty` and `default`.

use serde::{Deserialize, Serialize};

use crate::domain::{CasePrefix, InvalidInput};
use crate::language::Language;

/// One product line, as written in its file (`docs/LINES.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductLine {
    /// Its id, as used in uploads and URLs.
    pub id: String,
    /// Its name for people, in each language (the id when absent).
    #[serde(default)]
    pub display_name: LocalText,
    /// The case-number prefix.
    pub case_prefix: String,
    /// `zh-TW` or `en`: the language of messages and of the rules engine's text.
    pub language: String,
    /// Speech-to-text language hint (ISO-639-1; from `language` when absent).
    #[serde(default)]
    pub stt_language: String,
    /// Brand, product and trade words sent to speech-to-text as Whisper's `prompt` (e.g.
    /// "iCHEF, 客立樂"), which cuts homophone errors; the line's name and competitors when
    /// absent.
    #[serde(default)]
    pub vocabulary: Option<String>,
    /// Competitors to watch for (the rules engine also finds ones nobody configured).
    #[serde(default)]
    pub competitors: Vec<String>,
    /// Convert speech-to-text output from Simplified to Traditional Chinese (Taiwan phrasing):
    /// Whisper often answers Taiwanese Mandarin in Simplified characters.
    #[serde(default)]
    pub convert_to_traditional: bool,
    /// Weights and thresholds (the defaults when absent).
    #[serde(default)]
    pub methodology: Methodology,
    /// The questions asked about a call when it is uploaded (besides the customer and contact
    /// fields every line asks): the Slack modal is built from these.
    #[serde(default)]
    pub form: Vec<FormField>,
    /// Where Slack progress and results go: the file's thread in the channel, or a DM to the rep.
    #[serde(default)]
    pub slack_reply: SlackReply,
    /// The rules engine's additions for this line: its own product names (never reported as a
    /// competitor), extra pain and objection words.
    #[serde(default)]
    pub lexicon: Lexicon,
}

/// Where a product line's Slack messages go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlackReply {
    /// In the thread of the message that shared the file.
    #[default]
    Thread,
    /// In a direct message to the rep who uploaded it.
    Dm,
}

/// One question of a product line's upload form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormField {
    /// The key its answer is stored under in the conversation's metadata.
    pub id: String,
    /// The label, in one or each language.
    pub label: LocalText,
    /// Must it be answered.
    #[serde(default)]
    pub required: bool,
    /// The choices; an empty list makes it a free-text field.
    #[serde(default)]
    pub options: Vec<FormOption>,
}

/// One choice of a select field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormOption {
    /// The stored value.
    pub value: String,
    /// What people see, in one or each language.
    pub label: LocalText,
}

/// A text of a product line's file for people, in one language or each: `"Beauty"` (shown
/// as is whatever the reader's language) or `{ en = "Beauty", zh-TW = "美業" }`, read in the
/// reader's language, else the same primary language, else the line's own, else English.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalText {
    /// Language tag → text; the empty tag holds a text given without a language.
    texts: std::collections::BTreeMap<String, String>,
}

impl LocalText {
    /// A text in no particular language.
    pub fn plain(text: &str) -> LocalText {
        LocalText {
            texts: [(String::new(), text.to_owned())].into_iter().collect(),
        }
    }

    /// The text for a reader of `code` (see the type's documentation).
    pub fn get(&self, code: &str) -> &str {
        let primary = |c: &str| {
            c.split(['-', '_'])
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase()
        };
        self.texts
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(code))
            .or_else(|| {
                self.texts
                    .iter()
                    .find(|(k, _)| !k.is_empty() && primary(k) == primary(code))
            })
            .or_else(|| self.texts.get_key_value(""))
            .or_else(|| self.texts.get_key_value("en"))
            .or_else(|| self.texts.iter().next())
            .map_or("", |(_, v)| v.as_str())
    }

    /// Whether it holds no text at all.
    pub fn is_empty(&self) -> bool {
        self.texts.values().all(|t| t.trim().is_empty())
    }

    /// The languages it is written in (`None` for a text given without one).
    pub fn languages(&self) -> Vec<&str> {
        self.texts.keys().map(String::as_str).collect()
    }
}

impl Serialize for LocalText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.texts.get("") {
            Some(plain) if self.texts.len() == 1 => s.serialize_str(plain),
            _ => self.texts.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for LocalText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Plain(String),
            Each(std::collections::BTreeMap<String, String>),
        }
        Ok(match Either::deserialize(d)? {
            Either::Plain(text) => LocalText::plain(&text),
            Either::Each(texts) => LocalText { texts },
        })
    }
}

impl ProductLine {
    /// The case prefix, checked.
    pub fn prefix(&self) -> Result<CasePrefix, InvalidInput> {
        CasePrefix::parse(&self.case_prefix)
    }

    /// What speech-to-text is given as its `prompt`: the vocabulary, else the line's name and
    /// competitors, else nothing.
    pub fn stt_prompt(&self) -> Option<String> {
        match &self.vocabulary {
            Some(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
            _ => (!self.competitors.is_empty()).then(|| {
                format!(
                    "{}, {}",
                    self.display_name.get(&self.language),
                    self.competitors.join(", ")
                )
            }),
        }
    }

    /// Its name for a reader of `lang`.
    pub fn name_in(&self, lang: Language) -> &str {
        self.display_name.get(lang.code())
    }

    /// The rules engine's language.
    pub fn rules_language(&self) -> Language {
        if self.language.starts_with("zh") {
            Language::ZhTw
        } else {
            Language::En
        }
    }
}

/// The built-in lines, as the files they are: `crates/salesai-core/lines/<id>.toml`.
const BUILTIN_FILES: &[(&str, &str)] = &[
    ("ichef.toml", include_str!("../lines/ichef.toml")),
    ("beauty.toml", include_str!("../lines/beauty.toml")),
    ("default.toml", include_str!("../lines/default.toml")),
];

/// The built-in product lines (`ichef`, `beauty`, `default`), parsed from the files embedded in
/// the binary.
pub fn builtin() -> Vec<ProductLine> {
    BUILTIN_FILES
        .iter()
        .map(|(name, text)| {
            parse_line(&format!("(built-in) {name}"), text)
                .unwrap_or_else(|e| panic!("a built-in product line is invalid: {e}"))
        })
        .collect()
}

/// The text of a built-in line's file, for `salesai lines show` and as a template.
pub fn builtin_file(id: &str) -> Option<&'static str> {
    BUILTIN_FILES
        .iter()
        .find(|(name, _)| name.strip_suffix(".toml") == Some(id))
        .map(|(_, text)| *text)
}

/// A product-line file that cannot be used: which file, which line (when known) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {reason}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct LineFileError {
    /// The file, as given.
    pub file: String,
    /// The 1-based line the problem is on.
    pub line: Option<usize>,
    /// What is wrong and what to do.
    pub reason: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line where `key = …` is first set, for a problem found after parsing.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// Parses and checks one product-line file (`file` names it in errors). Checked: the TOML and
/// its keys (a misspelt key is an error), the id (lower-case letters, digits, `-`, `_`), the
/// case prefix, the language (`zh-TW` or `en`), the methodology's weights and thresholds, the
/// form (unique field ids, choices with values), the vocabulary's length (Whisper reads at most
/// 224 tokens of prompt).
pub fn parse_line(file: &str, text: &str) -> Result<ProductLine, LineFileError> {
    let err = |line: Option<usize>, reason: String| LineFileError {
        file: file.to_owned(),
        line,
        reason,
    };
    let mut line: ProductLine = toml::from_str(text).map_err(|e| {
        err(
            e.span().map(|s| line_of(text, s.start)),
            e.message().trim().to_owned(),
        )
    })?;
    if line.id.is_empty()
        || !line
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(err(
            key_line(text, "id"),
            format!(
                "id {:?} must be lower-case letters, digits, '-' or '_' (it is used in uploads and URLs)",
                line.id
            ),
        ));
    }
    line.prefix()
        .map_err(|e| err(key_line(text, "case_prefix"), e.0))?;
    if !matches!(line.language.as_str(), "zh-TW" | "en") {
        return Err(err(
            key_line(text, "language"),
            format!("language {:?} must be \"zh-TW\" or \"en\"", line.language),
        ));
    }
    if line.stt_language.is_empty() {
        line.stt_language = if line.language == "zh-TW" { "zh" } else { "en" }.into();
    }
    if line.display_name.is_empty() {
        line.display_name = LocalText::plain(&line.id);
    }
    line.methodology.validate().map_err(|e| {
        err(
            key_line(text, "[methodology]").or(key_line(text, "pain_weight")),
            e.0,
        )
    })?;
    let mut seen = std::collections::BTreeSet::new();
    for field in &line.form {
        if field.id.is_empty() || !seen.insert(field.id.as_str()) {
            return Err(err(
                text.find(&format!("\"{}\"", field.id))
                    .map(|at| line_of(text, at)),
                format!("form field id {:?} is empty or used twice", field.id),
            ));
        }
        if field.label.is_empty() {
            return Err(err(
                text.find(&format!("\"{}\"", field.id))
                    .map(|at| line_of(text, at)),
                format!("form field {:?} needs a label", field.id),
            ));
        }
        if field.options.iter().any(|o| o.value.is_empty()) {
            return Err(err(
                text.find(&format!("\"{}\"", field.id))
                    .map(|at| line_of(text, at)),
                format!("a choice of form field {:?} has an empty value", field.id),
            ));
        }
    }
    if let Some(vocabulary) = &line.vocabulary
        && vocabulary.chars().count() > 600
    {
        return Err(err(
            key_line(text, "vocabulary"),
            format!(
                "the vocabulary is {} characters; speech-to-text reads about 224 tokens of prompt, keep it under 600",
                vocabulary.chars().count()
            ),
        ));
    }
    Ok(line)
}

/// The built-in lines with `files` (name, text) applied: a file whose id is a built-in line's
/// replaces it, any other adds a line. Every bad file is reported, not only the first.
pub fn with_files(files: &[(String, String)]) -> Result<Vec<ProductLine>, Vec<LineFileError>> {
    let mut lines = builtin();
    let mut errors = Vec::new();
    let mut from_files: Vec<(String, String)> = Vec::new();
    for (name, text) in files {
        match parse_line(name, text) {
            Ok(line) => {
                if let Some((other, _)) = from_files.iter().find(|(_, id)| *id == line.id) {
                    errors.push(LineFileError {
                        file: name.clone(),
                        line: key_line(text, "id"),
                        reason: format!("product line {:?} is also defined in {other}", line.id),
                    });
                    continue;
                }
                from_files.push((name.clone(), line.id.clone()));
                match lines.iter_mut().find(|l| l.id == line.id) {
                    Some(existing) => *existing = line,
                    None => lines.push(line),
                }
            }
            Err(e) => errors.push(e),
        }
    }
    let mut prefixes = std::collections::BTreeMap::new();
    for line in &lines {
        if let Some(other) = prefixes.insert(line.case_prefix.clone(), line.id.clone()) {
            errors.push(LineFileError {
                file: from_files
                    .iter()
                    .find(|(_, id)| *id == line.id || *id == other)
                    .map_or_else(|| line.id.clone(), |(name, _)| name.clone()),
                line: None,
                reason: format!(
                    "case prefix {:?} is used by both {other:?} and {:?}; case numbers would collide",
                    line.case_prefix, line.id
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

/// Finds a product line by id among `lines`.
pub fn find<'a>(lines: &'a [ProductLine], id: &str) -> Result<&'a ProductLine, InvalidInput> {
    lines.iter().find(|l| l.id == id).ok_or_else(|| {
        InvalidInput(format!(
            "unknown product line {id:?}; known: {}",
            lines
                .iter()
                .map(|l| l.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// A product line's methodology pack: weights and thresholds, configuration rather than code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Methodology {
    /// Pain weight, percent.
    pub pain_weight: u32,
    /// Decision weight, percent.
    pub decision_weight: u32,
    /// Champion weight, percent.
    pub champion_weight: u32,
    /// Metrics weight, percent.
    pub metrics_weight: u32,
    /// Overall ≥ this is Strong.
    pub strong_at: u8,
    /// Overall ≥ this is Medium.
    pub medium_at: u8,
    /// Overall ≥ this is Weak; below is At Risk.
    pub weak_at: u8,
}

impl Default for Methodology {
    /// SPEC §4: Pain 35 %, Decision 25 %, Champion 25 %, Metrics 15 %; 70 / 50 / 30.
    fn default() -> Self {
        Methodology {
            pain_weight: 35,
            decision_weight: 25,
            champion_weight: 25,
            metrics_weight: 15,
            strong_at: 70,
            medium_at: 50,
            weak_at: 30,
        }
    }
}

impl Methodology {
    /// Weights must add up to 100 and thresholds must descend.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let total =
            self.pain_weight + self.decision_weight + self.champion_weight + self.metrics_weight;
        if total != 100 {
            return Err(InvalidInput(format!(
                "methodology weights add up to {total}, not 100"
            )));
        }
        if !(self.strong_at > self.medium_at && self.medium_at > self.weak_at) {
            return Err(InvalidInput(
                "methodology thresholds must descend: strong > medium > weak".into(),
            ));
        }
        Ok(())
    }
}

/// A product line's additions to the rules engine: words its customers use for their pains and
/// objections, and its own product names (never reported as a competitor).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lexicon {
    /// Extra pain words or phrases (matched case-insensitively as substrings).
    #[serde(default)]
    pub pain: Vec<String>,
    /// Extra objection words or phrases.
    #[serde(default)]
    pub objection: Vec<String>,
    /// The line's own product and brand names.
    #[serde(default)]
    pub own_products: Vec<String>,
    /// Names that look like products in this trade but are not competitors.
    #[serde(default)]
    pub not_competitors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid() {
        let lines = builtin();
        for line in &lines {
            assert!(line.prefix().is_ok());
            assert!(line.methodology.validate().is_ok());
        }
        assert!(find(&lines, "ichef").is_ok());
        assert!(
            find(&lines, "nope")
                .unwrap_err()
                .0
                .contains("ichef, beauty, default")
        );
        let ichef = find(&lines, "ichef").unwrap();
        assert_eq!(ichef.case_prefix, "IC");
        assert_eq!(ichef.form.len(), 4);
        assert!(ichef.form[0].required && ichef.form[0].options.len() == 6);
        assert!(!ichef.form[1].required, "required defaults to false");
        assert!(
            ichef.stt_prompt().unwrap().contains("客立樂"),
            "the vocabulary is the prompt"
        );
        assert_eq!(
            ichef.methodology,
            Methodology::default(),
            "defaults when absent"
        );
        let default = find(&lines, "default").unwrap();
        assert_eq!(default.stt_prompt(), None, "nothing to prompt with");
        assert!(builtin_file("beauty").unwrap().contains("id = \"beauty\""));
    }

    const FITNESS: &str = r#"
id = "fitness"
display_name = "FitDesk"
case_prefix = "FT"
language = "en"
vocabulary = "FitDesk, GymPro, Zumba"
competitors = ["GymPro"]

[methodology]
pain_weight = 40
decision_weight = 20

[lexicon]
own_products = ["FitDesk"]

[[form]]
id = "member_count"
label = "Members"
required = true
"#;

    #[test]
    fn a_team_folder_adds_and_overrides_lines() {
        let ichef = builtin_file("ichef").unwrap().replace(
            "display_name = { zh-TW = \"iCHEF 餐飲\", en = \"iCHEF restaurants\" }",
            "display_name = \"iCHEF Taiwan\"",
        );
        let lines = with_files(&[
            ("lines/fitness.toml".into(), FITNESS.into()),
            ("lines/ichef.toml".into(), ichef),
        ])
        .unwrap();
        assert_eq!(lines.len(), 4);
        let fitness = find(&lines, "fitness").unwrap();
        assert_eq!(fitness.stt_language, "en", "from the language");
        assert_eq!(fitness.methodology.pain_weight, 40);
        assert_eq!(fitness.methodology.champion_weight, 25, "the rest default");
        assert_eq!(
            fitness.stt_prompt().as_deref(),
            Some("FitDesk, GymPro, Zumba")
        );
        // A name given in one language serves every reader.
        let ichef = find(&lines, "ichef").unwrap();
        assert_eq!(ichef.display_name.get("zh-TW"), "iCHEF Taiwan");
        assert_eq!(ichef.display_name.get("en"), "iCHEF Taiwan");
    }

    #[test]
    fn texts_are_read_in_the_readers_language() {
        let lines = builtin();
        let beauty = find(&lines, "beauty").unwrap();
        assert_eq!(beauty.display_name.get("zh-TW"), "美業");
        assert_eq!(beauty.display_name.get("en"), "Beauty");
        assert_eq!(
            beauty.display_name.get("zh-Hant"),
            "美業",
            "same primary language"
        );
        assert_eq!(beauty.display_name.get("ja"), "Beauty", "else English");
        let field = &beauty.form[0];
        assert_eq!(field.label.get("en"), "Type of salon");
        assert_eq!(field.options[0].label.get("zh-TW"), "美髮");
        // Every built-in line speaks both languages everywhere a person reads it.
        for line in builtin() {
            for text in std::iter::once(&line.display_name)
                .chain(line.form.iter().map(|f| &f.label))
                .chain(
                    line.form
                        .iter()
                        .flat_map(|f| f.options.iter().map(|o| &o.label)),
                )
            {
                // (A number range says the same in every language.)
                if !text.get("en").chars().any(char::is_alphabetic) {
                    continue;
                }
                let mut langs = text.languages();
                langs.sort();
                assert_eq!(langs, vec!["en", "zh-TW"], "{}: {text:?}", line.id);
            }
        }
        // A file's text round-trips as it was written.
        let plain: LocalText =
            toml::from_str::<std::collections::BTreeMap<String, LocalText>>("x = \"Solo\"")
                .unwrap()
                .remove("x")
                .unwrap();
        assert_eq!(plain, LocalText::plain("Solo"));
    }

    #[test]
    fn a_bad_file_is_refused_with_its_line_and_reason() {
        let cases = [
            (
                "id = \"x\"\ncase_prefix = \"XX\"\nlanguage = \"en\"\ncompetitors = [\"a\"\n",
                ":4",
                "array",
            ),
            (
                "id = \"x\"\ncase_prefix = \"XX\"\nlanguage = \"en\"\ncompetitor = []\n",
                ":4",
                "competitor",
            ),
            (
                "id = \"x\"\ncase_prefix = \"xx1\"\nlanguage = \"en\"\n",
                ":2",
                "prefix",
            ),
            (
                "id = \"x\"\ncase_prefix = \"XX\"\nlanguage = \"fr\"\n",
                ":3",
                "zh-TW",
            ),
            (
                "id = \"X Y\"\ncase_prefix = \"XX\"\nlanguage = \"en\"\n",
                ":1",
                "lower-case",
            ),
            (
                "id = \"x\"\ncase_prefix = \"XX\"\nlanguage = \"en\"\n[methodology]\npain_weight = 90\n",
                ":5",
                "100",
            ),
        ];
        for (text, line, reason) in cases {
            let err = parse_line("lines/x.toml", text).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("lines/x.toml{line}")) && err.contains(reason),
                "{text:?} gave {err:?}"
            );
        }
        let errors = with_files(&[
            ("a.toml".into(), FITNESS.into()),
            ("b.toml".into(), FITNESS.replace("\"fitness\"", "\"gym\"")),
        ])
        .unwrap_err();
        assert!(
            errors[0].reason.contains("FT") && errors[0].reason.contains("collide"),
            "{errors:?}"
        );
    }
}
