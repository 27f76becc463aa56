//! Audio to transcript: `prepare_audio` (called by `conversation.prepare`) decodes and plans
//! the chunks, then encodes and uploads them one by one, queuing each chunk's
//! `conversation.transcribe_chunk` job as soon as it is stored — so speech-to-text works on the
//! first chunks while later ones are still being encoded. Each chunk job sends its chunk and
//! checkpoints the result; the last chunk to finish (or the preparation, when it saw the set
//! complete) enqueues `conversation.merge`, which joins them and hands over to the analysis.
//!
//! A 429 reschedules only that chunk for the provider's `retry-after`; a 413 splits that
//! chunk in two and sends the halves; a finished chunk is never sent again.

use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use salesai_core::audio::{Chunk, ChunkLimits, SILENCE_RMS, is_silent, merge_chunks, plan_chunks};
use salesai_core::blob::{BlobKey, ByteStream};
use salesai_core::domain::{Conversation, ConversationStatus};
use salesai_core::pipeline::{AnalyzeJob, ChunkJob, MergeJob};
use salesai_core::queue::{Job, NewJob};
use salesai_core::speakers::{self, Diarization, VoiceProfile};
use salesai_core::store::ChunkTranscript;
use salesai_core::stt::{SpeechToText, SttError, SttRequest};
use salesai_core::transcript::Segment;
use salesai_core::transcript::{Attribution, Role};
use salesai_core::{App, ErrorCode};

use super::{conversation_id, db, load_conversation, open_blob, read_blob, stage};
use crate::{Handler, JobError};

fn stt_of(app: &App) -> Result<&dyn SpeechToText, JobError> {
    app.stt.as_deref().ok_or_else(|| {
        JobError::terminal(
            ErrorCode::SttNotConfigured,
            "this recording needs speech-to-text, and none is configured: set GROQ_API_KEY (Groq Whisper), \
             or SALESAI_STT_BASE_URL (and SALESAI_STT_API_KEY) for another OpenAI-compatible server, then retry; \
             transcript files (WebVTT, SRT, JSON, text) need none",
        )
    })
}

/// Streams a blob into a local scratch file.
async fn download(app: &App, key: &BlobKey) -> Result<tempfile::NamedTempFile, JobError> {
    let file = tempfile::NamedTempFile::new()
        .map_err(|e| JobError::retryable(ErrorCode::Internal, e.to_string()))?;
    let mut out = tokio::fs::File::from_std(
        file.reopen()
            .map_err(|e| JobError::retryable(ErrorCode::Internal, e.to_string()))?,
    );
    let mut stream = open_blob(app, key).await?;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| JobError::retryable(ErrorCode::StorageError, e.to_string()))?;
        tokio::io::AsyncWriteExt::write_all(&mut out, &chunk)
            .await
            .map_err(|e| JobError::retryable(ErrorCode::Internal, e.to_string()))?;
    }
    tokio::io::AsyncWriteExt::flush(&mut out)
        .await
        .map_err(|e| JobError::retryable(ErrorCode::Internal, e.to_string()))?;
    Ok(file)
}

fn one_shot(bytes: Vec<u8>) -> ByteStream {
    Box::pin(futures_util::stream::iter([Ok(Bytes::from(bytes))]))
}

