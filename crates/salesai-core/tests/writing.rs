//! What the rules engine writes, checked as properties over every shipped call (issue #30):
//! the four labelled sets in `eval/`, each call in its product line's language. Not a
//! snapshot: a rule a reader would state.
//!
//! - No written sentence repeats a transcript line beyond 12 characters (quotes live in their
//!   own fields: evidence, objections).
//! - No doubled punctuation.
//! - English sentences start with a capital letter.
//! - The text is in the line's language.
//! - Calls that agreed different things get different next actions.
//! - A call below the strong band always gets something to improve.
//! - The follow-up message to the customer carries none of the team's internal words.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use salesai_core::analysis::AgentOutputs;
use salesai_core::analysis::derive::derive_in;
use salesai_core::analysis::rules::{RulesInput, analyze};
use salesai_core::language::Language;
use salesai_core::product_line::{ProductLine, builtin};
use salesai_core::transcript::{Segment, parse_transcript};

struct Call {
    name: String,
    language: Language,
    segments: Vec<Segment>,
    outputs: AgentOutputs,
    overall: u8,
}

fn calls() -> Vec<Call> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../eval");
    let lines = builtin();
    let mut out = Vec::new();
    for set in ["calls", "holdout", "holdout2", "fresh"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(set))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        for labels in files {
            let text = std::fs::read_to_string(&labels).unwrap();
            let table: toml::Table = toml::from_str(&text).unwrap();
            let line_id = table
                .get("product_line")
                .and_then(|v| v.as_str())
                .unwrap_or("default");
            let line: &ProductLine = lines.iter().find(|l| l.id == line_id).unwrap();
            let stem = labels.with_extension("");
            let transcript = ["txt", "vtt", "srt", "json"]
                .iter()
                .map(|e| stem.with_extension(e))
                .find(|p| p.exists())
                .unwrap();
            let (_, segments) =
                parse_transcript(&std::fs::read_to_string(&transcript).unwrap()).unwrap();
            let metadata = table
                .get("form")
                .map(|f| serde_json::to_value(f).unwrap())
                .unwrap_or_else(|| serde_json::json!({}));
            let mut metadata = metadata;
            metadata["_call_date"] = serde_json::json!("2026-12-04");
            let language = line.rules_language();
            let outputs = analyze(&RulesInput {
                segments: &segments,
                competitors: &line.competitors,
                metadata: &metadata,
                language,
                lexicon: &line.lexicon,
            });
            let overall = derive_in(&outputs, &line.methodology, language)
                .overall
                .value();
            out.push(Call {
                name: format!("{set}/{}", stem.file_name().unwrap().to_string_lossy()),
                language,
                segments,
                outputs,
                overall,
            });
        }
    }
    assert!(out.len() >= 70, "{} calls", out.len());
    out
}

/// Every field the engine writes for people to read, besides quotes.
fn written(o: &AgentOutputs) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("next action", o.seller.next_action.action.clone()),
        ("meeting notes", o.summary.meeting_notes_markdown.clone()),
        ("follow-up", o.summary.follow_up_message.clone()),
    ];
    if let Some(d) = &o.seller.next_action.deadline {
        out.push(("deadline", d.clone()));
    }
    if let Some(p) = &o.buyer.pain.main_pain {
        out.push(("main pain", p.clone()));
    }
    for s in &o.seller.strengths {
        out.push(("strength", s.clone()));
    }
    for s in &o.seller.improvements {
        out.push(("improvement", s.clone()));
    }
    for s in &o.coach.coaching_notes {
        out.push(("coaching note", s.clone()));
    }
    for s in &o.crm.next_steps {
        out.push(("next step", s.clone()));
    }
    out
}

fn cjk(text: &str) -> usize {
    text.chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .count()
}

