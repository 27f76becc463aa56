//! Scoring speaker turns against a known truth: the diarization error rate of `salesai bench
//! diarize`, shared with the `der` example that iterates on the method over kept calls.
//!
//! The truth is a two-channel recording with one speaker per channel; DER follows the usual
//! definition with no forgiveness collar (missed speech, false alarm and speaker confusion over
//! the reference speaking time, under the best mapping of found speakers onto true ones), and
//! speech marked uncertain counts as missed.

use salesai_core::speakers::Turn;

/// Which channels speak in each 10 ms frame.
pub fn truth(channels: &[Vec<f32>], rate: usize) -> Vec<[bool; 2]> {
    let frame = rate / 100;
    let frames = channels.first().map_or(0, Vec::len) / frame;
    let mut out: Vec<[bool; 2]> = (0..frames)
        .map(|f| {
            let mut on = [false; 2];
            for (c, channel) in channels.iter().take(2).enumerate() {
                let slice = &channel[f * frame..((f + 1) * frame).min(channel.len())];
                let energy = slice.iter().map(|s| s * s).sum::<f32>() / frame as f32;
                on[c] = energy.sqrt() > 0.003;
            }
            on
        })
        .collect();
    // Pauses inside a sentence are still the speaker's turn (as any human label would say).
    for c in 0..2 {
        let mut last_on: Option<usize> = None;
        for f in 0..out.len() {
            if out[f][c] {
                if let Some(l) = last_on
                    && f - l > 1
                    && f - l <= 15
                {
                    for g in out.iter_mut().take(f).skip(l + 1) {
                        g[c] = true;
                    }
                }
                last_on = Some(f);
            }
        }
    }
    out
}

/// The parts of a diarization error rate, each a share of the reference speaking time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Der {
    pub missed: f64,
    pub false_alarm: f64,
    pub confusion: f64,
    /// Speech the turns marked uncertain (counted in `missed`).
    pub uncertain: f64,
    /// Speech missed by any one-speaker-at-a-time answer: the second voice while two talk at
    /// once (counted in `missed`; the floor under `missed`).
    pub overlap: f64,
}

impl Der {
    /// The error rate: missed + false alarm + confusion.
    pub fn total(&self) -> f64 {
        self.missed + self.false_alarm + self.confusion
    }
}

/// Scores `turns` against the truth of [`truth`].
pub fn score(truth: &[[bool; 2]], turns: &[Turn]) -> Der {
    let hyp: Vec<Option<Option<u32>>> = (0..truth.len())
        .map(|f| {
            let ms = (f * 10 + 5) as u64;
            turns
                .iter()
                .find(|t| t.start_ms <= ms && ms < t.end_ms)
                .map(|t| t.speaker)
        })
        .collect();
    let speakers = turns
        .iter()
        .filter_map(|t| t.speaker)
        .max()
        .map_or(0, |m| m as usize + 1);
    // Best mapping of found speakers onto the two true ones.
    let mut overlap = vec![[0usize; 2]; speakers];
    for (f, t) in truth.iter().enumerate() {
        if let Some(Some(s)) = hyp[f] {
            for c in 0..2 {
                if t[c] {
                    overlap[s as usize][c] += 1;
                }
            }
        }
    }
    let mut mapping = vec![None; speakers];
    let mut best = 0;
    for a in 0..speakers.max(1) {
        for b in 0..speakers.max(1) {
            if a == b && speakers > 1 {
                continue;
            }
            let total = overlap.get(a).map_or(0, |o| o[0]) + overlap.get(b).map_or(0, |o| o[1]);
            if total >= best {
                best = total;
                mapping = vec![None; speakers];
                if a < speakers {
                    mapping[a] = Some(0);
                }
                if b < speakers && a != b {
                    mapping[b] = Some(1);
                }
            }
        }
    }
    let (mut reference, mut missed, mut false_alarm, mut confusion, mut uncertain) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut both = 0usize;
    for (f, t) in truth.iter().enumerate() {
        let n_ref = usize::from(t[0]) + usize::from(t[1]);
        reference += n_ref;
        both += usize::from(n_ref == 2);
        let n_hyp = usize::from(matches!(hyp[f], Some(Some(_))));
        if n_ref > 0 && matches!(hyp[f], Some(None)) {
            uncertain += n_ref;
        }
        missed += n_ref.saturating_sub(n_hyp);
        false_alarm += n_hyp.saturating_sub(n_ref);
        if let Some(Some(s)) = hyp[f] {
            let right = mapping[s as usize].is_some_and(|c| t[c]);
            confusion += n_ref.min(n_hyp) - usize::from(right);
        }
    }
    let r = reference.max(1) as f64;
    Der {
        missed: missed as f64 / r,
        false_alarm: false_alarm as f64 / r,
        confusion: confusion as f64 / r,
        uncertain: uncertain as f64 / r,
        overlap: both as f64 / r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(start_ms: u64, end_ms: u64, speaker: Option<u32>) -> Turn {
        Turn {
            start_ms,
            end_ms,
            speaker,
            confidence: 90,
        }
    }

    #[test]
    fn der_counts_missed_false_alarm_and_confusion_under_the_best_mapping() {
        // One second each: speaker A (channel 0), then B (channel 1), then both at once.
        let mut truth = vec![[true, false]; 100];
        truth.extend(vec![[false, true]; 100]);
        truth.extend(vec![[true, true]; 100]);
        truth.extend(vec![[false, false]; 100]);
        // Found speakers are numbered the other way round (1 = A): the mapping forgives it.
        let turns = [
            turn(0, 1_000, Some(1)),
            turn(1_000, 1_500, Some(0)),
            turn(1_500, 2_000, Some(1)),
            turn(2_000, 3_000, None),
            turn(3_000, 3_500, Some(0)),
        ];
        let der = score(&truth, &turns);
        // Reference: 100 + 100 + 200 = 400 speaker-frames.
        assert!((der.confusion - 50.0 / 400.0).abs() < 1e-9, "{der:?}");
        assert!((der.missed - 200.0 / 400.0).abs() < 1e-9, "{der:?}");
        assert!((der.uncertain - 200.0 / 400.0).abs() < 1e-9, "{der:?}");
        assert!((der.false_alarm - 50.0 / 400.0).abs() < 1e-9, "{der:?}");
        assert!((der.overlap - 100.0 / 400.0).abs() < 1e-9, "{der:?}");
        assert!((der.total() - 300.0 / 400.0).abs() < 1e-9);
    }
}
