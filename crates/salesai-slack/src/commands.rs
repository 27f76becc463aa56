//! `/slack/commands`: `/analyze`, `/opportunity`, `/report`.
//!
//! Lookups are single database reads and are answered in the acknowledgement; `/report`
//! aggregates (and may call `users.info`), so it is acknowledged at once and answered through
//! `response_url` by a job. `help`, an empty line or unknown input answer with usage. Answers
//! are in the language of the channel's product line (zh-TW for `ichef`/`beauty`).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use salesai_core::domain::CustomerNumber;
use salesai_core::pipeline::{self, RestartError};
use salesai_core::queue::NewJob;
use salesai_core::store::{ConversationFilter, StoreError};

use crate::Slack;
use crate::blocks::ephemeral;
use crate::jobs::ReportJob;
use crate::reply::{form, ok_json};
use crate::text::Language;

/// Usage of each command.
pub const ANALYZE_USAGE: &str = "*/analyze* — a conversation's status and scores\n• `/analyze <case number or id>` — status and scores\n• `/analyze <case number> rerun` — run the analysis again";
/// Usage of `/opportunity`.
pub const OPPORTUNITY_USAGE: &str = "*/opportunity* — customers\n• `/opportunity <customer number or name>` — look one up, with its latest score and conversations\n• `/opportunity list` — the newest customers\n• `/opportunity create <customer number> <name>` — add a customer";
/// Usage of `/report`.
pub const REPORT_USAGE: &str = "*/report* — summaries of the last 7 days\n• `/report` — yours: uploads, average score, weakest dimension\n• `/report team` — the team's, for managers";

/// `/salesai` usage.
pub const SALESAI_USAGE: &str =
    "*/salesai login* — a one-time link that signs you in to the web app (only you see it)";
const SALESAI_USAGE_ZH: &str = "*/salesai login* — 產生一次性網頁登入連結（只有您看得到）";

const ANALYZE_USAGE_ZH: &str = "*/analyze* — 查詢對話狀態與分數\n• `/analyze <案件編號或 id>` — 狀態與分數\n• `/analyze <案件編號> rerun` — 重新分析";
const OPPORTUNITY_USAGE_ZH: &str = "*/opportunity* — 客戶\n• `/opportunity <客戶編號或名稱>` — 查詢客戶、最新分數與對話\n• `/opportunity list` — 最新客戶\n• `/opportunity create <客戶編號> <名稱>` — 新增客戶";
const REPORT_USAGE_ZH: &str = "*/report* — 最近 7 天摘要\n• `/report` — 我的：上傳數、平均分數、最弱面向\n• `/report team` — 團隊（主管）";

fn usage(lang: Language, command: &str) -> &'static str {
    match command {
        "/analyze" => lang.pick(ANALYZE_USAGE, ANALYZE_USAGE_ZH),
        "/opportunity" => lang.pick(OPPORTUNITY_USAGE, OPPORTUNITY_USAGE_ZH),
        "/salesai" => lang.pick(SALESAI_USAGE, SALESAI_USAGE_ZH),
        _ => lang.pick(REPORT_USAGE, REPORT_USAGE_ZH),
    }
}

/// The language of the channel a command came from (DMs and unmapped channels: the DM line's).
fn lang_of(slack: &Slack, f: &BTreeMap<String, String>) -> Language {
    let channel = f.get("channel_id").map(String::as_str).unwrap_or_default();
    let line = slack
        .config
        .product_line_for(channel, None)
        .unwrap_or(&slack.config.dm_product_line);
    Language::of(&slack.app.product_line(line).language)
}

pub(crate) async fn handle(slack: &Slack, body: &[u8]) -> Response {
    let f = form(body);
    let command = f.get("command").map(String::as_str).unwrap_or_default();
    let text = f.get("text").map(|s| s.trim()).unwrap_or_default();
    slack.app.metrics.slack_request(command, "handled");
    let lang = lang_of(slack, &f);
    let answer = match command {
        "/analyze" => analyze(slack, lang, text).await,
        "/opportunity" => opportunity(slack, lang, text, &f).await,
        "/report" => report(slack, lang, text, &f).await,
        "/salesai" => login(slack, lang, text, &f).await,
        _ => Ok(format!(
            "{}\n\n{}\n\n{}\n\n{}\n\n{}",
            lang.pick(
                "salesai does not know {command}.",
                "salesai 不認得 {command}。"
            )
            .replace("{command}", command),
            usage(lang, "/analyze"),
            usage(lang, "/opportunity"),
            usage(lang, "/report"),
            usage(lang, "/salesai")
        )),
    };
    match answer {
        Ok(text) => ok_json(ephemeral(&text)),
        Err(err) => {
            tracing::error!(event = "slack.command_failed", command, error = %err, "a slash command failed");
            // Slack shows a 200's text to the user; a 5xx shows a generic failure.
            (
                StatusCode::OK,
                axum::Json(ephemeral(lang.pick("salesai could not answer just now (its database is unavailable). Try again in a minute.",
                    "salesai 目前無法回應（資料庫無法使用），請一分鐘後再試。",
                ))),
            )
                .into_response()
        }
    }
}

