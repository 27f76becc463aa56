//! Audio rules that need no IO: where to cut a long recording into chunks a speech-to-text
//! provider accepts, which chunks are silence, and how chunk transcripts join back into one.
//!
//! The original split big files by raw byte ranges (cutting through frames) and merged the
//! pieces blindly. Here a cut falls at the quietest moment near the limit, neighbouring chunks
//! overlap a little so no word is lost at the seam, and each segment of the overlap is kept
//! once, by the chunk that owns its midpoint.

use serde::{Deserialize, Serialize};

use crate::transcript::Segment;

/// The provider's limits and the planner's habits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkLimits {
    /// Longest chunk, milliseconds (default 600 s).
    pub max_ms: u64,
    /// Largest chunk upload, bytes (default 24 MB; Groq's free tier takes 25).
    pub max_bytes: u64,
    /// Encoded bytes per second of audio, an upper bound (16 kHz mono 16-bit FLAC is at most
    /// raw PCM, 32,000 B/s).
    pub bytes_per_sec: u64,
    /// How much each chunk repeats of the previous one.
    pub overlap_ms: u64,
    /// How far before the limit to look for a quiet place to cut.
    pub search_ms: u64,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_ms: 600_000,
            max_bytes: 24 * 1024 * 1024,
            bytes_per_sec: 32_000,
            overlap_ms: 1_500,
            search_ms: 30_000,
        }
    }
}

impl ChunkLimits {
    /// The same limits with half the length and bytes (after a provider's 413).
    pub fn halved(self) -> ChunkLimits {
        ChunkLimits {
            max_ms: (self.max_ms / 2).max(10_000),
            max_bytes: (self.max_bytes / 2).max(self.bytes_per_sec * 10),
            search_ms: (self.search_ms / 2).max(1_000),
            ..self
        }
    }

    /// The longest chunk both limits allow.
    pub fn effective_max_ms(&self) -> u64 {
        let by_bytes = self.max_bytes.saturating_mul(1000) / self.bytes_per_sec.max(1);
        self.max_ms.min(by_bytes).max(2_000)
    }
}

/// One planned chunk: `[start_ms, end_ms)` of the normalised recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Position in the plan.
    pub index: usize,
    /// Start, including the overlap with the previous chunk.
    pub start_ms: u64,
    /// End (exclusive).
    pub end_ms: u64,
    /// Where the previous chunk was cut: segments before it belong to the previous chunk.
    pub owns_from_ms: u64,
    /// Where this chunk is cut: segments after it belong to the next chunk.
    pub owns_until_ms: u64,
}

/// Plans chunks for a recording of `duration_ms`, given its loudness envelope (`energy[i]` is
/// the RMS of frame `i`, each `frame_ms` long; a missing envelope cuts exactly at the limit).
pub fn plan_chunks(
    duration_ms: u64,
    frame_ms: u64,
    energy: &[f32],
    limits: &ChunkLimits,
) -> Vec<Chunk> {
    let max = limits.effective_max_ms();
    let overlap = limits.overlap_ms.min(max / 4);
    let search = limits.search_ms.min(max.saturating_sub(overlap) / 2).max(1);
    let mut chunks = Vec::new();
    let mut cut = 0u64;
    loop {
        let start = if chunks.is_empty() {
            0
        } else {
            cut.saturating_sub(overlap)
        };
        let hard_end = start + max;
        if hard_end >= duration_ms {
            chunks.push(Chunk {
                index: chunks.len(),
                start_ms: start,
                end_ms: duration_ms,
                owns_from_ms: cut,
                owns_until_ms: duration_ms,
            });
            return chunks;
        }
        let next = quietest(hard_end - search, hard_end, frame_ms, energy).max(start + overlap + 1);
        chunks.push(Chunk {
            index: chunks.len(),
            start_ms: start,
            end_ms: next,
            owns_from_ms: cut,
            owns_until_ms: next,
        });
        cut = next;
    }
}

/// The end of the quietest frame within `[from, to]` (the latest on ties), or `to`.
fn quietest(from: u64, to: u64, frame_ms: u64, energy: &[f32]) -> u64 {
    if frame_ms == 0 || energy.is_empty() {
        return to;
    }
    let first = (from / frame_ms) as usize;
    let last = ((to / frame_ms) as usize).min(energy.len());
    let mut best: Option<(usize, f32)> = None;
    for (i, e) in energy.iter().enumerate().take(last).skip(first) {
        if best.is_none_or(|(_, b)| *e <= b) {
            best = Some((i, *e));
        }
    }
    match best {
        Some((i, _)) => ((i as u64 + 1) * frame_ms).clamp(from, to),
        None => to,
    }
}

