//! Who may see and do what: one rule set for the web app, the JSON API and (through the same
//! roles) Slack. A request's caller — a web session or an API token — becomes a [`Principal`];
//! every route asks the principal, never the role directly.

use serde::{Deserialize, Serialize};

use crate::domain::Role;
use crate::store::{LinkPurpose, NewLoginLink, Person, Store, StoreResult};

/// How long a one-time sign-in link works.
pub const LINK_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// How long the first-run setup link printed by `salesai serve` works.
pub const SETUP_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Makes a one-time link for `user_id` (a setup link when `None`) and returns the path to open
/// (`/login/link/<secret>`); only the secret's hash is stored. `return_to` must be a path on
/// this server.
pub async fn issue_link(
    store: &dyn Store,
    user_id: Option<&str>,
    return_to: Option<&str>,
    ttl: std::time::Duration,
) -> StoreResult<String> {
    let secret = crate::token::generate_token();
    let secret = secret
        .trim_start_matches(crate::token::TOKEN_PREFIX)
        .to_owned();
    store
        .create_login_link(&NewLoginLink {
            token_hash: crate::token::hash_token(&secret),
            user_id: user_id.map(Into::into),
            purpose: match user_id {
                Some(_) => LinkPurpose::Signin,
                None => LinkPurpose::Setup,
            },
            return_to: return_to.filter(|p| is_local_path(p)).map(Into::into),
            expires_at: chrono::Utc::now()
                + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(15)),
        })
        .await?;
    Ok(format!("/login/link/{secret}"))
}

/// Whether `path` is a path on this server (`/calls/1`), never another site (`//evil.example`,
/// `https://…`, `/\evil`): where a sign-in may send the browser afterwards.
pub fn is_local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 512
        && !path.chars().any(|c| c.is_control() || c == '\\')
}

pub use crate::domain::Reach;

/// The caller of a request, however they proved who they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    /// The person, when the caller is one (a web session, a person's token).
    pub user_id: Option<String>,
    /// What they may do.
    pub role: Role,
    /// Who, for logs (a person's name or a token's name).
    pub name: String,
    /// The teams they manage.
    pub manages: Vec<String>,
}

/// Why an action was refused, for a 403 page or answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

impl Principal {
    /// The principal of a signed-in person.
    pub fn person(person: &Person) -> Principal {
        Principal {
            user_id: Some(person.user.id.clone()),
            role: person.user.role,
            name: if person.user.display_name.is_empty() {
                person
                    .user
                    .email
                    .clone()
                    .unwrap_or_else(|| person.user.id.clone())
            } else {
                person.user.display_name.clone()
            },
            manages: person.manages.clone(),
        }
    }

    /// The conversations this principal reaches; lists filter by it.
    pub fn reach(&self) -> Reach {
        match (self.role, &self.user_id) {
            (Role::Rep, Some(user)) => Reach::Own(user.clone()),
            (Role::Manager, Some(user)) => Reach::Teams(user.clone()),
            _ => Reach::All,
        }
    }

    /// Whether this principal reaches a call of `rep` (`None`: a call without a rep, which
    /// only principals reaching everything see).
    pub fn may_reach(&self, rep: Option<&Person>) -> Result<(), Denied> {
        let rep_id = rep.map(|p| p.user.id.as_str());
        match self.reach() {
            Reach::All => Ok(()),
            Reach::Own(me) if rep_id == Some(me.as_str()) => Ok(()),
            Reach::Teams(me)
                if rep_id == Some(me.as_str())
                    || rep
                        .and_then(|p| p.team.as_ref())
                        .is_some_and(|t| self.manages.contains(t)) =>
            {
                Ok(())
            }
            Reach::Own(_) => Err(Denied(
                "this call belongs to another rep; a rep sees only their own calls".into(),
            )),
            Reach::Teams(_) => Err(Denied(
                "this call belongs to a rep outside the teams you manage".into(),
            )),
        }
    }

