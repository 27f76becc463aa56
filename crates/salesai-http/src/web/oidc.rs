//! Sign-in through OpenID Connect: "Sign in with Slack" and any company provider (Google
//! Workspace, Microsoft Entra, Okta, Keycloak) by issuer URL.
//!
//! The authorisation-code flow with PKCE (S256), `state` and `nonce`: `GET /login/oidc/{id}`
//! sends the browser to the provider with a fresh state, nonce and code challenge, kept in a
//! short-lived HttpOnly cookie signed with a key derived from the client secret; the provider
//! sends it back to `/login/oidc/{id}/callback`, where the cookie's signature and then the
//! state are checked before anything else the answer says, the code is exchanged (with the
//! verifier and the client secret) for an ID token, and the ID token's signature is checked
//! against the provider's published keys (RS256/384/512, ES256/384) along with its issuer,
//! audience (this client only), expiry and nonce.
//!
//! Who signed in is the provider's `(issuer, sub)`, stored at the first sign-in and required
//! afterwards (`Access::sign_in_identity`). At that first sign-in the account is linked to an
//! invited person by their Slack user id (Sign in with Slack) or their e-mail — only when the
//! provider vouches for the e-mail (`email_verified: true`; Entra's `xms_edov`) and the
//! organisation is pinned (`hd` for Google, `tid` for Entra, `team_id` for Slack; see
//! [`OidcProvider::tenant`]) and, when `SALESAI_SIGN_IN_DOMAINS` is set, the e-mail's domain is
//! one of them. A person already linked to another account at the provider is not given to a
//! second one. Someone salesai does not know joins as a rep only from an allowed domain.
//! Deactivated people are refused.
//!
//! Verification is written here over `aws-lc-rs` rather than taken from the `openidconnect`
//! crate: the checks are the few of OpenID Connect Core §3.1.3.7 listed above, each unit-tested
//! and tried against a real provider, and the crate would add its own HTTP client and JOSE
//! stack to a binary that already has both (see ARCHITECTURE.md).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use salesai_core::App;
use salesai_core::access::OidcProvider;
use salesai_core::store::{IdentityMatch, ProvenIdentity};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::cookies;
use super::i18n::Lang;
use super::session::PageError;

/// The cookie that carries one sign-in attempt's state, nonce and PKCE verifier.
const FLOW_COOKIE: &str = "salesai_oidc";

/// How long a person has at the provider before the attempt expires.
const FLOW_SECS: u64 = 600;

/// How long a provider's discovery document and keys are trusted before they are fetched again.
const META_TTL: Duration = Duration::from_secs(3600);

/// Clock skew allowed on `exp`, `iat` and `nbf`.
const SKEW_SECS: i64 = 120;

/// What a provider's discovery document says (the parts salesai uses).
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// One published key.
#[derive(Debug, Clone, Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Debug, Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// A provider's discovery document and keys, as last fetched.
struct Meta {
    discovery: Discovery,
    keys: Vec<Jwk>,
    fetched: Instant,
}

/// One issuer's cached discovery and keys, behind its own lock: a slow provider holds up only
/// the sign-ins that need it, never another provider's.
type MetaSlot = Arc<Mutex<Option<Arc<Meta>>>>;

/// Discovery and keys per issuer, shared by the process's requests.
static META: LazyLock<std::sync::Mutex<HashMap<String, MetaSlot>>> =
    LazyLock::new(Default::default);

fn http() -> &'static reqwest::Client {
    static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client builds")
    });
    &CLIENT
}

/// Why a sign-in through a provider failed: said to the person in both languages, logged with
/// the detail.
#[derive(Debug)]
enum Failure {
    /// The provider could not be reached or answered nonsense.
    Provider(String),
    /// The answer did not prove who signed in (bad state, signature, nonce, …).
    Invalid(String),
    /// The person said no at the provider.
    Cancelled,
    /// Proven, but not someone who may use salesai.
    NotAllowed(String),
    /// Their account is deactivated.
    Deactivated,
    /// The provider did not vouch for the e-mail, and nothing else names the person.
    Unverified,
    /// The account belongs to another organisation (Google domain, Entra tenant, Slack
    /// workspace) than the one this salesai is pinned to.
    OtherTenant(String),
    /// The person this e-mail names already signs in with another account at this provider.
    OtherAccount,
    /// salesai's own database failed while finding or adding the person.
    Store(salesai_core::store::StoreError),
}

