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

use std::collections::{BTreeMap, BTreeSet};

use super::Agent;
use super::engine::AgentContext;
use crate::transcript::{Segment, clock};

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

/// The transcript as lines an LLM reads: `[m:ss] Speaker: text`.
pub fn render_transcript(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        out.push('[');
        out.push_str(&clock(s.start_ms));
        out.push_str(&format!(" {}ms] ", s.start_ms));
        if let Some(speaker) = &s.speaker {
            out.push_str(speaker);
            out.push_str(": ");
        }
        out.push_str(&s.text);
        out.push('\n');
    }
    out
}

/// Whether an agent reads the whole transcript.
pub fn reads_full_transcript(agent: Agent) -> bool {
    matches!(agent, Agent::Context | Agent::Buyer)
}

/// The lines a downstream agent reads: every line earlier agents quoted (by start time) with
/// one neighbour on each side, plus the opening and the closing lines, capped at a third of
/// the transcript's characters.
pub fn condensed(segments: &[Segment], prior: &BTreeMap<Agent, serde_json::Value>) -> Vec<Segment> {
    let mut quoted = BTreeSet::new();
    for value in prior.values() {
        collect_starts(value, &mut quoted);
    }
    let total: usize = segments.iter().map(|s| s.text.chars().count()).sum();
    let budget = total / 3;
    let mut keep = BTreeSet::new();
    for (i, s) in segments.iter().enumerate() {
        if quoted.contains(&s.start_ms) {
            keep.extend(i.saturating_sub(1)..=(i + 1).min(segments.len() - 1));
        }
    }
    let n = segments.len();
    keep.extend(0..n.min(3));
    keep.extend(n.saturating_sub(5)..n);
    let mut used = 0;
    let mut out = Vec::new();
    for i in keep {
        let len = segments[i].text.chars().count();
        if used + len > budget && !out.is_empty() {
            continue;
        }
        used += len;
        out.push(segments[i].clone());
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
    let lines = if reads_full_transcript(agent) {
        context.segments.to_vec()
    } else {
        condensed(context.segments, context.prior)
    };
    let transcript = render_transcript(&lines);
    let transcript_chars = lines.iter().map(|s| s.text.chars().count()).sum();
    let mut user = String::new();
    user.push_str("## Product\n");
    user.push_str(prompts.get("lines", &context.product_line.id).trim());
    user.push_str("\n\n## Upload form\n");
    user.push_str(&serde_json::to_string(context.metadata).unwrap_or_default());
    if !context.prior.is_empty() {
        user.push_str("\n\n## Earlier agents' findings\n");
        for (a, v) in context.prior {
            user.push_str(&format!("### {}\n{}\n", a.as_str(), v));
        }
    }
    user.push_str(if reads_full_transcript(agent) {
        "\n\n## Transcript\n"
    } else {
        "\n\n## Transcript (the lines quoted above, with their neighbours, and the opening and closing)\n"
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