/// `/salesai login`: a one-time sign-in link for the web app, in an ephemeral answer only the
/// person sees. The person is found by their Slack id (created as a rep on first use, as any
/// Slack action does); a deactivated person gets no link.
async fn login(
    slack: &Slack,
    lang: Language,
    text: &str,
    f: &BTreeMap<String, String>,
) -> Result<String, StoreError> {
    if !text.eq_ignore_ascii_case("login") {
        return Ok(usage(lang, "/salesai").to_owned());
    }
    let Some(base) = &slack.config.public_base_url else {
        return Ok(lang
            .pick(
                "The web app's address is not configured; ask an admin to set SALESAI_PUBLIC_URL.",
                "尚未設定網頁版的網址，請管理員設定 SALESAI_PUBLIC_URL。",
            )
            .to_owned());
    };
    let slack_id = f.get("user_id").map(String::as_str).unwrap_or_default();
    if slack_id.is_empty() {
        return Ok(usage(lang, "/salesai").to_owned());
    }
    let name = f.get("user_name").map(String::as_str).unwrap_or(slack_id);
    let store = &slack.app.store;
    let user = store
        .find_or_create_user(None, Some(slack_id), name)
        .await?;
    if !store.person(&user).await?.is_some_and(|p| p.active) {
        return Ok(lang
            .pick(
                "Your salesai account is deactivated; ask an admin.",
                "您的 salesai 帳號已停用，請洽管理員。",
            )
            .to_owned());
    }
    let path = salesai_core::access::issue_link(
        store.as_ref(),
        Some(&user),
        None,
        salesai_core::access::LINK_TTL,
    )
    .await?;
    let link = base
        .join(path.trim_start_matches('/'))
        .map(String::from)
        .unwrap_or(path);
    tracing::info!(event = "slack.login_link", user_id = %user, "sign-in link given in Slack");
    Ok(format!(
        "{}\n{link}",
        lang.pick(
            "🔑 Your sign-in link (works once, for 15 minutes; only you see this):",
            "🔑 您的登入連結（僅能使用一次、15 分鐘內有效；只有您看得到）：",
        )
    ))
}

fn is_help(text: &str) -> bool {
    text.is_empty() || text.eq_ignore_ascii_case("help")
}

async fn analyze(slack: &Slack, lang: Language, text: &str) -> Result<String, StoreError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (target, rerun) = match words.as_slice() {
        [t] if !is_help(t) => (*t, false),
        [t, r] if r.eq_ignore_ascii_case("rerun") => (*t, true),
        _ => return Ok(usage(lang, "/analyze").to_owned()),
    };
    let store = slack.app.store.as_ref();
    let Some(c) = pipeline::find(store, target).await? else {
        return Ok(format!(
            "{}\n\n{}",
            lang.pick("No conversation {target}.", "找不到對話 {target}。")
                .replace("{target}", target),
            usage(lang, "/analyze")
        ));
    };
    if rerun {
        return Ok(match pipeline::reanalyze(store, &c).await {
            Ok(_) => lang.pick("🔁 Re-running the analysis of {case}; the result updates its card in the thread.",
                "🔁 正在重新分析 {case}，結果會更新討論串中的卡片。",
            )
            .replace("{case}", c.case_number.as_str()),
            Err(RestartError::Conflict(msg)) => msg,
            Err(RestartError::Store(err)) => return Err(err),
        });
    }
    let t = |key: &str| crate::text::t(lang, key).to_owned();
    let mut out = format!(
        "*{}* · {} · {}",
        c.case_number.as_str(),
        c.product_line,
        t(c.status.as_str())
    );
    if let Some(e) = &c.error {
        out.push_str(&format!(
            "\n{} {}: `{}` {}",
            t("failed"),
            t(e.stage.as_str()),
            e.code,
            e.message
        ));
    }
    if let Some(a) = store.get_analysis(&c.id).await? {
        out.push_str(&format!(
            "\n{} *{}/100* · {} {} · {} {} · {} {} · {} {}",
            t("overall"),
            a.overall_score.value(),
            t("pain"),
            a.pain_score.value(),
            t("decision"),
            a.decision_score.value(),
            t("champion"),
            a.champion_score.value(),
            t("metrics"),
            a.metrics_score.value()
        ));
    }
    if let Some(url) = slack.report_url(&c.id) {
        out.push_str(&format!("\n<{url}|{}>", t("full_report")));
    }
    Ok(out)
}

