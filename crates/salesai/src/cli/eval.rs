//! `salesai eval DIR`: runs the analysis over a folder of labelled calls and reports which
//! labelled facts were found, how well the overall scores order the calls by labelled deal
//! strength, schema validity, tokens, and how many transcripts' worth of characters an LLM
//! would be sent. Exits 1 below the floors given, so CI can hold the line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use salesai_core::analysis::derive::derive_in;
use salesai_core::analysis::engine::{AgentContext, Analyzer, RulesAnalyzer, run_all};
use salesai_core::analysis::eval::{FACT_KINDS, FactResult, Labels, check, pairwise_agreement};
use salesai_core::analysis::prompts::{Prompts, messages};
use salesai_core::analysis::rules::Language;
use salesai_core::analysis::{AGENTS, Agent, AgentOutputs, validate_output};
use salesai_core::product_line::ProductLine;
use salesai_core::transcript::{Segment, parse_transcript};
use serde::Serialize;

use crate::config::Config;

/// Options of `eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A folder of labelled calls: NAME.toml labels beside NAME.txt|.vtt|.srt|.json (see
    /// docs/EVAL.md)
    pub dir: PathBuf,
    /// Which engine: `rules` (offline), or `configured` (the LLM when one is configured)
    #[arg(long, default_value = "configured", value_parser = ["rules", "configured"])]
    pub engine: String,
    /// Fail (exit 1) when fewer than this share of labelled facts are found
    #[arg(long)]
    pub min_facts: Option<f64>,
    /// Fail (exit 1) when the pairwise ordering agreement is below this share
    #[arg(long)]
    pub min_order: Option<f64>,
    /// Fail (exit 1) when the prompts for a long call of either language exceed this many
    /// transcripts' worth of characters
    #[arg(long)]
    pub max_prompt_ratio: Option<f64>,
    /// Print every missed fact
    #[arg(long, short)]
    pub verbose: bool,
    /// Print JSON instead of the report
    #[arg(long)]
    pub json: bool,
}

/// One call's outcome.
#[derive(Debug, Serialize)]
struct CallReport {
    name: String,
    title: Option<String>,
    language: &'static str,
    strength: u8,
    overall: i64,
    qualification: String,
    facts: Vec<FactResult>,
    schema_valid: bool,
    tokens: i64,
    error: Option<String>,
}

/// The whole run.
#[derive(Debug, Serialize)]
struct Report {
    engine: String,
    calls: Vec<CallReport>,
    facts_found: usize,
    facts_total: usize,
    facts_share: f64,
    by_fact: BTreeMap<&'static str, (usize, usize)>,
    by_language: BTreeMap<&'static str, (usize, usize, f64)>,
    pairwise_agreement: f64,
    schema_valid: usize,
    tokens: i64,
    prompt_ratio: BTreeMap<&'static str, f64>,
}

fn language_name(language: Language) -> &'static str {
    language.code()
}

/// The labelled calls of a folder: (name, labels, transcript path), sorted by name.
fn labelled_calls(dir: &Path) -> anyhow::Result<Vec<(String, Labels, PathBuf)>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the eval folder {}", dir.display()))?;
    let mut calls = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let labels: Labels =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        anyhow::ensure!(
            (1..=5).contains(&labels.strength),
            "{}: strength must be 1 (lost) to 5 (closing), not {}",
            path.display(),
            labels.strength
        );
        let transcript = ["txt", "vtt", "srt", "json"]
            .iter()
            .map(|ext| path.with_extension(ext))
            .find(|p| p.is_file())
            .with_context(|| {
                format!(
                    "{}: no transcript beside it ({name}.txt, .vtt, .srt or .json)",
                    path.display()
                )
            })?;
        calls.push((name, labels, transcript));
    }
    anyhow::ensure!(
        !calls.is_empty(),
        "no labelled calls (NAME.toml beside NAME.txt) in {}",
        dir.display()
    );
    calls.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(calls)
}

/// Characters an LLM would be sent for one analysis (every agent's system and user message,
/// with the given outputs as the earlier agents' findings), per transcript character.
pub fn prompt_ratio(
    prompts: &Prompts,
    segments: &[Segment],
    metadata: &serde_json::Value,
    line: &ProductLine,
    outputs: &AgentOutputs,
) -> f64 {
    let value = serde_json::to_value(outputs).unwrap_or_default();
    let transcript: usize = segments.iter().map(|s| s.text.chars().count()).sum();
    let mut sent = 0usize;
    for agent in AGENTS {
        let prior: BTreeMap<Agent, serde_json::Value> = agent
            .needs()
            .iter()
            .filter_map(|need| value.get(need.as_str()).map(|v| (*need, v.clone())))
            .collect();
        let context = AgentContext {
            segments,
            metadata,
            product_line: line,
            prior: &prior,
        };
        let (system, user, _) = messages(prompts, agent, &context, false);
        sent += system.chars().count() + user.chars().count();
    }
    sent as f64 / transcript.max(1) as f64
}

