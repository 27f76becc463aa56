//! The three endpoints. Each verifies the signature on the raw body first; a failure is a
//! bare 401, counted (`salesai_slack_signature_failures_total`) and logged as
//! `slack.signature_invalid` with the words "Invalid signature" the runbook greps for.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::Slack;

/// The Slack routes, for merging into the application's router. With no Slack configured they
/// answer 503 and say which settings are missing.
pub fn router(slack: Option<Slack>) -> Router {
    Router::new()
        .route("/slack/events", post(events))
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .with_state(slack)
}

async fn events(State(slack): State<Option<Slack>>, headers: HeaderMap, body: Bytes) -> Response {
    match verified(&slack, "events", &headers, &body) {
        Ok(slack) => crate::events::handle(slack, &headers, &body).await,
        Err(response) => *response,
    }
}

async fn commands(State(slack): State<Option<Slack>>, headers: HeaderMap, body: Bytes) -> Response {
    match verified(&slack, "commands", &headers, &body) {
        Ok(slack) => crate::commands::handle(slack, &body).await,
        Err(response) => *response,
    }
}

async fn interactions(
    State(slack): State<Option<Slack>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match verified(&slack, "interactions", &headers, &body) {
        Ok(slack) => crate::interactions::handle(slack, &body).await,
        Err(response) => *response,
    }
}

fn verified<'a>(
    slack: &'a Option<Slack>,
    endpoint: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<&'a Slack, Box<Response>> {
    let Some(slack) = slack else {
        tracing::error!(
            event = "slack.not_configured",
            endpoint,
            "a Slack request arrived but Slack is not configured; set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN"
        );
        return Err(Box::new((
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "error": { "code": "SLACK_NOT_CONFIGURED", "message": "Slack is not configured on this server: set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN" } })),
        )
            .into_response()));
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let result = crate::signature::verify(
        slack.config.signing_secret.expose_secret().as_bytes(),
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        body,
        chrono::Utc::now().timestamp(),
    );
    match result {
        Ok(()) => Ok(slack),
        Err(err) => {
            slack
                .app
                .metrics
                .slack_signature_failure(endpoint, err.reason());
            tracing::warn!(
                event = "slack.signature_invalid",
                endpoint,
                reason = err.reason(),
                "Invalid signature: {err}"
            );
            Err(Box::new(StatusCode::UNAUTHORIZED.into_response()))
        }
    }
}