async fn opportunity(
    slack: &Slack,
    lang: Language,
    text: &str,
    f: &BTreeMap<String, String>,
) -> Result<String, StoreError> {
    let store = slack.app.store.as_ref();
    let usage = usage(lang, "/opportunity");
    if is_help(text) {
        return Ok(usage.to_owned());
    }
    let score_word = lang.pick("score", "分數");
    let (first, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    if first.eq_ignore_ascii_case("list") && rest.trim().is_empty() {
        let list = store.search_opportunities("", 10).await?;
        if list.is_empty() {
            return Ok(lang.pick("No customers yet. Add one with `/opportunity create <customer number> <name>`.",
                "尚無客戶。用 `/opportunity create <客戶編號> <名稱>` 新增。",
            )
            .into());
        }
        let rows: Vec<String> = list
            .iter()
            .map(|o| {
                format!(
                    "• `{}` {} · {} · {score_word} {}",
                    o.customer_number,
                    o.company_name,
                    o.status,
                    o.latest_score.map_or("–".to_owned(), |s| s.to_string())
                )
            })
            .collect();
        return Ok(format!(
            "*{}*\n{}",
            lang.pick("Newest customers", "最新客戶"),
            rows.join("\n")
        ));
    }
    if first.eq_ignore_ascii_case("create") {
        let rest = rest.trim();
        let (number, name) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let Ok(number) = CustomerNumber::parse(number) else {
            return Ok(format!(
                "{}\n\n{usage}",
                lang.pick(
                    "`{number}` is not a customer number (letters, digits, - and _).",
                    "`{number}` 不是客戶編號（英數字、- 與 _）。"
                )
                .replace("{number}", number)
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Ok(format!(
                "{}\n\n{usage}",
                lang.pick("Give the customer a name.", "請輸入客戶名稱。")
            ));
        }
        let channel = f.get("channel_id").map(String::as_str).unwrap_or_default();
        let line = slack
            .config
            .product_line_for(channel, None)
            .unwrap_or(&slack.config.dm_product_line)
            .to_owned();
        let user_id = f.get("user_id").map(String::as_str).unwrap_or_default();
        let user_name = f.get("user_name").map(String::as_str).unwrap_or(user_id);
        let owner = store
            .find_or_create_user(None, Some(user_id), user_name)
            .await?;
        return Ok(
            match store
                .create_opportunity(
                    number.as_str(),
                    &name.chars().take(200).collect::<String>(),
                    &line,
                    Some(&owner),
                )
                .await
            {
                Ok(o) => format!(
                    "✅ {} `{}` {} ({}).",
                    lang.pick("Created", "已建立"),
                    o.customer_number,
                    o.company_name,
                    o.product_line
                ),
                Err(StoreError::Conflict(_)) => lang.pick("Customer {number} already exists; look it up with `/opportunity {number}`.",
                    "客戶 {number} 已存在；用 `/opportunity {number}` 查詢。",
                )
                .replace("{number}", number.as_str()),
                Err(other) => return Err(other),
            },
        );
    }
    let found = match store.get_opportunity(text).await? {
        Some(o) => vec![o],
        None => store.search_opportunities(text, 5).await?,
    };
    match found.as_slice() {
        [] => Ok(format!(
            "{}\n\n{usage}",
            lang.pick(
                "No customer matches “{text}”.",
                "沒有符合「{text}」的客戶。"
            )
            .replace("{text}", text)
        )),
        [o] => {
            let conversations = store
                .list_conversations(&ConversationFilter {
                    customer_number: Some(o.customer_number.clone()),
                    limit: 5,
                    ..Default::default()
                })
                .await?;
            let mut out = format!(
                "*{}* `{}` · {} · {} · {} *{}* · {} {}",
                o.company_name,
                o.customer_number,
                o.product_line,
                o.status,
                lang.pick("latest score", "最新分數"),
                o.latest_score.map_or("–".to_owned(), |s| s.to_string()),
                o.conversations,
                lang.pick("conversation(s)", "通對話")
            );
            for c in conversations {
                out.push_str(&format!(
                    "\n• {} · {} · {}",
                    c.case_number.as_str(),
                    crate::text::t(lang, c.status.as_str()),
                    c.created_at.format("%Y-%m-%d")
                ));
            }
            Ok(out)
        }
        many => Ok(format!(
            "{}\n{}",
            lang.pick("{n} customers match:", "{n} 位客戶符合：")
                .replace("{n}", &many.len().to_string()),
            many.iter()
                .map(|o| format!("• `{}` {}", o.customer_number, o.company_name))
                .collect::<Vec<_>>()
                .join("\n")
        )),
    }
}

async fn report(
    slack: &Slack,
    lang: Language,
    text: &str,
    f: &BTreeMap<String, String>,
) -> Result<String, StoreError> {
    let team = match text.to_ascii_lowercase().as_str() {
        "" | "me" | "my" => false,
        "team" => true,
        _ => return Ok(usage(lang, "/report").to_owned()),
    };
    let Some(response_url) = f.get("response_url") else {
        return Ok(usage(lang, "/report").to_owned());
    };
    let job = NewJob::of(&ReportJob {
        team,
        user_id: f.get("user_id").cloned().unwrap_or_default(),
        user_name: f.get("user_name").cloned(),
        response_url: response_url.clone(),
        lang: Some(
            if lang == Language::ZhTw {
                "zh-TW"
            } else {
                "en"
            }
            .to_owned(),
        ),
    });
    slack.app.store.enqueue(job).await?;
    Ok(if team {
        lang.pick("⏳ Preparing the team report…", "⏳ 正在準備團隊報告…")
            .into()
    } else {
        lang.pick("⏳ Preparing your report…", "⏳ 正在準備你的報告…")
            .into()
    })
}
