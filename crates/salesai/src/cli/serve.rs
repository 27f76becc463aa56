//! `salesai serve` and `salesai worker`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use salesai_worker::WorkerOptions;

use crate::config::Config;

/// The fact `serve` records with the address it answers on (`SALESAI_PUBLIC_URL`, else the
/// bound address), so links printed by other commands point at it.
pub const PUBLIC_URL_FACT: &str = "public_url";

/// Options of `serve`. It listens on `SALESAI_BIND` (`--bind`, default 127.0.0.1:3000).
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Serve HTTP only; run workers elsewhere with `salesai worker`
    #[arg(long)]
    pub no_workers: bool,
}

/// The Slack app, when configured.
pub fn slack(
    config: &Config,
    app: &salesai_core::App,
) -> anyhow::Result<Option<salesai_slack::Slack>> {
    config
        .slack
        .clone()
        .map(|c| salesai_slack::Slack::new(app.clone(), c).map_err(|e| anyhow::anyhow!(e)))
        .transpose()
}

/// While no one can administer this salesai (no active admin), prints a one-time link on the
/// console that makes whoever opens it the first admin: the README's run command leads straight
/// into the web app. Printed once per start; the link works for 24 hours.
async fn print_setup_link(app: &salesai_core::App, local: &str) {
    match app.store.has_admin().await {
        Ok(true) => {}
        Ok(false) => {
            match salesai_core::access::issue_link(
                app.store.as_ref(),
                None,
                None,
                salesai_core::access::SETUP_LINK_TTL,
            )
            .await
            {
                Ok(path) => {
                    let link = app.link(&path, local);
                    tracing::info!(
                        event = "web.setup_link",
                        "no admin yet: printed a one-time setup link on the console"
                    );
                    println!(
                        "\n  salesai has no admin yet. Open this link to become the first one (works once, for 24 hours):\n\n    {link}\n"
                    );
                }
                Err(err) => {
                    tracing::warn!(event = "web.setup_link_failed", error = %err, "could not make the setup link")
                }
            }
        }
        Err(err) => {
            tracing::warn!(event = "web.setup_link_failed", error = %err, "could not check for an admin")
        }
    }
}

/// Runs HTTP and/or workers until SIGTERM or ctrl-c.
pub async fn serve(config: &Config, workers: bool, http: bool) -> anyhow::Result<ExitCode> {
    let (app, database) = crate::runtime::open_app(config).await?;
    let shutdown = crate::runtime::shutdown_signal();
    let slack = slack(config, &app)?;
    tracing::info!(
        event = "process.started",
        backend = app.store.backend().as_str(),
        storage = %app.blobs.describe(),
        http,
        workers,
        slack = slack.is_some(),
        version = env!("CARGO_PKG_VERSION"),
        "salesai started"
    );

    crate::ops::schedule::spawn(&app, config, &shutdown);
    let worker = workers.then(|| {
        let options = WorkerOptions {
            queues: config.worker_queues.clone(),
            poll_interval: Duration::from_millis(config.worker_poll_ms.max(10)),
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
            ..WorkerOptions::new(config.worker_id.clone())
        };
        tokio::spawn(salesai_worker::run(
            app.clone(),
            crate::ops::jobs::node_registry(config, slack.clone(), database.clone()),
            options,
            shutdown.clone(),
        ))
    });

    if http {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("failed to listen on {}; is another salesai running? set SALESAI_BIND to use another address", config.bind))?;
        let local = listener.local_addr()?;
        tracing::info!(event = "http.listening", address = %local, "listening on http://{local}");
        let router = salesai_http::router_with(app.clone(), salesai_slack::router(slack.clone()));
        // Where people reach this server, for the links other commands print.
        let address = app.link("/", &format!("http://{local}"));
        if let Err(err) = app
            .store
            .set_fact(PUBLIC_URL_FACT, address.trim_end_matches('/'))
            .await
        {
            tracing::warn!(event = "http.address_not_recorded", error = %err, "could not record this server's address for the CLI's links");
        }
        print_setup_link(&app, &format!("http://{local}")).await;
        let stop = shutdown.clone();
        salesai_http::serve::serve(
            listener,
            router,
            salesai_http::serve::Limits {
                shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
                ..Default::default()
            },
            async move { stop.cancelled().await },
        )
        .await
        .context("HTTP server failed")?;
    } else {
        shutdown.cancelled().await;
    }
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    database.close().await;
    tracing::info!(event = "process.stopped", "salesai stopped");
    Ok(ExitCode::SUCCESS)
}
