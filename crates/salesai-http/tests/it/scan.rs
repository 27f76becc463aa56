//! Every page of a seeded instance, read as a person reads it: in zh-TW no Latin-script word
//! that is not a name, a code, a unit or a number the page may show; in English no Chinese
//! character that is not the customer's own words. A label printed by its wire name, a text left
//! out of the catalogue, a product line's English name on a Chinese page — each fails here,
//! naming the page and the word.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use salesai_core::domain::Role;
use salesai_db::story;
use salesai_db::testing::TestDb;
use serde_json::Value;

use super::TestApp;
use super::web::{Browser, Cast, no_redirects};

/// Words a zh-TW page may show in Latin script: product and method names, units, what people
/// type (the seeded data's names and e-mails), codes.
const ALLOWED_LATIN: &[&str] = &[
    "salesai", "PDCM", "SPIN", "MEDDIC", "CRM", "API", "OpenAPI", "Email", "email", "Slack",
    "iCHEF", "LINE", "POS", "KB", "MB", "GB", "B", "s", "ms", "min", "h", "SSO", "JSON", "ID",
    "id", "OK", "AI", "vs", "http", "https", "Bearer", "curl", "v1", "openapi",
    // File formats people recognise by these names.
    "MP3", "M4A", "WAV", "FLAC", "Ogg", "Opus", "WebM", "WebVTT", "SRT", "Markdown", "HTML",
];

/// Visible text of an HTML page: text nodes and the attributes people read (placeholders,
/// titles, labels, alternative text), without scripts, styles or markup. Skipped: what is typed
/// as is (`<code>`, `<pre>`: commands, codes) and what says it is in another language
/// (`lang="…"`, like the language switch naming each language in itself). Inline tags do not
/// split words (a search hit's `<mark>`).
fn visible_text(html: &str, page_lang: &str) -> String {
    const INLINE: &[&str] = &[
        "mark", "b", "strong", "em", "i", "small", "span", "a", "abbr",
    ];
    let mut out = String::new();
    let mut rest = html;
    // The tag whose content is being skipped, and how deep inside it we are.
    let mut skipping: Option<(String, usize)> = None;
    while let Some(open) = rest.find('<') {
        if skipping.is_none() {
            out.push_str(&decode(&rest[..open]));
        }
        let after = &rest[open..];
        let Some(close) = after.find('>') else { break };
        let tag = &after[1..close];
        let closing = tag.starts_with('/');
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        rest = &after[close + 1..];
        if let Some((skipped, depth)) = &mut skipping {
            if *skipped == name {
                if closing {
                    if *depth == 0 {
                        skipping = None;
                    } else {
                        *depth -= 1;
                    }
                } else if !tag.ends_with('/') {
                    *depth += 1;
                }
            }
            continue;
        }
        if name == "script" || name == "style" {
            let end = format!("</{name}>");
            rest = rest.find(&end).map_or("", |at| &rest[at + end.len()..]);
            continue;
        }
        let other_language = tag
            .split("lang=\"")
            .nth(1)
            .and_then(|v| v.split('"').next())
            .is_some_and(|l| !l.eq_ignore_ascii_case(page_lang));
        if !closing && (name == "code" || name == "pre" || other_language) {
            skipping = Some((name, 0));
            continue;
        }
        for attr in ["placeholder", "title", "aria-label", "alt", "data-label"] {
            let needle = format!(" {attr}=\"");
            if let Some(at) = tag.find(&needle) {
                let value = &tag[at + needle.len()..];
                out.push(' ');
                out.push_str(&decode(&value[..value.find('"').unwrap_or(value.len())]));
                out.push(' ');
            }
        }
        if !INLINE.contains(&name.as_str()) {
            out.push(' ');
        }
    }
    if skipping.is_none() {
        out.push_str(&decode(rest));
    }
    out
}

