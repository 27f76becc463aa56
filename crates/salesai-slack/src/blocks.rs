//! Block Kit: every message and modal salesai shows in Slack, rendered from plain data so it
//! can be snapshot-tested, and kept inside Slack's limits (≤ 50 blocks per message, section
//! text ≤ 3,000 characters, button text ≤ 75, modal title ≤ 24, metadata ≤ 3,000).

use std::collections::BTreeMap;

use salesai_core::analysis::{BuyerOutput, CoachOutput, SellerOutput};
use salesai_core::domain::{Conversation, CustomerNumber};
use salesai_core::i18n::Label;
use salesai_core::product_line::ProductLine;
use salesai_core::store::StoredAnalysis;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::text::{Language, explain, t};

/// Slack's limit on blocks per message.
pub const MAX_BLOCKS: usize = 50;
/// Slack's limit on a section's text.
pub const MAX_SECTION: usize = 3000;

/// Action id of the "Analyze" button on a shared file.
pub const ACTION_OPEN_UPLOAD: &str = "salesai_open_upload";
/// Action id of the "Retry" button on a failed conversation.
pub const ACTION_RETRY: &str = "salesai_retry";
/// Action id of the "Full report" link button.
pub const ACTION_REPORT_LINK: &str = "salesai_report_link";
/// Callback id of the upload modal.
pub const UPLOAD_CALLBACK: &str = "salesai_upload";
/// The "Who is who?" button of a card whose speakers were inferred; its value is the
/// conversation id. Opens [`speakers_modal`].
pub const ACTION_SPEAKERS: &str = "salesai_speakers";
/// The callback id of the "Who is who?" modal.
pub const SPEAKERS_CALLBACK: &str = "salesai_speakers";

/// A shared file awaiting its form: carried in the button's value and the modal's metadata
/// (nothing to store until the rep submits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Slack's file id.
    #[serde(rename = "f")]
    pub file_id: String,
    /// Where it was shared.
    #[serde(rename = "c")]
    pub channel_id: String,
    /// The message that shared it (the thread the conversation reports in).
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub thread_ts: Option<String>,
    /// The product line.
    #[serde(rename = "l")]
    pub product_line: String,
    /// The file's name, for messages.
    #[serde(rename = "n", default)]
    pub name: String,
    /// Its size in bytes.
    #[serde(rename = "s", default)]
    pub size: u64,
}

/// Cuts `text` to at most `max` characters, ending with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Escapes the three characters Slack's mrkdwn treats as control characters.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub(crate) fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": truncate(text, MAX_SECTION) } })
}

pub(crate) fn plain(text: &str, max: usize) -> Value {
    json!({ "type": "plain_text", "text": truncate(text, max), "emoji": true })
}

fn context(text: &str) -> Value {
    json!({ "type": "context", "elements": [ { "type": "mrkdwn", "text": truncate(text, MAX_SECTION) } ] })
}

/// Columns a label takes in a monospace block: East Asian wide characters take two.
fn display_width(text: &str) -> usize {
    text.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

/// A ten-cell bar for a 0–100 score.
pub fn bar(score: u8) -> String {
    let filled = (usize::from(score.min(100)) + 5) / 10;
    format!("{}{}", "▓".repeat(filled), "░".repeat(10 - filled))
}

/// A byte count for people.
pub fn human_size(bytes: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / MB)
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

/// The thread reply to a shared file: its name and the button that opens the form.
pub fn prompt(lang: Language, file: &FileRef) -> Value {
    let value = serde_json::to_string(file).expect("a FileRef serialises");
    let text = format!(
        "📎 *{}* ({}) — {}",
        escape(&truncate(&file.name, 200)),
        human_size(file.size),
        lang.t().slack_prompt
    );
    json!({
        "text": text,
        "blocks": [
            section(&text),
            { "type": "actions", "block_id": "salesai_prompt", "elements": [ {
                "type": "button",
                "action_id": ACTION_OPEN_UPLOAD,
                "style": "primary",
                "text": plain(lang.t().slack_analyze_button, 75),
                "value": truncate(&value, 2000),
            } ] }
        ]
    })
}

/// One question of the upload form.
struct Field {
    id: String,
    label: String,
    required: bool,
    options: Vec<(String, String)>,
    email: bool,
}

/// The fields every line asks, then the line's own questions.
fn fields(lang: Language, line: &ProductLine) -> Vec<Field> {
    let base = |id: &str, required: bool, email: bool| Field {
        id: id.to_owned(),
        label: t(lang, id).to_owned(),
        required,
        options: Vec::new(),
        email,
    };
    let mut out = vec![
        base("customer_number", true, false),
        base("customer_name", true, false),
        base("contact_name", false, false),
        base("contact_phone", false, false),
        base("contact_email", false, true),
    ];
    for f in &line.form {
        out.push(Field {
            id: f.id.clone(),
            label: f.label.get(lang.code()).to_owned(),
            required: f.required,
            options: f
                .options
                .iter()
                .map(|o| (o.value.clone(), o.label.get(lang.code()).to_owned()))
                .collect(),
            email: false,
        });
    }
    out
}

/// The upload modal, built from the product line's form definition.
pub fn upload_modal(lang: Language, line: &ProductLine, file: &FileRef) -> Value {
    let mut blocks = vec![context(&format!(
        "📎 *{}* · {} · {}",
        escape(&truncate(&file.name, 200)),
        human_size(file.size),
        escape(line.name_in(lang))
    ))];
    for Field {
        id,
        label,
        required,
        options,
        email,
    } in fields(lang, line)
    {
        let element = if !options.is_empty() {
            json!({
                "type": "static_select",
                "action_id": "value",
                "options": options.iter().take(100).map(|(value, label)| json!({
                    "text": plain(label, 75),
                    "value": truncate(value, 150),
                })).collect::<Vec<_>>(),
            })
        } else if email {
            json!({ "type": "email_text_input", "action_id": "value" })
        } else {
            json!({ "type": "plain_text_input", "action_id": "value", "max_length": 200 })
        };
        blocks.push(json!({
            "type": "input",
            "block_id": id,
            "optional": !required,
            "label": plain(&label, 2000),
            "element": element,
        }));
    }
    json!({
        "type": "modal",
        "callback_id": UPLOAD_CALLBACK,
        "private_metadata": serde_json::to_string(file).expect("a FileRef serialises"),
        "title": plain(lang.t().slack_modal_title, 24),
        "submit": plain(lang.t().slack_submit, 24),
        "close": plain(lang.t().slack_cancel, 24),
        "blocks": blocks,
    })
}

/// A submitted upload form, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// The customer number.
    pub customer_number: CustomerNumber,
    /// The customer's name.
    pub customer_name: String,
    /// Every other answer, by field id.
    pub answers: BTreeMap<String, String>,
}

