//! `salesai analyze FILE`: the whole pipeline in this process, on a temporary store unless a
//! database is configured, with the stages shown as they pass and a readable report at the end.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use chrono::Utc;
use salesai_core::analysis::derive::DerivedScores;
use salesai_core::analysis::{AgentOutputs, Strategy};
use salesai_core::blob::{BlobKey, ByteStream};
use salesai_core::domain::{ConversationStatus, CustomerNumber, Media};
use salesai_core::intake::{Intake, Source};
use salesai_core::media::{ACCEPTED, sniff};
use salesai_core::transcript::clock;
use salesai_providers::blob::{BlobConfig, ObjectBlobStore};
use secrecy::SecretString;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::cli::output::print_json;
use crate::config::Config;

/// Options of `analyze`.
#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    /// A recording (MP3, M4A, WAV, FLAC, Ogg, WebM) or a transcript (WebVTT, SRT, JSON, text)
    pub file: PathBuf,
    /// Product line: ichef, beauty or default
    #[arg(long, default_value = "default")]
    pub product_line: String,
    /// Language of the report: zh-TW or en [default: the product line's]
    #[arg(long)]
    pub language: Option<String>,
    /// Customer number to file it under
    #[arg(long, default_value = "CLI")]
    pub customer: String,
    /// Print JSON instead of the report
    #[arg(long)]
    pub json: bool,
}

