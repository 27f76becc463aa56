//! People, their teams and their API tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Role, User};

use super::StoreResult;

/// An API token to store. The token itself is shown once and never stored; only its hash is.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    /// A human name, unique among live tokens.
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// The person it belongs to (`salesai token create --for EMAIL`): a rep's token sees and
    /// changes only that rep's conversations. `None` for a service token (integrations).
    pub user_id: Option<String>,
}

/// A stored API token (without the secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    /// The token id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last used to authenticate.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked token authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The person it belongs to; `None` for a service token, or one created before tokens
    /// belonged to people (it keeps working as a service token; doctor lists it).
    #[serde(default)]
    pub user_id: Option<String>,
}

/// People and their API tokens.
#[async_trait]
pub trait People: Send + Sync {
    /// One user.
    async fn get_user(&self, id: &str) -> StoreResult<Option<User>>;

    /// Refreshes a user's name, and their e-mail when they have none and no one else has it,
    /// from an authoritative profile (Slack's `users.info`).
    async fn update_user_profile(
        &self,
        id: &str,
        email: Option<&str>,
        display_name: &str,
    ) -> StoreResult<()>;

    /// Sets the role of the user with this id, e-mail or Slack id; returns the user, or
    /// `None` when there is no such user.
    async fn set_user_role(&self, who: &str, role: Role) -> StoreResult<Option<User>>;

    /// The user with this Slack id, else with this e-mail (linking the Slack id to them), else a
    /// new user with the rep role. Returns the user id. People are found in the database, never
    /// in a table in code.
    async fn find_or_create_user(
        &self,
        email: Option<&str>,
        slack_user_id: Option<&str>,
        display_name: &str,
    ) -> StoreResult<String>;

    /// Stores a token's hash.
    async fn create_api_token(&self, token: NewApiToken) -> StoreResult<ApiToken>;

    /// The live token with this hash, touching its `last_used_at`.
    async fn authenticate_api_token(&self, token_hash: &str) -> StoreResult<Option<ApiToken>>;

    /// All tokens, revoked ones included.
    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>>;

    /// Revokes the live token with this name or id; false when there is none.
    async fn revoke_api_token(&self, name_or_id: &str) -> StoreResult<bool>;
}

/// A person as sign-in and authorisation see them: the user, their team, the teams they manage
/// and whether they may sign in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// The user.
    pub user: User,
    /// The team they belong to.
    pub team: Option<String>,
    /// The teams they manage (managers), sorted.
    pub manages: Vec<String>,
    /// False once deactivated: they cannot sign in and their sessions and tokens stop working.
    pub active: bool,
    /// When they were created.
    pub created_at: DateTime<Utc>,
}

/// A change to a person; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonChange {
    /// The new role.
    pub role: Option<Role>,
    /// The new team (`Some(None)` leaves every team).
    pub team: Option<Option<String>>,
    /// The teams they manage, replacing the old list.
    pub manages: Option<Vec<String>>,
    /// Deactivate (`false`: their sessions end in the same transaction) or reactivate.
    pub active: Option<bool>,
    /// The new display name.
    pub display_name: Option<String>,
}
