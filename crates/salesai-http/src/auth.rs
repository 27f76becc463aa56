//! Bearer API tokens. Each token has a role (a person's token: at most its person's current
//! role); routes state the role they need.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use salesai_core::App;
use salesai_core::access::{Principal, Reach};
use salesai_core::domain::Role;
use salesai_core::store::ApiToken;

use crate::error::ApiError;

/// The authenticated caller of the JSON API: their token and, from it, the principal every
/// authorisation rule asks (`salesai_core::access`, shared with the web pages).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token used.
    pub token: ApiToken,
    /// Who the caller is for the rules.
    pub principal: Principal,
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
        // A deactivated person's tokens authenticate nothing (the store checks).
        let found = app
            .store
            .authenticate_api_token(&hash)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        // A person's token follows its person: their current role (the token's can only
        // narrow it), their current teams, their state — read at every request, so a
        // demotion, a team change or a deactivation applies at once.
        let (role, manages) = match &found.user_id {
            Some(user) => {
                let person = app
                    .store
                    .person(user)
                    .await?
                    .filter(|p| p.active)
                    .ok_or(ApiError::Unauthorized)?;
                (found.role.meet(person.user.role), person.manages)
            }
            None => (found.role, Vec::new()),
        };
        let principal = Principal {
            user_id: found.user_id.clone(),
            role,
            name: found.name.clone(),
            manages,
        };
        Ok(Caller {
            token: found,
            principal,
        })
    }
}

/// The reach checks every route makes, for any principal (API caller or web session).
pub trait Authorize {
    /// The principal asked.
    fn principal(&self) -> &Principal;

    /// Fails with 403 unless the principal's role is in `allowed`.
    fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        self.principal()
            .require(allowed)
            .map_err(|d| ApiError::Forbidden(d.0))
    }

    /// Whether the principal may upload a call on behalf of someone else.
    fn may_act_for_others(&self) -> bool {
        self.principal().may_act_for_others()
    }

    /// The conversations the principal reaches.
    fn reach(&self) -> Reach {
        self.principal().reach()
    }

    /// Fails with 403 unless the call of `rep_user_id` is within the principal's reach (the
    /// rep's team is read when the rule needs it).
    fn may_reach(
        &self,
        app: &App,
        rep_user_id: Option<&str>,
    ) -> impl std::future::Future<Output = Result<(), ApiError>> + Send
    where
        Self: Sync,
    {
        async move {
            let principal = self.principal();
            let rep = match (principal.reach(), rep_user_id) {
                (Reach::All, _) => return Ok(()),
                (_, Some(user)) => app.store.person(user).await?,
                (_, None) => None,
            };
            principal
                .may_reach(rep.as_ref())
                .map_err(|d| ApiError::Forbidden(d.0))
        }
    }
}

impl Authorize for Caller {
    fn principal(&self) -> &Principal {
        &self.principal
    }
}