/// Reads and checks a modal's `view.state.values`; errors are by block id, in the line's
/// language, for Slack's inline `response_action: errors`.
pub fn parse_submission(
    lang: Language,
    line: &ProductLine,
    values: &Value,
) -> Result<Submission, BTreeMap<String, String>> {
    let mut errors = BTreeMap::new();
    let mut answers = BTreeMap::new();
    for Field {
        id,
        required,
        options,
        email,
        ..
    } in fields(lang, line)
    {
        let v = &values[&id]["value"];
        let answer = v["selected_option"]["value"]
            .as_str()
            .or_else(|| v["value"].as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        match answer {
            None if required => {
                errors.insert(id, lang.t().slack_required.to_owned());
            }
            None => {}
            Some(a) => {
                if !options.is_empty() && !options.iter().any(|(value, _)| *value == a) {
                    errors.insert(id, lang.t().slack_bad_choice.to_owned());
                } else if email && !(a.contains('@') && a.len() <= 254) {
                    errors.insert(id, lang.t().slack_bad_email.to_owned());
                } else {
                    answers.insert(id, truncate(&a, 200));
                }
            }
        }
    }
    let customer_number = answers
        .remove("customer_number")
        .map(|raw| CustomerNumber::parse(&raw));
    let customer_number = match customer_number {
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            errors.insert(
                "customer_number".into(),
                lang.t().slack_bad_customer_number.to_owned(),
            );
            None
        }
        None => None,
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Submission {
        customer_number: customer_number.expect("checked above"),
        customer_name: answers.remove("customer_name").unwrap_or_default(),
        answers,
    })
}

const STAGES: [&str; 4] = ["pending", "preparing", "transcribing", "analyzing"];

/// The status message, updated in place as the conversation moves: file, size, case number
/// and stage.
pub fn status(lang: Language, conversation: &Conversation) -> Value {
    let name = conversation
        .media
        .file_name
        .as_deref()
        .unwrap_or("recording");
    let size = conversation.media.bytes;
    let state = conversation.status.as_str();
    let (icon, progress) = match state {
        "completed" => ("✅", "▰▰▰▰▰".to_owned()),
        "failed" => ("❌", String::new()),
        s => {
            let step = STAGES.iter().position(|x| *x == s).unwrap_or(0) + 1;
            (
                "⏳",
                format!("{}{}", "▰".repeat(step), "▱".repeat(5 - step)),
            )
        }
    };
    // A failed conversation has no progress bar: no double space where it would be.
    let stage = [progress.as_str(), conversation.status.label(lang.t())]
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let text = format!(
        "{icon} *{}*{} · {} *{}*\n{}: {stage}",
        escape(&truncate(name, 200)),
        size.map(|s| format!(" ({})", human_size(s)))
            .unwrap_or_default(),
        lang.t().slack_case,
        conversation.case_number.as_str(),
        lang.t().slack_stage,
    );
    json!({ "text": text, "blocks": [ section(&text) ] })
}

/// What the completed card shows.
#[derive(Debug, Clone)]
pub struct CardFacts<'a> {
    /// The conversation.
    pub conversation: &'a Conversation,
    /// Its analysis.
    pub analysis: &'a StoredAnalysis,
    /// How the deal stands: won, lost, or its qualification band.
    pub standing: Option<salesai_core::report::Standing>,
    /// The buyer agent's output, when readable.
    pub buyer: Option<BuyerOutput>,
    /// The seller agent's output, when readable.
    pub seller: Option<SellerOutput>,
    /// The coach agent's output, when readable.
    pub coach: Option<CoachOutput>,
    /// The full report's URL, when a public base URL is configured.
    pub report_url: Option<String>,
    /// The agents whose output came from the rules engine because the LLM could not give a
    /// valid one (`buyer`, `seller`, …).
    pub fallbacks: Vec<String>,
    /// Talk analytics and the figures out of their healthy range, when the speakers have sides.
    pub talk: Option<(
        salesai_core::talk::TalkStats,
        Vec<salesai_core::talk::TalkFlag>,
    )>,
}

impl<'a> CardFacts<'a> {
    /// What the card shows of a call's report; `None` before it is analysed.
    pub fn of(
        report: &'a salesai_core::report::CallReport,
        report_url: Option<String>,
    ) -> Option<CardFacts<'a>> {
        let analysis = report.analysis.as_ref()?;
        Some(CardFacts {
            conversation: &report.conversation,
            analysis: &analysis.scores,
            standing: analysis.standing(),
            buyer: analysis.buyer.clone(),
            seller: analysis.seller.clone(),
            coach: analysis.coach.clone(),
            report_url,
            fallbacks: report.fallbacks(),
            talk: report
                .talk
                .as_ref()
                .map(|t| (t.stats.clone(), t.flags.clone())),
        })
    }
}