    /// Fails unless the principal's role is one of `allowed`.
    pub fn require(&self, allowed: &[Role]) -> Result<(), Denied> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(Denied(format!(
                "this needs the {} role; {} has the {} role",
                allowed
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
                self.name,
                self.role.as_str()
            )))
        }
    }

    /// Whether the principal may act on someone else's behalf (upload a call for another rep):
    /// admins and service tokens, and tokens that belong to no person.
    pub fn may_act_for_others(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Service) || self.user_id.is_none()
    }

    /// Whether the principal runs the system (people, queues, doctor).
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::User;

    fn person(id: &str, role: Role, team: Option<&str>, manages: &[&str]) -> Person {
        Person {
            user: User {
                id: id.into(),
                email: Some(format!("{id}@example.com")),
                display_name: id.into(),
                role,
                slack_user_id: None,
            },
            team: team.map(Into::into),
            manages: manages.iter().map(|s| s.to_string()).collect(),
            active: true,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn only_local_paths_are_return_targets() {
        for ok in ["/", "/calls/abc?status=failed", "/calls#t=5"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in [
            "",
            "calls",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "/\u{0}x",
        ] {
            assert!(!is_local_path(bad), "{bad}");
        }
    }

    #[test]
    fn reach_follows_role_and_team() {
        let ann = person("ann", Role::Rep, Some("north"), &[]);
        let bob = person("bob", Role::Rep, Some("south"), &[]);
        let mia = person("mia", Role::Manager, Some("north"), &["north"]);
        let root = person("root", Role::Admin, None, &[]);
        let rep = Principal::person(&ann);
        assert!(rep.may_reach(Some(&ann)).is_ok());
        assert!(rep.may_reach(Some(&bob)).is_err());
        assert!(rep.may_reach(None).is_err());
        let manager = Principal::person(&mia);
        assert_eq!(manager.reach(), Reach::Teams("mia".into()));
        assert!(manager.may_reach(Some(&ann)).is_ok());
        assert!(manager.may_reach(Some(&mia)).is_ok());
        assert!(manager.may_reach(Some(&bob)).is_err());
        let admin = Principal::person(&root);
        assert!(admin.may_reach(Some(&bob)).is_ok() && admin.may_reach(None).is_ok());
        assert!(admin.is_admin() && !manager.is_admin());
        assert!(manager.require(&[Role::Admin]).is_err());
        assert!(admin.may_act_for_others() && !rep.may_act_for_others());
    }
}

/// A sign-in provider that speaks OpenID Connect: Slack's ("Sign in with Slack") or any other
/// (Google Workspace, Microsoft Entra, Okta, Keycloak) by its issuer URL. The web app runs the
/// authorisation-code flow with PKCE, state and nonce against it.
#[derive(Clone)]
pub struct OidcProvider {
    /// The id in its URLs (`/login/oidc/<id>`): `slack`, or `sso` for the generic provider.
    pub id: String,
    /// What the sign-in button says ("Slack", "Google", …).
    pub label: String,
    /// The issuer URL; its discovery document is `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The client id registered with the provider.
    pub client_id: String,
    /// The client secret registered with the provider.
    pub client_secret: String,
    /// E-mail domains whose people may sign in without an invitation (they join as reps);
    /// empty: only people salesai already knows.
    pub allowed_domains: Vec<String>,
    /// Slack's provider: people are matched by their Slack user id first.
    pub slack: bool,
    /// The organisation every sign-in must come from, when the issuer serves many (Google
    /// serves every Gmail account, Slack every workspace): a claim and its value.
    pub tenant: Option<TenantPin>,
}

/// A claim an ID token must carry with a given value: `hd` (Google Workspace's domain), `tid`
/// (Entra's tenant id) or `https://slack.com/team_id` (the Slack workspace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPin {
    /// The claim's name.
    pub claim: String,
    /// The value it must have (compared case-insensitively).
    pub value: String,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"(hidden)")
            .field("allowed_domains", &self.allowed_domains)
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl OidcProvider {
    /// Whether an unknown person with this (verified) e-mail may join by signing in here.
    pub fn admits(&self, email: &str) -> bool {
        let Some((_, domain)) = email.rsplit_once('@') else {
            return false;
        };
        self.allowed_domains
            .iter()
            .any(|d| d.trim_start_matches('@').eq_ignore_ascii_case(domain))
    }
}
