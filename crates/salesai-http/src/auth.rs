//! Bearer API tokens. Each token has a role; routes state the role they need.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use salesai_core::App;
use salesai_core::domain::Role;
use salesai_core::store::ApiToken;

use crate::error::ApiError;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token used.
    pub token: ApiToken,
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        // The scheme is case-insensitive (RFC 9110 §11.1): "Bearer", "bearer", "BEARER".
        let token = header
            .trim_start()
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let hash = salesai_core::token::hash_token(token);
        let found = app
            .store
            .authenticate_api_token(&hash)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Caller { token: found })
    }
}

/// Which conversations a caller reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every conversation: admin, service and manager tokens (managers see their teams' once
    /// teams exist), and tokens from before tokens belonged to people.
    All,
    /// Only the conversations of this person (a rep's own token).
    Own(String),
}

impl Caller {
    /// The conversations this caller reaches, decided here once for every route.
    pub fn scope(&self) -> Scope {
        match (self.token.role, &self.token.user_id) {
            (Role::Rep, Some(user)) => Scope::Own(user.clone()),
            _ => Scope::All,
        }
    }

    /// Fails with 403 unless the conversation of `rep_user_id` is within the caller's scope.
    pub fn may_reach(&self, rep_user_id: Option<&str>) -> Result<(), ApiError> {
        match self.scope() {
            Scope::All => Ok(()),
            Scope::Own(user) if rep_user_id == Some(user.as_str()) => Ok(()),
            Scope::Own(_) => Err(ApiError::Forbidden(
                "this conversation belongs to another rep; a rep's token reaches only their own calls"
                    .into(),
            )),
        }
    }

    /// Whether the caller may upload a call on behalf of someone else (name another rep):
    /// admin and service tokens, and tokens that belong to no person (they act as service
    /// tokens until re-issued).
    pub fn may_act_for_others(&self) -> bool {
        matches!(self.token.role, Role::Admin | Role::Service) || self.token.user_id.is_none()
    }
}

/// A caller that holds one of the roles a route allows.
pub trait RequireRole {
    /// Fails with 403 unless the caller's role is in `allowed`.
    fn require(&self, allowed: &[Role]) -> Result<(), ApiError>;
}

impl RequireRole for Caller {
    fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if allowed.contains(&self.token.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this needs the {} role; the token {:?} has the {} role",
                allowed
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                self.token.name,
                self.token.role.as_str()
            )))
        }
    }
}
