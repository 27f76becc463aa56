//! Sign-in and access on both backends: people with their teams, one-time links, sessions.

use async_trait::async_trait;
use salesai_core::domain::Role;
use salesai_core::store::{
    Access, IdentityMatch, LinkPurpose, LoginLink, NewLoginLink, NewSession, Person, PersonChange,
    ProvenIdentity, StoreError, StoreResult, WebSession,
};
use sqlx::Row;

use super::super::{Conn, StoreImpl, db_time, hold, release, time, write_tx};
use super::people::user_from_row;
use crate::error::{R, run};

/// The columns `person_from_row` reads.
macro_rules! person_columns {
    () => {
        "id, email, display_name, role, slack_user_id, team, deactivated_at, created_at"
    };
}

/// A person row, with the teams they manage read in the same connection.
async fn person_in(conn: &mut Conn, id: &str) -> R<Option<Person>> {
    let row = crate::statement::query(sql!(concat!(
        "SELECT ",
        person_columns!(),
        " FROM users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let manages: Vec<String> = crate::statement::query_scalar(sql!(
        "SELECT team FROM team_managers WHERE user_id = $1 ORDER BY team"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(person_from_row(&row, manages)?))
}

fn person_from_row(row: &super::DbRow, manages: Vec<String>) -> R<Person> {
    Ok(Person {
        user: user_from_row(row)?,
        team: row.try_get("team")?,
        manages,
        active: super::super::opt_time(row, "deactivated_at")?.is_none(),
        created_at: time(row, "created_at")?,
    })
}

/// A team name as stored: trimmed, `None` when empty.
fn team_name(team: Option<&str>) -> R<Option<String>> {
    let Some(team) = team.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if team.chars().count() > 64 || team.chars().any(char::is_control) {
        return Err(StoreError::InvalidInput(
            "a team name is 1 to 64 characters of plain text".into(),
        )
        .into());
    }
    Ok(Some(team.to_owned()))
}

#[async_trait]
impl Access for StoreImpl {
    async fn person(&self, id: &str) -> StoreResult<Option<Person>> {
        run(async {
            let mut conn = hold(&self.pool).await?;
            let person = person_in(&mut conn, id).await?;
            release(conn).await?;
            Ok(person)
        })
        .await
    }

    async fn person_by_identity(
        &self,
        slack_user_id: Option<&str>,
        email: Option<&str>,
    ) -> StoreResult<Option<Person>> {
        let slack_user_id = slack_user_id.map(str::trim).filter(|s| !s.is_empty());
        let email = email
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty());
        run(async {
            let mut conn = hold(&self.pool).await?;
            if let Some(slack) = slack_user_id {
                let id: Option<String> = crate::statement::query_scalar(sql!(
                    "SELECT id FROM users WHERE slack_user_id = $1"
                ))
                .bind(slack)
                .fetch_optional(&mut *conn)
                .await?;
                if let Some(id) = id {
                    return person_in(&mut conn, &id).await;
                }
            }
            if let Some(email) = email {
                let id: Option<String> = crate::statement::query_scalar(sql!(
                    "SELECT id FROM users WHERE lower(email) = $1 ORDER BY created_at, id LIMIT 1"
                ))
                .bind(&email)
                .fetch_optional(&mut *conn)
                .await?;
                if let Some(id) = id {
                    return person_in(&mut conn, &id).await;
                }
            }
            Ok(None)
        })
        .await
    }

    async fn sign_in_identity(&self, identity: &ProvenIdentity) -> StoreResult<IdentityMatch> {
        let subject = identity.subject.trim();
        if subject.is_empty() || subject.len() > 255 || identity.issuer.is_empty() {
            return Err(StoreError::InvalidInput(
                "an identity needs an issuer and a subject of at most 255 characters".into(),
            ));
        }
        let email = identity
            .verified_email
            .as_deref()
            .map(check_email)
            .transpose()?;
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            let linked: Option<String> = crate::statement::query_scalar(sql!(
                "UPDATE identities SET last_used_at = now() WHERE issuer = $1 AND subject = $2 \
                 RETURNING user_id"
            ))
            .bind(&identity.issuer)
            .bind(subject)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = linked {
                let person = person_in(&mut tx, &id).await?;
                tx.commit().await?;
                return Ok(person.map_or(IdentityMatch::Unknown, IdentityMatch::Known));
            }
            // Not seen before: the person this Slack id or verified e-mail names, if any.
            let mut candidate: Option<String> = None;
            if let Some(slack) = identity.slack_user_id.as_deref().filter(|s| !s.is_empty()) {
                candidate = crate::statement::query_scalar(sql!(
                    "SELECT id FROM users WHERE slack_user_id = $1"
                ))
                .bind(slack)
                .fetch_optional(&mut *tx)
                .await?;
            }
            if candidate.is_none()
                && let Some(email) = &email
            {
                candidate = crate::statement::query_scalar(sql!(
                    "SELECT id FROM users WHERE lower(email) = $1 ORDER BY created_at, id LIMIT 1"
                ))
                .bind(email)
                .fetch_optional(&mut *tx)
                .await?;
            }
            let (id, joined) = match candidate {
                Some(id) => {
                    let person = person_in(&mut tx, &id)
                        .await?
                        .expect("the person was just read");
                    if !person.active {
                        return Ok(IdentityMatch::Known(person));
                    }
                    let other: Option<String> = crate::statement::query_scalar(sql!(
                        "SELECT subject FROM identities WHERE user_id = $1 AND issuer = $2"
                    ))
                    .bind(&id)
                    .bind(&identity.issuer)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if other.is_some() {
                        return Ok(IdentityMatch::OtherAccount);
                    }
                    (id, false)
                }
                None => {
                    let Some(email) = email.as_deref().filter(|_| identity.may_join) else {
                        return Ok(IdentityMatch::Unknown);
                    };
                    (
                        invite_in(&mut tx, email, &identity.display_name, Role::Rep).await?,
                        true,
                    )
                }
            };
            crate::statement::query(sql!(
                "INSERT INTO identities (issuer, subject, user_id, created_at, last_used_at) \
                 VALUES ($1, $2, $3, now(), now())"
            ))
            .bind(&identity.issuer)
            .bind(subject)
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(|e| match crate::error::is_unique_violation(&e) {
                // The same account signing in twice at once: the other attempt linked it.
                true => StoreError::Conflict(
                    "this account is signing in elsewhere at this moment; try again".into(),
                )
                .into(),
                false => crate::error::Fail::from(e),
            })?;
            if let Some(slack) = identity.slack_user_id.as_deref().filter(|s| !s.is_empty()) {
                crate::statement::query(sql!(
                    "UPDATE users SET slack_user_id = $1, updated_at = now() \
                     WHERE id = $2 AND slack_user_id IS NULL \
                     AND NOT EXISTS (SELECT 1 FROM users WHERE slack_user_id = $1)"
                ))
                .bind(slack)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            }
            let person = person_in(&mut tx, &id)
                .await?
                .expect("the person was just written");
            tx.commit().await?;
            Ok(if joined {
                IdentityMatch::Joined(person)
            } else {
                IdentityMatch::Known(person)
            })
        })
        .await
    }

    async fn people(&self) -> StoreResult<Vec<Person>> {
        run(async {
            let rows = crate::statement::query(sql!(concat!(
                "SELECT ",
                person_columns!(),
                " FROM users ORDER BY (deactivated_at IS NULL) DESC, lower(display_name), id"
            )))
            .fetch_all(&self.pool)
            .await?;
            let mut managed: std::collections::HashMap<String, Vec<String>> = Default::default();
            for m in crate::statement::query(sql!(
                "SELECT user_id, team FROM team_managers ORDER BY team"
            ))
            .fetch_all(&self.pool)
            .await?
            {
                managed
                    .entry(m.try_get("user_id")?)
                    .or_default()
                    .push(m.try_get("team")?);
            }
            let mut people = Vec::with_capacity(rows.len());
            for row in &rows {
                let manages = managed
                    .remove(&row.try_get::<String, _>("id")?)
                    .unwrap_or_default();
                people.push(person_from_row(row, manages)?);
            }
            Ok(people)
        })
        .await
    }

    async fn has_admin(&self) -> StoreResult<bool> {
        run(async {
            Ok(crate::statement::query_scalar::<_, i64>(sql!(
                "SELECT COUNT(*) FROM users WHERE role = 'admin' AND deactivated_at IS NULL"
            ))
            .fetch_one(&self.pool)
            .await?
                > 0)
        })
        .await
    }

    async fn invite_person(
        &self,
        email: &str,
        display_name: &str,
        role: Role,
        team: Option<&str>,
    ) -> StoreResult<Person> {
        let email = check_email(email)?;
        run(async {
            let team = team_name(team)?;
            let mut tx = write_tx(&self.pool).await?;
            let admins_before = super::admins::lock_admins(&mut tx).await?;
            let id = invite_in(&mut tx, &email, display_name, role).await?;
            super::admins::keep_an_admin(&mut tx, admins_before).await?;
            if team.is_some() {
                crate::statement::query(sql!("UPDATE users SET team = $1 WHERE id = $2"))
                    .bind(&team)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
            }
            let person = person_in(&mut tx, &id)
                .await?
                .expect("the person was just written");
            tx.commit().await?;
            Ok(person)
        })
        .await
    }

    async fn update_person(&self, id: &str, change: &PersonChange) -> StoreResult<Option<Person>> {
        run(async {
            let team = match &change.team {
                Some(team) => Some(team_name(team.as_deref())?),
                None => None,
            };
            let mut tx = write_tx(&self.pool).await?;
            let admins_before = super::admins::lock_admins(&mut tx).await?;
            if person_in(&mut tx, id).await?.is_none() {
                return Ok(None);
            }
            if let Some(role) = change.role {
                crate::statement::query(sql!(
                    "UPDATE users SET role = $1, updated_at = now() WHERE id = $2"
                ))
                .bind(role.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(name) = change.display_name.as_deref() {
                crate::statement::query(sql!(
                    "UPDATE users SET display_name = $1, updated_at = now() WHERE id = $2"
                ))
                .bind(person_name(name)?)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(team) = team {
                crate::statement::query(sql!(
                    "UPDATE users SET team = $1, updated_at = now() WHERE id = $2"
                ))
                .bind(team)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(manages) = &change.manages {
                crate::statement::query(sql!("DELETE FROM team_managers WHERE user_id = $1"))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let mut teams = Vec::new();
                for team in manages {
                    if let Some(team) = team_name(Some(team))?
                        && !teams.contains(&team)
                    {
                        teams.push(team);
                    }
                }
                for team in teams {
                    crate::statement::query(sql!(
                        "INSERT INTO team_managers (user_id, team) VALUES ($1, $2)"
                    ))
                    .bind(id)
                    .bind(team)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            match change.active {
                Some(false) => {
                    crate::statement::query(sql!(
                        "UPDATE users SET deactivated_at = now(), updated_at = now() \
                         WHERE id = $1 AND deactivated_at IS NULL"
                    ))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    end_sessions_in(&mut tx, id).await?;
                }
                Some(true) => {
                    crate::statement::query(sql!(
                        "UPDATE users SET deactivated_at = NULL, updated_at = now() WHERE id = $1"
                    ))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {}
            }
            super::admins::keep_an_admin(&mut tx, admins_before).await?;
            let person = person_in(&mut tx, id).await?;
            tx.commit().await?;
            Ok(person)
        })
        .await
    }

    async fn create_login_link(&self, link: &NewLoginLink) -> StoreResult<()> {
        run(async {
            crate::statement::query(sql!(
                "INSERT INTO login_links (token_hash, user_id, purpose, return_to, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, now(), $5)"
            ))
            .bind(&link.token_hash)
            .bind(&link.user_id)
            .bind(link.purpose.as_str())
            .bind(&link.return_to)
            .bind(db_time(link.expires_at))
            .execute(self.pool.writes())
            .await?;
            Ok(())
        })
        .await
    }

    async fn peek_login_link(&self, token_hash: &str) -> StoreResult<Option<LoginLink>> {
        run(async {
            let mut conn = hold(&self.pool).await?;
            let row = crate::statement::query(sql!(
                "SELECT user_id, purpose, return_to, expires_at FROM login_links \
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()"
            ))
            .bind(token_hash)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let purpose = match row.try_get::<String, _>("purpose")?.as_str() {
                "setup" => LinkPurpose::Setup,
                _ => LinkPurpose::Signin,
            };
            let person = match row.try_get::<Option<String>, _>("user_id")? {
                Some(user) => match person_in(&mut conn, &user).await? {
                    Some(p) if p.active => Some(p),
                    _ => return Ok(None),
                },
                None => None,
            };
            if purpose == LinkPurpose::Signin && person.is_none() {
                return Ok(None);
            }
            Ok(Some(LoginLink {
                purpose,
                person,
                return_to: row.try_get("return_to")?,
                expires_at: time(&row, "expires_at")?,
            }))
        })
        .await
    }

    async fn redeem_login_link(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(Person, Option<String>)>> {
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            let row = crate::statement::query(sql!(
                "UPDATE login_links SET used_at = now() \
                 WHERE token_hash = $1 AND purpose = 'signin' AND used_at IS NULL AND expires_at > now() \
                 AND user_id IN (SELECT id FROM users WHERE deactivated_at IS NULL) \
                 RETURNING user_id, return_to"
            ))
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let user: String = row.try_get("user_id")?;
            let return_to: Option<String> = row.try_get("return_to")?;
            let person = person_in(&mut tx, &user).await?;
            tx.commit().await?;
            Ok(person.map(|p| (p, return_to)))
        })
        .await
    }

    async fn complete_setup(
        &self,
        token_hash: &str,
        email: &str,
        display_name: &str,
    ) -> StoreResult<Option<Person>> {
        let email = check_email(email)?;
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            // Every unused setup link is locked first (PostgreSQL; SQLite's one writer already
            // serialises this), so two setup links used at once cannot both see "no admin":
            // the second waits, then finds the links used and the admin there.
            crate::statement::query(sql!(
                "SELECT token_hash FROM login_links WHERE purpose = 'setup' AND used_at IS NULL \
                 ORDER BY token_hash FOR UPDATE"
            ))
            .fetch_all(&mut *tx)
            .await?;
            let admins = super::admins::lock_admins(&mut tx).await?;
            if admins > 0 {
                return Err(StoreError::Conflict(
                    "salesai has an admin already; ask them for a sign-in link \
                     (salesai users invite EMAIL --role admin)"
                        .into(),
                )
                .into());
            }
            let used = crate::statement::query(sql!(
                "UPDATE login_links SET used_at = now() \
                 WHERE token_hash = $1 AND purpose = 'setup' AND used_at IS NULL AND expires_at > now()"
            ))
            .bind(token_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if used == 0 {
                return Ok(None);
            }
            // The instance has its admin: every other setup link is spent with this one.
            crate::statement::query(sql!(
                "UPDATE login_links SET used_at = now() WHERE purpose = 'setup' AND used_at IS NULL"
            ))
            .execute(&mut *tx)
            .await?;
            let id = invite_in(&mut tx, &email, display_name, Role::Admin).await?;
            crate::statement::query(sql!(
                "UPDATE users SET deactivated_at = NULL WHERE id = $1"
            ))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            let person = person_in(&mut tx, &id).await?;
            tx.commit().await?;
            Ok(person)
        })
        .await
    }

    async fn create_session(&self, session: &NewSession) -> StoreResult<()> {
        run(async {
            crate::statement::query(sql!(
                "INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at) \
                 VALUES ($1, $2, $3, now(), now(), $4)"
            ))
            .bind(&session.id_hash)
            .bind(&session.user_id)
            .bind(&session.csrf_token)
            .bind(db_time(session.expires_at))
            .execute(self.pool.writes())
            .await?;
            Ok(())
        })
        .await
    }

    async fn find_session(
        &self,
        id_hash: &str,
        idle: std::time::Duration,
    ) -> StoreResult<Option<WebSession>> {
        run(async {
            let mut conn = hold(&self.pool).await?;
            let row = crate::statement::query(sql!(
                "SELECT s.user_id, s.csrf_token, s.created_at, s.expires_at, \
                 (s.last_seen_at < now() - make_interval(secs => 60)) AS stale FROM web_sessions s \
                 WHERE s.id_hash = $1 AND s.ended_at IS NULL AND s.expires_at > now() \
                 AND s.last_seen_at > now() - make_interval(secs => $2)"
            ))
            .bind(id_hash)
            .bind(idle.as_secs_f64())
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let user: String = row.try_get("user_id")?;
            let Some(person) = person_in(&mut conn, &user).await?.filter(|p| p.active) else {
                return Ok(None);
            };
            if row.try_get::<bool, _>("stale")? {
                crate::statement::query(sql!(
                    "UPDATE web_sessions SET last_seen_at = now() WHERE id_hash = $1"
                ))
                .bind(id_hash)
                .execute(&mut *conn)
                .await?;
            }
            let session = WebSession {
                id_hash: id_hash.to_owned(),
                csrf_token: row.try_get("csrf_token")?,
                created_at: time(&row, "created_at")?,
                expires_at: time(&row, "expires_at")?,
                person,
            };
            release(conn).await?;
            Ok(Some(session))
        })
        .await
    }

    async fn end_session(&self, id_hash: &str) -> StoreResult<()> {
        run(async {
            crate::statement::query(sql!(
                "UPDATE web_sessions SET ended_at = now() WHERE id_hash = $1 AND ended_at IS NULL"
            ))
            .bind(id_hash)
            .execute(self.pool.writes())
            .await?;
            Ok(())
        })
        .await
    }

    async fn end_sessions_of(&self, user_id: &str) -> StoreResult<u64> {
        run(async {
            let mut conn = hold(&self.pool).await?;
            let ended = end_sessions_in(&mut conn, user_id).await?;
            release(conn).await?;
            Ok(ended)
        })
        .await
    }
}

/// Ends every live session of a person and voids their unused sign-in links, inside the
/// caller's connection or transaction (a link given before "sign out everywhere" or a
/// deactivation must not start a new session afterwards).
async fn end_sessions_in(conn: &mut Conn, user_id: &str) -> R<u64> {
    let ended = crate::statement::query(sql!(
        "UPDATE web_sessions SET ended_at = now() WHERE user_id = $1 AND ended_at IS NULL"
    ))
    .bind(user_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    crate::statement::query(sql!(
        "UPDATE login_links SET used_at = now() WHERE user_id = $1 AND used_at IS NULL"
    ))
    .bind(user_id)
    .execute(&mut *conn)
    .await?;
    Ok(ended)
}

/// The person with this e-mail, created with `role` when there is none; an existing person's
/// role becomes `role`, and their name `display_name` when one is given. Returns their id.
async fn invite_in(conn: &mut Conn, email: &str, display_name: &str, role: Role) -> R<String> {
    let name = person_name(display_name)?;
    let existing: Option<String> =
        crate::statement::query_scalar(sql!("SELECT id FROM users WHERE email = $1"))
            .bind(email)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(id) = existing {
        crate::statement::query(sql!(
            "UPDATE users SET role = $1, \
             display_name = CASE WHEN $2 = '' THEN display_name ELSE $2 END, \
             updated_at = now() WHERE id = $3"
        ))
        .bind(role.as_str())
        .bind(&name)
        .bind(&id)
        .execute(&mut *conn)
        .await?;
        return Ok(id);
    }
    let id = uuid::Uuid::now_v7().to_string();
    crate::statement::query(sql!(
        "INSERT INTO users (id, email, display_name, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, now(), now())"
    ))
    .bind(&id)
    .bind(email)
    .bind(if name.is_empty() {
        email.split('@').next().unwrap_or(email).to_owned()
    } else {
        name
    })
    .bind(role.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// A person's name as stored: trimmed, at most 200 characters, one line of plain text (a NUL
/// or a line break in a name breaks lists and logs).
fn person_name(name: &str) -> R<String> {
    let name = name.trim();
    if name.chars().any(char::is_control) {
        return Err(StoreError::InvalidInput(
            "a name is one line of plain text; remove the control characters or line breaks".into(),
        )
        .into());
    }
    Ok(name.chars().take(200).collect())
}

/// An e-mail address as stored: trimmed, lower case, one `@` with text on both sides.
fn check_email(email: &str) -> StoreResult<String> {
    let email = email.trim().to_lowercase();
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && email.len() <= 254
                && !email.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(email)
        }
        _ => Err(StoreError::InvalidInput(format!(
            "{email:?} is not an e-mail address; give one like ann@example.com"
        ))),
    }
}