/// The card's one line of talk analytics; a figure out of its healthy range carries ⚠️.
pub fn talk_line(
    lang: Language,
    stats: &salesai_core::talk::TalkStats,
    flags: &[salesai_core::talk::TalkFlag],
) -> String {
    use salesai_core::talk::TalkFlag;
    let warn = |hit: bool| if hit { " ⚠️" } else { "" };
    let mut parts = vec![format!(
        "{} {:.0}%{}",
        lang.t().slack_talk_rep,
        stats.talk_ratio * 100.0,
        warn(
            flags
                .iter()
                .any(|f| matches!(f, TalkFlag::TalksTooMuch | TalkFlag::TalksTooLittle))
        )
    )];
    if let Some(m) = stats.longest_monologue {
        parts.push(format!(
            "{} {}{}",
            lang.t().slack_talk_monologue,
            mmss(m.duration_ms),
            warn(flags.contains(&TalkFlag::LongMonologue))
        ));
    }
    parts.push(format!(
        "{} {:.0}{}",
        lang.t().slack_talk_questions,
        stats.questions_per_hour,
        warn(flags.contains(&TalkFlag::FewQuestions))
    ));
    if let Some(p) = stats.patience_ms {
        parts.push(format!(
            "{} {:.1} s{}",
            lang.t().slack_talk_patience,
            p as f64 / 1000.0,
            warn(flags.contains(&TalkFlag::Impatient))
        ));
    }
    let mut line = format!("🗣 {}: {}", lang.t().slack_talk, parts.join(" · "));
    if stats.inferred {
        line.push_str(&format!(" _({})_", lang.t().slack_talk_inferred));
    }
    line
}

fn mmss(ms: u64) -> String {
    format!("{:02}:{:02}", ms / 60_000, (ms / 1000) % 60)
}

/// The "Who is who?" modal: which of the speakers found in a call is the rep (the others are
/// then the customer's side). `speakers` are the labels in transcript order with the first
/// line each said; `rep` is the speaker now on the rep's side, preselected.
pub fn speakers_modal(
    lang: Language,
    conversation: &Conversation,
    speakers: &[(String, String)],
    rep: Option<&str>,
) -> Value {
    let options: Vec<Value> = speakers
        .iter()
        .take(100)
        .map(|(label, line)| {
            json!({
                "text": plain(&format!("{label} — “{}”", truncate(line, 48)), 75),
                "value": truncate(label, 150),
            })
        })
        .collect();
    let mut select = json!({ "type": "static_select", "action_id": "value", "options": options });
    if let Some(initial) = rep.and_then(|rep| {
        speakers
            .iter()
            .position(|(label, _)| label == rep)
            .and_then(|i| select["options"].get(i).cloned())
    }) {
        select["initial_option"] = initial;
    }
    json!({
        "type": "modal",
        "callback_id": SPEAKERS_CALLBACK,
        "private_metadata": conversation.id,
        "title": plain(lang.t().slack_speakers_title, 24),
        "submit": plain(lang.t().slack_speakers_submit, 24),
        "close": plain(lang.t().slack_cancel, 24),
        "blocks": [
            context(&format!("{} {}", lang.t().slack_case, conversation.case_number.as_str())),
            section(lang.t().slack_speakers_hint),
            {
                "type": "input",
                "block_id": "rep",
                "label": plain(lang.t().slack_speakers_which_rep, 2000),
                "element": select,
            },
        ],
    })
}