/// Decodes the recording, plans chunks, uploads them and enqueues one job per chunk.
pub(crate) async fn prepare_audio(
    app: &App,
    job: &Job,
    conversation: &Conversation,
) -> Result<(), JobError> {
    let stt = stt_of(app)?;
    let id = conversation.id.as_str();
    let key = conversation
        .blob_key
        .as_deref()
        .and_then(|k| BlobKey::parse(k).ok())
        .ok_or_else(|| {
            JobError::terminal(
                ErrorCode::InvalidInput,
                "the conversation has no stored upload",
            )
        })?;
    let format = conversation
        .media
        .format
        .clone()
        .unwrap_or_else(|| "mp3".to_owned());
    let scratch = download(app, &key).await?;
    let path = scratch.path().to_path_buf();
    let ext = format.clone();
    let limits = stt.limits();
    // A stereo dialer recording with one speaker per side can be transcribed per channel, for
    // real speaker labels: the upload says which side the rep is on.
    let split = matches!(
        conversation
            .metadata
            .get("speaker_channels")
            .and_then(|v| v.as_str()),
        Some("rep_left" | "rep_right")
    );
    let prepared = tokio::task::spawn_blocking(move || {
        salesai_audio::prepare_tracks(&path, Some(&ext), split)
    })
    .await
    .map_err(|e| JobError::retryable(ErrorCode::Internal, e.to_string()))?;
    let started = Instant::now();
    // Chunk jobs queued by this run; the first also moves the conversation to transcribing.
    let mut queued = 0usize;
    match prepared {
        Err(salesai_audio::AudioError::UnsupportedCodec(codec)) => {
            // Opus (WebM/Ogg) has no decoder here: send it unchanged when it fits in one request.
            let size = std::fs::metadata(scratch.path())
                .map(|m| m.len())
                .unwrap_or(u64::MAX);
            if size > limits.max_bytes {
                return Err(JobError::terminal(
                    ErrorCode::AudioDecodeFailed,
                    format!(
                        "{codec} audio cannot be split here and the file ({} MB) is over the provider's {} MB limit; \
                         convert it to MP3 or M4A, or upload it in shorter parts",
                        size / 1_048_576,
                        limits.max_bytes / 1_048_576
                    ),
                ));
            }
            let whole = chunk_job(
                job,
                id,
                ChunkJob {
                    channel: 0,
                    index: 0,
                    total: 1,
                    start_ms: 0,
                    end_ms: 0,
                    blob_key: key.as_str().to_owned(),
                    file_name: format!("audio.{format}"),
                    mime: format!("audio/{format}"),
                    plan: job.id,
                },
            );
            // No samples to hear voices in: the transcript will have no speakers.
            app.store
                .save_speaker_turns(id, &Diarization::default())
                .await
                .map_err(db)?;
            hand_over(app, id, &mut queued, whole).await?;
        }
        Err(err) => return Err(JobError::terminal(err.code(), err.to_string())),
        Ok(tracks) => {
            let tracks: Vec<std::sync::Arc<salesai_audio::Prepared>> =
                tracks.into_iter().map(std::sync::Arc::new).collect();
            if tracks
                .iter()
                .all(|t| t.duration_ms < 200 || is_silent(&t.energy, SILENCE_RMS))
            {
                return Err(JobError::terminal(
                    ErrorCode::AudioEmpty,
                    "the recording is silent; there is nothing to transcribe",
                ));
            }
            // Who spoke when, worked out beside the chunk encoding: speaker turns for mono
            // audio, one voice print per channel for a stereo dialer recording.
            let rep_channel = rep_channel_of(conversation);
            let voices = {
                let tracks = tracks.clone();
                tokio::task::spawn_blocking(move || voices_of(&tracks, rep_channel))
            };
            let plans: Vec<Vec<Chunk>> = tracks
                .iter()
                .map(|t| plan_chunks(t.duration_ms, salesai_audio::FRAME_MS, &t.energy, &limits))
                .collect();
            let total = plans.iter().map(Vec::len).sum::<usize>() as u32;
            let first = &tracks[0];
            tracing::info!(event = "audio.prepared", conversation_id = %id, codec = %first.codec, source_rate = first.source_rate, source_channels = first.source_channels, tracks = tracks.len(), duration_ms = first.duration_ms, chunks = total, "audio prepared");
            let done = app.store.get_chunk_transcripts(id).await.map_err(db)?;
            for (channel, (prepared, plan)) in tracks.iter().zip(plans).enumerate() {
                let channel = channel as u32;
                for chunk in plan {
                    if done.iter().any(|d| {
                        d.channel == channel
                            && d.index as usize == chunk.index
                            && d.start_ms == chunk.start_ms
                            && d.end_ms == chunk.end_ms
                    }) {
                        continue;
                    }
                    let frames = energy_range(&prepared.energy, chunk.start_ms, chunk.end_ms);
                    if is_silent(frames, SILENCE_RMS) {
                        app.store
                            .save_chunk_transcript(
                                id,
                                &ChunkTranscript {
                                    channel,
                                    index: chunk.index as u32,
                                    start_ms: chunk.start_ms,
                                    end_ms: chunk.end_ms,
                                    provider: "silence".into(),
                                    model: None,
                                    segments: Vec::new(),
                                    latency_ms: None,
                                },
                            )
                            .await
                            .map_err(db)?;
                        continue;
                    }
                    let name = if tracks.len() == 1 {
                        format!("chunk-{:04}.flac", chunk.index)
                    } else {
                        format!("chunk-c{channel}-{:04}.flac", chunk.index)
                    };
                    let chunk_key =
                        BlobKey::parse(&format!("chunks/{id}/{channel}-{:04}.flac", chunk.index))
                            .expect("valid key");
                    // A chunk already queued failed the conversation for good: the rest would
                    // be encoded for nothing.
                    if queued > 0
                        && load_conversation(app, id).await?.status == ConversationStatus::Failed
                    {
                        tracing::info!(event = "audio.preparation_stopped", conversation_id = %id, "a chunk failed the conversation; preparing the rest stops");
                        return Ok(());
                    }
                    // A chunk an earlier run of this job stored (and probably queued) before a
                    // crash is not encoded again; queuing it again is a no-op.
                    let stored = app
                        .blobs
                        .size(&chunk_key)
                        .await
                        .map_err(|e| JobError::retryable(ErrorCode::StorageError, e.to_string()))?
                        .is_some();
                    if !stored {
                        let source = prepared.clone();
                        let (start, end) = (chunk.start_ms, chunk.end_ms);
                        let flac = tokio::task::spawn_blocking(move || {
                            salesai_audio::encode_flac(&source, start, end)
                        })
                        .await
                        .map_err(|e| JobError::retryable(ErrorCode::Internal, e.to_string()))?
                        .map_err(|e| JobError::terminal(e.code(), e.to_string()))?;
                        app.blobs
                            .put_stream(&chunk_key, one_shot(flac))
                            .await
                            .map_err(|e| {
                                JobError::retryable(ErrorCode::StorageError, e.to_string())
                            })?;
                    }
                    // Sent to speech-to-text now, while later chunks are still being encoded.
                    let next = chunk_job(
                        job,
                        id,
                        ChunkJob {
                            channel,
                            index: chunk.index as u32,
                            total,
                            start_ms: chunk.start_ms,
                            end_ms: chunk.end_ms,
                            blob_key: chunk_key.as_str().to_owned(),
                            file_name: name,
                            mime: "audio/flac".into(),
                            plan: job.id,
                        },
                    );
                    hand_over(app, id, &mut queued, next).await?;
                }
            }
            // Saved before the merge can be queued from here; a merge queued by the last chunk
            // meanwhile waits for them.
            let diarization = match voices.await {
                Ok(Ok(found)) => found,
                Ok(Err(err)) => {
                    tracing::warn!(event = "audio.diarization_failed", conversation_id = %id, error = %err, "speaker turns could not be found; the transcript will have no speakers");
                    Diarization::default()
                }
                Err(err) => return Err(JobError::retryable(ErrorCode::Internal, err.to_string())),
            };
            tracing::info!(event = "audio.diarized", conversation_id = %id, speakers = diarization.voices.len(), turns = diarization.turns.len(), "speaker turns found");
            app.store
                .save_speaker_turns(id, &diarization)
                .await
                .map_err(db)?;
            // Every chunk silent or already transcribed, or the last ones transcribed while
            // this job was still saving silent ones: no chunk job will see the set complete,
            // so the merge is queued here (keyed by the plan, so only once either way).
            let saved = app.store.get_chunk_transcripts(id).await.map_err(db)?;
            if saved.len() as u32 >= total {
                hand_over(app, id, &mut queued, merge_job(id, job.id, total)).await?;
            }
        }
    }
    tracing::info!(event = "audio.chunks_uploaded", conversation_id = %id, jobs = queued, duration_ms = started.elapsed().as_millis() as u64, "chunks ready");
    Ok(())
}

