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

fn usage(lang: Language, command: &str) -> &'static str {
    let m = lang.t();
    match command {
        "/analyze" => m.slack_usage_analyze,
        "/opportunity" => m.slack_usage_opportunity,
        "/salesai" => m.slack_usage_salesai,
        _ => m.slack_usage_report,
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
                axum::Json(ephemeral(lang.t().salesai_could_not_answer_just_now)),
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
            lang.t()
                .salesai_does_not_know_command
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
        return Ok(lang.t().web_app_s_address_is_not.to_owned());
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
            Ok(lang.t().looking_up_your_slack_account.to_owned())
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
            lang.t()
                .no_conversation_target_that_you_can
                .replace("{target}", &escape(target)),
            usage(lang, "/analyze")
        ));
    };
    if rerun {
        return Ok(match pipeline::reanalyze(store, &c).await {
            Ok(_) => lang
                .t()
                .re_running_analysis_of_case_result
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
    let score_word = lang.t().score_2;
    let (first, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    if first.eq_ignore_ascii_case("list") && rest.trim().is_empty() {
        let list = store.search_opportunities("", 10, &reach).await?;
        if list.is_empty() {
            return Ok(lang.t().no_customers_of_yours_yet_add.into());
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
            lang.t().newest_customers,
            rows.join("\n")
        ));
    }
    if first.eq_ignore_ascii_case("create") {
        let rest = rest.trim();
        let (number, name) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let Ok(number) = CustomerNumber::parse(number) else {
            return Ok(format!(
                "{}\n\n{usage}",
                lang.t()
                    .number_is_not_customer_number_letters
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
            return Ok(format!("{}\n\n{usage}", lang.t().give_customer_name));
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
                    lang.t().created,
                    escape(&o.customer_number),
                    escape(&o.company_name),
                    escape(slack.app.product_line(&o.product_line).name_in(lang))
                ),
                // Said without the other customer's name, which may be another team's.
                Err(StoreError::Conflict(_)) => lang
                    .t()
                    .customer_number_number_is_taken_already
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
            lang.t()
                .none_of_your_customers_matches_text
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
                lang.t().latest_score,
                o.latest_score.map_or("–".to_owned(), |s| s.to_string()),
                o.conversations,
                lang.t().conversation_s
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
            lang.t()
                .n_customers_match
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
        lang.t().preparing_team_report.into()
    } else {
        lang.t().preparing_your_report.into()
    })
}