/// Runs `eval`.
pub async fn run(config: &Config, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let calls = labelled_calls(&args.dir)?;
    let lines = crate::runtime::product_lines(config)?;
    let prompts = crate::runtime::load_prompts(config)?;
    let analyzer: Arc<dyn Analyzer> = match (&config.llm, args.engine.as_str()) {
        (Some(llm), "configured") => Arc::new(salesai_providers::llm::LlmAnalyzer::new(
            llm.clone(),
            prompts.clone(),
        )),
        _ => Arc::new(RulesAnalyzer),
    };
    let mut reports = Vec::new();
    // Long calls per language: every call of the language one after another.
    let mut long: BTreeMap<&'static str, (Vec<Segment>, ProductLine)> = BTreeMap::new();
    for (name, labels, path) in &calls {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let (_, segments) =
            parse_transcript(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let line_id = labels.product_line.as_deref().unwrap_or("default");
        let line = lines
            .iter()
            .find(|l| l.id == line_id)
            .with_context(|| format!("{name}: no product line {line_id}"))?;
        let metadata = labels.form.clone().unwrap_or(serde_json::json!({}));
        let language = Language::detect(&segments);
        let (outputs, runs) = match run_all(analyzer.as_ref(), &segments, &metadata, line).await {
            Ok(done) => done,
            Err(e) => {
                reports.push(CallReport {
                    name: name.clone(),
                    title: labels.title.clone(),
                    language: language_name(language),
                    strength: labels.strength,
                    overall: 0,
                    qualification: "failed".into(),
                    facts: Vec::new(),
                    schema_valid: false,
                    tokens: 0,
                    error: Some(e.to_string()),
                });
                continue;
            }
        };
        let derived = derive_in(&outputs, &line.methodology, line.rules_language());
        let schema_valid = runs.iter().all(|r| {
            AGENTS
                .iter()
                .find(|a| a.as_str() == r.agent)
                .is_some_and(|a| validate_output(*a, &r.output).is_ok())
        });
        let tokens = runs
            .iter()
            .map(|r| r.prompt_tokens.unwrap_or(0) + r.completion_tokens.unwrap_or(0))
            .sum();
        let entry = long
            .entry(language_name(language))
            .or_insert_with(|| (Vec::new(), line.clone()));
        let offset = entry.0.last().map_or(0, |s| s.end_ms + 1000);
        entry.0.extend(segments.iter().map(|s| Segment {
            start_ms: s.start_ms + offset,
            end_ms: s.end_ms + offset,
            ..s.clone()
        }));
        reports.push(CallReport {
            name: name.clone(),
            title: labels.title.clone(),
            language: language_name(language),
            strength: labels.strength,
            overall: i64::from(derived.overall.value()),
            qualification: salesai_core::i18n::Label::label(
                &derived.qualification,
                salesai_core::language::Language::En.t(),
            )
            .to_owned(),
            facts: check(labels, &outputs),
            schema_valid,
            tokens,
            error: None,
        });
    }
    let mut prompt_ratio_by_language = BTreeMap::new();
    for (language, (calls_of_language, line)) in &long {
        // A 60-minute call: the language's calls one after another, repeated.
        let mut segments: Vec<Segment> = Vec::new();
        while segments.last().map_or(0, |s| s.end_ms) < 3_600_000 && !calls_of_language.is_empty() {
            let offset = segments.last().map_or(0, |s| s.end_ms + 1000);
            segments.extend(calls_of_language.iter().map(|s| Segment {
                start_ms: s.start_ms + offset,
                end_ms: s.end_ms + offset,
                ..s.clone()
            }));
        }
        let segments = &segments;
        // The findings a long call produces, as the later agents would read them.
        let outputs =
            salesai_core::analysis::rules::analyze(&salesai_core::analysis::rules::RulesInput {
                segments,
                competitors: &line.competitors,
                metadata: &serde_json::json!({}),
                language: line.rules_language(),
                lexicon: &line.lexicon,
            });
        prompt_ratio_by_language.insert(
            *language,
            prompt_ratio(&prompts, segments, &serde_json::json!({}), line, &outputs),
        );
    }
    let report = summarise(analyzer.engine(), reports, prompt_ratio_by_language);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, args.verbose);
    }
    let mut failed = Vec::new();
    if let Some(min) = args.min_facts
        && report.facts_share < min
    {
        failed.push(format!(
            "facts found {:.1} % < {:.1} %",
            report.facts_share * 100.0,
            min * 100.0
        ));
    }
    if let Some(min) = args.min_order
        && report.pairwise_agreement < min
    {
        failed.push(format!(
            "ordering {:.1} % < {:.1} %",
            report.pairwise_agreement * 100.0,
            min * 100.0
        ));
    }
    if let Some(max) = args.max_prompt_ratio {
        for (language, ratio) in &report.prompt_ratio {
            if *ratio > max {
                failed.push(format!("{language} prompts {ratio:.2}× > {max:.2}×"));
            }
        }
    }
    if report.calls.iter().any(|c| c.error.is_some()) {
        failed.push("some calls failed to analyse".into());
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("eval: below the floor: {}", failed.join("; "));
        Ok(ExitCode::FAILURE)
    }
}

