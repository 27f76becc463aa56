//! The one context object every handler and job receives.

use std::sync::Arc;

use crate::analysis::engine::Analyzer;
use crate::blob::BlobStore;
use crate::metrics::Metrics;
use crate::product_line::ProductLine;
use crate::store::Store;

/// When storage was last probed with a write, and what the probe found.
pub type StorageProbe = (std::time::Instant, Result<(), String>);

/// What a request handler or a job needs from the outside world, chosen once by the binary.
///
/// Architecture invariant: only the binary builds an `App` (it reads configuration and picks
/// the implementations); everyone else receives one and sees only the core traits.
#[derive(Clone)]
pub struct App {
    /// Everything salesai stores.
    pub store: Arc<dyn Store>,
    /// Where recordings and transcripts live.
    pub blobs: Arc<dyn BlobStore>,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// The team's time zone: case-number months and daily reports use its boundaries.
    pub time_zone: chrono_tz::Tz,
    /// The product lines this deployment serves.
    pub product_lines: Arc<Vec<ProductLine>>,
    /// The engine that runs the analysis agents (an LLM, or the offline rules).
    pub analyzer: Arc<dyn Analyzer>,
    /// Speech-to-text, when configured; audio conversations fail with `STT_NOT_CONFIGURED`
    /// without it.
    pub stt: Option<Arc<dyn crate::stt::SpeechToText>>,
    /// The largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Talk analytics' healthy ranges (coaching flags in the card, the API and the call page).
    pub talk_targets: crate::talk::TalkTargets,
    /// The public base URL (`https://salesai.example.com/`), when configured: links in
    /// messages and on the console, and whether session cookies are marked `Secure`.
    pub public_url: Option<String>,
    /// The last storage write probe of `/ready` (when, and what it found), shared by the
    /// process's requests so storage is written at most once per probe interval.
    pub storage_probe: Arc<tokio::sync::Mutex<Option<StorageProbe>>>,
    /// The OpenID Connect providers people may sign in with (Slack's, a company's), besides
    /// one-time links; empty when none is configured.
    pub sign_in: Arc<Vec<crate::access::OidcProvider>>,
    /// The doctor, for the operations page; `None` where the process has none (tests).
    pub doctor: Option<Arc<dyn crate::doctor::Doctor>>,
    /// The reverse proxies whose `X-Forwarded-For` names the client
    /// (`SALESAI_TRUSTED_PROXIES`); empty: the connecting address is the client.
    pub trusted_proxies: Arc<Vec<crate::net::IpRange>>,
}

impl App {
    /// An app over `store` and `blobs` with what a deployment with nothing configured has: the
    /// built-in product lines, the offline rules engine, no speech-to-text, the Asia/Taipei
    /// time zone, uploads up to 500 MB. The binary and every test start here and change what
    /// they configure.
    pub fn new(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) -> App {
        App {
            store,
            blobs,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            time_zone: chrono_tz::Asia::Taipei,
            product_lines: Arc::new(crate::product_line::builtin()),
            analyzer: Arc::new(crate::analysis::engine::RulesAnalyzer),
            stt: None,
            max_upload_bytes: 500 * 1024 * 1024,
            talk_targets: crate::talk::TalkTargets::default(),
            public_url: None,
            storage_probe: Arc::default(),
            sign_in: Arc::default(),
            doctor: None,
            trusted_proxies: Arc::default(),
        }
    }

    /// An absolute link to `path` (which starts with `/`) on this server: under the public URL
    /// when one is configured, else under `fallback` (the address the server listens on).
    pub fn link(&self, path: &str, fallback: &str) -> String {
        let base = self.public_url.as_deref().unwrap_or(fallback);
        format!("{}{path}", base.trim_end_matches('/'))
    }

    /// The product line with this id, or the `default` line when there is no such line.
    pub fn product_line(&self, id: &str) -> &ProductLine {
        self.product_lines
            .iter()
            .find(|l| l.id == id)
            .or_else(|| self.product_lines.iter().find(|l| l.id == "default"))
            .or_else(|| self.product_lines.first())
            .expect("at least one product line is configured")
    }
}