/// Runs `analyze`.
pub async fn run(config: &Config, args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let mut config = config.clone();
    // A one-shot analysis may start the database it was pointed at (or its own scratch one).
    config.create_database = true;
    let scratch = tempfile::tempdir().context("failed to create a temporary folder")?;
    if !config.database_configured {
        config.database_url = SecretString::from(format!(
            "sqlite://{}",
            scratch.path().join("salesai.db").display()
        ));
        config.blob = BlobConfig::Local {
            root: scratch.path().join("blobs"),
        };
    }
    let (mut app, database) = crate::runtime::open_app(&config).await?;
    let mut lines = (*app.product_lines).clone();
    let line = lines
        .iter_mut()
        .find(|l| l.id == args.product_line)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "unknown product line {:?}; use ichef, beauty or default",
                args.product_line
            )
        })?;
    if let Some(language) = &args.language {
        anyhow::ensure!(
            language == "zh-TW" || language == "en",
            "--language must be zh-TW or en"
        );
        line.language = language.clone();
    }
    let line = line.clone();
    app.product_lines = Arc::new(lines);
    app.blobs = Arc::new(ObjectBlobStore::open(&config.blob)?);

    // Store the file, streamed.
    let mut file = tokio::fs::File::open(&args.file)
        .await
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let mut head = vec![0u8; 64];
    let n = file.read(&mut head).await?;
    head.truncate(n);
    let kind = sniff(&head).ok_or_else(|| {
        anyhow::anyhow!(
            "{} is not something salesai can read; give it {ACCEPTED}",
            args.file.display()
        )
    })?;
    let key = BlobKey::parse(&format!(
        "uploads/cli/{}.{}",
        uuid::Uuid::now_v7(),
        kind.extension()
    ))
    .expect("valid key");
    let first = Bytes::from(head);
    let rest = futures_util::stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), file))
            }
            Err(e) => Some((
                Err(salesai_core::blob::BlobError::Source(e.to_string())),
                file,
            )),
        }
    });
    let stream: ByteStream = Box::pin(futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok(first)]),
        rest,
    ));
    let bytes = app.blobs.put_stream(&key, stream).await?;

    let created = app
        .store
        .create_conversation({
            let mut intake = Intake::new(
                Source::Cli,
                CustomerNumber::parse(&args.customer).map_err(|e| anyhow::anyhow!(e.0))?,
            );
            intake.title = args
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            intake.blob_key = Some(key.as_str().to_owned());
            intake.media = Media::sniffed(kind, bytes, Some(args.file.display().to_string()));
            intake
                .conversation(&line, Utc::now(), app.time_zone)
                .map_err(|e| anyhow::anyhow!(e.0))?
        })
        .await?;

    // A one-shot run has no later attempt to wait for: on its own scratch database the first
    // attempt is the last, so an LLM that fails or stops answering gives way to the rules
    // engine (marked, with the reason) instead of retrying for minutes.
    if !config.database_configured {
        let settings = salesai_core::queue::QueueSettings {
            max_attempts: 1,
            ..app
                .store
                .get_queue_settings(salesai_core::queue::CONVERSATIONS)
                .await?
        };
        app.store.put_queue_settings(&settings).await?;
    }
    // What the analysis waits for, said while it waits.
    let waiting_for = config.llm.as_ref().map(|llm| {
        let host = url::Url::parse(&llm.base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| llm.base_url.clone());
        (format!("{} at {host}", llm.model), llm.budget, llm.timeout)
    });

    // Run the pipeline here, showing each stage as it passes.
    let token = CancellationToken::new();
    let options = salesai_worker::WorkerOptions {
        poll_interval: Duration::from_millis(20),
        worker_id: format!("cli-{}", std::process::id()),
        ..salesai_worker::WorkerOptions::new("cli")
    };
    let worker = tokio::spawn(salesai_worker::run(
        app.clone(),
        crate::ops::jobs::registry(None),
        options,
        token.clone(),
    ));
    let started = Instant::now();
    let mut last = None;
    let mut analyzing_since: Option<Instant> = None;
    let mut said_at = Instant::now();
    let conversation = loop {
        let conversation = app
            .store
            .get_conversation(&created.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the conversation disappeared"))?;
        if last != Some(conversation.status) {
            if !args.json {
                eprintln!(
                    "[{:>6.2}s] {}",
                    started.elapsed().as_secs_f64(),
                    conversation.status.as_str()
                );
            }
            last = Some(conversation.status);
            if conversation.status == ConversationStatus::Analyzing {
                analyzing_since = Some(Instant::now());
                said_at = Instant::now() - Duration::from_secs(10);
            }
        }
        // Every 5 s of analysis: which agents answered, what it waits for, until when.
        if let (Some(since), Some((what, budget, per_call))) = (analyzing_since, &waiting_for)
            && !args.json
            && conversation.status == ConversationStatus::Analyzing
            && said_at.elapsed() >= Duration::from_secs(5)
        {
            said_at = Instant::now();
            let done = app.store.get_agent_outputs(&created.id).await?.len();
            let until = chrono::Local::now()
                + chrono::Duration::from_std(budget.saturating_sub(since.elapsed()))
                    .unwrap_or_default();
            eprintln!(
                "           waiting for the LLM ({what}): {done} of 6 agents answered; each call waits up to {} s, and at {} the agents still waiting take the rules engine's part",
                per_call.as_secs(),
                until.format("%H:%M:%S")
            );
        }
        if matches!(
            conversation.status,
            ConversationStatus::Completed | ConversationStatus::Failed
        ) {
            break conversation;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    token.cancel();
    let _ = worker.await;

    if conversation.status == ConversationStatus::Failed {
        let error =
            conversation
                .error
                .clone()
                .unwrap_or_else(|| salesai_core::domain::StageError {
                    stage: ConversationStatus::Failed,
                    code: "INTERNAL".into(),
                    message: "failed without an error".into(),
                    retryable: true,
                });
        if args.json {
            print_json(
                &serde_json::json!({ "id": conversation.id, "case_number": conversation.case_number, "status": "failed", "error": error }),
            )?;
        } else {
            eprintln!("error: {} [{}]", cli_sentence(&error), error.code);
        }
        database.close().await;
        return Ok(ExitCode::FAILURE);
    }

    let analysis = app
        .store
        .get_analysis(&created.id)
        .await?
        .context("completed without an analysis")?;
    let mut object = serde_json::Map::new();
    // Agents whose part came from the rules engine, and why (the first reason given).
    let mut stood_in: Vec<String> = Vec::new();
    let mut why: Option<String> = None;
    for run in app.store.get_agent_outputs(&created.id).await? {
        if let Some(reason) = &run.fallback {
            stood_in.push(run.agent.clone());
            why.get_or_insert_with(|| reason.clone());
        }
        object.insert(run.agent, run.output);
    }
    let outputs: AgentOutputs = serde_json::from_value(serde_json::Value::Object(object))?;
    let derived: DerivedScores = serde_json::from_value(analysis.result.clone())?;
    if args.json {
        print_json(&serde_json::json!({
            "id": conversation.id,
            "case_number": conversation.case_number,
            "status": "completed",
            "engine": analysis.engine,
            "scores": analysis,
            "agents": outputs,
        }))?;
    } else {
        print!(
            "{}",
            report(
                &conversation.case_number.to_string(),
                &analysis.engine,
                &derived,
                &outputs,
                line.rules_language() == salesai_core::analysis::rules::Language::ZhTw
            )
        );
        if let Some(why) = &why {
            let zh = line.rules_language() == salesai_core::analysis::rules::Language::ZhTw;
            println!(
                "\n{} {}: {why}",
                if zh {
                    "規則引擎代替 LLM 完成了："
                } else {
                    "The rules engine stood in for the LLM on:"
                },
                stood_in.join(", ")
            );
        }
    }
    database.close().await;
    Ok(ExitCode::SUCCESS)
}

fn bar(score: u8) -> String {
    let filled = usize::from(score).div_ceil(10);
    format!("{}{}", "█".repeat(filled), "░".repeat(10 - filled))
}

/// The readable report.
pub fn report(
    case: &str,
    engine: &str,
    derived: &DerivedScores,
    o: &AgentOutputs,
    zh: bool,
) -> String {
    let t = |zh_text: &'static str, en: &'static str| if zh { zh_text } else { en };
    let mut out = String::new();
    let b = &o.buyer;
    out.push_str(&format!("\n{case}  ({} {engine})\n", t("引擎", "engine")));
    out.push_str(&format!(
        "{} {}/100 · {}\n\n",
        t("總分", "Overall"),
        derived.overall.value(),
        salesai_core::i18n::Label::label(
            &derived.qualification,
            if zh {
                salesai_core::language::Language::ZhTw
            } else {
                salesai_core::language::Language::En
            }
            .t()
        )
    ));
    out.push_str("PDCM\n");
    for (name, score) in [
        (t("痛點 Pain", "Pain"), b.pain.score),
        (t("決策 Decision", "Decision"), b.decision.score),
        (t("支持 Champion", "Champion"), b.champion.score),
        (t("量化 Metrics", "Metrics"), b.metrics.score),
    ] {
        out.push_str(&format!(
            "  {:<14} {} {:>3}\n",
            name,
            bar(score.value()),
            score.value()
        ));
    }
    let s = &o.seller.spin;
    out.push_str(&format!(
        "\nSPIN  S {} · P {} · I {} · N {}  ({} {}%)\n",
        s.situation.value(),
        s.problem.value(),
        s.implication.value(),
        s.need_payoff.value(),
        t("完成度", "completion"),
        s.completion.value()
    ));
    out.push_str(&format!("\n{}\n", t("主要痛點", "Top pains")));
    if b.pain.evidence.is_empty() {
        out.push_str(&format!("  {}\n", t("（未發現）", "(none found)")));
    }
    for e in b.pain.evidence.iter().take(3) {
        out.push_str(&format!("  [{}] “{}”\n", clock(e.start_ms), e.quote));
    }
    let strategy = match o.seller.strategy {
        Strategy::CloseNow => t("立即成交", "close now"),
        Strategy::SmallStep => t("小步推進", "small step"),
        Strategy::KeepWarm => t("保持關係", "keep warm"),
    };
    out.push_str(&format!(
        "\n{} ({strategy})\n  {}\n",
        t("下一步", "Next action"),
        o.seller.next_action.action
    ));
    if let Some(script) = &o.seller.next_action.script {
        out.push_str(&format!("  {} {script}\n", t("話術：", "Script:")));
    }
    if !b.competitors.is_empty() {
        out.push_str(&format!("\n{}\n", t("競品警示", "Competitor alert")));
        for c in &b.competitors {
            out.push_str(&format!(
                "  {} [{}] “{}”\n",
                c.name,
                clock(c.start_ms),
                c.quote
            ));
        }
    }
    out.push_str(&format!("\n{}\n", t("教練建議", "Coaching")));
    if o.coach.alert.kind != "none" {
        out.push_str(&format!(
            "  ! {}: {}\n",
            o.coach.alert.kind, o.coach.alert.reason
        ));
    }
    for note in o.coach.coaching_notes.iter().take(4) {
        out.push_str(&format!("  • {note}\n"));
    }
    if !derived.risks.is_empty() {
        out.push_str(&format!("\n{}\n", t("風險", "Risks")));
        for r in &derived.risks {
            out.push_str(&format!("  • {}: {}\n", r.code, r.message));
        }
    }
    out
}

/// What a failed analysis says on the command line: one sentence about the cause and what to
/// do here (the server's words speak of retrying a conversation, which the CLI does not keep).
fn cli_sentence(error: &salesai_core::domain::StageError) -> String {
    if error.code == salesai_core::ErrorCode::SttNotConfigured.as_str() {
        return "this recording needs speech-to-text and none is configured: set GROQ_API_KEY \
                (Groq Whisper), or SALESAI_STT_BASE_URL for another OpenAI-compatible server, and run \
                the command again; a transcript file (WebVTT, SRT, JSON, text) needs none"
            .to_owned();
    }
    error
        .message
        .replace(", then retry;", ", then run the command again;")
        .trim_end_matches('.')
        .to_owned()
}
