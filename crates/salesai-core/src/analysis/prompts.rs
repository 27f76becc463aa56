//! Prompts are data: one Markdown file per agent per language, plus a product description per
//! product line, embedded in the binary and overridable from a folder: `<dir>/<product line>/
//! <agent>.md` for one product line, `<dir>/<language>/<agent>.md` for every line in that
//! language, `<dir>/lines/<product line>.md` for the product description.
//!
//! This module also decides what each agent is sent. Keeping it lean is a product rule: the
//! original sent the whole transcript to every agent (7 times per analysis). Here only the
//! context and buyer agents read the whole transcript; the others read the lines that earlier
//! agents quoted, with their neighbours, capped at a third of the transcript — at most
//! 2 + 4 × ⅓ ≈ 3.3 transcripts per analysis, against the target of 4.
//!
//! Lines are sent as `[n]Speaker: text` with `n` the line's number (a `[m:ss NNNNNms] ` prefix
//! doubled short Chinese lines); agents cite `start_ms` as that number and
//! [`resolve_line_refs`] maps it back to milliseconds. Earlier agents' findings are sent
//! compacted ([`compact_findings`]): the quoted lines are in the transcript already.

use std::collections::{BTreeMap, BTreeSet};

use super::Agent;
use super::engine::AgentContext;
use crate::transcript::Segment;

/// Embedded prompt files: (language, name, text).
const EMBEDDED: &[(&str, &str, &str)] = &[
    ("en", "system", include_str!("../../prompts/en/system.md")),
    ("en", "context", include_str!("../../prompts/en/context.md")),
    ("en", "buyer", include_str!("../../prompts/en/buyer.md")),
    ("en", "seller", include_str!("../../prompts/en/seller.md")),
    ("en", "crm", include_str!("../../prompts/en/crm.md")),
    ("en", "summary", include_str!("../../prompts/en/summary.md")),
    ("en", "coach", include_str!("../../prompts/en/coach.md")),
    (
        "zh-TW",
        "system",
        include_str!("../../prompts/zh-TW/system.md"),
    ),
    (
        "zh-TW",
        "context",
        include_str!("../../prompts/zh-TW/context.md"),
    ),
    (
        "zh-TW",
        "buyer",
        include_str!("../../prompts/zh-TW/buyer.md"),
    ),
    (
        "zh-TW",
        "seller",
        include_str!("../../prompts/zh-TW/seller.md"),
    ),
    ("zh-TW", "crm", include_str!("../../prompts/zh-TW/crm.md")),
    (
        "zh-TW",
        "summary",
        include_str!("../../prompts/zh-TW/summary.md"),
    ),
    (
        "zh-TW",
        "coach",
        include_str!("../../prompts/zh-TW/coach.md"),
    ),
    (
        "lines",
        "ichef",
        include_str!("../../prompts/lines/ichef.md"),
    ),
    (
        "lines",
        "beauty",
        include_str!("../../prompts/lines/beauty.md"),
    ),
    (
        "lines",
        "default",
        include_str!("../../prompts/lines/default.md"),
    ),
];

/// Prompt texts: the embedded ones, with overrides on top.
#[derive(Debug, Clone, Default)]
pub struct Prompts {
    overrides: BTreeMap<(String, String), String>,
}

impl Prompts {
    /// The embedded prompts only.
    pub fn embedded() -> Prompts {
        Prompts::default()
    }

    /// Adds an override for `(language or "lines", name)`, e.g. `("zh-TW", "buyer")`.
    pub fn with_override(mut self, group: &str, name: &str, text: String) -> Prompts {
        self.overrides
            .insert((group.to_owned(), name.to_owned()), text);
        self
    }

    /// The prompt `name` for a product line: its own override, else its language's.
    pub fn for_line(&self, line: &str, language: &str, name: &str) -> String {
        match self.overrides.get(&(line.to_owned(), name.to_owned())) {
            Some(text) => text.clone(),
            None => self.get(language, name),
        }
    }

    /// The text for `(group, name)`: an override, else the embedded file, else the English
    /// one (a product line without a description gets the `default` one).
    pub fn get(&self, group: &str, name: &str) -> String {
        if let Some(text) = self.overrides.get(&(group.to_owned(), name.to_owned())) {
            return text.clone();
        }
        let embedded = |g: &str, n: &str| {
            EMBEDDED
                .iter()
                .find(|(eg, en, _)| *eg == g && *en == n)
                .map(|(_, _, t)| (*t).to_owned())
        };
        let fallback = if group == "lines" {
            embedded("lines", "default")
        } else {
            embedded("en", name)
        };
        embedded(group, name).or(fallback).unwrap_or_default()
    }
}

/// The transcript as lines an LLM reads: `[n]Speaker:text`, `n` the line's number in the
/// whole transcript (so a condensed transcript keeps the numbers of the full one); a line by
/// the same speaker as the line before carries no name. Speakers are sent as letters (`A`,
/// `B`, …) with a legend first.
pub fn render_transcript(segments: &[Segment]) -> String {
    render_lines(segments, &(0..segments.len()).collect::<Vec<_>>())
}

