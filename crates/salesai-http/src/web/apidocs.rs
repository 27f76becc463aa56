//! The API reference page: the OpenAPI document (`/api/v1/openapi.json`) rendered for people —
//! every operation by group, who may call it, its parameters and what it answers.

use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::Value;

use super::layout::{Nav, page};
use super::session::Viewer;

/// The name a `$ref` points at, or the schema's type.
fn type_name(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(|r| r.as_str()) {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "object".into(),
    }
}

/// `GET /api`.
pub async fn reference(
    axum::extract::State(app): axum::extract::State<salesai_core::App>,
    viewer: Viewer,
    headers: axum::http::HeaderMap,
) -> Response {
    let lang = viewer.lang;
    let base = app
        .public_url
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| super::origin(&headers));
    let doc = crate::routes::openapi::document();
    let tags: Vec<(String, String)> = doc["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or_default().to_owned(),
                        t["description"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ops: Vec<(String, String, &Value)> = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            if let Some(item) = item.as_object() {
                for (method, op) in item {
                    ops.push((method.to_uppercase(), path.clone(), op));
                }
            }
        }
    }
    let body = html! {
        div.page-head {
            h1 { (lang.t().api_reference) }
            p { a href="/api/v1/openapi.json" { "openapi.json" } " · OpenAPI 3.1" }
        }
        section.card {
            p { (super::i18n::with_code(lang.t().every_call_needs_token_create_one, &[
                ("create", "salesai token create"),
                ("header", "Authorization: Bearer <token>"),
                ("shape", "{\"error\": {\"code\", \"message\"}}"),
            ])) }
            pre.command { "curl -H \"Authorization: Bearer $SALESAI_TOKEN\" " (base) "/api/v1/conversations" }
        }
        @if lang.code() != "en" { p.muted { (lang.t().api_reference_is_in_english) } }
        // The reference is the API's own documentation, written in English with the code.
        div lang="en" {
        @for (tag, description) in &tags {
            section.card.api-group {
                h2 { (tag) " " span.muted { (description) } }
                @for (method, path, op) in ops.iter().filter(|(_, _, op)| op["tags"][0].as_str() == Some(tag.as_str())) {
                    details.api-op {
                        summary {
                            span class={ "method m-" (method.to_lowercase()) } { (method) }
                            " " code.path { (path) }
                            " " span.op-summary { (op["summary"].as_str().unwrap_or_default()) }
                        }
                        p.muted { (op["description"].as_str().unwrap_or_default()) }
                        @if let Some(params) = op["parameters"].as_array() {
                            h4 { (lang.t().parameters) }
                            table.params { tbody {
                                @for p in params {
                                    tr {
                                        td { code { (p["name"].as_str().unwrap_or_default()) } }
                                        td.muted { (p["in"].as_str().unwrap_or_default()) @if p["required"] == Value::Bool(true) { " · " (lang.t().required) } }
                                        td { (type_name(&p["schema"])) }
                                        td { (p["description"].as_str().unwrap_or_default()) }
                                    }
                                }
                            } }
                        }
                        @if let Some(content) = op["requestBody"]["content"].as_object() {
                            h4 { (lang.t().body) }
                            @for (media, c) in content {
                                p { code { (media) } " · " (type_name(&c["schema"])) }
                            }
                        }
                        h4 { (lang.t().responses) }
                        ul.responses {
                            @if let Some(responses) = op["responses"].as_object() {
                                @for (code, r) in responses {
                                    li {
                                        strong { (code) } " " (r["description"].as_str().unwrap_or_default())
                                        @if let Some(content) = r["content"].as_object() {
                                            @for (_, c) in content { " · " code { (type_name(&c["schema"])) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        }
    };
    page(&viewer, Nav::Other, "/api", lang.t().api_reference, body).into_response()
}
