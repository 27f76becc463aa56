//! Upload from the browser: a recording or a transcript with the product line's form (the same
//! questions as the Slack form, from the same product-line definition), streamed to storage,
//! then the call page, which follows the call through the pipeline.

use axum::extract::{Multipart, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use salesai_core::App;
use serde::Deserialize;

use salesai_core::store::ConversationFilter;

use crate::auth::Authorize;

use super::layout::{Nav, page};
use super::session::{PageError, Viewer};

/// How many of the caller's customers the form offers to pick from (most recent first).
const CUSTOMER_CHOICES: u32 = 200;

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    line: Option<String>,
}

/// `GET /upload`: the form. The product line picks the questions; changing it reloads the page
/// (with JavaScript at once, without it with the "Change" button).
pub async fn form(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<UploadQuery>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let me = &viewer.session.person.user.id;
    // The line asked for; else the one this person used last; else the configured default.
    let last_line = match &q.line {
        Some(_) => None,
        None => app
            .store
            .list_calls(&ConversationFilter {
                rep_user_id: Some(me.clone()),
                limit: 1,
                ..Default::default()
            })
            .await?
            .into_iter()
            .next()
            .map(|c| c.conversation.product_line),
    };
    let line = app.product_line(
        q.line
            .as_deref()
            .or(last_line.as_deref())
            .unwrap_or("default"),
    );
    // The customers this person may upload for, to pick from (a new number is typed).
    let customers = app
        .store
        .search_opportunities("", CUSTOMER_CHOICES, &viewer.reach())
        .await?;
    let today = super::i18n::day(chrono::Utc::now(), app.time_zone);
    let body = html! {
        div.page-head { h1 { (lang.t().upload_call) } }
        section.card {
            form.line-picker method="get" action="/upload" {
                label { (lang.t().product_line)
                    select name="line" data-autosubmit {
                        @for l in app.product_lines.iter() {
                            option value=(l.id) selected[l.id == line.id] { (l.name_in(lang.0)) }
                        }
                    }
                }
                noscript { button type="submit" { (lang.t().change) } }
            }
            form.stack.upload #upload method="post" action="/upload" enctype="multipart/form-data" {
                // The token comes first: the server checks it before it stores a byte.
                input type="hidden" name="csrf" value=(viewer.session.csrf_token);
                input type="hidden" name="product_line" value=(line.id);
                label.drop {
                    span { (lang.t().recording_or_transcript) }
                    input type="file" name="audio" required
                        accept="audio/*,video/mp4,.m4a,.mp3,.wav,.ogg,.opus,.flac,.webm,.mp4,.vtt,.srt,.txt,.json";
                    small.muted { (lang.t().mp3_m4a_wav_ogg_flac_webm) }
                }
                div.filter-grid {
                    label { (lang.t().customer_number) " *"
                        input name="customer_number" required maxlength="64" pattern="[A-Za-z0-9_-]+"
                            list="customers" autocomplete="off";
                        small.muted { (lang.t().pick_a_customer_or_type_a_new_number) }
                    }
                    datalist #customers {
                        @for c in &customers {
                            option value=(c.customer_number) { (c.company_name) }
                        }
                    }
                    label { (lang.t().customer_name)
                        input name="customer_name" maxlength="200"; }
                    label { (lang.t().type_)
                        select name="type" {
                            @for t in ["discovery_call", "demo", "follow_up", "negotiation", "closing", "support"] {
                                option value=(t) { (lang.call_type(t)) }
                            }
                        }
                    }
                    label { (lang.t().date_of_call)
                        input type="date" name="conversation_date" value=(today); }
                    label { (lang.t().title)
                        input name="title" maxlength="200"; }
                    label { (lang.t().contact_name)
                        input name="contact_name" maxlength="200"; }
                    @for f in &line.form {
                        label {
                            (f.label.get(lang.code())) @if f.required { " *" }
                            @if f.options.is_empty() {
                                input name=(f.id) required[f.required] maxlength="500";
                            } @else {
                                select name=(f.id) required[f.required] {
                                    option value="" { "—" }
                                    @for o in &f.options { option value=(o.value) { (o.label.get(lang.code())) } }
                                }
                            }
                        }
                    }
                }
                progress #upload-progress max="100" value="0" hidden {}
                div.actions { button.primary type="submit" { (lang.t().upload_and_analyse) } }
            }
        }
    };
    Ok(page(&viewer, Nav::Upload, "/upload", lang.t().upload_call, body).into_response())
}

/// `POST /upload`: receives the upload and opens its call page.
pub async fn submit(
    State(app): State<App>,
    viewer: Viewer,
    multipart: Multipart,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let created = crate::routes::conversations::receive(
        &app,
        &viewer.principal,
        multipart,
        None,
        Some(&viewer.session.csrf_token),
    )
    .await
    .map_err(|e| PageError::from_api(lang, e))?;
    tracing::info!(event = "web.uploaded", conversation_id = %created.id, by = %viewer.principal.name, "call uploaded from the web app");
    Ok(Redirect::to(&format!("/calls/{}", created.id)).into_response())
}