/// [`render_transcript`] for the lines at `indices` of `segments`.
pub fn render_lines(segments: &[Segment], indices: &[usize]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for i in indices {
        if let Some(name) = segments[*i].speaker.as_deref()
            && !names.contains(&name)
        {
            names.push(name);
        }
    }
    // Speakers as one letter each (A, B, …) with a legend: a name on every line costs more
    // than the short lines of a Chinese call say.
    let short = !names.is_empty();
    let mut out = String::new();
    if short {
        out.push_str("Speakers: ");
        let legend: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{} = {n}", speaker_code(i)))
            .collect();
        out.push_str(&legend.join(", "));
        out.push('\n');
    }
    let mut previous: Option<(usize, Option<&str>)> = None;
    for i in indices {
        let s = &segments[*i];
        out.push('[');
        out.push_str(&i.to_string());
        out.push(']');
        // The same speaker as the line just before says nothing new: the name is left out.
        let repeated =
            previous.is_some_and(|(p, name)| p + 1 == *i && name == s.speaker.as_deref());
        previous = Some((*i, s.speaker.as_deref()));
        if repeated {
            out.push_str(&s.text);
            out.push('\n');
            continue;
        }
        if let Some(speaker) = s.speaker.as_deref() {
            if short {
                let n = names.iter().position(|x| *x == speaker).unwrap_or(0);
                out.push_str(&speaker_code(n));
            } else {
                out.push_str(speaker);
            }
            out.push(':');
        }
        out.push_str(&s.text);
        out.push('\n');
    }
    out
}

/// `A`…`Z`, then `S27`, `S28`, … for a speaker's position in the legend.
fn speaker_code(i: usize) -> String {
    match u8::try_from(i) {
        Ok(n) if n < 26 => char::from(b'A' + n).to_string(),
        _ => format!("S{}", i + 1),
    }
}

/// Maps every `start_ms` an agent wrote as a line number (as the transcript is sent) back to
/// that line's start in milliseconds. A value that is not a line number but is a real line start
/// (a model that answered in milliseconds anyway) is kept.
pub fn resolve_line_refs(value: &mut serde_json::Value, segments: &[Segment]) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "start_ms" {
                    if let Some(n) = v.as_u64()
                        && let Some(segment) = usize::try_from(n).ok().and_then(|i| segments.get(i))
                        && !segments.iter().any(|s| s.start_ms == n && n != 0)
                    {
                        *v = serde_json::Value::from(segment.start_ms);
                    }
                } else {
                    resolve_line_refs(v, segments);
                }
            }
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .for_each(|v| resolve_line_refs(v, segments)),
        _ => {}
    }
}

/// Earlier agents' findings as later agents read them: quotes dropped (their lines are in the
/// transcript sent, found by `start_ms`), long texts cut, empty values left out.
pub fn compact_findings(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .filter(|(k, v)| {
                    k.as_str() != "quote"
                        && !v.is_null()
                        && !(v.is_array() && v.as_array().is_some_and(Vec::is_empty))
                })
                .map(|(k, v)| (k.clone(), compact_findings(v)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().take(4).map(compact_findings).collect())
        }
        serde_json::Value::String(text) if text.chars().count() > 100 => {
            let mut cut: String = text.chars().take(99).collect();
            cut.push('…');
            serde_json::Value::String(cut)
        }
        other => other.clone(),
    }
}

/// Whether an agent reads the whole transcript.
pub fn reads_full_transcript(agent: Agent) -> bool {
    matches!(agent, Agent::Context | Agent::Buyer)
}

/// The lines a downstream agent reads: every line earlier agents quoted (by start time) with
/// one neighbour on each side, plus the opening and the closing lines, capped at a third of
/// the transcript's characters.
pub fn condensed(segments: &[Segment], prior: &BTreeMap<Agent, serde_json::Value>) -> Vec<Segment> {
    condensed_indices(segments, prior)
        .into_iter()
        .map(|i| segments[i].clone())
        .collect()
}

/// The indices of the lines [`condensed`] keeps. Quoted starts may be real milliseconds or
/// line numbers (as agents cite them); both select the line.
pub fn condensed_indices(
    segments: &[Segment],
    prior: &BTreeMap<Agent, serde_json::Value>,
) -> Vec<usize> {
    let mut quoted = BTreeSet::new();
    for value in prior.values() {
        collect_starts(value, &mut quoted);
    }
    let total: usize = segments.iter().map(|s| s.text.chars().count()).sum();
    // A third of the transcript, counting each line's `[n]Speaker:` prefix too.
    let budget = total / 3;
    let mut keep = BTreeSet::new();
    for (i, s) in segments.iter().enumerate() {
        if quoted.contains(&s.start_ms) || quoted.contains(&(i as u64)) {
            keep.extend(i.saturating_sub(1)..=(i + 1).min(segments.len() - 1));
        }
    }
    let n = segments.len();
    keep.extend(0..n.min(3));
    keep.extend(n.saturating_sub(5)..n);
    let mut used = 0;
    let mut out = Vec::new();
    for i in keep {
        let prefix = 4 + segments[i]
            .speaker
            .as_deref()
            .map_or(0, |n| n.chars().count().min(3));
        let len = segments[i].text.chars().count() + prefix;
        if used + len > budget && !out.is_empty() {
            continue;
        }
        used += len;
        out.push(i);
    }
    out
}

