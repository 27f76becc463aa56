//! Signing in to the web app: one-time links, sessions, identities at OpenID Connect providers.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::Role;

use super::StoreResult;
use super::people::{Person, PersonChange};

/// Why a one-time link exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkPurpose {
    /// Signs an existing person in.
    Signin,
    /// Creates the first admin (printed by `salesai serve` while there is none).
    Setup,
}

impl LinkPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Signin => "signin",
            LinkPurpose::Setup => "setup",
        }
    }
}

/// A one-time sign-in link to store (only its hash is kept).
#[derive(Debug, Clone)]
pub struct NewLoginLink {
    /// SHA-256 of the link's secret, hex.
    pub token_hash: String,
    /// The person it signs in; `None` for a setup link.
    pub user_id: Option<String>,
    /// What it does.
    pub purpose: LinkPurpose,
    /// The page to land on after signing in (a path on this server).
    pub return_to: Option<String>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A live one-time link, as its confirmation page sees it (before it is used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginLink {
    /// What it does.
    pub purpose: LinkPurpose,
    /// The person it signs in (signin links).
    pub person: Option<Person>,
    /// The page to land on.
    pub return_to: Option<String>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A web session to store (only the hash of the cookie's secret is kept).
#[derive(Debug, Clone)]
pub struct NewSession {
    /// SHA-256 of the cookie's secret, hex.
    pub id_hash: String,
    /// Who signed in.
    pub user_id: String,
    /// The session's CSRF token, sent back in every form.
    pub csrf_token: String,
    /// The absolute end of the session, however active it stays.
    pub expires_at: DateTime<Utc>,
}

/// A live web session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebSession {
    /// SHA-256 of the cookie's secret, hex.
    pub id_hash: String,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// When it began.
    pub created_at: DateTime<Utc>,
    /// Its absolute end.
    pub expires_at: DateTime<Utc>,
    /// Who it belongs to.
    pub person: Person,
}

/// What an OpenID Connect provider proved about who signed in, after the ID token, its
/// tenant and its e-mail claims were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenIdentity {
    /// The provider's issuer URL.
    pub issuer: String,
    /// The provider's stable id of the account (`sub`): the identity from the first sign-in on.
    pub subject: String,
    /// The account's e-mail, only when the provider vouches for it (`email_verified`) and the
    /// tenant is pinned; lower case.
    pub verified_email: Option<String>,
    /// The Slack user id, for Sign in with Slack in the pinned workspace.
    pub slack_user_id: Option<String>,
    /// Whether someone unknown may join as a rep (their verified e-mail's domain is allowed).
    pub may_join: bool,
    /// The name to give a person who joins.
    pub display_name: String,
}

/// Who an OpenID Connect sign-in is.
#[derive(Debug, Clone, PartialEq)]
pub enum IdentityMatch {
    /// A person salesai knows (linked now or at an earlier sign-in). May be deactivated: the
    /// caller refuses them.
    Known(Person),
    /// Someone new who joined as a rep just now.
    Joined(Person),
    /// The person with this e-mail (or Slack id) already signs in with another account at
    /// this provider: a second account does not get theirs.
    OtherAccount,
    /// No one salesai knows, and not allowed to join.
    Unknown,
}

/// Sign-in and access: people with teams and activity, one-time links, web sessions.
#[async_trait]
pub trait Access: Send + Sync {
    /// One person.
    async fn person(&self, id: &str) -> StoreResult<Option<Person>>;

    /// The person with this Slack user id, else the one with this e-mail (case-insensitive):
    /// how a sign-in through Slack or an OpenID Connect provider finds who signed in. Finds
    /// deactivated people too (the caller refuses them); never creates anyone.
    async fn person_by_identity(
        &self,
        slack_user_id: Option<&str>,
        email: Option<&str>,
    ) -> StoreResult<Option<Person>>;

    /// The person an OpenID Connect sign-in proves, in one transaction: the person already
    /// linked to `(issuer, subject)`; else the person with the Slack user id, else with the
    /// verified e-mail, who is linked to this identity now — unless they are linked to another
    /// subject at this issuer already ([`IdentityMatch::OtherAccount`]); else, when
    /// `may_join`, a new rep linked to it. Deactivated people are found but never linked.
    async fn sign_in_identity(&self, identity: &ProvenIdentity) -> StoreResult<IdentityMatch>;

    /// Every person, active first, then by name.
    async fn people(&self) -> StoreResult<Vec<Person>>;

    /// Whether an active admin exists (while none does, `salesai serve` prints a setup link).
    async fn has_admin(&self) -> StoreResult<bool>;

    /// The person with this e-mail, created when there is none (with `display_name`), given
    /// `role` and `team` — what `salesai users invite` does before it makes their link.
    async fn invite_person(
        &self,
        email: &str,
        display_name: &str,
        role: Role,
        team: Option<&str>,
    ) -> StoreResult<Person>;

    /// Changes a person in one transaction; deactivation ends their sessions and voids their
    /// unused sign-in links at once. `None` when there is no such person; `Conflict` when the
    /// change would leave no active admin.
    async fn update_person(&self, id: &str, change: &PersonChange) -> StoreResult<Option<Person>>;

    /// Stores a one-time link.
    async fn create_login_link(&self, link: &NewLoginLink) -> StoreResult<()>;

    /// The link with this hash while it can still be used (unused, unexpired, its person
    /// active), without using it.
    async fn peek_login_link(&self, token_hash: &str) -> StoreResult<Option<LoginLink>>;

    /// Uses a sign-in link: at most one caller ever gets `Some` for a link (on any node).
    /// Returns the person and the page to land on.
    async fn redeem_login_link(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(Person, Option<String>)>>;

    /// Uses a setup link and makes the person with this e-mail (created if needed) an admin, in
    /// one transaction; `Conflict` when an active admin exists already, `None` when the link is
    /// used or expired.
    async fn complete_setup(
        &self,
        token_hash: &str,
        email: &str,
        display_name: &str,
    ) -> StoreResult<Option<Person>>;

    /// Stores a new session.
    async fn create_session(&self, session: &NewSession) -> StoreResult<()>;

    /// The live session with this hash: not ended, before its absolute end, used within `idle`,
    /// its person active. Records the use (at most once a minute).
    async fn find_session(
        &self,
        id_hash: &str,
        idle: std::time::Duration,
    ) -> StoreResult<Option<WebSession>>;

    /// Ends one session (sign out).
    async fn end_session(&self, id_hash: &str) -> StoreResult<()>;

    /// Ends every session of a person ("sign out everywhere") and voids their unused sign-in
    /// links; returns how many sessions ended.
    async fn end_sessions_of(&self, user_id: &str) -> StoreResult<u64>;
}