/// Whether a stretch is too quiet to send: its loudest frame stays under `threshold` (RMS, full
/// scale 1.0). Whisper invents text on silence, so silent chunks are skipped.
pub fn is_silent(energy: &[f32], threshold: f32) -> bool {
    energy.iter().all(|e| *e < threshold)
}

/// The default silence threshold: about −50 dBFS.
pub const SILENCE_RMS: f32 = 0.003;

/// Joins chunk transcripts (segment times relative to their chunk) into one transcript with
/// absolute times, keeping each overlapping segment once.
pub fn merge_chunks(parts: &[(Chunk, Vec<Segment>)]) -> Vec<Segment> {
    let mut out = Vec::new();
    for (chunk, segments) in parts {
        for s in segments {
            let start = chunk.start_ms + s.start_ms;
            let end = (chunk.start_ms + s.end_ms).max(start);
            let mid = start + (end - start) / 2;
            let last = parts.last().is_some_and(|(c, _)| c.index == chunk.index);
            if mid < chunk.owns_from_ms || (!last && mid >= chunk.owns_until_ms) {
                continue;
            }
            out.push(Segment {
                speaker: s.speaker.clone(),
                start_ms: start,
                end_ms: end,
                text: s.text.clone(),
                ..Default::default()
            });
        }
    }
    out.sort_by_key(|s| (s.start_ms, s.end_ms));
    drop_degenerate(out)
}

/// Phrases Whisper produces on silence or music, never said in a sales call.
const HALLUCINATIONS: &[&str] = &[
    "thanks for watching",
    "thank you for watching",
    "please subscribe",
    "subtitles by",
    "字幕由amara.org社群提供",
    "請不吝點贊訂閱轉發打賞支持明鏡與點點欄目",
    "请不吝点赞订阅转发打赏支持明镜与点点栏目",
    "優優獨播劇場",
];

/// Removes degenerate output: known hallucinations, a token repeated over and over, and the
/// same line repeated more than twice in a row.
pub fn drop_degenerate(segments: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    let mut run = 0;
    for s in segments {
        let text = s.text.trim().to_lowercase();
        let bare: String = text
            .chars()
            .filter(|c| !c.is_ascii_punctuation() && !c.is_whitespace())
            .collect();
        if bare.is_empty()
            || HALLUCINATIONS
                .iter()
                .any(|h| bare == h.replace(' ', "") || text == *h)
        {
            continue;
        }
        if is_repetitive(&text) {
            continue;
        }
        if out
            .last()
            .is_some_and(|p| p.text.trim().to_lowercase() == text)
        {
            run += 1;
            if run >= 2 {
                continue;
            }
        } else {
            run = 0;
        }
        out.push(s);
    }
    out
}

