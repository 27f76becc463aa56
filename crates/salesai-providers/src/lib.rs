//! Clients for the world outside salesai's process. Vendor wire formats stay in this crate;
//! what leaves it are the core's types and traits.

pub mod blob;
pub mod llm;
pub mod stt;

/// A cheap authenticated call to an OpenAI-compatible API (`GET {base}/models`), for `doctor`:
/// `Ok` when the server answers 2xx, otherwise what went wrong in words an operator can act on.
///
/// Some OpenAI-compatible servers (faster-whisper-server, several local LLM servers) have no
/// model list. When `/models` answers 404 or 405, `GET {base}/{endpoint}` (the endpoint salesai
/// calls with POST: `audio/transcriptions`, `chat/completions`) tells the two apart: a 405 (or
/// 400/422) there means the server and the address are right, 404 means the address is wrong.
pub async fn probe_models(
    base_url: &str,
    api_key: Option<&secrecy::SecretString>,
    endpoint: &str,
    timeout: std::time::Duration,
) -> Result<(), String> {
    use secrecy::ExposeSecret;
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())?;
    let base = base_url.trim_end_matches('/');
    let get = |url: &str| {
        let mut request = client.get(url);
        if let Some(key) = api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        request.send()
    };
    let url = format!("{base}/models");
    match get(&url).await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) if matches!(r.status().as_u16(), 401 | 403) => Err(format!(
            "{url} rejected the credentials (HTTP {})",
            r.status().as_u16()
        )),
        Ok(r) if matches!(r.status().as_u16(), 404 | 405) => {
            let models = r.status().as_u16();
            let used = format!("{base}/{}", endpoint.trim_start_matches('/'));
            match get(&used).await {
                Ok(r) if matches!(r.status().as_u16(), 400 | 405 | 422) => Ok(()),
                Ok(r) if matches!(r.status().as_u16(), 401 | 403) => Err(format!(
                    "{used} rejected the credentials (HTTP {})",
                    r.status().as_u16()
                )),
                Ok(r) => Err(format!(
                    "{url} answered HTTP {models} and {used} HTTP {}: check the base URL",
                    r.status().as_u16()
                )),
                Err(e) => Err(format!("{used} unreachable: {e}")),
            }
        }
        Ok(r) => Err(format!("{url} answered HTTP {}", r.status().as_u16())),
        Err(e) => Err(format!("{url} unreachable: {e}")),
    }
}