fn summarise(
    engine: &str,
    calls: Vec<CallReport>,
    prompt_ratio: BTreeMap<&'static str, f64>,
) -> Report {
    let mut by_fact: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    let mut by_language: BTreeMap<&'static str, (usize, usize, f64)> = BTreeMap::new();
    for call in &calls {
        for fact in &call.facts {
            let e = by_fact.entry(fact.fact).or_default();
            e.1 += 1;
            e.0 += usize::from(fact.found);
            let l = by_language.entry(call.language).or_default();
            l.1 += 1;
            l.0 += usize::from(fact.found);
        }
    }
    for (language, entry) in by_language.iter_mut() {
        let scored: Vec<(u8, i64)> = calls
            .iter()
            .filter(|c| c.language == *language)
            .map(|c| (c.strength, c.overall))
            .collect();
        entry.2 = pairwise_agreement(&scored);
    }
    let facts_found = by_fact.values().map(|v| v.0).sum();
    let facts_total = by_fact.values().map(|v| v.1).sum();
    let scored: Vec<(u8, i64)> = calls.iter().map(|c| (c.strength, c.overall)).collect();
    Report {
        engine: engine.to_owned(),
        facts_found,
        facts_total,
        facts_share: facts_found as f64 / facts_total.max(1) as f64,
        by_fact,
        by_language,
        pairwise_agreement: pairwise_agreement(&scored),
        schema_valid: calls.iter().filter(|c| c.schema_valid).count(),
        tokens: calls.iter().map(|c| c.tokens).sum(),
        prompt_ratio,
        calls,
    }
}

fn print_report(report: &Report, verbose: bool) {
    println!("engine {}", report.engine);
    println!(
        "{:<32} {:<6} {:>3} {:>7} {:>7}  missed",
        "call", "lang", "str", "overall", "facts"
    );
    for call in &report.calls {
        let found = call.facts.iter().filter(|f| f.found).count();
        let missed: Vec<String> = call
            .facts
            .iter()
            .filter(|f| !f.found)
            .map(|f| {
                if verbose {
                    format!("{} {} (got: {})", f.fact, f.expected, f.got)
                } else {
                    f.fact.to_owned()
                }
            })
            .collect();
        println!(
            "{:<32} {:<6} {:>3} {:>7} {:>3}/{:<3}  {}",
            call.name,
            call.language,
            call.strength,
            call.overall,
            found,
            call.facts.len(),
            call.error.clone().unwrap_or_else(|| missed.join("; "))
        );
    }
    println!();
    println!("facts by kind:");
    for kind in FACT_KINDS {
        if let Some((found, total)) = report.by_fact.get(kind) {
            println!("  {kind:<26} {found:>3}/{total:<3}");
        }
    }
    for (language, (found, total, order)) in &report.by_language {
        println!(
            "{language:<6} facts {found}/{total} ({:.1} %), ordering {:.1} %",
            *found as f64 * 100.0 / (*total).max(1) as f64,
            order * 100.0
        );
    }
    println!(
        "overall facts {}/{} ({:.1} %), pairwise ordering {:.1} %, schema-valid {}/{}, tokens {}",
        report.facts_found,
        report.facts_total,
        report.facts_share * 100.0,
        report.pairwise_agreement * 100.0,
        report.schema_valid,
        report.calls.len(),
        report.tokens
    );
    for (language, ratio) in &report.prompt_ratio {
        println!(
            "prompt size for a 60-minute {language} call: {ratio:.2}× the transcript's characters"
        );
    }
}