/// A text of at least 8 tokens where one token is over 60 % of them ("the the the …"), or a
/// CJK text that is one short phrase repeated at least 5 times.
fn is_repetitive(text: &str) -> bool {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if tokens.len() >= 8 {
        let mut counts = std::collections::HashMap::new();
        for t in &tokens {
            *counts.entry(*t).or_insert(0usize) += 1;
        }
        if counts.values().any(|n| *n * 10 > tokens.len() * 6) {
            return true;
        }
    }
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    for period in 1..=6 {
        if chars.len() >= period * 5
            && chars.len().is_multiple_of(period)
            && chars.chunks(period).all(|c| c == &chars[..period])
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg(start: u64, end: u64, text: &str) -> Segment {
        Segment {
            speaker: None,
            start_ms: start,
            end_ms: end,
            text: text.into(),
            ..Default::default()
        }
    }

    #[test]
    fn cuts_at_the_quietest_frame_near_the_limit() {
        let limits = ChunkLimits {
            max_ms: 60_000,
            search_ms: 10_000,
            overlap_ms: 1_000,
            ..Default::default()
        };
        // 150 s, loud everywhere except a pause at 55.0–55.5 s.
        let mut energy = vec![0.5f32; 1500];
        energy[550] = 0.001;
        let chunks = plan_chunks(150_000, 100, &energy, &limits);
        assert_eq!(chunks[0].start_ms, 0);
        assert_eq!(chunks[0].end_ms, 55_100);
        assert_eq!(chunks[1].start_ms, 54_100, "overlaps the previous chunk");
        assert_eq!(chunks.last().unwrap().end_ms, 150_000);
    }

    #[test]
    fn a_short_recording_is_one_chunk() {
        let chunks = plan_chunks(30_000, 100, &[], &ChunkLimits::default());
        assert_eq!(
            chunks,
            vec![Chunk {
                index: 0,
                start_ms: 0,
                end_ms: 30_000,
                owns_from_ms: 0,
                owns_until_ms: 30_000
            }]
        );
    }

    #[test]
    fn the_byte_limit_can_be_the_tighter_one() {
        let limits = ChunkLimits {
            max_bytes: 3_200_000,
            ..Default::default()
        };
        assert_eq!(limits.effective_max_ms(), 100_000);
        assert!(limits.halved().effective_max_ms() <= 50_000);
    }

    #[test]
    fn merging_keeps_overlap_segments_once() {
        let a = Chunk {
            index: 0,
            start_ms: 0,
            end_ms: 10_000,
            owns_from_ms: 0,
            owns_until_ms: 10_000,
        };
        let b = Chunk {
            index: 1,
            start_ms: 9_000,
            end_ms: 20_000,
            owns_from_ms: 10_000,
            owns_until_ms: 20_000,
        };
        let merged = merge_chunks(&[
            (
                a,
                vec![seg(0, 4_000, "hello"), seg(8_800, 9_900, "seam word")],
            ),
            (
                b,
                vec![seg(0, 900, "seam word"), seg(1_500, 5_000, "after")],
            ),
        ]);
        let texts: Vec<&str> = merged.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["hello", "seam word", "after"]);
        assert_eq!(
            merged[2].start_ms, 10_500,
            "times are offset by the chunk start"
        );
    }

    #[test]
    fn degenerate_output_is_dropped() {
        let kept = drop_degenerate(vec![
            seg(0, 1, "Thanks for watching!"),
            seg(1, 2, "the the the the the the the the the"),
            seg(2, 3, "謝謝謝謝謝謝謝謝謝謝"),
            seg(3, 4, "real words here"),
            seg(4, 5, "okay"),
            seg(5, 6, "okay"),
            seg(6, 7, "okay"),
            seg(7, 8, "字幕由Amara.org社群提供"),
        ]);
        let texts: Vec<&str> = kept.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["real words here", "okay", "okay"]);
        assert!(is_silent(&[0.001, 0.002], SILENCE_RMS));
        assert!(!is_silent(&[0.001, 0.2], SILENCE_RMS));
    }

    proptest! {
        #[test]
        fn plans_cover_everything_within_both_limits(
            duration_ms in 1u64..20_000_000,
            max_s in 10u64..1_200,
            max_mb in 1u64..30,
            overlap_ms in 0u64..5_000,
            search_ms in 0u64..60_000,
            seed in any::<u64>(),
        ) {
            let limits = ChunkLimits { max_ms: max_s * 1000, max_bytes: max_mb * 1024 * 1024, overlap_ms, search_ms, ..Default::default() };
            let frames = (duration_ms / 100 + 1) as usize;
            let energy: Vec<f32> = (0..frames.min(200_000)).map(|i| (((i as u64).wrapping_mul(seed | 1) >> 7) % 1000) as f32 / 1000.0).collect();
            let chunks = plan_chunks(duration_ms, 100, &energy, &limits);
            prop_assert_eq!(chunks[0].start_ms, 0);
            prop_assert_eq!(chunks.last().unwrap().end_ms, duration_ms);
            for (i, c) in chunks.iter().enumerate() {
                prop_assert_eq!(c.index, i);
                prop_assert!(c.start_ms < c.end_ms);
                let len = c.end_ms - c.start_ms;
                prop_assert!(len <= limits.max_ms.max(2_000), "chunk {} is {} ms", i, len);
                prop_assert!(len * limits.bytes_per_sec / 1000 <= limits.max_bytes.max(64_000), "chunk {} too big", i);
                prop_assert!(c.owns_from_ms <= c.owns_until_ms);
                if i > 0 {
                    let prev = &chunks[i - 1];
                    prop_assert!(c.start_ms <= prev.end_ms, "gap before chunk {}", i);
                    prop_assert!(c.start_ms > prev.start_ms && c.end_ms > prev.end_ms, "not monotonic at {}", i);
                    prop_assert_eq!(c.owns_from_ms, prev.owns_until_ms);
                }
            }
        }
    }
}