/// The channel the rep is on, for a stereo dialer recording the upload says is split.
fn rep_channel_of(conversation: &Conversation) -> Option<u32> {
    match conversation
        .metadata
        .get("speaker_channels")
        .and_then(|v| v.as_str())
    {
        Some("rep_left") => Some(0),
        Some("rep_right") => Some(1),
        _ => None,
    }
}

/// Speaker turns of a mono track, or a voice print per channel of a split one.
fn voices_of(
    tracks: &[std::sync::Arc<salesai_audio::Prepared>],
    rep_channel: Option<u32>,
) -> Result<Diarization, salesai_audio::AudioError> {
    if tracks.len() > 1 {
        let mut voices = Vec::new();
        for (channel, track) in tracks.iter().enumerate() {
            voices.extend(salesai_audio::diarize::voice_print(track, channel as u32)?);
        }
        return Ok(Diarization {
            turns: Vec::new(),
            voices,
            rep_channel: Some(rep_channel.unwrap_or(0)),
        });
    }
    salesai_audio::diarize::diarize(&tracks[0])
}

/// Queues the next job of an audio conversation: the first one (a chunk, or the merge when no
/// chunk needs speech-to-text) moves the conversation to transcribing in the same
/// transaction; later ones are plain enqueues.
async fn hand_over(app: &App, id: &str, queued: &mut usize, next: NewJob) -> Result<(), JobError> {
    if *queued == 0 {
        app.store
            .advance(id, ConversationStatus::Transcribing, vec![next])
            .await
            .map_err(db)?;
    } else {
        app.store.enqueue(next).await.map_err(db)?;
    }
    *queued += 1;
    Ok(())
}