#[test]
fn what_the_engine_writes_reads_like_a_colleague_wrote_it() {
    let calls = calls();
    let mut wrong = Vec::new();
    for call in &calls {
        let windows: HashSet<String> = call
            .segments
            .iter()
            .flat_map(|s| {
                let chars: Vec<char> = s.text.chars().collect();
                (0..chars.len().saturating_sub(12))
                    .map(move |i| chars[i..i + 13].iter().collect::<String>())
                    .collect::<Vec<_>>()
            })
            .collect();
        for (field, text) in written(&call.outputs) {
            let chars: Vec<char> = text.chars().collect();
            // Chinese: 13 characters in a row; English: 5 words in a row (13 characters of
            // English are two common words, which any two texts share).
            let copied = match call.language {
                Language::ZhTw => (0..chars.len().saturating_sub(12))
                    .map(|i| chars[i..i + 13].iter().collect::<String>())
                    .find(|w| cjk(w) >= 8 && windows.contains(w)),
                Language::En => {
                    let words = |t: &str| -> Vec<String> {
                        t.split(|c: char| !c.is_alphanumeric() && c != '\'')
                            .filter(|w| !w.is_empty())
                            .map(str::to_lowercase)
                            .collect()
                    };
                    let said: HashSet<String> = call
                        .segments
                        .iter()
                        .flat_map(|s| {
                            let w = words(&s.text);
                            (0..w.len().saturating_sub(4))
                                .map(move |i| w[i..i + 5].join(" "))
                                .collect::<Vec<_>>()
                        })
                        .collect();
                    let w = words(&text);
                    (0..w.len().saturating_sub(4))
                        .map(|i| w[i..i + 5].join(" "))
                        .find(|x| said.contains(x))
                }
            };
            if let Some(copied) = copied {
                wrong.push(format!(
                    "{}: {field} copies the transcript ({copied:?}): {text}",
                    call.name
                ));
            }
            for doubled in [
                "。。", "，，", "；；", "：：", "，。", "。，", "..", ",,", ";;", "!!", "??", " ,",
                " .",
            ] {
                if text.contains(doubled) {
                    wrong.push(format!("{}: {field} has {doubled:?}: {text}", call.name));
                }
            }
            match call.language {
                Language::En => {
                    let sentences = text
                        .lines()
                        .map(|l| l.trim_start_matches("- ").trim_start_matches("## "))
                        .filter(|l| !l.is_empty());
                    for s in sentences {
                        if s.chars().next().is_some_and(|c| c.is_lowercase()) {
                            wrong.push(format!("{}: {field} starts in lower case: {s}", call.name));
                        }
                    }
                    // Names and times said in Chinese may be cited; the sentence is English.
                    let share = cjk(&text) as f64 / text.chars().count().max(1) as f64;
                    if share > 0.25 {
                        wrong.push(format!("{}: {field} is not English: {text}", call.name));
                    }
                }
                Language::ZhTw => {
                    if cjk(&text) == 0 {
                        wrong.push(format!("{}: {field} is not Chinese: {text}", call.name));
                    }
                }
            }
        }
        let lost = call.outputs.crm.stage == "closed_lost";
        if call.overall < 75 && !lost && call.outputs.seller.improvements.is_empty() {
            wrong.push(format!(
                "{}: scored {} and nothing to improve",
                call.name, call.overall
            ));
        }
        let follow_up = call.outputs.summary.follow_up_message.to_lowercase();
        for internal in [
            "lost",
            "落選",
            "失單",
            "記錄",
            "reason",
            "rules",
            "pdcm",
            "meddic",
            "qualification",
            "champion",
            "痛點",
            "決策者",
            "strategy",
            "keep warm",
            "close now",
            "p1",
            "m2",
        ] {
            if follow_up.contains(internal) {
                wrong.push(format!(
                    "{}: the follow-up to the customer says {internal:?}: {follow_up}",
                    call.name
                ));
            }
        }
    }
    // Calls that agreed different things read differently.
    let mut seen: Vec<(&str, &str, String)> = Vec::new();
    for call in &calls {
        let Some(step) = call.outputs.crm.next_steps.first() else {
            continue;
        };
        let action = call.outputs.seller.next_action.action.as_str();
        if let Some((other, _, _)) = seen.iter().find(|(_, a, s)| *a == action && s != step) {
            wrong.push(format!(
                "{} and {other} agreed different steps but read the same: {action}",
                call.name
            ));
        }
        seen.push((call.name.as_str(), action, step.clone()));
    }
    assert!(
        wrong.is_empty(),
        "{}\n({} findings)",
        wrong.join("\n"),
        wrong.len()
    );
}

#[test]
fn spin_spreads_over_the_scale() {
    let calls = calls();
    let mut values: HashSet<u8> = HashSet::new();
    let mut problem_zero = 0;
    for call in &calls {
        let spin = &call.outputs.seller.spin;
        for v in [
            spin.situation.value(),
            spin.problem.value(),
            spin.implication.value(),
            spin.need_payoff.value(),
        ] {
            values.insert(v);
        }
        if spin.problem.value() == 0 {
            problem_zero += 1;
        }
    }
    assert!(
        values.len() >= 12,
        "SPIN takes only {} values over {} calls: {values:?}",
        values.len(),
        calls.len()
    );
    assert!(
        problem_zero * 3 < calls.len(),
        "Problem is 0 on {problem_zero} of {} calls",
        calls.len()
    );
}
