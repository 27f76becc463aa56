//! `/slack/commands`: `/analyze`, `/opportunity`, `/report`.
//!
//! Lookups are single database reads and are answered in the acknowledgement; `/report`
//! aggregates (and may call `users.info`), so it is acknowledged at once and answered through
//! `response_url` by a job. `help`, an empty line or unknown input answer with usage. Answers
//! are in the language of the channel's product line (zh-TW for `ichef`/`beauty`).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use salesai_core::domain::{CustomerNumber, Role};
use salesai_core::pipeline::{self, RestartError};
use salesai_core::queue::NewJob;
use salesai_core::store::{ConversationFilter, StoreError};

use salesai_core::access::Principal;
use salesai_core::store::Person;

use crate::Slack;
use crate::access::{SlackUser, may_reach};
use crate::blocks::{ephemeral, escape};
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

/// The commands salesai answers (the authorisation matrix test reads this list: a command
/// added here without rows there fails it).
pub const COMMANDS: &[&str] = &["/analyze", "/opportunity", "/report", "/salesai"];

pub(crate) async fn handle(slack: &Slack, body: &[u8]) -> Response {
    let f = form(body);
    let command = f.get("command").map(String::as_str).unwrap_or_default();
    let text = f.get("text").map(|s| s.trim()).unwrap_or_default();
    slack.app.metrics.slack_request(command, "handled");
    let lang = lang_of(slack, &f);
    match answer(slack, lang, command, text, &f).await {
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

/// The answer to one command: the Slack user is resolved to a person first, and a command
/// answers only with what that person may reach — the same rules as the web app and the API.
async fn answer(
    slack: &Slack,
    lang: Language,
    command: &str,
    text: &str,
    f: &BTreeMap<String, String>,
) -> Result<String, StoreError> {
    if !COMMANDS.contains(&command) {
        return Ok(format!(
            "{}\n\n{}\n\n{}\n\n{}\n\n{}",
            lang.pick(
                "salesai does not know {command}.",
                "salesai 不認得 {command}。"
            )
            .replace("{command}", &escape(command)),
            usage(lang, "/analyze"),
            usage(lang, "/opportunity"),
            usage(lang, "/report"),
            usage(lang, "/salesai")
        ));
    }
    let slack_user = f.get("user_id").map(String::as_str).unwrap_or_default();
    let who = SlackUser::resolve(slack.app.store.as_ref(), slack_user).await?;
    // `/salesai login` is how someone invited by e-mail first introduces their Slack account:
    // they are looked up through their Slack profile in a job.
    if command == "/salesai" {
        return login(slack, lang, text, f, &who).await;
    }
    let (person, principal) = match who.person(lang) {
        Ok(found) => found,
        Err(refusal) => return Ok(refusal.to_owned()),
    };
    match command {
        "/analyze" => analyze(slack, lang, text, &principal).await,
        "/opportunity" => opportunity(slack, lang, text, f, person, &principal).await,
        _ => report(slack, lang, text, f, &principal).await,
    }
}

/// `/salesai login`: a one-time sign-in link for the web app, in an answer only the person
/// sees. A known person gets it at once; a Slack user salesai does not know yet is looked up by
/// the e-mail of their Slack profile in a job ([`crate::jobs::LoginJob`]) that answers through
/// `response_url` — with the link when an admin invited that e-mail, else with what to do.
/// Nobody is created here.
async fn login(
    slack: &Slack,
    lang: Language,
    text: &str,
    f: &BTreeMap<String, String>,
    who: &SlackUser,
) -> Result<String, StoreError> {
    if !text.eq_ignore_ascii_case("login") {
        return Ok(usage(lang, "/salesai").to_owned());
    }
    if slack.config.public_base_url.is_none() {
        return Ok(lang
            .pick(
                "The web app's address is not configured; ask an admin to set SALESAI_PUBLIC_URL.",
                "尚未設定網頁版的網址，請管理員設定 SALESAI_PUBLIC_URL。",
            )
            .to_owned());
    }
    match who {
        SlackUser::Known(person) => crate::jobs::login_link(slack, lang, &person.user.id).await,
        SlackUser::Deactivated => Ok(crate::access::deactivated(lang).to_owned()),
        SlackUser::Unknown => {
            let (Some(user), Some(response_url)) = (f.get("user_id"), f.get("response_url")) else {
                return Ok(usage(lang, "/salesai").to_owned());
            };
            slack
                .app
                .store
                .enqueue(NewJob::of(&crate::jobs::LoginJob {
                    user_id: user.clone(),
                    response_url: response_url.clone(),
                    lang: Some(lang.code().to_owned()),
                }))
                .await?;
            Ok(lang
                .pick(
                    "⏳ Looking up your Slack account…",
                    "⏳ 正在查詢您的 Slack 帳號…",
                )
                .to_owned())
        }
    }
}

fn is_help(text: &str) -> bool {
    text.is_empty() || text.eq_ignore_ascii_case("help")
}

async fn analyze(
    slack: &Slack,
    lang: Language,
    text: &str,
    principal: &Principal,
) -> Result<String, StoreError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (target, rerun) = match words.as_slice() {
        [t] if !is_help(t) => (*t, false),
        [t, r] if r.eq_ignore_ascii_case("rerun") => (*t, true),
        _ => return Ok(usage(lang, "/analyze").to_owned()),
    };
    let store = slack.app.store.as_ref();
    // A call the person may not reach answers exactly like one that does not exist: case
    // numbers are sequential, so a different answer would confirm another rep's case.
    let found = match pipeline::find(store, target).await? {
        Some(c) if may_reach(store, principal, &c).await? => Some(c),
        _ => None,
    };
    let Some(c) = found else {
        return Ok(format!(
            "{}\n\n{}",
            lang.pick(
                "No conversation {target} that you can see.",
                "找不到您可查看的對話 {target}。"
            )
            .replace("{target}", &escape(target)),
            usage(lang, "/analyze")
        ));
    };
    if rerun {
        return Ok(match pipeline::reanalyze(store, &c).await {
            Ok(_) => lang.pick("🔁 Re-running the analysis of {case}; the result updates its card in the thread.",
                "🔁 正在重新分析 {case}，結果會更新討論串中的卡片。",
            )
            .replace("{case}", c.case_number.as_str()),
            Err(RestartError::Conflict(msg) | RestartError::Invalid(msg)) => escape(&msg),
            Err(RestartError::Store(err)) => return Err(err),
        });
    }
    let t = |key: &str| crate::text::t(lang, key).to_owned();
    let line = slack.app.product_line(&c.product_line);
    let mut out = format!(
        "*{}* · {} · {}",
        c.case_number.as_str(),
        escape(line.name_in(lang)),
        t(c.status.as_str())
    );
    if let Some(e) = &c.error {
        out.push_str(&format!(
            "\n{} {}: `{}` {}",
            t("failed"),
            t(e.stage.as_str()),
            e.code,
            escape(&e.message)
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
    person: &Person,
    principal: &Principal,
) -> Result<String, StoreError> {
    let store = slack.app.store.as_ref();
    let usage = usage(lang, "/opportunity");
    if is_help(text) {
        return Ok(usage.to_owned());
    }
    let reach = principal.reach();
    let score_word = lang.pick("score", "分數");
    let (first, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    if first.eq_ignore_ascii_case("list") && rest.trim().is_empty() {
        let list = store.search_opportunities("", 10, &reach).await?;
        if list.is_empty() {
            return Ok(lang.pick("No customers of yours yet. Add one with `/opportunity create <customer number> <name>`.",
                "您還沒有客戶。用 `/opportunity create <客戶編號> <名稱>` 新增。",
            )
            .into());
        }
        let rows: Vec<String> = list
            .iter()
            .map(|o| {
                format!(
                    "• `{}` {} · {} · {score_word} {}",
                    escape(&o.customer_number),
                    escape(&o.company_name),
                    escape(&o.status),
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
                .replace("{number}", &escape(number))
            ));
        };
        let name: String = name
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
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
        return Ok(
            match store
                .create_opportunity(number.as_str(), &name, &line, Some(&person.user.id))
                .await
            {
                Ok(o) => format!(
                    "✅ {} `{}` {} ({}).",
                    lang.pick("Created", "已建立"),
                    escape(&o.customer_number),
                    escape(&o.company_name),
                    escape(slack.app.product_line(&o.product_line).name_in(lang))
                ),
                // Said without the other customer's name, which may be another team's.
                Err(StoreError::Conflict(_)) => lang.pick("Customer number {number} is taken already; look it up with `/opportunity {number}`, or choose another number.",
                    "客戶編號 {number} 已被使用；用 `/opportunity {number}` 查詢，或改用其他編號。",
                )
                .replace("{number}", number.as_str()),
                Err(other) => return Err(other),
            },
        );
    }
    let mut found = store.search_opportunities(text, 5, &reach).await?;
    if let Some(exact) = found.iter().position(|o| o.customer_number == text) {
        found = vec![found.swap_remove(exact)];
    }
    match found.as_slice() {
        [] => Ok(format!(
            "{}\n\n{usage}",
            lang.pick(
                "None of your customers matches “{text}”.",
                "您的客戶中沒有符合「{text}」的。"
            )
            .replace("{text}", &escape(text))
        )),
        [o] => {
            let conversations = store
                .list_conversations(&ConversationFilter {
                    customer_number: Some(o.customer_number.clone()),
                    reach: Some(reach.clone()),
                    limit: 5,
                    ..Default::default()
                })
                .await?;
            let mut out = format!(
                "*{}* `{}` · {} · {} · {} *{}* · {} {}",
                escape(&o.company_name),
                escape(&o.customer_number),
                escape(slack.app.product_line(&o.product_line).name_in(lang)),
                escape(&o.status),
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
                .map(|o| format!(
                    "• `{}` {}",
                    escape(&o.customer_number),
                    escape(&o.company_name)
                ))
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
    principal: &Principal,
) -> Result<String, StoreError> {
    let team = match text.to_ascii_lowercase().as_str() {
        "" | "me" | "my" => false,
        "team" => true,
        _ => return Ok(usage(lang, "/report").to_owned()),
    };
    if team && !matches!(principal.role, Role::Manager | Role::Admin) {
        return Ok(crate::jobs::team_report_refusal(lang).to_owned());
    }
    let Some(response_url) = f.get("response_url") else {
        return Ok(usage(lang, "/report").to_owned());
    };
    let job = NewJob::of(&ReportJob {
        team,
        user_id: f.get("user_id").cloned().unwrap_or_default(),
        user_name: f.get("user_name").cloned(),
        response_url: response_url.clone(),
        lang: Some(lang.code().to_owned()),
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