impl Failure {
    /// What went wrong, for the log (never shown to the person).
    fn detail(&self) -> &str {
        match self {
            Failure::Provider(d)
            | Failure::Invalid(d)
            | Failure::NotAllowed(d)
            | Failure::OtherTenant(d) => d,
            Failure::Cancelled => "cancelled at the provider",
            Failure::Deactivated => "deactivated",
            Failure::Unverified => "the provider does not vouch for the e-mail",
            Failure::OtherAccount => "the person is linked to another account at this provider",
            Failure::Store(_) => "database error",
        }
    }

    fn page(self, lang: Lang) -> PageError {
        let (status, text) = match self {
            // salesai's own failure: the usual page for it (503 while the database is away).
            Failure::Store(e) => return e.into(),
            Failure::Provider(_) => (
                StatusCode::BAD_GATEWAY,
                lang.t().signin_the_sign_in_provider_did,
            ),
            Failure::Invalid(_) => (
                StatusCode::BAD_REQUEST,
                lang.t().signin_this_sign_in_could_not,
            ),
            Failure::Cancelled => (
                StatusCode::FORBIDDEN,
                lang.t().signin_sign_in_was_cancelled_at,
            ),
            Failure::NotAllowed(_) => (
                StatusCode::FORBIDDEN,
                lang.t().signin_you_signed_in_but_salesai,
            ),
            Failure::Deactivated => (
                StatusCode::FORBIDDEN,
                lang.t().signin_this_account_has_been_deactivated,
            ),
            Failure::Unverified => (
                StatusCode::FORBIDDEN,
                lang.t().signin_your_sign_in_provider_did,
            ),
            Failure::OtherTenant(_) => (
                StatusCode::FORBIDDEN,
                lang.t().signin_this_account_belongs_to_another,
            ),
            Failure::OtherAccount => (
                StatusCode::FORBIDDEN,
                lang.t().signin_the_person_with_this_e,
            ),
        };
        PageError::new(status, Some(lang), text)
    }
}

/// The provider's discovery document and keys: cached for an hour, fetched again when `fresh`
/// (a token names a key the cache does not have — the provider rotated its keys).
async fn meta(provider: &OidcProvider, fresh: bool) -> Result<Arc<Meta>, Failure> {
    let slot = META
        .lock()
        .expect("the provider cache lock is never held across a panic")
        .entry(provider.issuer.clone())
        .or_default()
        .clone();
    let mut cache = slot.lock().await;
    if !fresh
        && let Some(meta) = cache.as_ref()
        && meta.fetched.elapsed() < META_TTL
    {
        return Ok(meta.clone());
    }
    // A refetch for an unknown key at most once a minute, so a forged `kid` cannot make
    // salesai hammer the provider.
    if fresh
        && let Some(meta) = cache.as_ref()
        && meta.fetched.elapsed() < Duration::from_secs(60)
    {
        return Ok(meta.clone());
    }
    let url = format!("{}/.well-known/openid-configuration", provider.issuer);
    let discovery: Discovery = get_json(&url).await?;
    if discovery.issuer.trim_end_matches('/') != provider.issuer.trim_end_matches('/') {
        return Err(Failure::Provider(format!(
            "{url} names issuer {:?}, not {:?}",
            discovery.issuer, provider.issuer
        )));
    }
    let keys: JwkSet = get_json(&discovery.jwks_uri).await?;
    let meta = Arc::new(Meta {
        discovery,
        keys: keys.keys,
        fetched: Instant::now(),
    });
    *cache = Some(meta.clone());
    Ok(meta)
}