fn energy_range(energy: &[f32], start_ms: u64, end_ms: u64) -> &[f32] {
    let a = ((start_ms / salesai_audio::FRAME_MS) as usize).min(energy.len());
    let b = (end_ms.div_ceil(salesai_audio::FRAME_MS) as usize).clamp(a, energy.len());
    &energy[a..b]
}

/// Calls a chunk gets within one attempt of its job before the attempt fails.
pub const CHUNK_CALLS: u32 = 2;

fn chunk_job(job: &Job, id: &str, payload: ChunkJob) -> NewJob {
    let key = format!(
        "chunk:{id}:{}:{}:{}",
        job.id, payload.channel, payload.index
    );
    NewJob::of(&payload)
        .for_conversation(id)
        .idempotency_key(key)
}

fn merge_job(id: &str, plan: i64, total: u32) -> NewJob {
    NewJob::of(&MergeJob { total, plan })
        .for_conversation(id)
        .idempotency_key(format!("merge:{id}:{plan}"))
}

fn stt_error(err: SttError) -> JobError {
    match err {
        SttError::RateLimited { retry_at } => JobError::RetryAt {
            at: retry_at,
            code: ErrorCode::RateLimited,
            message: format!("speech-to-text rate limit; retrying at {retry_at}"),
        },
        SttError::TooLarge => JobError::terminal(
            ErrorCode::AudioTooLarge,
            "the provider rejected the chunk as too large even after splitting it",
        ),
        SttError::Rejected {
            code,
            status,
            message,
        } => JobError::terminal(
            code,
            format!("speech-to-text rejected the request (HTTP {status}): {message}"),
        ),
        SttError::Transient { code, message } => JobError::retryable(code, message),
    }
}

/// `conversation.transcribe_chunk`.
pub struct TranscribeChunk;

#[async_trait]
impl Handler for TranscribeChunk {
    type Kind = ChunkJob;

