//! What people do on a call: retry, re-analyse, delete, edit the meeting notes, say who is who.

use super::super::form::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use salesai_core::App;
use salesai_core::domain::Role;
use salesai_core::store::StoreError;

use super::super::session::{CsrfForm, PageError, Viewer};
use crate::auth::Authorize;

use super::*;

#[derive(Debug, serde::Deserialize)]
pub struct SpeakerForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    speaker: String,
    #[serde(default)]
    role: String,
}

/// `POST /calls/{id}/speakers`: a person says which side a speaker is on; the transcript is
/// corrected and the call analysed again (see `salesai_core::pipeline::correct_speaker`).
pub async fn speakers(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<SpeakerForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    let lang = viewer.lang;
    let c = reachable(&app, &viewer, &id).await?;
    let Some(role) = salesai_core::transcript::Role::parse(&form.role) else {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            Some(lang),
            lang.t().choose_rep_or_customer,
        ));
    };
    match salesai_core::pipeline::correct_speaker(app.store.as_ref(), &c, &form.speaker, role).await
    {
        Ok(_) => {
            tracing::info!(event = "conversation.speaker_corrected", conversation_id = %c.id, speaker = %form.speaker, role = role.as_str(), by = %viewer.principal.name, "speaker corrected; analysing again");
            Ok(Redirect::to(&format!("/calls/{}", c.id)).into_response())
        }
        Err(salesai_core::pipeline::RestartError::Conflict(msg)) => {
            Err(PageError::new(StatusCode::CONFLICT, Some(lang), &msg))
        }
        Err(salesai_core::pipeline::RestartError::Invalid(msg)) => {
            Err(PageError::new(StatusCode::BAD_REQUEST, Some(lang), &msg))
        }
        Err(salesai_core::pipeline::RestartError::Store(e)) => Err(e.into()),
    }
}

/// Runs a restart and goes back to the call page, or shows why it was refused.
pub(super) async fn restart(
    app: &App,
    viewer: &Viewer,
    id: &str,
    form: &CsrfForm,
    reanalyze: bool,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    let c = reachable(app, viewer, id).await?;
    let done = if reanalyze {
        salesai_core::pipeline::reanalyze(app.store.as_ref(), &c).await
    } else {
        salesai_core::pipeline::retry(app.store.as_ref(), &c).await
    };
    match done {
        Ok(r) => {
            tracing::info!(event = if reanalyze { "conversation.reanalyzed" } else { "conversation.retried" }, conversation_id = %c.id, resume_at = r.resumes_at, by = %viewer.principal.name, "restarted from the web app");
            Ok(Redirect::to(&format!("/calls/{}", c.id)).into_response())
        }
        Err(salesai_core::pipeline::RestartError::Conflict(msg)) => Err(PageError::new(
            StatusCode::CONFLICT,
            Some(viewer.lang),
            &msg,
        )),
        Err(salesai_core::pipeline::RestartError::Invalid(msg)) => Err(PageError::new(
            StatusCode::BAD_REQUEST,
            Some(viewer.lang),
            &msg,
        )),
        Err(salesai_core::pipeline::RestartError::Store(e)) => Err(e.into()),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct NotesForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    markdown: String,
}

/// `POST /calls/{id}/notes`: saves edited meeting notes (`action=save`) or drops the edits so
/// the generated notes show again (`action=restore`). Whoever may open the call may edit them.
pub async fn notes(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<NotesForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    let lang = viewer.lang;
    let c = reachable(&app, &viewer, &id).await?;
    match form.action.as_str() {
        "save" => {
            let text = form.markdown.replace("\r\n", "\n");
            if text.trim().is_empty() {
                return Err(PageError::new(
                    StatusCode::BAD_REQUEST,
                    Some(lang),
                    lang.t().notes_are_empty_write_something_or,
                ));
            }
            match app
                .store
                .save_meeting_notes(&c.id, &text, &viewer.session.person.user.id)
                .await
            {
                Ok(()) => {}
                Err(StoreError::InvalidInput(msg)) => {
                    return Err(PageError::new(StatusCode::BAD_REQUEST, Some(lang), &msg));
                }
                Err(e) => return Err(e.into()),
            }
            tracing::info!(event = "conversation.notes_edited", conversation_id = %c.id, by = %viewer.principal.name, "meeting notes edited");
        }
        "restore" => {
            app.store.clear_meeting_notes(&c.id).await?;
            tracing::info!(event = "conversation.notes_restored", conversation_id = %c.id, by = %viewer.principal.name, "generated meeting notes restored");
        }
        _ => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                Some(lang),
                lang.t().choose_save_or_restore,
            ));
        }
    }
    Ok(Redirect::to(&format!("/calls/{}#notes", c.id)).into_response())
}

/// `POST /calls/{id}/retry`.
pub async fn retry(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    restart(&app, &viewer, &id, &form, false).await
}

/// `POST /calls/{id}/reanalyze`.
pub async fn reanalyze(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    restart(&app, &viewer, &id, &form, true).await
}

/// `POST /calls/{id}/delete` (admins).
pub async fn delete(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    let lang = viewer.lang;
    viewer
        .require(&[Role::Admin])
        .map_err(|_| PageError::forbidden(lang, lang.t().only_admin_can_delete_call))?;
    let c = reachable(&app, &viewer, &id).await?;
    crate::routes::conversations::delete_with_upload(&app, &c)
        .await
        .map_err(|e| PageError::from_api(lang, e))?;
    tracing::info!(event = "conversation.deleted", conversation_id = %c.id, case_number = c.case_number.as_str(), by = %viewer.principal.name, "conversation deleted from the web app");
    Ok(Redirect::to("/calls").into_response())
}