/// The completed card: score and qualification, PDCM bars, SPIN, top pains with a quote,
/// strategy and next action, competitor alert, coaching highlight, report link.
pub fn completed(lang: Language, facts: &CardFacts<'_>) -> Value {
    let a = facts.analysis;
    let c = facts.conversation;
    let qualification = facts.standing.map_or("—", |s| s.label(lang.t())).to_owned();
    let title = format!(
        "{} · {} {}",
        lang.t().slack_done_title,
        lang.t().slack_case,
        c.case_number.as_str()
    );
    let mut blocks = vec![
        json!({ "type": "header", "text": plain(&title, 150) }),
        section(&format!(
            "*{}: {}/100* · {}: *{}*",
            lang.t().slack_overall,
            a.overall_score.value(),
            lang.t().slack_qualification,
            qualification
        )),
    ];
    let m = lang.t();
    let pdcm = [
        (m.slack_pain, a.pain_score.value()),
        (m.slack_decision, a.decision_score.value()),
        (m.slack_champion, a.champion_score.value()),
        (m.slack_metrics, a.metrics_score.value()),
    ];
    let mut bars = String::from("```");
    for (label, score) in pdcm {
        let pad = 10usize.saturating_sub(display_width(label));
        bars.push_str(&format!(
            "\n{label}{} {} {:>3}",
            " ".repeat(pad),
            bar(score),
            score
        ));
    }
    bars.push_str("\n```");
    blocks.push(section(&bars));
    if let Some(seller) = &facts.seller {
        blocks.push(context(&format!(
            "{}: *{}%*  (S {} · P {} · I {} · N {})",
            lang.t().slack_spin,
            seller.spin.completion.value(),
            seller.spin.situation.value(),
            seller.spin.problem.value(),
            seller.spin.implication.value(),
            seller.spin.need_payoff.value(),
        )));
    }
    if let Some((stats, flags)) = &facts.talk {
        blocks.push(context(&talk_line(lang, stats, flags)));
    }
    if let Some(buyer) = &facts.buyer {
        let mut pains = Vec::new();
        if let Some(main) = &buyer.pain.main_pain {
            pains.push(format!("• *{}*", escape(&truncate(main, 300))));
        }
        let main = buyer.pain.main_pain.as_deref().unwrap_or_default();
        for e in buyer
            .pain
            .evidence
            .iter()
            .filter(|e| e.quote.trim() != main.trim())
            .take(2)
        {
            pains.push(format!(
                "> “{}” _({})_",
                escape(&truncate(&e.quote, 200)),
                mmss(e.start_ms)
            ));
        }
        if let Some(loss) = buyer
            .pain
            .quantified_loss
            .as_ref()
            .filter(|l| l.trim() != main.trim())
        {
            pains.push(format!("• {}", escape(&truncate(loss, 300))));
        }
        if !pains.is_empty() {
            blocks.push(json!({ "type": "divider" }));
            blocks.push(section(&format!(
                "*{}*\n{}",
                lang.t().slack_top_pains,
                pains.join("\n")
            )));
        }
        if let Some(first) = buyer.competitors.first() {
            let names: Vec<&str> = buyer.competitors.iter().map(|m| m.name.as_str()).collect();
            blocks.push(section(&format!(
                "⚠️ *{}*: {}\n> “{}”",
                lang.t().slack_competitor_alert,
                escape(&truncate(&names.join(", "), 300)),
                escape(&truncate(&first.quote, 300))
            )));
        }
    }
    if let Some(seller) = &facts.seller {
        let mut text = format!(
            "*{}*: {}\n*{}*: {}",
            lang.t().slack_strategy,
            seller.strategy.label(lang.t()),
            lang.t().slack_next_action,
            escape(&truncate(&seller.next_action.action, 500))
        );
        if let Some(deadline) = &seller.next_action.deadline {
            text.push_str(&format!(" _({})_", escape(&truncate(deadline, 100))));
        }
        if let Some(script) = &seller.next_action.script {
            text.push_str(&format!("\n> {}", escape(&truncate(script, 800))));
        }
        blocks.push(json!({ "type": "divider" }));
        blocks.push(section(&text));
    }
    if let Some(coach) = &facts.coach
        && let Some(note) = coach.coaching_notes.first()
    {
        blocks.push(section(&format!(
            "🎯 *{}*: {}",
            lang.t().slack_coaching,
            escape(&truncate(note, 1000))
        )));
    }
    if c.media.times_estimated() {
        blocks.push(context(&format!("⏱ {}", lang.t().slack_estimated_times)));
    }
    if !facts.fallbacks.is_empty() {
        let agents: Vec<&str> = facts
            .fallbacks
            .iter()
            .map(|a| match a.as_str() {
                "context" => lang.t().slack_agent_context,
                "buyer" => lang.t().slack_agent_buyer,
                "seller" => lang.t().slack_agent_seller,
                "crm" => lang.t().slack_agent_crm,
                "summary" => lang.t().slack_agent_summary,
                "coach" => lang.t().slack_agent_coach,
                other => other,
            })
            .collect();
        blocks.push(context(&format!(
            "⚠️ {}: {}",
            lang.t().slack_fallback_note,
            agents.join(", ")
        )));
    }
    let mut actions = Vec::new();
    if let Some(url) = &facts.report_url {
        actions.push(json!({
            "type": "button",
            "action_id": ACTION_REPORT_LINK,
            "text": plain(lang.t().slack_full_report, 75),
            "url": truncate(url, 3000),
        }));
    }
    // Sides guessed from voices and words: the rep can say who is who from here.
    if facts.talk.as_ref().is_some_and(|(stats, _)| stats.inferred) {
        actions.push(json!({
            "type": "button",
            "action_id": ACTION_SPEAKERS,
            "text": plain(lang.t().slack_speakers_button, 75),
            "value": truncate(&c.id, 2000),
        }));
    }
    if !actions.is_empty() {
        blocks
            .push(json!({ "type": "actions", "block_id": "salesai_report", "elements": actions }));
    }
    blocks.truncate(MAX_BLOCKS);
    let text = format!(
        "{} — {} {}/100 ({})",
        title,
        lang.t().slack_overall,
        a.overall_score.value(),
        qualification
    );
    json!({ "text": text, "blocks": blocks })
}

/// The failure notice: the code, what it means, and a Retry button that resumes the
/// conversation.
pub fn failed(lang: Language, conversation: &Conversation) -> Value {
    let (stage, code, message) = conversation
        .error
        .as_ref()
        .map(|e| (e.stage.as_str(), e.code.as_str(), e.message.as_str()))
        .unwrap_or(("pending", "INTERNAL", ""));
    // A conversation fails while `pending` only on its way in from Slack: fetching the file,
    // or finding that what was fetched is not a call.
    let stage = match (stage, code) {
        ("pending", "FILE_DOWNLOAD_FAILED" | "TIMEOUT" | "SLACK_API_ERROR") => "downloading",
        ("pending", _) => "checking_file",
        (stage, _) => stage,
    };
    let text = format!(
        "❌ *{}* · {} *{}*\n{}: {} · `{}`\n{}",
        lang.t().slack_failed_title,
        lang.t().slack_case,
        conversation.case_number.as_str(),
        lang.t().slack_stage,
        t(lang, stage),
        code,
        explain(lang, code),
    );
    let mut blocks = vec![section(&text)];
    if !message.is_empty() {
        blocks.push(context(&format!("`{}`", escape(&truncate(message, 500)))));
    }
    if salesai_core::pipeline::retry_can_help(code) {
        blocks.push(
            json!({ "type": "actions", "block_id": "salesai_failed", "elements": [ {
            "type": "button",
            "action_id": ACTION_RETRY,
            "style": "primary",
            "text": plain(lang.t().slack_retry, 75),
            "value": conversation.id,
        } ] }),
        );
    }
    json!({ "text": text, "blocks": blocks })
}

/// An ephemeral answer to a command or button (plain mrkdwn sections).
pub fn ephemeral(text: &str) -> Value {
    let mut blocks = Vec::new();
    let mut rest = text;
    while !rest.is_empty() && blocks.len() < MAX_BLOCKS {
        let cut = rest
            .char_indices()
            .nth(MAX_SECTION - 1)
            .map(|(i, _)| rest[..i].rfind('\n').filter(|p| *p > 0).unwrap_or(i))
            .unwrap_or(rest.len());
        blocks.push(section(&rest[..cut]));
        rest = rest[cut..].trim_start_matches('\n');
    }
    json!({ "response_type": "ephemeral", "text": truncate(text, 3000), "blocks": blocks })
}

