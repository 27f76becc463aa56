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
    viewer.require(&[Role::Admin]).map_err(|_| {
        PageError::forbidden(
            lang,
            lang.pick("Only an admin manages people.", "只有管理員可以管理成員。"),
        )
    })
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
        div.page-head { h1 { (lang.pick("People", "成員")) } }
        @if let Some(n) = notice { (n) }
        section.card {
            h2 { (lang.pick("Invite someone", "邀請成員")) }
            form.invite method="post" action="/people" {
                input type="hidden" name="csrf" value=(csrf);
                label { (lang.pick("E-mail", "Email")) input type="email" name="email" required maxlength="254"; }
                label { (lang.pick("Name", "姓名")) input name="name" maxlength="200"; }
                label { (lang.pick("Role", "角色")) select name="role" { (role_options(lang, Role::Rep)) } }
                label { (lang.pick("Team", "團隊")) input name="team" maxlength="64"; }
                button.primary type="submit" { (lang.pick("Create a sign-in link", "產生登入連結")) }
            }
        }
        section.card {
            table.people {
                thead { tr {
                    th { (lang.pick("Person", "成員")) }
                    th { (lang.pick("Role", "角色")) }
                    th { (lang.pick("Team", "團隊")) }
                    th { (lang.pick("Manages", "管理團隊")) }
                    th { (lang.pick("Since", "加入")) }
                    th {}
                } }
                tbody {
                    @for p in &people {
                        @let form_id = format!("p-{}", p.user.id);
                        tr.inactive[!p.active] {
                            td.main data-label=(lang.pick("Person", "成員")) {
                                strong { (p.user.display_name) }
                                @if let Some(e) = &p.user.email { div.sub { (e) } }
                                @if !p.active { span.pill.status-failed { (lang.pick("deactivated", "已停用")) } }
                            }
                            td data-label=(lang.pick("Role", "角色")) {
                                select name="role" form=(form_id) aria-label=(lang.pick("Role", "角色")) { (role_options(lang, p.user.role)) }
                            }
                            td data-label=(lang.pick("Team", "團隊")) {
                                input name="team" form=(form_id) value=[p.team.as_deref()] maxlength="64" aria-label=(lang.pick("Team", "團隊"));
                            }
                            td data-label=(lang.pick("Manages", "管理團隊")) {
                                input name="manages" form=(form_id) value=(p.manages.join(", ")) maxlength="300"
                                    placeholder=(lang.pick("teams, comma-separated", "團隊，以逗號分隔")) aria-label=(lang.pick("Manages", "管理團隊"));
                            }
                            td data-label=(lang.pick("Since", "加入")) { (day(p.created_at, app.time_zone)) }
                            td.row-actions {
                                form #(form_id) method="post" action={ "/people/" (p.user.id) } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button type="submit" name="do" value="save" { (lang.pick("Save", "儲存")) }
                                    @if p.active {
                                        button type="submit" name="do" value="link" { (lang.pick("Sign-in link", "登入連結")) }
                                        @if p.user.id != viewer.session.person.user.id {
                                            button.danger type="submit" name="do" value="deactivate" { (lang.pick("Deactivate", "停用")) }
                                        }
                                    } @else {
                                        button type="submit" name="do" value="activate" { (lang.pick("Reactivate", "重新啟用")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(
        viewer,
        Nav::People,
        "/people",
        lang.pick("People", "成員"),
        body,
    )
    .into_response())
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
            h2 { (lang.pick("Sign-in link for ", "登入連結：")) (who) }
            p { (lang.pick("Send this link to them. It works once, for 15 minutes, and is not shown again.", "請將此連結傳給對方。連結僅能使用一次、15 分鐘內有效，且不會再次顯示。")) }
            input.copy type="text" readonly value=(link) aria-label=(lang.pick("Sign-in link", "登入連結"));
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
        .ok_or_else(|| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                Some(lang),
                lang.pick("Pick a role.", "請選擇角色。"),
            )
        })?;
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
                lang.pick(
                    "You cannot deactivate yourself; ask another admin.",
                    "無法停用自己，請由其他管理員操作。",
                ),
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
                lang.pick("Unknown action.", "未知的操作。"),
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
