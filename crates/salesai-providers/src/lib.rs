//! Clients for the world outside salesai's process. Vendor wire formats stay in this crate;
//! what leaves it are the core's types and traits.

pub mod blob;
pub mod llm;
pub mod stt;

/// A cheap authenticated call to an OpenAI-compatible API (`GET {base}/models`), for `doctor`:
/// `Ok` when the server answers 2xx, otherwise what went wrong in words an operator can act on.
pub async fn probe_models(
    base_url: &str,
    api_key: Option<&secrecy::SecretString>,
    timeout: std::time::Duration,
) -> Result<(), String> {
    use secrecy::ExposeSecret;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}/models", base_url.trim_end_matches('/'));
    let mut request = client.get(&url);
    if let Some(key) = api_key {
        request = request.bearer_auth(key.expose_secret());
    }
    match request.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) if matches!(r.status().as_u16(), 401 | 403) => Err(format!(
            "{url} rejected the credentials (HTTP {})",
            r.status().as_u16()
        )),
        Ok(r) => Err(format!("{url} answered HTTP {}", r.status().as_u16())),
        Err(e) => Err(format!("{url} unreachable: {e}")),
    }
}
