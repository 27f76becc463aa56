//! Block Kit: every message and modal salesai shows in Slack, rendered from plain data so it
//! can be snapshot-tested, and kept inside Slack's limits (≤ 50 blocks per message, section
//! text ≤ 3,000 characters, button text ≤ 75, modal title ≤ 24, metadata ≤ 3,000).

use std::collections::BTreeMap;

use salesai_core::analysis::{BuyerOutput, CoachOutput, SellerOutput, Strategy};
use salesai_core::domain::{Conversation, CustomerNumber};
use salesai_core::product_line::ProductLine;
use salesai_core::store::StoredAnalysis;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::text::{Lang, explain, t};

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

fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": truncate(text, MAX_SECTION) } })
}

fn plain(text: &str, max: usize) -> Value {
    json!({ "type": "plain_text", "text": truncate(text, max), "emoji": true })
}

fn context(text: &str) -> Value {
    json!({ "type": "context", "elements": [ { "type": "mrkdwn", "text": truncate(text, MAX_SECTION) } ] })
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
pub fn prompt(lang: Lang, file: &FileRef) -> Value {
    let value = serde_json::to_string(file).expect("a FileRef serialises");
    let text = format!(
        "📎 *{}* ({}) — {}",
        escape(&truncate(&file.name, 200)),
        human_size(file.size),
        t(lang, "prompt")
    );
    json!({
        "text": text,
        "blocks": [
            section(&text),
            { "type": "actions", "block_id": "salesai_prompt", "elements": [ {
                "type": "button",
                "action_id": ACTION_OPEN_UPLOAD,
                "style": "primary",
                "text": plain(t(lang, "analyze_button"), 75),
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
fn fields(lang: Lang, line: &ProductLine) -> Vec<Field> {
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
            label: f.label.clone(),
            required: f.required,
            options: f
                .options
                .iter()
                .map(|o| (o.value.clone(), o.label.clone()))
                .collect(),
            email: false,
        });
    }
    out
}

/// The upload modal, built from the product line's form definition.
pub fn upload_modal(lang: Lang, line: &ProductLine, file: &FileRef) -> Value {
    let mut blocks = vec![context(&format!(
        "📎 *{}* · {} · {}",
        escape(&truncate(&file.name, 200)),
        human_size(file.size),
        escape(&line.display_name)
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
        "title": plain(t(lang, "modal_title"), 24),
        "submit": plain(t(lang, "submit"), 24),
        "close": plain(t(lang, "cancel"), 24),
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
    lang: Lang,
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
                errors.insert(id, t(lang, "required").to_owned());
            }
            None => {}
            Some(a) => {
                if !options.is_empty() && !options.iter().any(|(value, _)| *value == a) {
                    errors.insert(id, t(lang, "bad_choice").to_owned());
                } else if email && !(a.contains('@') && a.len() <= 254) {
                    errors.insert(id, t(lang, "bad_email").to_owned());
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
                t(lang, "bad_customer_number").to_owned(),
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
pub fn status(lang: Lang, conversation: &Conversation) -> Value {
    let meta = &conversation.metadata;
    let name = meta["file_name"].as_str().unwrap_or("recording");
    let size = meta["bytes"]
        .as_u64()
        .or_else(|| meta["source_bytes"].as_u64());
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
    let text = format!(
        "{icon} *{}*{} · {} *{}*\n{}: {} {}",
        escape(&truncate(name, 200)),
        size.map(|s| format!(" ({})", human_size(s)))
            .unwrap_or_default(),
        t(lang, "case"),
        conversation.case_number.as_str(),
        t(lang, "stage"),
        progress,
        t(lang, state),
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
    /// The buyer agent's output, when readable.
    pub buyer: Option<BuyerOutput>,
    /// The seller agent's output, when readable.
    pub seller: Option<SellerOutput>,
    /// The coach agent's output, when readable.
    pub coach: Option<CoachOutput>,
    /// The full report's URL, when a public base URL is configured.
    pub report_url: Option<String>,
}

fn mmss(ms: u64) -> String {
    format!("{:02}:{:02}", ms / 60_000, (ms / 1000) % 60)
}

/// The completed card: score and qualification, PDCM bars, SPIN, top pains with a quote,
/// strategy and next action, competitor alert, coaching highlight, report link.
pub fn completed(lang: Lang, facts: &CardFacts<'_>) -> Value {
    let a = facts.analysis;
    let c = facts.conversation;
    let qualification = t(lang, &a.qualification).to_owned();
    let title = format!(
        "{} · {} {}",
        t(lang, "done_title"),
        t(lang, "case"),
        c.case_number.as_str()
    );
    let mut blocks = vec![
        json!({ "type": "header", "text": plain(&title, 150) }),
        section(&format!(
            "*{}: {}/100* · {}: *{}*",
            t(lang, "overall"),
            a.overall_score.value(),
            t(lang, "qualification"),
            qualification
        )),
    ];
    let pdcm = [
        ("pain", a.pain_score.value()),
        ("decision", a.decision_score.value()),
        ("champion", a.champion_score.value()),
        ("metrics", a.metrics_score.value()),
    ];
    let mut bars = String::from("```");
    for (key, score) in pdcm {
        bars.push_str(&format!(
            "\n{:<10} {} {:>3}",
            t(lang, key),
            bar(score),
            score
        ));
    }
    bars.push_str("\n```");
    blocks.push(section(&bars));
    if let Some(seller) = &facts.seller {
        blocks.push(context(&format!(
            "{}: *{}%*  (S {} · P {} · I {} · N {})",
            t(lang, "spin"),
            seller.spin.completion.value(),
            seller.spin.situation.value(),
            seller.spin.problem.value(),
            seller.spin.implication.value(),
            seller.spin.need_payoff.value(),
        )));
    }
    if let Some(buyer) = &facts.buyer {
        let mut pains = Vec::new();
        if let Some(main) = &buyer.pain.main_pain {
            pains.push(format!("• *{}*", escape(&truncate(main, 300))));
        }
        for e in buyer.pain.evidence.iter().take(3) {
            pains.push(format!(
                "> “{}” _({})_",
                escape(&truncate(&e.quote, 200)),
                mmss(e.start_ms)
            ));
        }
        if let Some(loss) = &buyer.pain.quantified_loss {
            pains.push(format!("• {}", escape(&truncate(loss, 300))));
        }
        if !pains.is_empty() {
            blocks.push(json!({ "type": "divider" }));
            blocks.push(section(&format!(
                "*{}*\n{}",
                t(lang, "top_pains"),
                pains.join("\n")
            )));
        }
        if let Some(first) = buyer.competitors.first() {
            let names: Vec<&str> = buyer.competitors.iter().map(|m| m.name.as_str()).collect();
            blocks.push(section(&format!(
                "⚠️ *{}*: {}\n> “{}”",
                t(lang, "competitor_alert"),
                escape(&truncate(&names.join(", "), 300)),
                escape(&truncate(&first.quote, 300))
            )));
        }
    }
    if let Some(seller) = &facts.seller {
        let strategy = match seller.strategy {
            Strategy::CloseNow => "close_now",
            Strategy::SmallStep => "small_step",
            Strategy::KeepWarm => "keep_warm",
        };
        let mut text = format!(
            "*{}*: {}\n*{}*: {}",
            t(lang, "strategy"),
            t(lang, strategy),
            t(lang, "next_action"),
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
            t(lang, "coaching"),
            escape(&truncate(note, 1000))
        )));
    }
    if let Some(url) = &facts.report_url {
        blocks.push(
            json!({ "type": "actions", "block_id": "salesai_report", "elements": [ {
            "type": "button",
            "action_id": ACTION_REPORT_LINK,
            "text": plain(t(lang, "full_report"), 75),
            "url": truncate(url, 3000),
        } ] }),
        );
    }
    blocks.truncate(MAX_BLOCKS);
    let text = format!(
        "{} — {} {}/100 ({})",
        title,
        t(lang, "overall"),
        a.overall_score.value(),
        qualification
    );
    json!({ "text": text, "blocks": blocks })
}

/// The failure notice: the code, what it means, and a Retry button that resumes the
/// conversation.
pub fn failed(lang: Lang, conversation: &Conversation) -> Value {
    let (stage, code, message) = conversation
        .error
        .as_ref()
        .map(|e| (e.stage.as_str(), e.code.as_str(), e.message.as_str()))
        .unwrap_or(("pending", "INTERNAL", ""));
    let text = format!(
        "❌ *{}* · {} *{}*\n{}: {} · `{}`\n{}",
        t(lang, "failed_title"),
        t(lang, "case"),
        conversation.case_number.as_str(),
        t(lang, "stage"),
        t(lang, stage),
        code,
        explain(lang, code),
    );
    let mut blocks = vec![section(&text)];
    if !message.is_empty() {
        blocks.push(context(&format!("`{}`", escape(&truncate(message, 500)))));
    }
    blocks.push(
        json!({ "type": "actions", "block_id": "salesai_failed", "elements": [ {
        "type": "button",
        "action_id": ACTION_RETRY,
        "style": "primary",
        "text": plain(t(lang, "retry"), 75),
        "value": conversation.id,
    } ] }),
    );
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