fn collect_starts(value: &serde_json::Value, into: &mut BTreeSet<u64>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "start_ms" {
                    if let Some(n) = v.as_u64() {
                        into.insert(n);
                    }
                } else {
                    collect_starts(v, into);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_starts(v, into)),
        _ => {}
    }
}

/// The system and user messages for one agent. `schema_inline` puts the JSON schema in the
/// user message (for servers without structured output).
pub fn messages(
    prompts: &Prompts,
    agent: Agent,
    context: &AgentContext<'_>,
    schema_inline: bool,
) -> (String, String, usize) {
    let language = if context.product_line.language.starts_with("zh") {
        "zh-TW"
    } else {
        "en"
    };
    let line = context.product_line.id.as_str();
    let system = format!(
        "{}\n\n{}",
        prompts.for_line(line, language, "system").trim(),
        prompts.for_line(line, language, agent.as_str()).trim()
    );
    let lines: Vec<usize> = if reads_full_transcript(agent) {
        (0..context.segments.len()).collect()
    } else {
        condensed_indices(context.segments, context.prior)
    };
    let transcript = render_lines(context.segments, &lines);
    let transcript_chars = lines
        .iter()
        .map(|i| context.segments[*i].text.chars().count())
        .sum();
    let mut user = String::new();
    user.push_str("## Product\n");
    user.push_str(prompts.get("lines", &context.product_line.id).trim());
    user.push_str("\n\n## Upload form\n");
    user.push_str(&serde_json::to_string(context.metadata).unwrap_or_default());
    if !context.prior.is_empty() {
        user.push_str("\n\n## Earlier agents' findings\n");
        for (a, v) in context.prior {
            user.push_str(&format!("### {}\n{}\n", a.as_str(), compact_findings(v)));
        }
    }
    user.push_str(if reads_full_transcript(agent) {
        "\n\n## Transcript ([n] is the line number: give it as start_ms)\n"
    } else {
        "\n\n## Transcript (lines cited above, their neighbours, the opening and closing; [n] is the line number: give it as start_ms)\n"
    });
    user.push_str(&transcript);
    if schema_inline {
        user.push_str(
            "\n## Answer\nOne JSON object matching this JSON schema, and nothing else:\n",
        );
        user.push_str(&super::output_schema(agent).to_string());
    }
    (system, user, transcript_chars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(i: u64, text: &str) -> Segment {
        Segment {
            speaker: Some("A".into()),
            start_ms: i * 1000,
            end_ms: i * 1000 + 900,
            text: text.into(),
            ..Default::default()
        }
    }

    #[test]
    fn every_agent_has_a_prompt_in_both_languages() {
        let p = Prompts::embedded();
        for agent in super::super::AGENTS {
            assert!(!p.get("en", agent.as_str()).is_empty());
            assert!(!p.get("zh-TW", agent.as_str()).is_empty());
        }
        assert!(p.get("zh-TW", "system").contains("繁體中文"));
        assert!(p.get("lines", "ichef").contains("iCHEF"));
        let custom = Prompts::embedded().with_override("en", "buyer", "custom buyer".into());
        assert_eq!(custom.get("en", "buyer"), "custom buyer");
        let per_line = Prompts::embedded().with_override("beauty", "coach", "beauty coach".into());
        assert_eq!(
            per_line.for_line("beauty", "zh-TW", "coach"),
            "beauty coach"
        );
        assert_eq!(
            per_line.for_line("ichef", "zh-TW", "coach"),
            per_line.get("zh-TW", "coach"),
            "other lines keep theirs"
        );
    }

    #[test]
    fn downstream_agents_read_at_most_a_third() {
        let segments: Vec<Segment> = (0..100)
            .map(|i| seg(i, "some words said in the call here"))
            .collect();
        let mut prior = BTreeMap::new();
        prior.insert(
            Agent::Buyer,
            serde_json::json!({ "pain": { "evidence": [{ "quote": "x", "start_ms": 50_000 }] } }),
        );
        let lines = condensed(&segments, &prior);
        assert!(
            lines.iter().any(|s| s.start_ms == 50_000),
            "quoted line kept"
        );
        assert!(
            lines.iter().any(|s| s.start_ms == 49_000)
                && lines.iter().any(|s| s.start_ms == 51_000),
            "neighbours kept"
        );
        let chars: usize = lines.iter().map(|s| s.text.len()).sum();
        let total: usize = segments.iter().map(|s| s.text.len()).sum();
        assert!(chars * 3 <= total, "{chars} of {total}");
        assert!(
            lines.windows(2).all(|w| w[0].start_ms < w[1].start_ms),
            "in order"
        );
    }
}
