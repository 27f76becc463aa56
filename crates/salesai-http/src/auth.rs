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