fn decode(text: &str) -> String {
    text.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// The Latin-script words of a zh-TW page that are not allowed: everything but the allow-list,
/// the seeded data, codes (case and customer numbers, UPPER_CASE names), e-mails and URLs.
fn stray_latin(text: &str, data: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for token in text.split(|c: char| {
        c.is_whitespace() || "()（）[]【】「」,，。：:;；!！?？·/|、—–-\"'“”‘’<>=+*#…".contains(c)
    }) {
        let token =
            token.trim_matches(|c: char| !c.is_alphanumeric() && c != '@' && c != '_' && c != '.');
        if token.is_empty() || !token.chars().any(|c| c.is_ascii_alphabetic()) {
            continue;
        }
        let word = token.trim_end_matches('.');
        let code_like = word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            || word.chars().any(|c| c.is_ascii_digit())
            || word.contains('@')
            || word.contains('_')
            || word.starts_with("http")
            || word.contains('.');
        if code_like
            || ALLOWED_LATIN.contains(&word)
            || data.iter().any(|d| {
                d.split_whitespace()
                    .any(|w| w.trim_matches(|c: char| !c.is_alphanumeric()) == word)
            })
        {
            continue;
        }
        out.insert(word.to_owned());
    }
    out
}

/// Chinese characters on an English page that are not the seeded data's own words.
fn stray_cjk(text: &str, data: &BTreeSet<String>) -> BTreeSet<String> {
    let mut cleaned = text.to_owned();
    for d in data {
        cleaned = cleaned.replace(d.as_str(), " ");
    }
    let mut out = BTreeSet::new();
    let mut run = String::new();
    for c in cleaned.chars().chain(std::iter::once(' ')) {
        if salesai_core::transcript::is_cjk(c) {
            run.push(c);
        } else if !run.is_empty() {
            // The language switch names the other language in itself.
            if run != "中文" {
                out.insert(std::mem::take(&mut run));
            }
            run.clear();
        }
    }
    out
}

const ZH_CALL: &str = "WEBVTT\n\n00:00:01.000 --> 00:00:05.000\n<v 業務>陳老闆您好，請問現在店裡點餐是怎麼處理的？\n\n\
00:00:05.000 --> 00:00:12.000\n<v 店長>都是手寫點單，尖峰時常常漏單，一個月大概損失兩萬元。\n\n\
00:00:12.000 --> 00:00:16.000\n<v 業務>漏單的時候客人會不會抱怨？\n\n\
00:00:16.000 --> 00:00:22.000\n<v 店長>會啊，上週就有客人生氣離開。我是老闆，我可以決定。\n\n\
00:00:22.000 --> 00:00:26.000\n<v 業務>那下週二下午三點我過來幫您安裝試用，好嗎？\n\n\
00:00:26.000 --> 00:00:30.000\n<v 店長>好，下週二下午三點可以。\n";

const EN_CALL: &str = "WEBVTT\n\n00:00:01.000 --> 00:00:05.000\n<v Rep>How do you take orders today?\n\n\
00:00:05.000 --> 00:00:12.000\n<v Owner>By hand, and we lose about two thousand dollars a month in mistakes.\n\n\
00:00:12.000 --> 00:00:16.000\n<v Rep>What happens when an order is lost?\n\n\
00:00:16.000 --> 00:00:22.000\n<v Owner>Customers complain. I'm the owner, I decide.\n\n\
00:00:22.000 --> 00:00:26.000\n<v Rep>Can we install a trial next Tuesday at 3pm?\n\n\
00:00:26.000 --> 00:00:30.000\n<v Owner>Tuesday at 3 works.\n";

async fn upload(
    t: &TestApp,
    token: &str,
    line: &str,
    customer: &str,
    name: &str,
    body: &[u8],
    file: &str,
) -> String {
    let created: Value = t
        .client
        .post(format!("{}/api/v1/conversations", t.base))
        .bearer_auth(token)
        .multipart(
            reqwest::multipart::Form::new()
                .text("customer_number", customer.to_owned())
                .text("customer_name", name.to_owned())
                .text("product_line", line.to_owned())
                .text("conversation_date", "2026-11-20")
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(body.to_vec()).file_name(file.to_owned()),
                ),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["id"].as_str().unwrap().to_owned()
}

async fn settled(t: &TestApp, id: &str) {
    for _ in 0..600 {
        let c = t.app.store.get_conversation(id).await.unwrap().unwrap();
        if matches!(
            c.status,
            salesai_core::domain::ConversationStatus::Completed
                | salesai_core::domain::ConversationStatus::Failed
        ) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{id} did not settle");
}

async fn page_in(
    t: &TestApp,
    who: Option<&Browser>,
    path: &str,
    lang: &str,
) -> (StatusCode, String) {
    let mut req = no_redirects()
        .get(format!("{}{path}", t.base))
        .header(COOKIE, format!("salesai_lang={lang}"));
    if let Some(b) = who {
        req = req.header(COOKIE, format!("{}; salesai_lang={lang}", b.cookie));
    }
    let r = req.send().await.unwrap();
    (r.status(), r.text().await.unwrap_or_default())
}

story!(every_page_speaks_the_readers_language);
async fn every_page_speaks_the_readers_language(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let store = t.app.store.clone();
    let cast = Cast::invite(&store, Role::Admin).await;
    let worker = super::pipeline::start_worker(&t.app);
    let amy_token = t.token_of("amy", Role::Rep, Some(&cast.amy.user.id)).await;
    let zh_call = upload(
        &t,
        &amy_token,
        "ichef",
        "C-ZH",
        "好食餐廳",
        ZH_CALL.as_bytes(),
        "chen.vtt",
    )
    .await;
    let en_call = upload(
        &t,
        &amy_token,
        "default",
        "C-EN",
        "Harbor Cafe",
        EN_CALL.as_bytes(),
        "harbor.vtt",
    )
    .await;
    // A recording with no speech-to-text configured: it fails, as a manager sees it.
    let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    wav.extend(vec![0u8; 2048]);
    let failed = upload(
        &t,
        &amy_token,
        "ichef",
        "C-FAIL",
        "失敗小館",
        &wav,
        "call.wav",
    )
    .await;
    for id in [&zh_call, &en_call, &failed] {
        settled(&t, id).await;
    }
    worker.cancel();
    let amy = t.sign_in(&cast.amy.user.id).await;
    let mia = t.sign_in(&cast.mia.user.id).await;
    let ada = t.sign_in(&cast.ada.user.id).await;
    let bob = t.sign_in(&cast.bob.user.id).await;
    let link = salesai_core::access::issue_link(
        store.as_ref(),
        Some(&cast.bob.user.id),
        None,
        salesai_core::access::LINK_TTL,
    )
    .await
    .unwrap();
    // (what, who, path, status)
    let pages: Vec<(&str, Option<&Browser>, String, StatusCode)> = vec![
        ("home, rep", Some(&amy), "/".into(), StatusCode::OK),
        ("home, manager", Some(&mia), "/".into(), StatusCode::OK),
        ("home, admin", Some(&ada), "/".into(), StatusCode::OK),
        ("home, nothing yet", Some(&bob), "/".into(), StatusCode::OK),
        ("calls", Some(&mia), "/calls".into(), StatusCode::OK),
        (
            "calls, filtered",
            Some(&mia),
            "/calls?status=completed&kind=demo&sort=score_low&q=x".into(),
            StatusCode::OK,
        ),
        (
            "calls, search",
            Some(&amy),
            "/calls?q=%E6%BC%8F%E5%96%AE".into(),
            StatusCode::OK,
        ),
        (
            "a completed Chinese call",
            Some(&amy),
            format!("/calls/{zh_call}"),
            StatusCode::OK,
        ),
        (
            "a failed call, as its manager",
            Some(&mia),
            format!("/calls/{failed}"),
            StatusCode::OK,
        ),
        (
            "another rep's call",
            Some(&bob),
            format!("/calls/{zh_call}"),
            StatusCode::FORBIDDEN,
        ),
        ("upload", Some(&amy), "/upload".into(), StatusCode::OK),
        (
            "upload, another line",
            Some(&amy),
            "/upload?line=ichef".into(),
            StatusCode::OK,
        ),
        ("people", Some(&ada), "/people".into(), StatusCode::OK),
        ("operations", Some(&ada), "/ops".into(), StatusCode::OK),
        ("API reference", Some(&ada), "/api".into(), StatusCode::OK),
        ("sign-in", None, "/login".into(), StatusCode::OK),
        ("a sign-in link", None, link.clone(), StatusCode::OK),
        (
            "a spent link",
            None,
            "/login/link/nosuch".into(),
            StatusCode::GONE,
        ),
        (
            "no such page",
            Some(&amy),
            "/no/such/page".into(),
            StatusCode::NOT_FOUND,
        ),
        (
            "no such call",
            Some(&amy),
            "/calls/nosuch".into(),
            StatusCode::NOT_FOUND,
        ),
        (
            "a refused form",
            Some(&ada),
            "/people?x=1".into(),
            StatusCode::OK,
        ),
    ];
    let zh_data: BTreeSet<String> = [
        "好食餐廳",
        "Harbor Cafe",
        "C-ZH",
        "C-EN",
        "C-FAIL",
        "chen.vtt",
        "harbor.vtt",
        "call.wav",
        "amy@example.com",
        "bob@example.com",
        "mia@example.com",
        "max@example.com",
        "ada@example.com",
        "gus@example.com",
        "north",
        "south",
        "ops",
        "x",
    ]
    .iter()
    .map(|s| s.to_string())
    // The English call's own words may show where its lines do (a search hit).
    .chain(
        EN_CALL
            .lines()
            .filter_map(|l| l.strip_prefix("<v "))
            .map(|l| l.split_once('>').unwrap().1.to_owned()),
    )
    .collect();
    let mut wrong = Vec::new();
    for (what, who, path, status) in &pages {
        let (got, html) = page_in(&t, *who, path, "zh-TW").await;
        if got != *status {
            wrong.push(format!("{what} ({path}): {got}, expected {status}"));
            continue;
        }
        // The English call's own words may show on its page; other pages show none of them.
        let stray = stray_latin(&visible_text(&html, "zh-TW"), &zh_data);
        if !stray.is_empty() {
            wrong.push(format!("zh-TW {what} ({path}): {stray:?}"));
        }
    }
    // English pages: no Chinese but the customer's own words and names.
    let mut en_data = zh_data.clone();
    let transcript: Vec<String> = ZH_CALL
        .lines()
        .filter(|l| l.starts_with("<v "))
        .flat_map(|l| {
            let (who, said) = l[3..].split_once('>').unwrap();
            [who.to_owned(), said.to_owned()]
        })
        .collect();
    en_data.extend(transcript);
    en_data.insert("失敗小館".into());
    for (what, who, path, status) in &pages {
        let (got, html) = page_in(&t, *who, path, "en").await;
        if got != *status {
            continue;
        }
        // A Chinese call's analysis is written in its line's language: its page is skipped here.
        if path.ends_with(&zh_call) && *status == StatusCode::OK {
            continue;
        }
        let stray = stray_cjk(&visible_text(&html, "en"), &en_data);
        if !stray.is_empty() {
            wrong.push(format!("en {what} ({path}): {stray:?}"));
        }
    }
    let _ = en_call;
    assert!(
        wrong.is_empty(),
        "untranslated words:\n{}",
        wrong.join("\n")
    );
}
