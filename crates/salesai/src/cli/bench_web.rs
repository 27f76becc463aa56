//! `salesai bench web`: the web app and the API with many calls — the calls list, a filtered
//! list, a deep keyset page, searches (a rare phrase, a common one, two-character Chinese
//! words common and rare, a rare single character, terms found nowhere), the API's first and
//! deep `offset` pages and one call page — each timed over HTTP against `GET /health` in the
//! same run, on whichever database is configured. Seeds synthetic calls first
//! (`salesai_db::seed`) up to `--calls`, and keeps them for the next run unless `--clear`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use salesai_core::domain::Role;
use salesai_core::store::{CallCursor, ConversationFilter, NewApiToken, NewSession};
use serde::Serialize;

use crate::cli::output::{print_json, table};
use crate::config::Config;

/// One endpoint's figures.
#[derive(Debug, Serialize)]
struct Timing {
    name: String,
    path: String,
    samples: usize,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    bytes: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Runs the benchmark.
pub async fn run(
    config: &Config,
    calls: u32,
    lines: u32,
    samples: u32,
    clear: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (app, database) = crate::runtime::open_app(config).await?;
    let backend = app.store.backend().as_str().to_owned();
    if clear {
        salesai_db::seed::clear(&database).await?;
        eprintln!("removed the synthetic calls");
        database.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    // Seed up to `calls`, a batch per transaction.
    let have = salesai_db::seed::count(&database).await?.max(0) as u32;
    if have < calls {
        let started = Instant::now();
        let base_ms = chrono::Utc::now().timestamp_millis();
        let batch = 1_000;
        let mut from = have;
        while from < calls {
            let to = (from + batch).min(calls);
            salesai_db::seed::calls(&database, from, to, calls, lines, base_ms).await?;
            from = to;
            if from.is_multiple_of(10_000) || from == calls {
                eprintln!(
                    "seeded {from} of {calls} calls ({} lines) in {:.0} s",
                    u64::from(from) * u64::from(lines),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        app.store.analyze().await?;
        eprintln!("seeding took {:.0} s", started.elapsed().as_secs_f64());
    }
    // Serve the real router on an ephemeral port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = salesai_http::router(app.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    // An admin's session and an admin token.
    let admin = app
        .store
        .invite_person("bench-admin@example.com", "Bench admin", Role::Admin, None)
        .await?;
    let secret = salesai_core::token::generate_token();
    app.store
        .create_session(&NewSession {
            id_hash: salesai_core::token::hash_token(&secret),
            user_id: admin.user.id.clone(),
            csrf_token: salesai_core::token::generate_token(),
            expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
        })
        .await?;
    let cookie = format!("salesai_session={secret}");
    let token = salesai_core::token::generate_token();
    app.store
        .create_api_token(NewApiToken {
            name: format!("bench-web-{}", uuid::Uuid::now_v7()),
            role: Role::Admin,
            token_hash: salesai_core::token::hash_token(&token),
            user_id: None,
        })
        .await?;
    // The deep page: the cursor of the call ~99 % down the list.
    let depth = calls.saturating_sub(calls / 100).max(1) - 1;
    let deep = app
        .store
        .list_conversations(&ConversationFilter {
            limit: 1,
            offset: depth,
            ..Default::default()
        })
        .await?
        .into_iter()
        .next()
        .map(|c| CallCursor::after(&c, None).encode())
        .unwrap_or_default();
    let a_call = salesai_db::seed::call_id(calls.saturating_sub(1) / 2);
    let q = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let endpoints: Vec<(&str, String, bool)> = vec![
        ("health (baseline)", "/health".into(), false),
        ("calls list", "/calls".into(), true),
        (
            "filtered list",
            "/calls?team=team-1&status=completed&qual=strong".into(),
            true,
        ),
        (
            "sorted by lowest score",
            "/calls?sort=score_low".into(),
            true,
        ),
        (
            "deep page (keyset)",
            format!("/calls?after={}", q(&deep)),
            true,
        ),
        (
            "search: rare phrase",
            format!("/calls?q={}", q("zebra-crossing")),
            true,
        ),
        (
            "search: common phrase",
            format!("/calls?q={}", q("預算大概")),
            true,
        ),
        (
            "search: 2-char word",
            format!("/calls?q={}", q("預算")),
            true,
        ),
        (
            "search: rare 2-char word",
            format!("/calls?q={}", q("斑馬")),
            true,
        ),
        (
            "search: rare 1-char word",
            format!("/calls?q={}", q("斑")),
            true,
        ),
        (
            "search: 2-char, no match",
            format!("/calls?q={}", q("鯨豚")),
            true,
        ),
        (
            "search: no match",
            format!("/calls?q={}", q("無此片語xyz")),
            true,
        ),
        ("call page", format!("/calls/{a_call}"), true),
        ("API first page", "/api/v1/conversations".into(), false),
        (
            "API deep page (after)",
            format!("/api/v1/conversations?after={}", q(&deep)),
            false,
        ),
        (
            "API deep page (offset)",
            format!("/api/v1/conversations?offset={depth}"),
            false,
        ),
    ];
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut results = Vec::new();
    for (name, path, web) in &endpoints {
        let request = || {
            let r = client.get(format!("{base}{path}"));
            if *web {
                r.header("cookie", &cookie)
            } else {
                r.bearer_auth(&token)
            }
        };
        let mut times = Vec::with_capacity(samples as usize);
        let mut bytes = 0;
        for i in 0..samples + 3 {
            let started = Instant::now();
            let response = request().send().await?;
            let status = response.status();
            let body = response.bytes().await?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            anyhow::ensure!(
                status.is_success(),
                "{name} ({path}) answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
            bytes = body.len();
            if i >= 3 {
                times.push(ms);
            }
        }
        times.sort_by(f64::total_cmp);
        results.push(Timing {
            name: (*name).into(),
            path: path.chars().take(60).collect(),
            samples: times.len(),
            p50_ms: percentile(&times, 0.5),
            p95_ms: percentile(&times, 0.95),
            p99_ms: percentile(&times, 0.99),
            max_ms: *times.last().unwrap_or(&0.0),
            bytes,
        });
    }
    server.abort();
    let total_calls = salesai_db::seed::count(&database).await?;
    database.close().await;
    if json {
        print_json(&serde_json::json!({
            "backend": backend, "calls": total_calls, "lines_per_call": lines, "results": results,
        }))?;
    } else {
        println!(
            "{backend}: {total_calls} synthetic calls × {lines} lines; {samples} sequential requests each after 3 warm-up"
        );
        let rows: Vec<Vec<String>> = results
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    format!("{:.1}", r.p50_ms),
                    format!("{:.1}", r.p95_ms),
                    format!("{:.1}", r.p99_ms),
                    format!("{:.1}", r.max_ms),
                    format!("{:.1}", r.bytes as f64 / 1024.0),
                ]
            })
            .collect();
        println!(
            "{}",
            table(
                &["endpoint", "p50 ms", "p95 ms", "p99 ms", "max ms", "KB"],
                &rows
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}