async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, Failure> {
    let response = http()
        .get(url)
        .send()
        .await
        .map_err(|e| Failure::Provider(format!("GET {url}: {e}")))?;
    if !response.status().is_success() {
        return Err(Failure::Provider(format!(
            "GET {url}: HTTP {}",
            response.status()
        )));
    }
    response
        .json()
        .await
        .map_err(|e| Failure::Provider(format!("GET {url}: {e}")))
}

fn random_b64() -> String {
    let bytes: [u8; 32] = rand::random();
    B64.encode(bytes)
}

/// This server's callback URL for a provider.
fn redirect_uri(app: &App, headers: &HeaderMap, id: &str) -> String {
    let base = app
        .public_url
        .as_deref()
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| super::origin(headers));
    format!("{base}/login/oidc/{id}/callback")
}

fn find<'a>(app: &'a App, id: &str) -> Option<&'a OidcProvider> {
    app.sign_in.iter().find(|p| p.id == id)
}

/// `GET /login/oidc/{id}`: off to the provider.
pub async fn start(
    State(app): State<App>,
    lang: Lang,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let Some(provider) = find(&app, &id) else {
        return Err(PageError::not_found(lang));
    };
    let meta = meta(provider, false).await.map_err(|f| {
        tracing::warn!(event = "web.oidc_failed", provider = %id, reason = f.detail(), "sign-in provider unavailable");
        f.page(lang)
    })?;
    let (state, nonce, verifier) = (random_b64(), random_b64(), random_b64());
    let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
    let mut url = url::Url::parse(&meta.discovery.authorization_endpoint)
        .map_err(|e| Failure::Provider(format!("authorization_endpoint: {e}")).page(lang))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &provider.client_id)
        .append_pair("redirect_uri", &redirect_uri(&app, &headers, &id))
        .append_pair("scope", "openid email profile")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let flow = sign_flow(provider, &format!("{id}.{state}.{nonce}.{verifier}"));
    Ok((
        [(
            header::SET_COOKIE,
            cookies::set_cookie(&app, FLOW_COOKIE, &flow, FLOW_SECS, false),
        )],
        Redirect::to(url.as_str()),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /login/oidc/{id}/callback`: the provider's answer.
pub async fn callback(
    State(app): State<App>,
    lang: Lang,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, PageError> {
    let Some(provider) = find(&app, &id) else {
        return Err(PageError::not_found(lang));
    };
    // Not rate-limited: there is nothing to guess here (the answer must match a signed cookie
    // of this browser's own attempt, and the provider authenticates the person), and counting
    // would let any page lock its visitors out with `<img src=…/callback>`.
    let outcome = finish(&app, provider, &headers, &q).await;
    // The attempt is spent whatever happened.
    let clear = cookies::set_cookie(&app, FLOW_COOKIE, "", 0, false);
    let mut response = match outcome {
        Ok(person_id) => {
            super::signin::signed_in(&app, &headers, &person_id, None, &provider.id).await?
        }
        Err(failure) => {
            tracing::warn!(event = "web.oidc_failed", provider = %id, reason = failure.detail(), "sign-in through a provider refused");
            failure.page(lang).into_response()
        }
    };
    response.headers_mut().append(
        header::SET_COOKIE,
        clear.parse().expect("a cookie is a valid header"),
    );
    Ok(response)
}

/// Checks the provider's answer and finds (or, for an allowed domain, creates) the person.
async fn finish(
    app: &App,
    provider: &OidcProvider,
    headers: &HeaderMap,
    q: &CallbackQuery,
) -> Result<String, Failure> {
    let flow = cookies::app_cookie(app, headers, FLOW_COOKIE)
        .ok_or_else(|| Failure::Invalid("no sign-in attempt cookie".into()))?;
    let flow = verify_flow(provider, &flow)
        .ok_or_else(|| Failure::Invalid("the sign-in attempt cookie is not salesai's".into()))?;
    let mut parts = flow.split('.');
    let (Some(flow_id), Some(state), Some(nonce), Some(verifier), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(Failure::Invalid("malformed sign-in attempt cookie".into()));
    };
    if flow_id != provider.id {
        return Err(Failure::Invalid(
            "the attempt began at another provider".into(),
        ));
    }
    // The state first: an answer that is not to this browser's attempt says nothing, not even
    // an error.
    let given_state = q.state.as_deref().unwrap_or_default();
    if !constant_time_eq(given_state.as_bytes(), state.as_bytes()) {
        return Err(Failure::Invalid("state does not match".into()));
    }
    if let Some(error) = &q.error {
        return Err(if error == "access_denied" {
            Failure::Cancelled
        } else {
            Failure::Provider(format!("the provider answered error={error}"))
        });
    }
    let code = q
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Failure::Invalid("no code".into()))?;
    let meta = meta(provider, false).await?;
    let id_token = exchange(app, provider, &meta, headers, code, verifier).await?;
    let claims = verify(provider, &meta, &id_token, nonce).await?;
    identify(app, provider, &claims).await
}

/// The token request: the code and PKCE verifier for an ID token.
async fn exchange(
    app: &App,
    provider: &OidcProvider,
    meta: &Meta,
    headers: &HeaderMap,
    code: &str,
    verifier: &str,
) -> Result<String, Failure> {
    let redirect = redirect_uri(app, headers, &provider.id);
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier),
        ("client_id", provider.client_id.as_str()),
    ];
    // client_secret_basic unless the provider only takes client_secret_post (Slack).
    let basic = meta
        .discovery
        .token_endpoint_auth_methods_supported
        .as_ref()
        .is_none_or(|m| m.iter().any(|m| m == "client_secret_basic"));
    let mut request = http().post(&meta.discovery.token_endpoint);
    if basic {
        request = request.basic_auth(
            form_encode(&provider.client_id),
            Some(form_encode(&provider.client_secret)),
        );
    } else {
        form.push(("client_secret", provider.client_secret.as_str()));
    }
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let response = request
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| Failure::Provider(format!("token endpoint: {e}")))?;
    let status = response.status();
    let answer: serde_json::Value = response
        .json()
        .await
        .map_err(|e| Failure::Provider(format!("token endpoint HTTP {status}: {e}")))?;
    if !status.is_success() {
        // A used or wrong code is the browser's fault, not the provider's.
        return Err(Failure::Invalid(format!(
            "token endpoint HTTP {status}: {answer}"
        )));
    }
    answer["id_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Failure::Provider("the token answer has no id_token".into()))
}

/// `application/x-www-form-urlencoded` for one value (also what RFC 6749 §2.3.1 asks of the
/// Basic credentials).
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

use salesai_core::token::constant_time_eq;

/// The key that signs a provider's attempt cookies: derived from its client secret (which every
/// node has and no browser sees), so no new secret has to be shared between nodes.
fn flow_key(provider: &OidcProvider) -> aws_lc_rs::hmac::Key {
    let mut seed = Sha256::new();
    seed.update(b"salesai oidc flow cookie v1\0");
    seed.update(provider.client_secret.as_bytes());
    aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &seed.finalize())
}

/// `value.<signature>`: an attempt cookie no one without the client secret can make or alter.
fn sign_flow(provider: &OidcProvider, value: &str) -> String {
    let tag = aws_lc_rs::hmac::sign(&flow_key(provider), value.as_bytes());
    format!("{value}.{}", B64.encode(tag.as_ref()))
}

/// The signed value of an attempt cookie, when its signature is this provider's.
fn verify_flow(provider: &OidcProvider, cookie: &str) -> Option<String> {
    let (value, tag) = cookie.rsplit_once('.')?;
    let tag = B64.decode(tag).ok()?;
    aws_lc_rs::hmac::verify(&flow_key(provider), value.as_bytes(), &tag).ok()?;
    Some(value.to_owned())
}

/// The ID token's claims once its signature, issuer, audience, times and nonce check out.
async fn verify(
    provider: &OidcProvider,
    meta: &Arc<Meta>,
    token: &str,
    nonce: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, Failure> {
    let invalid = |why: &str| Failure::Invalid(format!("ID token: {why}"));
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("not a compact JWS"));
    };
    let header: serde_json::Value = B64
        .decode(head)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("unreadable header"))?;
    let alg = header["alg"].as_str().unwrap_or_default().to_owned();
    let kid = header["kid"].as_str().map(str::to_owned);
    let signature = B64
        .decode(sig)
        .map_err(|_| invalid("unreadable signature"))?;
    let signed = format!("{head}.{body}");
    let mut checked = check_signature(
        &meta.keys,
        &alg,
        kid.as_deref(),
        signed.as_bytes(),
        &signature,
    );
    if matches!(checked, Err(KeyProblem::NoKey)) {
        // The provider may have rotated its keys since they were fetched.
        let fresh = self::meta(provider, true).await?;
        checked = check_signature(
            &fresh.keys,
            &alg,
            kid.as_deref(),
            signed.as_bytes(),
            &signature,
        );
    }
    match checked {
        Ok(()) => {}
        Err(KeyProblem::NoKey) => {
            return Err(invalid("signed with a key the provider does not publish"));
        }
        Err(KeyProblem::Algorithm) => {
            return Err(invalid(&format!("algorithm {alg:?} is not accepted")));
        }
        Err(KeyProblem::Signature) => return Err(invalid("bad signature")),
    }
    let claims: serde_json::Map<String, serde_json::Value> = B64
        .decode(body)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("unreadable claims"))?;
    check_claims(provider, &claims, nonce, chrono::Utc::now().timestamp())
        .map_err(|w| invalid(&w))?;
    Ok(claims)
}

/// Why a signature did not check out.
#[derive(Debug, PartialEq)]
enum KeyProblem {
    NoKey,
    Algorithm,
    Signature,
}

/// Checks a JWS signature with the published key it names (or, without a `kid`, any key of
/// the right type). `none` and HMAC algorithms are refused: the client secret never signs.
fn check_signature(
    keys: &[Jwk],
    alg: &str,
    kid: Option<&str>,
    message: &[u8],
    signature: &[u8],
) -> Result<(), KeyProblem> {
    use aws_lc_rs::signature as sig;
    let kty = match alg {
        "RS256" | "RS384" | "RS512" => "RSA",
        "ES256" | "ES384" => "EC",
        _ => return Err(KeyProblem::Algorithm),
    };
    let candidates: Vec<&Jwk> = keys
        .iter()
        .filter(|k| k.kty == kty && k.usage.as_deref().is_none_or(|u| u == "sig"))
        .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
        .collect();
    if candidates.is_empty() {
        return Err(KeyProblem::NoKey);
    }
    let decode = |v: &Option<String>| v.as_deref().and_then(|v| B64.decode(v).ok());
    for key in candidates {
        let ok = match alg {
            "RS256" | "RS384" | "RS512" => {
                let (Some(n), Some(e)) = (decode(&key.n), decode(&key.e)) else {
                    continue;
                };
                let params = match alg {
                    "RS256" => &sig::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &sig::RSA_PKCS1_2048_8192_SHA384,
                    _ => &sig::RSA_PKCS1_2048_8192_SHA512,
                };
                sig::RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .is_ok()
            }
            _ => {
                let (Some(x), Some(y)) = (decode(&key.x), decode(&key.y)) else {
                    continue;
                };
                let (algorithm, curve): (&'static sig::EcdsaVerificationAlgorithm, _) = match alg {
                    "ES256" => (&sig::ECDSA_P256_SHA256_FIXED, "P-256"),
                    _ => (&sig::ECDSA_P384_SHA384_FIXED, "P-384"),
                };
                if key.crv.as_deref() != Some(curve) {
                    continue;
                }
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                sig::UnparsedPublicKey::new(algorithm, point)
                    .verify(message, signature)
                    .is_ok()
            }
        };
        if ok {
            return Ok(());
        }
    }
    Err(KeyProblem::Signature)
}

/// The ID token's claims against what this sign-in expects (OpenID Connect Core §3.1.3.7).
fn check_claims(
    provider: &OidcProvider,
    claims: &serde_json::Map<String, serde_json::Value>,
    nonce: &str,
    now: i64,
) -> Result<(), String> {
    let iss = claims
        .get("iss")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if iss.trim_end_matches('/') != provider.issuer.trim_end_matches('/') {
        return Err(format!("issuer {iss:?} is not {:?}", provider.issuer));
    }
    // This client and no one else: a token that also names other audiences was issued for
    // them too (§3.1.3.7 item 3: reject additional audiences the client does not trust; it
    // trusts none), and an `azp`, when present, must be this client.
    let audience_ok = match claims.get("aud") {
        Some(serde_json::Value::String(aud)) => *aud == provider.client_id,
        Some(serde_json::Value::Array(auds)) => {
            !auds.is_empty()
                && auds
                    .iter()
                    .all(|a| a.as_str() == Some(provider.client_id.as_str()))
        }
        _ => false,
    };
    if !audience_ok {
        return Err("issued for another client, or for other clients too".into());
    }
    if claims
        .get("azp")
        .is_some_and(|azp| azp.as_str() != Some(provider.client_id.as_str()))
    {
        return Err("authorised for another client (azp)".into());
    }
    let time = |name: &str| claims.get(name).and_then(|v| v.as_i64());
    match time("exp") {
        Some(exp) if exp + SKEW_SECS >= now => {}
        Some(_) => return Err("expired".into()),
        None => return Err("no expiry".into()),
    }
    if time("nbf").is_some_and(|nbf| nbf - SKEW_SECS > now)
        || time("iat").is_some_and(|iat| iat - SKEW_SECS > now)
    {
        return Err("issued in the future".into());
    }
    let given = claims
        .get("nonce")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), nonce.as_bytes()) {
        return Err("nonce does not match".into());
    }
    Ok(())
}

/// The person the verified claims name (see the module's documentation for the rules).
async fn identify(
    app: &App,
    provider: &OidcProvider,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, Failure> {
    let (proven, vouched) = prove(provider, claims)?;
    match app
        .store
        .sign_in_identity(&proven)
        .await
        .map_err(Failure::Store)?
    {
        IdentityMatch::Known(person) if !person.active => Err(Failure::Deactivated),
        IdentityMatch::Known(person) => Ok(person.user.id),
        IdentityMatch::Joined(person) => {
            tracing::info!(event = "web.person_joined", user_id = %person.user.id, provider = %provider.id, "a person from an allowed domain joined as a rep");
            Ok(person.user.id)
        }
        IdentityMatch::OtherAccount => Err(Failure::OtherAccount),
        IdentityMatch::Unknown => match vouched {
            None => Err(Failure::Unverified),
            Some(email) => Err(Failure::NotAllowed(format!(
                "{email} is not invited and its domain is not allowed"
            ))),
        },
    }
}

/// What the checked claims prove: the account (`sub`), in the pinned organisation, and its
/// e-mail only when the provider vouches for it and (with `SALESAI_SIGN_IN_DOMAINS`) its domain
/// is allowed. Also the e-mail the provider vouched for, whatever its domain (for the refusal's
/// reason).
fn prove(
    provider: &OidcProvider,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<(ProvenIdentity, Option<String>), Failure> {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let subject = text("sub")
        .filter(|s| s.len() <= 255)
        .ok_or_else(|| Failure::Invalid("ID token: no subject (sub)".into()))?;
    if let Some(pin) = &provider.tenant {
        let given = text(&pin.claim).unwrap_or_default();
        if !given.eq_ignore_ascii_case(&pin.value) {
            return Err(Failure::OtherTenant(format!(
                "{} is {given:?}, not the pinned {:?}",
                pin.claim, pin.value
            )));
        }
    }
    // Vouched for only when the provider says so in as many words: a missing flag is not a
    // yes (Entra never sends `email_verified`, and its `email` is whatever the user typed;
    // its optional `xms_edov` says the domain's owner verified it).
    let flag = |name: &str| match claims.get(name) {
        Some(serde_json::Value::Bool(v)) => *v,
        Some(serde_json::Value::String(v)) => v == "true" || v == "1",
        _ => false,
    };
    let verified = flag("email_verified") || flag("xms_edov");
    let vouched = text("email").filter(|_| verified).map(str::to_lowercase);
    let email = vouched
        .clone()
        .filter(|e| provider.allowed_domains.is_empty() || provider.admits(e));
    let slack_user_id = provider
        .slack
        .then(|| text("https://slack.com/user_id"))
        .flatten()
        .map(str::to_owned);
    let may_join = email.as_deref().is_some_and(|e| provider.admits(e));
    let display_name = text("name")
        .map(str::to_owned)
        .or_else(|| {
            email
                .as_deref()
                .and_then(|e| e.split('@').next())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    Ok((
        ProvenIdentity {
            issuer: provider.issuer.clone(),
            subject: subject.to_owned(),
            verified_email: email,
            slack_user_id,
            may_join,
            display_name,
        },
        vouched,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> OidcProvider {
        OidcProvider {
            id: "sso".into(),
            label: "SSO".into(),
            issuer: "https://id.example.com".into(),
            client_id: "salesai".into(),
            client_secret: "s".into(),
            allowed_domains: vec!["example.com".into()],
            slack: false,
            tenant: None,
        }
    }

    fn claims(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn claims_are_checked_like_the_spec_says() {
        let p = provider();
        let good = serde_json::json!({"iss": "https://id.example.com", "aud": "salesai",
            "exp": 1000, "iat": 900, "nonce": "n1", "sub": "u"});
        assert_eq!(check_claims(&p, &claims(good.clone()), "n1", 950), Ok(()));
        let with = |k: &str, v: serde_json::Value| {
            let mut c = claims(good.clone());
            c.insert(k.into(), v);
            c
        };
        assert!(check_claims(&p, &with("iss", "https://evil.example".into()), "n1", 950).is_err());
        assert!(check_claims(&p, &with("aud", "other".into()), "n1", 950).is_err());
        assert!(
            check_claims(
                &p,
                &with("aud", serde_json::json!(["other", "salesai"])),
                "n1",
                950
            )
            .is_err(),
            "another audience beside this client"
        );
        assert!(check_claims(&p, &with("aud", serde_json::json!(["salesai"])), "n1", 950).is_ok());
        assert!(check_claims(&p, &with("aud", serde_json::json!([])), "n1", 950).is_err());
        assert!(check_claims(&p, &with("azp", "salesai".into()), "n1", 950).is_ok());
        assert!(
            check_claims(
                &p,
                &with("azp", "other".into())
                    .into_iter()
                    .chain([("aud".to_owned(), serde_json::json!(["salesai", "x"]))])
                    .collect(),
                "n1",
                950
            )
            .is_err()
        );
        assert!(
            check_claims(&p, &claims(good.clone()), "n2", 950).is_err(),
            "nonce"
        );
        assert!(
            check_claims(&p, &claims(good.clone()), "n1", 1000 + SKEW_SECS + 1).is_err(),
            "expired"
        );
        assert!(
            check_claims(&p, &with("iat", (2000).into()), "n1", 950).is_err(),
            "future"
        );
        let mut no_exp = claims(good);
        no_exp.remove("exp");
        assert!(check_claims(&p, &no_exp, "n1", 950).is_err());
    }

    #[test]
    fn an_email_counts_only_when_vouched_for_and_in_the_pinned_tenant() {
        let mut p = provider();
        let base = serde_json::json!({"sub": "u1", "email": "Ann@Example.com", "name": "Ann"});
        let with = |extra: serde_json::Value| {
            let mut c = claims(base.clone());
            for (k, v) in extra.as_object().unwrap() {
                c.insert(k.clone(), v.clone());
            }
            c
        };
        // No flag: not vouched for.
        let (proven, vouched) = prove(&p, &claims(base.clone())).unwrap();
        assert_eq!((proven.verified_email, vouched), (None, None));
        assert!(!proven.may_join);
        assert_eq!(proven.subject, "u1");
        let (proven, _) = prove(&p, &with(serde_json::json!({"email_verified": true}))).unwrap();
        assert_eq!(proven.verified_email.as_deref(), Some("ann@example.com"));
        assert!(proven.may_join);
        assert_eq!(
            prove(&p, &with(serde_json::json!({"email_verified": "false"})))
                .unwrap()
                .0
                .verified_email,
            None
        );
        // Entra's domain-owner flag.
        assert!(
            prove(&p, &with(serde_json::json!({"xms_edov": true})))
                .unwrap()
                .0
                .verified_email
                .is_some()
        );
        // Outside the allowed domains: not linked by e-mail at all.
        let outside = serde_json::json!({"email": "ann@other.example", "email_verified": true});
        let (proven, vouched) = prove(&p, &with(outside)).unwrap();
        assert_eq!(proven.verified_email, None);
        assert_eq!(vouched.as_deref(), Some("ann@other.example"));
        // No subject.
        let mut no_sub = with(serde_json::json!({"email_verified": true}));
        no_sub.remove("sub");
        assert!(matches!(prove(&p, &no_sub), Err(Failure::Invalid(_))));
        // A pinned tenant.
        p.tenant = Some(salesai_core::access::TenantPin {
            claim: "hd".into(),
            value: "example.com".into(),
        });
        assert!(matches!(
            prove(&p, &with(serde_json::json!({"email_verified": true}))),
            Err(Failure::OtherTenant(_))
        ));
        assert!(matches!(
            prove(&p, &with(serde_json::json!({"hd": "gmail.com"}))),
            Err(Failure::OtherTenant(_))
        ));
        assert!(prove(&p, &with(serde_json::json!({"hd": "example.com"}))).is_ok());
    }

    #[test]
    fn attempt_cookies_are_signed_with_the_client_secret() {
        let p = provider();
        let signed = sign_flow(&p, "sso.state.nonce.verifier");
        assert_eq!(
            verify_flow(&p, &signed).as_deref(),
            Some("sso.state.nonce.verifier")
        );
        assert_eq!(verify_flow(&p, "sso.state.nonce.verifier"), None);
        let forged = signed.replace("state", "other");
        assert_eq!(verify_flow(&p, &forged), None);
        let other = OidcProvider {
            client_secret: "another".into(),
            ..provider()
        };
        assert_eq!(verify_flow(&other, &signed), None);
    }

    #[test]
    fn none_and_hmac_tokens_are_refused_before_any_key_is_tried() {
        let keys = vec![Jwk {
            kty: "RSA".into(),
            kid: Some("k".into()),
            usage: None,
            n: Some("AQAB".into()),
            e: Some("AQAB".into()),
            crv: None,
            x: None,
            y: None,
        }];
        for alg in ["none", "HS256", "", "RS1"] {
            assert_eq!(
                check_signature(&keys, alg, Some("k"), b"m", b"s"),
                Err(KeyProblem::Algorithm)
            );
        }
        assert_eq!(
            check_signature(&keys, "RS256", Some("other"), b"m", b"s"),
            Err(KeyProblem::NoKey)
        );
        assert_eq!(
            check_signature(&keys, "ES256", None, b"m", b"s"),
            Err(KeyProblem::NoKey)
        );
        assert_eq!(
            check_signature(&keys, "RS256", Some("k"), b"m", b"s"),
            Err(KeyProblem::Signature)
        );
    }

    #[test]
    fn domains_admit_only_exact_matches() {
        let p = provider();
        assert!(p.admits("ann@example.com"));
        assert!(p.admits("ann@EXAMPLE.com"));
        assert!(!p.admits("ann@evil-example.com"));
        assert!(!p.admits("ann@example.com.evil.tw"));
        assert!(!p.admits("example.com"));
    }
}