    async fn run(&self, app: &App, job: &Job, payload: ChunkJob) -> Result<(), JobError> {
        let id = conversation_id(job)?;
        stage(
            app,
            job,
            &id,
            ConversationStatus::Transcribing,
            transcribe_chunk(app, &id, payload),
        )
        .await
    }
}

async fn transcribe_chunk(app: &App, id: &str, payload: ChunkJob) -> Result<(), JobError> {
    let store = &app.store;
    let done = store.get_chunk_transcripts(id).await.map_err(db)?;
    let finished = done.iter().any(|d| {
        d.channel == payload.channel
            && d.index == payload.index
            && d.start_ms == payload.start_ms
            && d.end_ms == payload.end_ms
    });
    if !finished {
        let stt = stt_of(app)?;
        let conversation = load_conversation(app, id).await?;
        let line = app.product_line(&conversation.product_line);
        let key = BlobKey::parse(&payload.blob_key)
            .map_err(|e| JobError::terminal(ErrorCode::InvalidInput, e.0))?;
        // A chunk is at most the provider's upload limit (plus slack for a pass-through file).
        let limit = stt.limits().max_bytes as usize + 1024 * 1024;
        let audio = read_blob(
            app,
            &key,
            limit,
            "the chunk is larger than the provider accepts",
        )
        .await?;
        let request = SttRequest {
            audio: Bytes::from(audio),
            file_name: payload.file_name.clone(),
            mime: payload.mime.clone(),
            language: Some(line.stt_language.clone()),
            prompt: line.stt_prompt(),
        };
        let started = Instant::now();
        // The chunk's own budget: a transient failure (5xx, a timeout) is tried again in this
        // attempt after a short backoff with jitter; a rate limit reschedules the chunk alone.
        let mut call = 1;
        let segments = loop {
            match stt.transcribe(request.clone()).await {
                Ok(result) => break result.segments,
                Err(SttError::TooLarge) => break split_and_transcribe(stt, request, 2).await?,
                Err(SttError::Transient { code, message }) if call < CHUNK_CALLS => {
                    let wait = super::call_backoff(call, rand::random::<f64>());
                    tracing::warn!(event = "stt.retry", conversation_id = %id, chunk = payload.index, call, error_code = %code, error = %message, wait_ms = wait.as_millis() as u64, "chunk transcription failed; trying again");
                    tokio::time::sleep(wait).await;
                    call += 1;
                }
                Err(err) => {
                    let err = stt_error(err);
                    tracing::warn!(event = "stt.failed", conversation_id = %id, chunk = payload.index, error_code = %err.code(), "chunk transcription failed");
                    return Err(err);
                }
            }
        };
        let latency_ms = started.elapsed().as_millis() as i64;
        tracing::info!(event = "stt.chunk_transcribed", conversation_id = %id, chunk = payload.index, segments = segments.len(), latency_ms, provider = stt.provider(), "chunk transcribed");
        let chunk = ChunkTranscript {
            channel: payload.channel,
            index: payload.index,
            start_ms: payload.start_ms,
            end_ms: payload.end_ms,
            provider: stt.provider().to_owned(),
            model: Some(stt.model().to_owned()),
            segments,
            latency_ms: Some(latency_ms),
        };
        // Paid for: kept through a database outage rather than transcribed again.
        crate::until_stored("chunk transcript", super::KEEP_PAID_FOR, None, || {
            store.save_chunk_transcript(id, &chunk)
        })
        .await
        .map_err(db)?;
    }
    // The last chunk to finish hands over to the merge (idempotent: keyed by the plan).
    let saved = store.get_chunk_transcripts(id).await.map_err(db)?;
    if saved.len() as u32 >= payload.total {
        store
            .enqueue(merge_job(id, payload.plan, payload.total))
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// After a 413: decode the chunk, cut it in two at a quiet point, send the halves (splitting
/// again if needed, up to `depth` times), and join the results.
async fn split_and_transcribe(
    stt: &dyn SpeechToText,
    request: SttRequest,
    depth: u32,
) -> Result<Vec<Segment>, JobError> {
    let mut scratch = tempfile::NamedTempFile::new()
        .map_err(|e| JobError::retryable(ErrorCode::Internal, e.to_string()))?;
    std::io::Write::write_all(&mut scratch, &request.audio)
        .map_err(|e| JobError::retryable(ErrorCode::Internal, e.to_string()))?;
    let path = scratch.path().to_path_buf();
    let ext = request
        .file_name
        .rsplit('.')
        .next()
        .unwrap_or("flac")
        .to_owned();
    let prepared = tokio::task::spawn_blocking(move || salesai_audio::prepare(&path, Some(&ext)))
        .await
        .map_err(|e| JobError::retryable(ErrorCode::Internal, e.to_string()))?
        .map_err(|e| {
            JobError::terminal(
                ErrorCode::AudioTooLarge,
                format!(
                    "the provider rejected the chunk as too large and it could not be split: {e}"
                ),
            )
        })?;
    let prepared = std::sync::Arc::new(prepared);
    let half = ChunkLimits {
        max_ms: prepared.duration_ms.div_ceil(2) + 2_000,
        search_ms: (prepared.duration_ms / 8).max(1_000),
        ..ChunkLimits::default()
    };
    let plan = plan_chunks(
        prepared.duration_ms,
        salesai_audio::FRAME_MS,
        &prepared.energy,
        &half,
    );
    let mut parts: Vec<(Chunk, Vec<Segment>)> = Vec::new();
    for chunk in plan {
        let source = prepared.clone();
        let (start, end) = (chunk.start_ms, chunk.end_ms);
        let flac =
            tokio::task::spawn_blocking(move || salesai_audio::encode_flac(&source, start, end))
                .await
                .map_err(|e| JobError::retryable(ErrorCode::Internal, e.to_string()))?
                .map_err(|e| JobError::terminal(e.code(), e.to_string()))?;
        let part = SttRequest {
            audio: Bytes::from(flac),
            file_name: format!("part-{}.flac", chunk.index),
            mime: "audio/flac".into(),
            ..request.clone()
        };
        let segments = match stt.transcribe(part.clone()).await {
            Ok(result) => result.segments,
            Err(SttError::TooLarge) if depth > 0 => {
                Box::pin(split_and_transcribe(stt, part, depth - 1)).await?
            }
            Err(err) => return Err(stt_error(err)),
        };
        parts.push((chunk, segments));
    }
    Ok(merge_chunks(&parts))
}

/// The Simplified → Traditional (Taiwan phrasing) converter, built once per process.
fn traditional() -> Result<&'static ferrous_opencc::OpenCC, JobError> {
    static CONVERTER: std::sync::OnceLock<Option<ferrous_opencc::OpenCC>> =
        std::sync::OnceLock::new();
    CONVERTER
        .get_or_init(|| {
            ferrous_opencc::OpenCC::from_config(ferrous_opencc::config::BuiltinConfig::S2twp).ok()
        })
        .as_ref()
        .ok_or_else(|| {
            JobError::terminal(
                ErrorCode::Internal,
                "the Simplified-to-Traditional converter failed to load",
            )
        })
}

/// `conversation.merge`.
pub struct Merge;

#[async_trait]
impl Handler for Merge {
    type Kind = MergeJob;

    async fn run(&self, app: &App, job: &Job, payload: MergeJob) -> Result<(), JobError> {
        let id = conversation_id(job)?;
        stage(
            app,
            job,
            &id,
            ConversationStatus::Transcribing,
            merge(app, job, &id, payload),
        )
        .await
    }
}

async fn merge(app: &App, job: &Job, id: &str, payload: MergeJob) -> Result<(), JobError> {
    let store = &app.store;
    let total = payload.total as usize;
    let saved = store.get_chunk_transcripts(id).await.map_err(db)?;
    if saved.len() < total {
        return Err(JobError::retryable(
            ErrorCode::Internal,
            format!("{} of {total} chunks transcribed; waiting", saved.len()),
        ));
    }
    // The preparation saves the voices beside the chunks; a merge queued by a fast last chunk
    // waits for them (a few attempts, then goes on without: a call prepared before speaker
    // turns existed has none).
    let diarization = store.speaker_turns(id).await.map_err(db)?;
    if diarization.is_none() && job.attempts < 3 {
        return Err(JobError::retryable(
            ErrorCode::Internal,
            "the speaker turns are not saved yet; waiting",
        ));
    }
    let conversation = load_conversation(app, id).await?;
    let line = app.product_line(&conversation.product_line);
    let channels: std::collections::BTreeSet<u32> = saved.iter().map(|c| c.channel).collect();
    let rep_channel = rep_channel_of(&conversation).unwrap_or(0);
    let (rep, customer) = if line.language.starts_with("zh") {
        ("業務", "客戶")
    } else {
        ("Rep", "Customer")
    };
    let mut segments = Vec::new();
    for channel in &channels {
        let mut parts = Vec::new();
        let mut owns_from = 0;
        for chunk in saved.iter().filter(|c| c.channel == *channel) {
            let end = if chunk.end_ms == 0 {
                u64::MAX / 4
            } else {
                chunk.end_ms
            };
            parts.push((
                Chunk {
                    index: chunk.index as usize,
                    start_ms: chunk.start_ms,
                    end_ms: end,
                    owns_from_ms: owns_from,
                    owns_until_ms: end,
                },
                chunk.segments.clone(),
            ));
            owns_from = end;
        }
        let mut merged = merge_chunks(&parts);
        if channels.len() > 1 {
            // One speaker per channel: the label is a fact, not an inference.
            let label = if *channel == rep_channel {
                rep
            } else {
                customer
            };
            let role = if *channel == rep_channel {
                Role::Rep
            } else {
                Role::Customer
            };
            for segment in &mut merged {
                segment.speaker = Some(label.to_owned());
                segment.role = Some(role);
                segment.attribution = Some(Attribution::Known);
                segment.confidence = Some(100);
            }
        }
        segments.extend(merged);
    }
    segments.sort_by_key(|s| (s.start_ms, s.end_ms));
    if line.convert_to_traditional {
        let converter = traditional()?;
        for segment in &mut segments {
            segment.text = converter.convert(&segment.text);
        }
    }
    if segments.is_empty() {
        return Err(JobError::terminal(
            ErrorCode::AudioEmpty,
            "speech-to-text heard no words in the recording",
        ));
    }
    let diarization = diarization.unwrap_or_default();
    if channels.len() == 1 && !diarization.turns.is_empty() {
        speakers::attach(
            &mut segments,
            &diarization.turns,
            line.language.starts_with("zh"),
        );
    }
    place_speakers(app, &conversation, &mut segments, &diarization).await?;
    store.save_transcript(id, &segments).await.map_err(db)?;
    let next = NewJob::of(&AnalyzeJob {}).idempotency_key(format!("analyze:{id}:{}", job.id));
    store
        .advance(id, ConversationStatus::Analyzing, vec![next])
        .await
        .map_err(db)?;
    Ok(())
}

/// Places every speaker of a transcript (`pipeline::place_speakers`) and, where the rep's side
/// is a fact (a stereo channel), teaches their voice profile.
pub(crate) async fn place_speakers(
    app: &App,
    conversation: &Conversation,
    segments: &mut [salesai_core::transcript::Segment],
    diarization: &Diarization,
) -> Result<(), JobError> {
    let rep = salesai_core::pipeline::place_speakers(
        app.store.as_ref(),
        conversation,
        segments,
        diarization,
    )
    .await
    .map_err(db)?;
    if let (Some((user, profile)), Some(channel)) = (rep, diarization.rep_channel)
        && let Some(voice) = diarization.voices.iter().find(|v| v.speaker == channel)
    {
        app.store
            .save_voice_profile(&user, &VoiceProfile::learn(profile, voice))
            .await
            .map_err(db)?;
    }
    Ok(())
}
