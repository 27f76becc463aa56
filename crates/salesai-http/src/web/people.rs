//! People (admins): who can sign in, their role and team, the teams managers manage; invite
//! with a one-time link; deactivate (their sessions and tokens stop at once).

use super::form::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use salesai_core::App;
use salesai_core::access::{LINK_TTL, issue_link};
use salesai_core::domain::Role;
use salesai_core::store::{PersonChange, StoreError};
use serde::Deserialize;

use super::i18n::{Lang, day};
use super::layout::{Nav, page};
use super::session::{PageError, Viewer};
use crate::auth::Authorize;

fn admins_only(viewer: &Viewer) -> Result<(), PageError> {
    let lang = viewer.lang;
    viewer
        .require(&[Role::Admin])
        .map_err(|_| PageError::forbidden(lang, lang.t().only_admin_manages_people))
}

fn role_options(lang: Lang, current: Role) -> maud::Markup {
    html! {
        @for r in [Role::Rep, Role::Manager, Role::Admin] {
            option value=(r.as_str()) selected[r == current] { (lang.role(r)) }
        }
    }
}

async fn render(
    app: &App,
    viewer: &Viewer,
    notice: Option<maud::Markup>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let people = app.store.people().await?;
    let csrf = &viewer.session.csrf_token;
    let body = html! {
        div.page-head { h1 { (lang.t().people) } }
        @if let Some(n) = notice { (n) }
        section.card {
            h2 { (lang.t().invite_someone) }
            form.invite method="post" action="/people" {
                input type="hidden" name="csrf" value=(csrf);
                label { (lang.t().e_mail) input type="email" name="email" required maxlength="254"; }
                label { (lang.t().name) input name="name" maxlength="200"; }
                label { (lang.t().role) select name="role" { (role_options(lang, Role::Rep)) } }
                label { (lang.t().team) input name="team" maxlength="64"; }
                button.primary type="submit" { (lang.t().create_sign_in_link) }
            }
        }
        section.card {
            table.people {
                thead { tr {
                    th { (lang.t().person) }
                    th { (lang.t().role) }
                    th { (lang.t().team) }
                    th { (lang.t().manages) }
                    th { (lang.t().since) }
                    th {}
                } }
                tbody {
                    @for p in &people {
                        @let form_id = format!("p-{}", p.user.id);
                        tr.inactive[!p.active] {
                            td.main data-label=(lang.t().person) {
                                strong { (p.user.display_name) }
                                @if let Some(e) = &p.user.email { div.sub { (e) } }
                                @if !p.active { span.pill.status-failed { (lang.t().deactivated) } }
                            }
                            td data-label=(lang.t().role) {
                                select name="role" form=(form_id) aria-label=(lang.t().role) { (role_options(lang, p.user.role)) }
                            }
                            td data-label=(lang.t().team) {
                                input name="team" form=(form_id) value=[p.team.as_deref()] maxlength="64" aria-label=(lang.t().team);
                            }
                            td data-label=(lang.t().manages) {
                                input name="manages" form=(form_id) value=(p.manages.join(", ")) maxlength="300"
                                    placeholder=(lang.t().teams_comma_separated) aria-label=(lang.t().manages);
                            }
                            td data-label=(lang.t().since) { (day(p.created_at, app.time_zone)) }
                            td.row-actions {
                                form #(form_id) method="post" action={ "/people/" (p.user.id) } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button type="submit" name="do" value="save" { (lang.t().save) }
                                    @if p.active {
                                        button type="submit" name="do" value="link" { (lang.t().sign_in_link) }
                                        @if p.user.id != viewer.session.person.user.id {
                                            button.danger type="submit" name="do" value="deactivate" { (lang.t().deactivate) }
                                        }
                                    } @else {
                                        button type="submit" name="do" value="activate" { (lang.t().reactivate) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(viewer, Nav::People, "/people", lang.t().people, body).into_response())
}

/// `GET /people`.
pub async fn list(State(app): State<App>, viewer: Viewer) -> Result<Response, PageError> {
    admins_only(&viewer)?;
    render(&app, &viewer, None).await
}

fn link_notice(app: &App, headers: &HeaderMap, lang: Lang, who: &str, path: &str) -> maud::Markup {
    let link = app.link(path, &super::origin(headers));
    html! {
        section.card.notice role="status" {
            h2 { (lang.t().sign_in_link_for) (who) }
            p { (lang.t().send_this_link_to_them_it) }
            input.copy type="text" readonly value=(link) aria-label=(lang.t().sign_in_link);
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    name: Option<String>,
    #[serde(default)]
    role: String,
    team: Option<String>,
}

/// `POST /people`: creates (or updates) the person and shows their sign-in link once.
pub async fn invite(
    State(app): State<App>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<InviteForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    admins_only(&viewer)?;
    let lang = viewer.lang;
    let role = Role::parse(&form.role)
        .ok()
        .filter(|r| *r != Role::Service)
        .ok_or_else(|| PageError::new(StatusCode::BAD_REQUEST, Some(lang), lang.t().pick_role))?;
    let person = app
        .store
        .invite_person(
            &form.email,
            form.name.as_deref().unwrap_or(""),
            role,
            form.team.as_deref(),
        )
        .await
        .map_err(|e| match e {
            StoreError::InvalidInput(m) => PageError::new(StatusCode::BAD_REQUEST, Some(lang), &m),
            other => other.into(),
        })?;
    let path = issue_link(app.store.as_ref(), Some(&person.user.id), None, LINK_TTL).await?;
    tracing::info!(event = "web.person_invited", user_id = %person.user.id, role = role.as_str(), by = %viewer.principal.name, "person invited");
    let notice = link_notice(&app, &headers, lang, &person.user.display_name, &path);
    render(&app, &viewer, Some(notice)).await
}

#[derive(Debug, Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    csrf: String,
    #[serde(rename = "do", default)]
    action: String,
    role: Option<String>,
    team: Option<String>,
    manages: Option<String>,
}

/// `POST /people/{id}`: save role and teams, make a new sign-in link, deactivate, reactivate.
pub async fn change(
    State(app): State<App>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ChangeForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    admins_only(&viewer)?;
    let lang = viewer.lang;
    let person = app
        .store
        .person(&id)
        .await?
        .ok_or_else(|| PageError::not_found(lang))?;
    let change = match form.action.as_str() {
        "save" => PersonChange {
            role: form
                .role
                .as_deref()
                .and_then(|r| Role::parse(r).ok())
                .filter(|r| *r != Role::Service),
            team: Some(form.team.clone()),
            manages: Some(
                form.manages
                    .as_deref()
                    .unwrap_or("")
                    .split([',', '，'])
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty())
                    .collect(),
            ),
            ..Default::default()
        },
        "deactivate" if id == viewer.session.person.user.id => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                Some(lang),
                lang.t().you_cannot_deactivate_yourself_ask_another,
            ));
        }
        "deactivate" => PersonChange {
            active: Some(false),
            ..Default::default()
        },
        "activate" => PersonChange {
            active: Some(true),
            ..Default::default()
        },
        "link" => {
            let path = issue_link(app.store.as_ref(), Some(&id), None, LINK_TTL).await?;
            let notice = link_notice(&app, &headers, lang, &person.user.display_name, &path);
            return render(&app, &viewer, Some(notice)).await;
        }
        _ => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                Some(lang),
                lang.t().unknown_action,
            ));
        }
    };
    app.store
        .update_person(&id, &change)
        .await
        .map_err(|e| match e {
            StoreError::InvalidInput(m) => PageError::new(StatusCode::BAD_REQUEST, Some(lang), &m),
            other => other.into(),
        })?;
    tracing::info!(event = "web.person_changed", user_id = %id, action = %form.action, by = %viewer.principal.name, "person changed");
    Ok(Redirect::to("/people").into_response())
}
