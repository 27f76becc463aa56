//! People and their API tokens, on both backends.

use async_trait::async_trait;
use salesai_core::domain::{Role, User};
use salesai_core::store::{ApiToken, NewApiToken, People, StoreError, StoreResult};
use sqlx::Row;

use super::super::{StoreImpl, write_tx};
use super::token_from_row;
use crate::error::{Fail, R, run};

/// A user row as a `User`.
pub(super) fn user_from_row(r: &super::DbRow) -> R<User> {
    Ok(User {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        display_name: r.try_get("display_name")?,
        role: Role::parse(&r.try_get::<String, _>("role")?)?,
        slack_user_id: r.try_get("slack_user_id")?,
    })
}

#[async_trait]
impl People for StoreImpl {
    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        run(async {
            crate::statement::query(sql!(
                "SELECT id, email, display_name, role, slack_user_id FROM users WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
        })
        .await
    }

    async fn update_user_profile(
        &self,
        id: &str,
        email: Option<&str>,
        display_name: &str,
    ) -> StoreResult<()> {
        run(async {
            let name = display_name.trim();
            if !name.is_empty() {
                crate::statement::query(sql!(
                    "UPDATE users SET display_name = $1, updated_at = now() WHERE id = $2"
                ))
                .bind(name)
                .bind(id)
                .execute(self.pool.writes())
                .await?;
            }
            if let Some(email) = email.map(str::trim).filter(|e| e.contains('@')) {
                crate::statement::query(sql!(
                    "UPDATE users SET email = $1, updated_at = now() WHERE id = $2 AND email IS NULL \
                     AND NOT EXISTS (SELECT 1 FROM users WHERE email = $1)"
                ))
                .bind(email)
                .bind(id)
                .execute(self.pool.writes())
                .await?;
            }
            Ok(())
        })
        .await
    }

    async fn set_user_role(&self, who: &str, role: Role) -> StoreResult<Option<User>> {
        let id: Option<String> = run(async {
            let mut tx = write_tx(&self.pool).await?;
            let admins_before = super::admins::lock_admins(&mut tx).await?;
            let id = crate::statement::query_scalar(sql!(
                "UPDATE users SET role = $1, updated_at = now() \
                 WHERE id = $2 OR email = $2 OR slack_user_id = $2 RETURNING id"
            ))
            .bind(role.as_str())
            .bind(who)
            .fetch_optional(&mut *tx)
            .await?;
            super::admins::keep_an_admin(&mut tx, admins_before).await?;
            tx.commit().await?;
            Ok(id)
        })
        .await?;
        match id {
            Some(id) => self.get_user(&id).await,
            None => Ok(None),
        }
    }

    async fn find_or_create_user(
        &self,
        email: Option<&str>,
        slack_user_id: Option<&str>,
        display_name: &str,
    ) -> StoreResult<String> {
        let email = email
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty());
        let slack = slack_user_id.map(str::trim).filter(|s| !s.is_empty());
        for (what, value) in [("e-mail", email.as_deref()), ("Slack user id", slack)] {
            if let Some(value) = value
                && (value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()))
            {
                return Err(StoreError::InvalidInput(format!(
                    "{value:?} is not an {what}: one word, no spaces or line breaks"
                )));
            }
        }
        if email.as_deref().is_some_and(|e| !e.contains('@')) {
            return Err(StoreError::InvalidInput(format!(
                "{:?} is not an e-mail address; give one like ann@example.com",
                email.unwrap_or_default()
            )));
        }
        // A name from Slack or an upload is shown in lists: one line of text.
        let display_name: String = display_name
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        let display_name = display_name.as_str();
        if email.is_none() && slack.is_none() {
            return Err(StoreError::InvalidInput(
                "a user needs an e-mail or a Slack user id".into(),
            ));
        }
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            // By Slack id first, then by e-mail (linking the Slack id), else a new rep.
            if let Some(slack) = slack
                && let Some(id) = crate::statement::query_scalar::<_, String>(sql!(
                    "SELECT id FROM users WHERE slack_user_id = $1"
                ))
                .bind(slack)
                .fetch_optional(&mut *tx)
                .await?
            {
                tx.commit().await?;
                return Ok(id);
            }
            if let Some(email) = &email
                && let Some(id) =
                    crate::statement::query_scalar::<_, String>(sql!("SELECT id FROM users WHERE email = $1"))
                        .bind(email)
                        .fetch_optional(&mut *tx)
                        .await?
            {
                if let Some(slack) = slack {
                    crate::statement::query(sql!(
                        "UPDATE users SET slack_user_id = $1, updated_at = now() \
                         WHERE id = $2 AND slack_user_id IS NULL"
                    ))
                    .bind(slack)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                return Ok(id);
            }
            let id = uuid::Uuid::now_v7().to_string();
            let inserted = crate::statement::query(sql!(
                "INSERT INTO users (id, email, display_name, role, slack_user_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'rep', $4, now(), now())"
            ))
            .bind(&id)
            .bind(&email)
            .bind(display_name)
            .bind(slack)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {
                    tx.commit().await?;
                    Ok(id)
                }
                // Another request created the same person between our look-up and insert (two
                // files from one new rep at once): theirs stands.
                Err(e) if crate::error::is_unique_violation(&e) => {
                    drop(tx);
                    let found: Option<String> = crate::statement::query_scalar(sql!(
                        "SELECT id FROM users WHERE slack_user_id = $1 OR email = $2 \
                         ORDER BY created_at LIMIT 1"
                    ))
                    .bind(slack)
                    .bind(&email)
                    .fetch_optional(&self.pool)
                    .await?;
                    match found {
                        Some(id) => Ok(id),
                        None => Err(e.into()),
                    }
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn create_api_token(&self, token: NewApiToken) -> StoreResult<ApiToken> {
        run(async {
            let row = crate::statement::query(sql!(concat!(
                "INSERT INTO api_tokens (name, role, token_hash, user_id, created_at) \
                 VALUES ($1, $2, $3, $4, now()) RETURNING ",
                token_columns!()
            )))
            .bind(&token.name)
            .bind(token.role.as_str())
            .bind(&token.token_hash)
            .bind(&token.user_id)
            .fetch_one(self.pool.writes())
            .await
            .map_err(|e| match crate::error::is_unique_violation(&e) {
                true => StoreError::InvalidInput(format!(
                    "a live token named {:?} already exists; revoke it first or pick another name",
                    token.name
                ))
                .into(),
                false => Fail::from(e),
            })?;
            token_from_row(&row)
        })
        .await
    }

    async fn authenticate_api_token(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        run(async {
            crate::statement::query(sql!(concat!(
                "UPDATE api_tokens SET last_used_at = now() \
                 WHERE token_hash = $1 AND revoked_at IS NULL \
                 AND (user_id IS NULL OR user_id IN (SELECT id FROM users WHERE deactivated_at IS NULL)) \
                 RETURNING ",
                token_columns!()
            )))
            .bind(token_hash)
            .fetch_optional(self.pool.writes())
            .await?
            .as_ref()
            .map(token_from_row)
            .transpose()
        })
        .await
    }

    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        run(async {
            crate::statement::query(sql!(concat!(
                "SELECT ",
                token_columns!(),
                " FROM api_tokens ORDER BY id"
            )))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(token_from_row)
            .collect()
        })
        .await
    }

    async fn revoke_api_token(&self, name_or_id: &str) -> StoreResult<bool> {
        run(async {
            let changed = crate::statement::query(sql!(
                "UPDATE api_tokens SET revoked_at = now() \
                 WHERE revoked_at IS NULL AND (name = $1 OR id = $2)"
            ))
            .bind(name_or_id)
            .bind(name_or_id.parse::<i64>().ok())
            .execute(self.pool.writes())
            .await?
            .rows_affected();
            Ok(changed > 0)
        })
        .await
    }
}
