//! What the benchmarks run salesai with: a scratch store and stub providers at fixed latencies
//! (`salesai bench burst`, `salesai bench pipeline`).

use crate::config::Config;

/// The app on a scratch SQLite database (or `database_url`) and blob folder (removed with the
/// returned folder), with stub providers at fixed latencies: speech-to-text answers after
/// `stt_ms`, each LLM agent after `llm_ms` with the rules engine's output.
pub(crate) async fn stub_app(
    config: &Config,
    database_url: Option<&str>,
    stt_ms: u64,
    llm_ms: u64,
) -> anyhow::Result<(salesai_core::App, salesai_db::Database, tempfile::TempDir)> {
    let scratch = tempfile::tempdir()?;
    let mut config = config.clone();
    config.database_url = secrecy::SecretString::from(match database_url {
        Some(url) => url.to_owned(),
        None => format!("sqlite://{}", scratch.path().join("bench.db").display()),
    });
    config.blob = salesai_providers::blob::BlobConfig::Local {
        root: scratch.path().join("blobs"),
    };
    let (mut app, database) = crate::runtime::open_app(&config).await?;
    app.stt = Some(std::sync::Arc::new(FixedStt(stt_ms)));
    app.analyzer = std::sync::Arc::new(FixedLlm(llm_ms));
    Ok((app, database, scratch))
}

struct FixedStt(u64);

#[async_trait::async_trait]
impl salesai_core::stt::SpeechToText for FixedStt {
    fn provider(&self) -> &str {
        "stub"
    }
    fn model(&self) -> &str {
        "fixed-latency"
    }
    fn limits(&self) -> salesai_core::audio::ChunkLimits {
        salesai_core::audio::ChunkLimits::default()
    }
    async fn transcribe(
        &self,
        request: salesai_core::stt::SttRequest,
    ) -> Result<salesai_core::stt::SttResult, salesai_core::stt::SttError> {
        tokio::time::sleep(std::time::Duration::from_millis(self.0)).await;
        Ok(salesai_core::stt::SttResult {
            segments: vec![salesai_core::transcript::Segment {
                speaker: None,
                start_ms: 0,
                end_ms: 5_000,
                text: format!("We lose money every month, said in {}.", request.file_name),
                ..Default::default()
            }],
            language: None,
        })
    }
}

struct FixedLlm(u64);

#[async_trait::async_trait]
impl salesai_core::analysis::engine::Analyzer for FixedLlm {
    fn engine(&self) -> &'static str {
        "stub"
    }
    async fn run(
        &self,
        agent: salesai_core::analysis::Agent,
        context: salesai_core::analysis::engine::AgentContext<'_>,
    ) -> Result<salesai_core::store::AgentRun, salesai_core::analysis::engine::AnalyzerError> {
        tokio::time::sleep(std::time::Duration::from_millis(self.0)).await;
        salesai_core::analysis::engine::RulesAnalyzer
            .run(agent, context)
            .await
    }
}