/// Checks a message against Slack's limits; the tests run every renderer through it.
pub fn check_limits(message: &Value) -> Result<(), String> {
    let blocks = message["blocks"].as_array().cloned().unwrap_or_default();
    if blocks.len() > MAX_BLOCKS {
        return Err(format!("{} blocks (max {MAX_BLOCKS})", blocks.len()));
    }
    for b in &blocks {
        if b["type"] == "section" {
            let n = b["text"]["text"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .count();
            if n > MAX_SECTION {
                return Err(format!("section of {n} characters (max {MAX_SECTION})"));
            }
        }
        if b["type"] == "header" {
            let n = b["text"]["text"]
                .as_str()
                .unwrap_or_default()
                .chars()
                .count();
            if n > 150 {
                return Err(format!("header of {n} characters (max 150)"));
            }
        }
        for e in b["elements"].as_array().into_iter().flatten() {
            if e["type"] == "button" {
                let n = e["text"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .count();
                if n > 75 {
                    return Err(format!("button text of {n} characters (max 75)"));
                }
                let v = e["value"].as_str().unwrap_or_default().chars().count();
                if v > 2000 {
                    return Err(format!("button value of {v} characters (max 2000)"));
                }
            }
        }
    }
    if let Some(title) = message["title"]["text"].as_str()
        && title.chars().count() > 24
    {
        return Err(format!("modal title {title:?} longer than 24"));
    }
    if let Some(meta) = message["private_metadata"].as_str()
        && meta.len() > 3000
    {
        return Err("private_metadata longer than 3000".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;
    use salesai_core::analysis::derive::derive;
    use salesai_core::analysis::rules::{Language, RulesInput, analyze};
    use salesai_core::analysis::{AgentOutputs, CompetitorMention, Evidence};
    use salesai_core::domain::{CaseNumber, ConversationStatus, ConversationType, StageError};
    use salesai_core::transcript::Segment;

    use super::*;

    fn conversation(line: &str, status: ConversationStatus) -> Conversation {
        let at = chrono::Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap();
        Conversation {
            id: "0193a1b2-0000-7000-8000-000000000001".into(),
            case_number: CaseNumber::parse(if line == "ichef" {
                "202611-IC0007"
            } else {
                "202611-SA0007"
            })
            .unwrap(),
            opportunity_id: "opp".into(),
            customer_number: "C-001".into(),
            customer_name: "Harbor Cafe".into(),
            product_line: line.into(),
            conversation_type: ConversationType::DiscoveryCall,
            title: "call".into(),
            status,
            error: (status == ConversationStatus::Failed).then(|| StageError {
                stage: ConversationStatus::Transcribing,
                code: "GROQ_API_ERROR".into(),
                message: "HTTP 503 from the provider".into(),
                retryable: true,
            }),
            blob_key: Some("uploads/2026/11/x".into()),
            rep_user_id: None,
            conversation_date: Some(at),
            media: salesai_core::domain::Media {
                file_name: Some("call-with-harbor.m4a".into()),
                bytes: Some(18_874_368),
                ..Default::default()
            },
            metadata: json!({}),
            slack: None,
            created_at: at,
            updated_at: at,
        }
    }

    fn segments(lines: &[&str]) -> Vec<Segment> {
        lines
            .iter()
            .enumerate()
            .map(|(i, text)| Segment {
                speaker: Some(if i % 2 == 0 { "Rep" } else { "Customer" }.into()),
                start_ms: i as u64 * 7000,
                end_ms: i as u64 * 7000 + 6000,
                text: (*text).into(),
                ..Default::default()
            })
            .collect()
    }

    fn outputs(language: Language, lines: &[&str], competitors: &[String]) -> AgentOutputs {
        analyze(&RulesInput {
            segments: &segments(lines),
            competitors,
            metadata: &json!({ "decision_maker_present": "yes" }),
            language,
            lexicon: &Default::default(),
        })
    }

    use salesai_core::analysis::derive::Qualification;

    /// The standing of an open deal: its band.
    fn band(a: &StoredAnalysis) -> Option<salesai_core::report::Standing> {
        Qualification::parse(&a.qualification).map(salesai_core::report::Standing::Band)
    }

    fn stored(outputs: &AgentOutputs) -> StoredAnalysis {
        let derived = derive(outputs, &Default::default());
        StoredAnalysis {
            engine: "rules".into(),
            overall_score: derived.overall,
            qualification: derived.qualification.as_str().to_owned(),
            pain_score: outputs.buyer.pain.score,
            decision_score: outputs.buyer.decision.score,
            champion_score: outputs.buyer.champion.score,
            metrics_score: outputs.buyer.metrics.score,
            result: serde_json::to_value(&derived).unwrap(),
        }
    }

    fn card(lang: Language, line: &str, outputs: &AgentOutputs) -> Value {
        let c = conversation(line, ConversationStatus::Completed);
        let a = stored(outputs);
        completed(
            lang,
            &CardFacts {
                conversation: &c,
                analysis: &a,
                standing: band(&a),
                buyer: Some(outputs.buyer.clone()),
                seller: Some(outputs.seller.clone()),
                coach: Some(outputs.coach.clone()),
                report_url: Some(format!("https://salesai.example.com/calls/{}", c.id)),
                fallbacks: Vec::new(),
                talk: None,
            },
        )
    }

    const EN_CALL: &[&str] = &[
        "Thanks for your time. How do you take orders today?",
        "We write them on paper and we lose about ten orders a week, that costs us maybe 3000 dollars a month.",
        "What happens when an order gets lost?",
        "Customers complain and the kitchen gets confused. We also looked at Square last month.",
        "Can we schedule a demo with your manager on Friday?",
        "I am the owner, I decide. If it is easy to use we could start next month.",
    ];

    const ZH_CALL: &[&str] = &[
        "老闆您好，請問現在點餐是怎麼處理的？",
        "我們都用手寫單，尖峰時間常常漏單，一個月大概損失兩三萬。",
        "漏單的時候會發生什麼事？",
        "客人會抱怨，廚房也很亂。我們上個月也有看過肚肚。",
        "那我們約週五做一次完整的展示好嗎？",
        "我是老闆，我自己決定。好用的話下個月就可以換。",
    ];

    #[test]
    fn the_english_card() {
        let out = outputs(Language::En, EN_CALL, &["Square".to_owned()]);
        let card = card(Language::En, "default", &out);
        check_limits(&card).unwrap();
        insta::assert_json_snapshot!("completed_en", card);
        assert!(
            !card.to_string().contains("rules engine"),
            "no fallback note when every agent answered"
        );
    }

    #[test]
    fn a_lost_deal_reads_lost_not_at_risk() {
        let out = outputs(Language::ZhTw, ZH_CALL, &[]);
        let c = conversation("ichef", ConversationStatus::Completed);
        let mut a = stored(&out);
        a.qualification = "at_risk".into();
        for (standing, shows, hides) in [
            (band(&a), "高風險", "失單"),
            (Some(salesai_core::report::Standing::Lost), "失單", "高風險"),
        ] {
            let card = completed(
                Language::ZhTw,
                &CardFacts {
                    conversation: &c,
                    analysis: &a,
                    standing,
                    buyer: None,
                    seller: None,
                    coach: None,
                    report_url: None,
                    fallbacks: Vec::new(),
                    talk: None,
                },
            );
            let text = card["text"].as_str().unwrap();
            assert!(text.contains(shows) && !text.contains(hides), "{text}");
        }
    }

    #[test]
    fn agents_that_fell_back_are_named_on_the_card() {
        let out = outputs(Language::ZhTw, ZH_CALL, &[]);
        let c = conversation("ichef", ConversationStatus::Completed);
        let a = stored(&out);
        let card = completed(
            Language::ZhTw,
            &CardFacts {
                conversation: &c,
                analysis: &a,
                standing: band(&a),
                buyer: Some(out.buyer.clone()),
                seller: Some(out.seller.clone()),
                coach: Some(out.coach.clone()),
                report_url: None,
                fallbacks: vec!["buyer".into(), "coach".into()],
                talk: None,
            },
        );
        check_limits(&card).unwrap();
        let text = card.to_string();
        assert!(text.contains("改由離線規則引擎分析: 買方, 教練"), "{text}");
    }

    /// Any JSON, nested a few levels.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// A form submission's state values, whatever Slack (or someone posing as it after the
        /// signature) sends: answers or field errors, never a panic.
        #[test]
        fn any_submission_is_answered(values in any_json(), shaped in any_json()) {
            let lines = salesai_core::product_line::builtin();
            for line in &lines {
                let _ = parse_submission(Language::ZhTw, line, &values);
                // Shaped like Slack's view state: block id → action id → value.
                let mut state = serde_json::Map::new();
                for f in fields(Language::En, line) {
                    state.insert(f.id.clone(), json!({ "value": shaped.clone() }));
                }
                let _ = parse_submission(Language::En, line, &Value::Object(state));
            }
        }
    }

    #[test]
    fn a_plain_text_transcript_card_says_its_times_are_estimated() {
        let out = outputs(Language::ZhTw, ZH_CALL, &[]);
        let mut c = conversation("ichef", ConversationStatus::Completed);
        let a = stored(&out);
        let facts = |c: &Conversation| {
            completed(
                Language::ZhTw,
                &CardFacts {
                    conversation: c,
                    analysis: &a,
                    standing: band(&a),
                    buyer: Some(out.buyer.clone()),
                    seller: Some(out.seller.clone()),
                    coach: Some(out.coach.clone()),
                    report_url: None,
                    fallbacks: Vec::new(),
                    talk: None,
                },
            )
            .to_string()
        };
        c.media.format = Some("vtt".into());
        assert!(
            !facts(&c).contains("估計值"),
            "a timed transcript's times are real"
        );
        c.media.format = Some("txt".into());
        assert!(facts(&c).contains("時間為估計值"));
    }

    #[test]
    fn the_traditional_chinese_card() {
        let competitors = vec!["肚肚".to_owned(), "Dudoo".to_owned()];
        let out = outputs(Language::ZhTw, ZH_CALL, &competitors);
        let card = card(Language::ZhTw, "ichef", &out);
        check_limits(&card).unwrap();
        insta::assert_json_snapshot!("completed_zh_tw", card);
    }

    #[test]
    fn status_failed_prompt_and_modal() {
        let c = conversation("ichef", ConversationStatus::Transcribing);
        insta::assert_json_snapshot!("status_zh_tw", status(Language::ZhTw, &c));
        let failed_c = conversation("default", ConversationStatus::Failed);
        let f = failed(Language::En, &failed_c);
        check_limits(&f).unwrap();
        insta::assert_json_snapshot!("failed_en", f);
        let file = FileRef {
            file_id: "F0CALL".into(),
            channel_id: "C0ICHEF".into(),
            thread_ts: Some("1700000000.000100".into()),
            product_line: "ichef".into(),
            name: "通話錄音.m4a".into(),
            size: 5_242_880,
        };
        let p = prompt(Language::ZhTw, &file);
        check_limits(&p).unwrap();
        insta::assert_json_snapshot!("prompt_zh_tw", p);
        let lines = salesai_core::product_line::builtin();
        let ichef = lines.iter().find(|l| l.id == "ichef").unwrap();
        let modal = upload_modal(Language::ZhTw, ichef, &file);
        check_limits(&modal).unwrap();
        insta::assert_json_snapshot!("modal_ichef", modal);
    }

    #[test]
    fn a_line_from_a_file_builds_its_own_modal() {
        let lines = salesai_core::product_line::with_files(&[(
            "lines/fitness.toml".into(),
            "id = \"fitness\"\ncase_prefix = \"FT\"\nlanguage = \"en\"\n\
             [[form]]\nid = \"member_count\"\nlabel = \"Members\"\nrequired = true\n\
             [[form]]\nid = \"plan\"\nlabel = \"Plan\"\noptions = [{ value = \"pro\", label = \"Pro\" }]\n"
                .into(),
        )])
        .unwrap();
        let fitness = lines.iter().find(|l| l.id == "fitness").unwrap();
        let file = FileRef {
            file_id: "F0GYM".into(),
            channel_id: "C0GYM".into(),
            thread_ts: None,
            product_line: "fitness".into(),
            name: "call.m4a".into(),
            size: 1_000,
        };
        let modal = upload_modal(Language::En, fitness, &file);
        check_limits(&modal).unwrap();
        let blocks = modal["blocks"].as_array().unwrap();
        let member = blocks
            .iter()
            .find(|b| b["block_id"] == "member_count")
            .expect("the file's field is in the modal");
        assert_eq!(member["label"]["text"], "Members");
        assert_eq!(member["optional"], false);
        let plan = blocks.iter().find(|b| b["block_id"] == "plan").unwrap();
        assert_eq!(plan["element"]["options"][0]["value"], "pro");
    }

    #[test]
    fn a_huge_analysis_still_fits_slacks_limits() {
        let mut out = outputs(Language::En, EN_CALL, &["Square".to_owned()]);
        let long = "x".repeat(10_000);
        out.buyer.pain.main_pain = Some(long.clone());
        out.buyer.pain.quantified_loss = Some(long.clone());
        out.buyer.pain.evidence = (0..200)
            .map(|i| Evidence {
                quote: format!("{i} {long}"),
                start_ms: i * 1000,
            })
            .collect();
        out.buyer.competitors = (0..100)
            .map(|i| CompetitorMention {
                name: format!("Competitor{i}{long}"),
                quote: long.clone(),
                start_ms: 0,
                attitude: "neutral".into(),
            })
            .collect();
        out.seller.next_action.action = long.clone();
        out.seller.next_action.script = Some(long.clone());
        out.seller.next_action.deadline = Some(long.clone());
        out.coach.coaching_notes = vec![long.clone(); 50];
        let card = card(Language::En, "default", &out);
        check_limits(&card).unwrap();
        assert!(
            card.to_string().len() < 40_000,
            "the whole message stays small"
        );
        let mut c = conversation("default", ConversationStatus::Failed);
        c.error.as_mut().unwrap().message = long.clone();
        c.media.file_name = Some(long.clone());
        c.media.bytes = Some(1);
        check_limits(&failed(Language::En, &c)).unwrap();
        check_limits(&status(Language::En, &c)).unwrap();
        let text = format!("{}\n", "line of a long report ".repeat(40)).repeat(400);
        let e = ephemeral(&text);
        check_limits(&e).unwrap();
        assert!(
            e["blocks"].as_array().unwrap().len() > 1,
            "long answers are split into sections"
        );
    }

    #[test]
    fn limit_checks_catch_what_slack_refuses() {
        let too_many =
            json!({ "blocks": (0..51).map(|_| json!({"type": "divider"})).collect::<Vec<_>>() });
        assert!(check_limits(&too_many).is_err());
        let long_section = json!({ "blocks": [ { "type": "section", "text": { "type": "mrkdwn", "text": "x".repeat(3001) } } ] });
        assert!(check_limits(&long_section).is_err());
        assert!(check_limits(&json!({ "title": { "text": "x".repeat(25) } })).is_err());
    }

    #[test]
    fn submissions_are_checked_against_the_form() {
        let lines = salesai_core::product_line::builtin();
        let ichef = lines.iter().find(|l| l.id == "ichef").unwrap();
        let values = json!({
            "customer_number": { "value": { "value": " IC-1 " } },
            "customer_name": { "value": { "value": "小館" } },
            "contact_email": { "value": { "value": "not-an-email" } },
            "store_type": { "value": { "selected_option": { "value": "spaceship" } } },
        });
        let errors = parse_submission(Language::ZhTw, ichef, &values).unwrap_err();
        assert_eq!(
            errors,
            BTreeMap::from([
                ("contact_email".to_owned(), "Email 格式不正確。".to_owned()),
                ("decision_maker_present".to_owned(), "必填。".to_owned()),
                ("store_type".to_owned(), "請從選項中選擇。".to_owned()),
            ])
        );
        let values = json!({
            "customer_number": { "value": { "value": " IC-1 " } },
            "customer_name": { "value": { "value": "小館" } },
            "store_type": { "value": { "selected_option": { "value": "cafe" } } },
            "decision_maker_present": { "value": { "selected_option": { "value": "yes" } } },
        });
        let ok = parse_submission(Language::ZhTw, ichef, &values).unwrap();
        assert_eq!(ok.customer_number.as_str(), "IC-1");
        assert_eq!(ok.answers["store_type"], "cafe");
        assert!(!ok.answers.contains_key("customer_name"));
    }

    #[test]
    fn bars_and_sizes() {
        assert_eq!(bar(0), "░░░░░░░░░░");
        assert_eq!(bar(62), "▓▓▓▓▓▓░░░░");
        assert_eq!(bar(100), "▓▓▓▓▓▓▓▓▓▓");
        assert_eq!(human_size(1536), "2 KB");
        assert_eq!(human_size(18_874_368), "18.0 MB");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(escape("<a&b>"), "&lt;a&amp;b&gt;");
    }

    #[test]
    fn a_failed_status_line_has_no_double_space() {
        let c = conversation("ichef", ConversationStatus::Failed);
        let text = status(Language::ZhTw, &c)["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(text.contains("階段: ") && !text.contains("  "), "{text}");
        let c = conversation("default", ConversationStatus::Analyzing);
        let text = status(Language::En, &c)["text"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(text.contains("Stage: ▰") && !text.contains("  "), "{text}");
    }

    #[test]
    fn a_file_that_is_not_a_call_fails_at_the_check_with_no_retry() {
        let mut c = conversation("ichef", ConversationStatus::Failed);
        c.error = Some(StageError {
            stage: ConversationStatus::Pending,
            code: "INVALID_INPUT".into(),
            message: "the file is not a recording or transcript salesai can read".into(),
            retryable: false,
        });
        let card = failed(Language::ZhTw, &c);
        let text = card["text"].as_str().unwrap();
        assert!(
            text.contains("檢查檔案") && !text.contains("下載檔案"),
            "{text}"
        );
        assert!(
            !card.to_string().contains(ACTION_RETRY),
            "no Retry where retrying fails the same way"
        );
        c.error = Some(StageError {
            stage: ConversationStatus::Pending,
            code: "FILE_DOWNLOAD_FAILED".into(),
            message: "HTTP 503 from files.slack.com".into(),
            retryable: true,
        });
        let card = failed(Language::En, &c);
        assert!(
            card["text"]
                .as_str()
                .unwrap()
                .contains("Downloading the file")
        );
        assert!(card.to_string().contains(ACTION_RETRY));
    }

    #[test]
    fn the_talk_line_flags_what_is_out_of_range() {
        use salesai_core::talk::{Stretch, TalkFlag, TalkStats};
        let stats = TalkStats {
            duration_ms: 600_000,
            rep_ms: 360_000,
            customer_ms: 240_000,
            unattributed_ms: 0,
            talk_ratio: 0.6,
            longest_monologue: Some(Stretch {
                start_ms: 0,
                duration_ms: 180_000,
            }),
            longest_customer_story: None,
            switches_per_minute: 3.0,
            patience_ms: Some(1_000),
            rep_questions: 3,
            questions_per_hour: 18.0,
            business_share: Some(0.7),
            attributed_share: 1.0,
            inferred: true,
        };
        let flags = [TalkFlag::LongMonologue];
        assert_eq!(
            talk_line(Language::En, &stats, &flags),
            "🗣 Talk: rep 60% · longest monologue 03:00 ⚠️ · questions/h 18 · patience 1.0 s _(speakers inferred)_"
        );
        assert_eq!(
            talk_line(Language::ZhTw, &stats, &flags),
            "🗣 談話: 業務 60% · 最長獨白 03:00 ⚠️ · 提問/小時 18 · 停頓 1.0 s _(說話者為推測)_"
        );
    }

    #[test]
    fn inferred_speakers_put_who_is_who_on_the_card() {
        let out = outputs(Language::En, EN_CALL, &[]);
        let c = conversation("default", ConversationStatus::Completed);
        let a = stored(&out);
        let talk = |inferred: bool| {
            let segments: Vec<salesai_core::transcript::Segment> = EN_CALL
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    let mut s = salesai_core::transcript::Segment::said(
                        i as u64 * 5_000,
                        i as u64 * 5_000 + 4_000,
                        *text,
                    );
                    s.role = Some(if i % 2 == 0 {
                        salesai_core::transcript::Role::Rep
                    } else {
                        salesai_core::transcript::Role::Customer
                    });
                    s.attribution = Some(if inferred {
                        salesai_core::transcript::Attribution::Inferred
                    } else {
                        salesai_core::transcript::Attribution::Known
                    });
                    s
                })
                .collect();
            let stats = salesai_core::talk::analyze(&segments).expect("sides known");
            (stats, Vec::new())
        };
        let buttons = |inferred: bool| -> Vec<String> {
            let card = completed(
                Language::En,
                &CardFacts {
                    conversation: &c,
                    analysis: &a,
                    standing: band(&a),
                    buyer: None,
                    seller: None,
                    coach: None,
                    report_url: Some("https://salesai.example.com/calls/1".into()),
                    fallbacks: Vec::new(),
                    talk: Some(talk(inferred)),
                },
            );
            check_limits(&card).unwrap();
            card["blocks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|b| b["type"] == "actions")
                .flat_map(|b| b["elements"].as_array().unwrap().clone())
                .map(|e| e["action_id"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(buttons(true), [ACTION_REPORT_LINK, ACTION_SPEAKERS]);
        assert_eq!(buttons(false), [ACTION_REPORT_LINK]);
    }

    #[test]
    fn the_who_is_who_modal_preselects_the_rep_and_fits_slack() {
        let c = conversation("default", ConversationStatus::Completed);
        let long = "a line far longer than a Slack option may show, ".repeat(4);
        let speakers = vec![
            ("Speaker 1".to_owned(), long.clone()),
            ("Speaker 2".to_owned(), "Short.".to_owned()),
        ];
        let modal = speakers_modal(Language::ZhTw, &c, &speakers, Some("Speaker 2"));
        assert_eq!(modal["callback_id"], SPEAKERS_CALLBACK);
        assert_eq!(modal["private_metadata"], c.id.as_str());
        assert_eq!(modal["title"]["text"], "誰是誰？");
        let select = &modal["blocks"][2]["element"];
        assert_eq!(select["initial_option"]["value"], "Speaker 2");
        for option in select["options"].as_array().unwrap() {
            assert!(option["text"]["text"].as_str().unwrap().chars().count() <= 75);
        }
        let none = speakers_modal(Language::En, &c, &speakers, None);
        assert!(none["blocks"][2]["element"].get("initial_option").is_none());
    }

    proptest::proptest! {
        /// Whatever a person types (a customer's name, a file's name, a reason), once escaped
        /// it cannot become Slack markup: no `<` or `>` is left to open a mention
        /// (`<!channel>`), a link (`<https://…|text>`) or a user (`<@U1>`), every `&` starts an
        /// entity, and Slack shows exactly what was typed.
        #[test]
        fn escaped_text_is_never_markup(text in "\\PC{0,120}", markup in "(<!channel>|<!here>|<@U123>|<https://evil.example\\|Full report>|&lt;|&amp;){0,3}") {
            let typed = format!("{markup}{text}{markup}");
            let escaped = escape(&typed);
            proptest::prop_assert!(!escaped.contains('<') && !escaped.contains('>'));
            for (i, _) in escaped.match_indices('&') {
                let rest = &escaped[i..];
                proptest::prop_assert!(rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;"));
            }
            let shown = escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
            proptest::prop_assert_eq!(shown, typed);
        }
    }
}
