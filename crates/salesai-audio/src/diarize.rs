//! Speaker turns for mono recordings, in-process and offline: who spoke when, with no model
//! file and no network call.
//!
//! The method is the classical one, in two passes:
//!
//! 1. **Features** every 10 ms: mel-frequency cepstral coefficients, the log energy, and the
//!    pitch (the normalised autocorrelation below 2 kHz, read from the same spectrum). Two
//!    frames share one complex FFT (one as the real part, one as the imaginary part).
//! 2. **Clustering**: an energy voice-activity decision against the recording's own noise
//!    floor; one embedding per 1.25 s window (the cepstra's mean and spread, and the mean
//!    pitch); agglomerative clustering (average linkage) of a sample of the windows into
//!    speakers — two unless the audio clearly holds more — refined over every window by
//!    k-means and a Viterbi pass that prefers staying with the same speaker.
//! 3. **Re-segmentation**: each speaker becomes a full-covariance Gaussian over their frames'
//!    cepstra (a voice is in how the parts of its spectrum move together) and a Gaussian over
//!    their pitch, every 250 ms block is scored by its likelihood under each, and the Viterbi
//!    pass runs again — three rounds. The last round's likelihood margins are the turns'
//!    confidence. A stretch no voice explains well (two people at once) or a turn too short
//!    to place gets no speaker.
//!
//! Architecture invariant: memory is bounded by the recording's length — 46 bytes per 10 ms
//! frame and 0.9 KB per 250 ms block (about 30 MB for an hour) — never by its samples: the
//! 16 kHz scratch file is read in blocks.

use std::io::{BufReader, Read};
use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use salesai_core::speakers::{Diarization, Turn, Voice};

use crate::{AudioError, Prepared, TARGET_RATE};

/// Samples between frames (10 ms).
const HOP: usize = 160;
/// Samples in one analysis window (25 ms), zero-padded to [`FFT`].
const WINDOW: usize = 400;
/// The FFT length.
const FFT: usize = 512;
/// Mel bands.
const BANDS: usize = 32;
/// Cepstral coefficients kept (c1 … c19; c0 is loudness, not voice).
const COEFFS: usize = 19;
/// Frames in one block, the unit turns are made of (250 ms).
const BLOCK: usize = 25;
/// An embedding's window, in blocks each side of its own (2 → 1.25 s).
const REACH: usize = 2;
/// Windows clustered agglomeratively (the rest are assigned to the nearest speaker).
const SAMPLE: usize = 400;
/// The most speakers the audio may claim.
const MAX_SPEAKERS: usize = 4;
/// How much more the mean log pitch of a window counts than one cepstral dimension.
const PITCH_WEIGHT: f64 = 1.0;
/// Rounds of Gaussian re-segmentation after the clustering.
const RESEGMENT_ROUNDS: usize = 3;
const _: () = assert!(
    RESEGMENT_ROUNDS > 0,
    "the turns take their confidence from the last round"
);
/// The cost of a change of speaker in re-segmentation, in nats per frame of a block.
const RESEGMENT_PENALTY: f32 = 3.0;
/// A turn shorter than this is not placed (ms).
const MIN_TURN_MS: u64 = 500;

/// Finds who spoke when in a prepared (16 kHz mono) recording. A recording with one voice, or
/// too little speech to compare, is one speaker.
pub fn diarize(prepared: &Prepared) -> Result<Diarization, AudioError> {
    let frames = features(prepared)?;
    Ok(cluster(&frames))
}

/// The voice print of a whole track (one speaker: a channel of a stereo dialer recording).
pub fn voice_print(prepared: &Prepared, speaker: u32) -> Result<Option<Voice>, AudioError> {
    let frames = features(prepared)?;
    let voiced = voiced_frames(&frames.energy);
    let indices: Vec<usize> = (0..frames.energy.len()).filter(|i| voiced[*i]).collect();
    Ok(print_of(&frames, &indices).map(|print| Voice {
        speaker,
        print,
        seconds: indices.len() as f64 * HOP as f64 / f64::from(TARGET_RATE),
    }))
}

/// Per-frame features: log energy and quantised cepstra.
struct Frames {
    /// Natural-log energy of each frame.
    energy: Vec<f32>,
    /// `COEFFS` cepstra per frame, ×100, as i16 (the range is well inside ±327).
    cepstra: Vec<i16>,
    /// Natural log of each frame's pitch in Hz, 0 where the frame has no clear period.
    pitch: Vec<f32>,
}

impl Frames {
    fn cepstrum(&self, frame: usize) -> impl Iterator<Item = f32> + '_ {
        self.cepstra[frame * COEFFS..(frame + 1) * COEFFS]
            .iter()
            .map(|c| f32::from(*c) / 100.0)
    }
}

/// Triangular mel filters over the FFT bins, 80 Hz to 7.2 kHz (the resampler's pass band).
fn mel_filters() -> Vec<Vec<(usize, f32)>> {
    let mel = |hz: f64| 2595.0 * (1.0 + hz / 700.0).log10();
    let hz = |mel: f64| 700.0 * (10f64.powf(mel / 2595.0) - 1.0);
    let (low, high) = (mel(80.0), mel(7_200.0));
    let edges: Vec<f64> = (0..BANDS + 2)
        .map(|i| hz(low + (high - low) * i as f64 / (BANDS + 1) as f64))
        .map(|f| f * FFT as f64 / f64::from(TARGET_RATE))
        .collect();
    (0..BANDS)
        .map(|b| {
            let (left, centre, right) = (edges[b], edges[b + 1], edges[b + 2]);
            (left.floor() as usize..=right.ceil() as usize)
                .filter(|bin| *bin <= FFT / 2)
                .filter_map(|bin| {
                    let f = bin as f64;
                    let weight = if f <= centre {
                        (f - left) / (centre - left)
                    } else {
                        (right - f) / (right - centre)
                    };
                    (weight > 0.0).then_some((bin, weight as f32))
                })
                .collect()
        })
        .collect()
}

/// The per-frame analysis: tables built once, scratch buffers reused for every frame.
struct Analyser {
    fourier: Arc<dyn Fft<f32>>,
    /// The pitch path's transform, over the spectrum below 2 kHz.
    small: Arc<dyn Fft<f32>>,
    filters: Vec<Vec<(usize, f32)>>,
    hamming: Vec<f32>,
    dct: Vec<f32>,
    /// The Hamming window's own autocorrelation at the pitch lags, to undo its taper.
    taper: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    low: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: [Vec<f32>; 2],
}

/// Bins of the spectrum the pitch is read from (below 2 kHz: the autocorrelation at 4 kHz).
const LOW: usize = FFT / 4;
/// Pitch lags at 4 kHz: 10 (400 Hz) to 57 (70 Hz).
const LAG_MIN: usize = 10;
const LAG_MAX: usize = 57;
/// The normalised autocorrelation peak above which a frame is pitched (Boersma's 0.45).
const PERIODIC: f32 = 0.45;

impl Analyser {
    fn new() -> Analyser {
        let hamming: Vec<f32> = (0..WINDOW)
            .map(|i| {
                (0.54 - 0.46 * (2.0 * std::f64::consts::PI * i as f64 / (WINDOW - 1) as f64).cos())
                    as f32
            })
            .collect();
        let own: f64 = hamming.iter().map(|w| f64::from(w * w)).sum();
        let taper = (0..LOW / 2 + 1)
            .map(|lag| {
                let shift = lag * FFT / LOW;
                let r: f64 = (0..WINDOW.saturating_sub(shift))
                    .map(|i| f64::from(hamming[i] * hamming[i + shift]))
                    .sum();
                (r / own).max(1e-3) as f32
            })
            .collect();
        let mut planner = FftPlanner::<f32>::new();
        let (fourier, small) = (planner.plan_fft_forward(FFT), planner.plan_fft_forward(LOW));
        let scratch = fourier
            .get_inplace_scratch_len()
            .max(small.get_inplace_scratch_len());
        Analyser {
            fourier,
            small,
            filters: mel_filters(),
            hamming,
            dct: (1..=COEFFS)
                .flat_map(|k| {
                    (0..BANDS).map(move |b| {
                        (std::f64::consts::PI * k as f64 * (b as f64 + 0.5) / BANDS as f64).cos()
                            as f32
                    })
                })
                .collect(),
            taper,
            spectrum: vec![Complex::default(); FFT],
            low: vec![Complex::default(); LOW],
            scratch: vec![Complex::default(); scratch],
            power: [vec![0.0; FFT / 2 + 1], vec![0.0; FFT / 2 + 1]],
        }
    }

    /// Analyses two frames with one complex transform (the first as its real part, the
    /// second as its imaginary part: the spectra of two real signals separate by symmetry),
    /// pushing `count` (1 or 2) frames' features.
    fn pair(&mut self, first: &[f32], second: &[f32], count: usize, out: &mut Frames) {
        for (i, z) in self.spectrum.iter_mut().enumerate() {
            *z = if i < WINDOW {
                Complex::new(first[i] * self.hamming[i], second[i] * self.hamming[i])
            } else {
                Complex::default()
            };
        }
        self.fourier
            .process_with_scratch(&mut self.spectrum, &mut self.scratch);
        let z = &self.spectrum;
        let [pa, pb] = &mut self.power;
        for k in 0..=FFT / 2 {
            let j = (FFT - k) % FFT;
            let (sr, dr) = (z[k].re + z[j].re, z[k].re - z[j].re);
            let (si, di) = (z[k].im + z[j].im, z[k].im - z[j].im);
            pa[k] = (sr * sr + di * di) * 0.25;
            pb[k] = (si * si + dr * dr) * 0.25;
        }
        // The autocorrelation of both frames below 2 kHz, again in one transform: the power
        // spectra are real and even, so their transforms are too.
        for (k, z) in self.low.iter_mut().enumerate() {
            let bin = if k <= LOW / 2 { k } else { LOW - k };
            // No DC and no hum: bins under 60 Hz say nothing about a voice's pitch.
            *z = if bin >= 2 {
                Complex::new(pa[bin], pb[bin])
            } else {
                Complex::default()
            };
        }
        self.small
            .process_with_scratch(&mut self.low, &mut self.scratch);
        for which in 0..count {
            let power = &self.power[which];
            let mut bands = [0f32; BANDS];
            let mut total = 0f32;
            for (band, filter) in bands.iter_mut().zip(&self.filters) {
                let mut sum = 0f32;
                for (bin, weight) in filter {
                    sum += power[*bin] * weight;
                }
                total += sum;
                *band = (sum + 1e-10).ln();
            }
            out.energy.push((total + 1e-10).ln());
            for k in 0..COEFFS {
                let row = &self.dct[k * BANDS..(k + 1) * BANDS];
                let c: f32 = row.iter().zip(&bands).map(|(w, b)| w * b).sum();
                out.cepstra
                    .push((c * 100.0).round().clamp(-32_767.0, 32_767.0) as i16);
            }
            let r = |lag: usize| {
                if which == 0 {
                    self.low[lag].re
                } else {
                    self.low[lag].im
                }
            };
            out.pitch.push(pitch(r, &self.taper));
        }
    }
}

/// The natural log of the pitch (Hz) from a frame's autocorrelation at 4 kHz, or 0 for a
/// frame with no clear period (unvoiced, silent, or two voices at once).
fn pitch(r: impl Fn(usize) -> f32, taper: &[f32]) -> f32 {
    let r0 = r(0);
    if r0 <= 1e-9 {
        return 0.0;
    }
    // The normalised autocorrelation from one lag below the range to one above it.
    let mut normal = [0f32; LAG_MAX - LAG_MIN + 3];
    for (i, v) in normal.iter_mut().enumerate() {
        let lag = LAG_MIN - 1 + i;
        *v = r(lag) / r0 / taper[lag];
    }
    let peak = |i: usize| {
        let v = normal[i];
        (v >= normal[i - 1] && v >= normal[i + 1]).then_some(v)
    };
    let peaks = 1..normal.len() - 1;
    let strongest = peaks.clone().filter_map(peak).fold(0f32, f32::max);
    if strongest < PERIODIC {
        return 0.0;
    }
    // A period's multiples correlate as well as the period itself: the shortest lag about as
    // strong as the strongest is the period (no octave errors downwards).
    let Some(at) = peaks
        .into_iter()
        .find(|i| peak(*i).is_some_and(|v| v >= 0.9 * strongest))
    else {
        return 0.0;
    };
    // Parabolic interpolation between the lags either side.
    let (l, c, h) = (normal[at - 1], normal[at], normal[at + 1]);
    let bend = l - 2.0 * c + h;
    let offset = if bend < 0.0 {
        (0.5 * (l - h) / bend).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    let lag = (LAG_MIN - 1 + at) as f32 + offset;
    (4_000.0 / lag).ln()
}

/// Reads the scratch file once and computes every frame's features.
fn features(prepared: &Prepared) -> Result<Frames, AudioError> {
    let mut analyser = Analyser::new();
    let count = (prepared.samples as usize).saturating_sub(WINDOW) / HOP + 1;
    let mut frames = Frames {
        energy: Vec::with_capacity(count),
        cepstra: Vec::with_capacity(count * COEFFS),
        pitch: Vec::with_capacity(count),
    };
    let mut reader = BufReader::with_capacity(128 * 1024, prepared.pcm.reopen()?);
    let mut ring: Vec<f32> = Vec::with_capacity(WINDOW + HOP);
    // One buffer for the whole file: the first frame reads WINDOW samples, each next one HOP.
    let mut bytes = vec![0u8; WINDOW * 2];
    // A frame waiting for its partner in the paired transform.
    let mut held = vec![0f32; WINDOW];
    let mut holding = false;
    let mut previous = 0f32;
    loop {
        let need = if ring.is_empty() { WINDOW } else { HOP } * 2;
        let chunk = &mut bytes[..need];
        let mut got = 0;
        while got < need {
            let n = reader.read(&mut chunk[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got < need {
            break;
        }
        for pair in chunk.chunks_exact(2) {
            let sample = f32::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0;
            // Pre-emphasis lifts the formants a voice is told apart by.
            ring.push(sample - 0.97 * previous);
            previous = sample;
        }
        if ring.len() > WINDOW {
            ring.drain(..ring.len() - WINDOW);
        }
        if holding {
            analyser.pair(&held, &ring, 2, &mut frames);
        } else {
            held.copy_from_slice(&ring);
        }
        holding = !holding;
    }
    if holding {
        analyser.pair(&held, &held, 1, &mut frames);
    }
    Ok(frames)
}

/// Which frames hold speech: louder than the recording's floor by a share of its range, with
/// gaps under 150 ms filled and blips under 100 ms dropped.
fn voiced_frames(energy: &[f32]) -> Vec<bool> {
    if energy.is_empty() {
        return Vec::new();
    }
    let mut sorted = energy.to_vec();
    sorted.sort_by(f32::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    let (floor, peak) = (at(0.10), at(0.98));
    let threshold = floor + (0.35 * (peak - floor)).max(2.0);
    let mut voiced: Vec<bool> = energy.iter().map(|e| *e > threshold).collect();
    fill_runs(&mut voiced, false, 15);
    fill_runs(&mut voiced, true, 10);
    voiced
}

/// Flips runs of `value` shorter than `shorter_than` frames that sit between two runs of the
/// other value.
fn fill_runs(flags: &mut [bool], value: bool, shorter_than: usize) {
    let mut i = 0;
    while i < flags.len() {
        if flags[i] != value {
            i += 1;
            continue;
        }
        let start = i;
        while i < flags.len() && flags[i] == value {
            i += 1;
        }
        if start > 0 && i < flags.len() && i - start < shorter_than {
            flags[start..i].iter_mut().for_each(|f| *f = !value);
        }
    }
}

/// Mean and spread of the cepstra over `indices` (a raw print, comparable across recordings).
fn print_of(frames: &Frames, indices: &[usize]) -> Option<Vec<f32>> {
    if indices.len() < 50 {
        return None;
    }
    let mut sum = [0f64; COEFFS];
    let mut squares = [0f64; COEFFS];
    for i in indices {
        for (k, c) in frames.cepstrum(*i).enumerate() {
            sum[k] += f64::from(c);
            squares[k] += f64::from(c) * f64::from(c);
        }
    }
    let n = indices.len() as f64;
    let mut print: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    print.extend(
        sum.iter()
            .zip(&squares)
            .map(|(s, q)| ((q / n - (s / n).powi(2)).max(0.0).sqrt()) as f32),
    );
    Some(print)
}

/// Per-block statistics: voiced frames, and their cepstra's sums and sums of squares.
struct Blocks {
    voiced: Vec<u32>,
    sum: Vec<[f32; COEFFS]>,
    squares: Vec<[f32; COEFFS]>,
    /// Sums of the cepstra's pairwise products (the upper triangle, row by row).
    products: Vec<[f32; PAIRS]>,
    /// Pitched voiced frames, and their log pitch's sum and sum of squares.
    pitched: Vec<u32>,
    pitch_sum: Vec<f32>,
    pitch_squares: Vec<f32>,
    /// First and last voiced frame of each block, when any.
    span: Vec<Option<(usize, usize)>>,
}

fn blocks(frames: &Frames, voiced: &[bool]) -> Blocks {
    let count = frames.energy.len().div_ceil(BLOCK);
    let mut out = Blocks {
        voiced: vec![0; count],
        sum: vec![[0.0; COEFFS]; count],
        squares: vec![[0.0; COEFFS]; count],
        products: vec![[0.0; PAIRS]; count],
        pitched: vec![0; count],
        pitch_sum: vec![0.0; count],
        pitch_squares: vec![0.0; count],
        span: vec![None; count],
    };
    for (frame, is_voiced) in voiced.iter().enumerate() {
        if !is_voiced {
            continue;
        }
        let b = frame / BLOCK;
        out.voiced[b] += 1;
        let mut c = [0f32; COEFFS];
        for (k, v) in frames.cepstrum(frame).enumerate() {
            c[k] = v;
            out.sum[b][k] += v;
            out.squares[b][k] += v * v;
        }
        let mut at = 0;
        for i in 0..COEFFS {
            for j in i..COEFFS {
                out.products[b][at] += c[i] * c[j];
                at += 1;
            }
        }
        let p = frames.pitch[frame];
        if p > 0.0 {
            out.pitched[b] += 1;
            out.pitch_sum[b] += p;
            out.pitch_squares[b] += p * p;
        }
        out.span[b] = Some(match out.span[b] {
            Some((first, _)) => (first, frame),
            None => (frame, frame),
        });
    }
    out
}

/// Distinct pairs of cepstra (with each one's square): the upper triangle of a covariance.
const PAIRS: usize = COEFFS * (COEFFS + 1) / 2;

/// Dimensions of an embedding: the cepstra's mean and spread, then the mean log pitch (its
/// spread is intonation, not identity).
const DIMS: usize = COEFFS * 2 + 1;
/// Pitched frames a window needs for its pitch to count (100 ms).
const MIN_PITCHED: u32 = 10;

/// The embedding of the window around block `b`: mean and spread of its voiced frames'
/// cepstra and their mean log pitch (NaN with too few pitched frames); `None` with under
/// 0.4 s of speech in it.
fn embedding(blocks: &Blocks, b: usize) -> Option<Vec<f32>> {
    let from = b.saturating_sub(REACH);
    let to = (b + REACH + 1).min(blocks.voiced.len());
    let n: u32 = blocks.voiced[from..to].iter().sum();
    if n < 40 || blocks.voiced[b] == 0 {
        return None;
    }
    let n = n as f32;
    let mut out = vec![0f32; DIMS];
    for k in 0..COEFFS {
        let s: f32 = (from..to).map(|i| blocks.sum[i][k]).sum();
        let q: f32 = (from..to).map(|i| blocks.squares[i][k]).sum();
        let mean = s / n;
        out[k] = mean;
        out[COEFFS + k] = (q / n - mean * mean).max(0.0).sqrt();
    }
    let pitched: u32 = blocks.pitched[from..to].iter().sum();
    if pitched >= MIN_PITCHED {
        let p = pitched as f32;
        out[2 * COEFFS] = blocks.pitch_sum[from..to].iter().sum::<f32>() / p;
    } else {
        out[2 * COEFFS] = f32::NAN;
    }
    Some(out)
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn centroid(points: &[&Vec<f32>]) -> Vec<f32> {
    let mut c = vec![0f32; points.first().map_or(0, |p| p.len())];
    for p in points {
        for (a, b) in c.iter_mut().zip(p.iter()) {
            *a += b;
        }
    }
    let n = points.len().max(1) as f32;
    c.iter_mut().for_each(|a| *a /= n);
    c
}

/// Average-linkage clustering of `points` into `k` clusters large enough to be speakers
/// (each at least 5 % of the points; smaller ones are outliers and join their nearest).
fn agglomerate(points: &[Vec<f32>], k: usize) -> Vec<usize> {
    let n = points.len();
    let mut members: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let mut alive: Vec<bool> = vec![true; n];
    let mut d = vec![0f32; n * n];
    for i in 0..n {
        for j in i + 1..n {
            let v = distance(&points[i], &points[j]).sqrt();
            d[i * n + j] = v;
            d[j * n + i] = v;
        }
    }
    let big = (n as f64 * 0.05).ceil() as usize;
    let mut living = n;
    while living > k {
        let bigs = (0..n)
            .filter(|i| alive[*i] && members[*i].len() >= big)
            .count();
        // Closest pair, except that two big clusters are not merged once only k are left:
        // the outliers join them instead.
        let mut best = (f32::INFINITY, 0, 0);
        for i in 0..n {
            if !alive[i] {
                continue;
            }
            for j in i + 1..n {
                if !alive[j] {
                    continue;
                }
                let both_big = members[i].len() >= big && members[j].len() >= big;
                if both_big && bigs <= k {
                    continue;
                }
                if d[i * n + j] < best.0 {
                    best = (d[i * n + j], i, j);
                }
            }
        }
        let (_, i, j) = best;
        if !best.0.is_finite() {
            break;
        }
        living -= 1;
        let (ni, nj) = (members[i].len() as f32, members[j].len() as f32);
        for m in 0..n {
            if alive[m] && m != i && m != j {
                let v = (d[i * n + m] * ni + d[j * n + m] * nj) / (ni + nj);
                d[i * n + m] = v;
                d[m * n + i] = v;
            }
        }
        let moved = std::mem::take(&mut members[j]);
        members[i].extend(moved);
        alive[j] = false;
    }
    let mut labels = vec![0usize; n];
    for (label, i) in (0..n).filter(|i| alive[*i]).enumerate() {
        for m in &members[i] {
            labels[*m] = label;
        }
    }
    labels
}

/// Mean silhouette of a labelling (how much closer points are to their own cluster).
fn silhouette(points: &[Vec<f32>], labels: &[usize]) -> f32 {
    let k = labels.iter().max().map_or(0, |m| m + 1);
    if k < 2 {
        return 0.0;
    }
    let mut total = 0f32;
    for (i, p) in points.iter().enumerate() {
        let mut sums = vec![(0f32, 0usize); k];
        for (j, q) in points.iter().enumerate() {
            if i != j {
                let s = &mut sums[labels[j]];
                s.0 += distance(p, q).sqrt();
                s.1 += 1;
            }
        }
        let own = sums[labels[i]];
        if own.1 == 0 {
            continue;
        }
        let a = own.0 / own.1 as f32;
        let b = sums
            .iter()
            .enumerate()
            .filter(|(c, s)| *c != labels[i] && s.1 > 0)
            .map(|(_, s)| s.0 / s.1 as f32)
            .fold(f32::INFINITY, f32::min);
        if b.is_finite() {
            total += (b - a) / a.max(b);
        }
    }
    total / points.len() as f32
}

/// Clusters the windows into speakers and makes turns.
fn cluster(frames: &Frames) -> Diarization {
    let voiced = voiced_frames(&frames.energy);
    let blocks = blocks(frames, &voiced);
    let raw: Vec<Option<Vec<f32>>> = (0..blocks.voiced.len())
        .map(|b| embedding(&blocks, b))
        .collect();
    let present: Vec<usize> = (0..raw.len()).filter(|b| raw[*b].is_some()).collect();
    let frame_ms = |f: usize| (f * HOP) as u64 * 1000 / u64::from(TARGET_RATE);
    // Too little speech to compare voices: one speaker, every voiced stretch theirs.
    if present.len() < 20 {
        let all: Vec<usize> = (0..voiced.len()).filter(|f| voiced[*f]).collect();
        let turns = stretches(&voiced, 0, voiced.len())
            .into_iter()
            .map(|(a, b)| Turn {
                start_ms: frame_ms(a),
                end_ms: frame_ms(b + 1),
                speaker: Some(0),
                confidence: 50,
            })
            .collect();
        return Diarization {
            turns,
            voices: print_of(frames, &all)
                .map(|print| Voice {
                    speaker: 0,
                    print,
                    seconds: all.len() as f64 / 100.0,
                })
                .into_iter()
                .collect(),
            rep_channel: None,
        };
    }
    // Standardise each dimension over the recording, so no coefficient dominates; a window
    // with no pitch sits at the pitch's mean (no evidence either way).
    let dims = DIMS;
    let mut mean = vec![0f64; dims];
    let mut var = vec![0f64; dims];
    let mut seen = vec![0usize; dims];
    for b in &present {
        for (k, v) in raw[*b].as_ref().expect("present").iter().enumerate() {
            if v.is_finite() {
                mean[k] += f64::from(*v);
                seen[k] += 1;
            }
        }
    }
    for (m, n) in mean.iter_mut().zip(&seen) {
        *m /= (*n).max(1) as f64;
    }
    for b in &present {
        for (k, v) in raw[*b].as_ref().expect("present").iter().enumerate() {
            if v.is_finite() {
                var[k] += (f64::from(*v) - mean[k]).powi(2);
            }
        }
    }
    let scale: Vec<f64> = var
        .iter()
        .zip(&seen)
        .enumerate()
        .map(|(k, (v, n))| {
            let spread = (v / (*n).max(1) as f64).sqrt().max(1e-6);
            // The pitch is one number against the cepstra's many: weighted up so a voice's
            // register counts as much as its timbre.
            if k == 2 * COEFFS {
                spread / PITCH_WEIGHT
            } else {
                spread
            }
        })
        .collect();
    let points: Vec<Vec<f32>> = present
        .iter()
        .map(|b| {
            raw[*b]
                .as_ref()
                .expect("present")
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    if v.is_finite() {
                        ((f64::from(*v) - mean[k]) / scale[k]) as f32
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    // A sample spread evenly over the call for the agglomerative step.
    let stride = present.len().div_ceil(SAMPLE).max(1);
    let sample: Vec<Vec<f32>> = points.iter().step_by(stride).cloned().collect();
    let mut best: Option<(usize, Vec<usize>, f32)> = None;
    for k in 2..=MAX_SPEAKERS.min(sample.len() / 10).max(2) {
        let labels = agglomerate(&sample, k);
        let found = labels.iter().max().map_or(1, |m| m + 1);
        let smallest = (0..found)
            .map(|c| labels.iter().filter(|l| **l == c).count())
            .min()
            .unwrap_or(0);
        // A "speaker" of a few windows is an outlier (a cough, a door), not a voice.
        if found != k || (k > 2 && smallest * 20 < sample.len()) {
            continue;
        }
        let score = silhouette(&sample, &labels);
        // More than two speakers only when the audio clearly says so.
        let better = match &best {
            None => true,
            Some((_, _, s)) => score > s + 0.04,
        };
        if better {
            best = Some((k, labels, score));
        }
    }
    let (k, labels) = match best {
        Some((k, labels, _)) => (k, labels),
        None => (1, vec![0; sample.len()]),
    };
    let centroids: Vec<Vec<f32>> = (0..k)
        .map(|c| {
            let members: Vec<&Vec<f32>> = sample
                .iter()
                .zip(&labels)
                .filter(|(_, l)| **l == c)
                .map(|(p, _)| p)
                .collect();
            centroid(&members)
        })
        .collect();
    // Refined over every window, then re-segmented: speakers as Gaussians over their frames,
    // the turns found again; the last round's likelihoods say how sure each block is.
    let mut path = refine(&points, centroids, &present);
    let mut cost = Vec::new();
    for _ in 0..RESEGMENT_ROUNDS {
        (path, cost) = resegment(&blocks, &present, &path, k);
    }
    let quantile = |mut v: Vec<f32>, q: f64| {
        v.sort_by(f32::total_cmp);
        v.get(((v.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let own: Vec<f32> = path.iter().enumerate().map(|(i, s)| cost[i][*s]).collect();
    let gap = |i: usize, speaker: usize| {
        let second = (0..cost[i].len())
            .filter(|s| *s != speaker)
            .map(|s| cost[i][s])
            .fold(f32::INFINITY, f32::min);
        second - cost[i][speaker]
    };
    let typical_gap = quantile(
        (0..path.len())
            .map(|i| gap(i, path[i]))
            .filter(|g| g.is_finite())
            .collect(),
        0.5,
    )
    .max(1e-3);
    let (own_median, own_spread) = (
        quantile(own.clone(), 0.5),
        (quantile(own.clone(), 0.75) - quantile(own, 0.25)).max(1e-3),
    );
    // Turns: runs of one speaker over consecutive present blocks, cut at silences.
    let mut turns: Vec<Turn> = Vec::new();
    let mut i = 0;
    while i < present.len() {
        let speaker = path[i];
        let mut j = i;
        let mut sure = 0f32;
        while j < present.len()
            && path[j] == speaker
            && (j == i || present[j] == present[j - 1] + 1)
        {
            let g = gap(j, speaker);
            let margin = if g.is_finite() {
                (g / (2.0 * typical_gap)).clamp(0.0, 1.0)
            } else {
                1.0
            };
            // Unlike every voice and about as unlike each: two at once, or noise.
            let overlap = margin < 0.08 && cost[j][speaker] > own_median + 2.0 * own_spread;
            sure += if overlap { 0.0 } else { 50.0 + 50.0 * margin };
            j += 1;
        }
        let first_frame = blocks.span[present[i]].map_or(present[i] * BLOCK, |s| s.0);
        let last_frame = blocks.span[present[j - 1]].map_or(present[j - 1] * BLOCK, |s| s.1);
        let confidence = (sure / (j - i) as f32).round() as u8;
        for (a, b) in stretches(&voiced, first_frame, last_frame + 1) {
            let (start_ms, end_ms) = (frame_ms(a), frame_ms(b + 1));
            let placeable = end_ms - start_ms >= MIN_TURN_MS || (j - i) * 250 >= 1_000;
            turns.push(Turn {
                start_ms,
                end_ms,
                speaker: (placeable && confidence >= 50).then_some(speaker as u32),
                confidence,
            });
        }
        i = j;
    }
    // Speakers numbered in order of first appearance.
    let mut order: Vec<u32> = Vec::new();
    for t in &turns {
        if let Some(s) = t.speaker
            && !order.contains(&s)
        {
            order.push(s);
        }
    }
    for t in &mut turns {
        t.speaker = t
            .speaker
            .and_then(|s| order.iter().position(|o| *o == s).map(|p| p as u32));
    }
    let voices = (0..order.len() as u32)
        .filter_map(|speaker| {
            let indices: Vec<usize> = turns
                .iter()
                .filter(|t| t.speaker == Some(speaker))
                .flat_map(|t| {
                    let a = (t.start_ms * u64::from(TARGET_RATE) / 1000) as usize / HOP;
                    let b = (t.end_ms * u64::from(TARGET_RATE) / 1000) as usize / HOP;
                    (a..b.min(voiced.len())).filter(|f| voiced[*f])
                })
                .collect();
            print_of(frames, &indices).map(|print| Voice {
                speaker,
                print,
                seconds: indices.len() as f64 / 100.0,
            })
        })
        .collect();
    Diarization {
        turns,
        voices,
        rep_channel: None,
    }
}

/// One speaker's model in re-segmentation: a full-covariance Gaussian over the cepstra (a
/// voice is in how its spectrum's parts move together, not only in each part), and a
/// one-dimensional one over the log pitch.
struct Model {
    mean: [f64; COEFFS],
    /// The inverse covariance, row by row.
    precision: Vec<f64>,
    log_det: f64,
    pitch: (f64, f64),
}

impl Model {
    /// Fits the model to `n` frames' sums, or `None` with too little speech to trust.
    fn fit(
        n: [f64; 2],
        sum: &[f64; COEFFS],
        products: &[f64; PAIRS],
        pitch: (f64, f64),
    ) -> Option<Model> {
        if n[0] < 100.0 || n[1] < 50.0 {
            return None;
        }
        let mut mean = [0f64; COEFFS];
        for (m, s) in mean.iter_mut().zip(sum) {
            *m = s / n[0];
        }
        let mut covariance = vec![0f64; COEFFS * COEFFS];
        let mut at = 0;
        for i in 0..COEFFS {
            for j in i..COEFFS {
                let v = products[at] / n[0] - mean[i] * mean[j];
                covariance[i * COEFFS + j] = v;
                covariance[j * COEFFS + i] = v;
                at += 1;
            }
        }
        // A little ridge keeps a nearly flat direction from dominating the likelihood.
        for i in 0..COEFFS {
            covariance[i * COEFFS + i] = covariance[i * COEFFS + i] * 1.01 + 1e-3;
        }
        let (precision, log_det) = invert(&covariance)?;
        let pitch_mean = pitch.0 / n[1];
        let pitch_var = (pitch.1 / n[1] - pitch_mean * pitch_mean).max(1e-3);
        Some(Model {
            mean,
            precision,
            log_det,
            pitch: (pitch_mean, pitch_var),
        })
    }

    /// The negative log-likelihood of block `b`'s frames, per voiced frame.
    fn cost(&self, blocks: &Blocks, b: usize) -> f32 {
        let m = f64::from(blocks.voiced[b]);
        let sum = &blocks.sum[b];
        let products = &blocks.products[b];
        // Σ over frames of (x − μ)ᵀ P (x − μ), from the block's sums.
        let mut deviation = 0f64;
        let mut at = 0;
        for i in 0..COEFFS {
            for j in i..COEFFS {
                let centred = f64::from(products[at])
                    - self.mean[i] * f64::from(sum[j])
                    - self.mean[j] * f64::from(sum[i])
                    + m * self.mean[i] * self.mean[j];
                let weight = if i == j { 1.0 } else { 2.0 };
                deviation += weight * self.precision[i * COEFFS + j] * centred;
                at += 1;
            }
        }
        let mut nll = 0.5 * m * self.log_det + 0.5 * deviation;
        let pitched = f64::from(blocks.pitched[b]);
        if pitched > 0.0 {
            let (mean, var) = self.pitch;
            let (s, q) = (
                f64::from(blocks.pitch_sum[b]),
                f64::from(blocks.pitch_squares[b]),
            );
            nll += 0.5 * pitched * var.ln()
                + (q - 2.0 * mean * s + pitched * mean * mean) / (2.0 * var);
        }
        (nll / m.max(1.0)) as f32
    }
}

/// The inverse and log-determinant of a symmetric positive-definite `COEFFS`² matrix
/// (Cholesky), or `None` when it is not positive definite.
fn invert(matrix: &[f64]) -> Option<(Vec<f64>, f64)> {
    let n = COEFFS;
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut v = matrix[i * n + j];
            for k in 0..j {
                v -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if v <= 0.0 {
                    return None;
                }
                l[i * n + i] = v.sqrt();
            } else {
                l[i * n + j] = v / l[j * n + j];
            }
        }
    }
    let log_det = 2.0 * (0..n).map(|i| l[i * n + i].ln()).sum::<f64>();
    // L⁻¹ by forward substitution, then P = L⁻ᵀ L⁻¹.
    let mut inverse_l = vec![0f64; n * n];
    for col in 0..n {
        for i in col..n {
            let mut v = if i == col { 1.0 } else { 0.0 };
            for k in col..i {
                v -= l[i * n + k] * inverse_l[k * n + col];
            }
            inverse_l[i * n + col] = v / l[i * n + i];
        }
    }
    let mut precision = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..n {
            precision[i * n + j] = (i.max(j)..n)
                .map(|k| inverse_l[k * n + i] * inverse_l[k * n + j])
                .sum();
        }
    }
    Some((precision, log_det))
}

/// One round of re-segmentation: each speaker a [`Model`] of the frames now theirs, every
/// block scored by its frames' negative log-likelihood under each (per frame), and the
/// cheapest sequence found again. Returns the new path and the scores.
fn resegment(
    blocks: &Blocks,
    present: &[usize],
    path: &[usize],
    k: usize,
) -> (Vec<usize>, Vec<Vec<f32>>) {
    let mut n = vec![[0f64; 2]; k];
    let mut sum = vec![[0f64; COEFFS]; k];
    let mut products = vec![[0f64; PAIRS]; k];
    let mut pitch = vec![(0f64, 0f64); k];
    for (i, b) in present.iter().enumerate() {
        let s = path[i];
        n[s][0] += f64::from(blocks.voiced[*b]);
        n[s][1] += f64::from(blocks.pitched[*b]);
        for (total, v) in sum[s].iter_mut().zip(&blocks.sum[*b]) {
            *total += f64::from(*v);
        }
        for (total, v) in products[s].iter_mut().zip(&blocks.products[*b]) {
            *total += f64::from(*v);
        }
        pitch[s].0 += f64::from(blocks.pitch_sum[*b]);
        pitch[s].1 += f64::from(blocks.pitch_squares[*b]);
    }
    let models: Vec<Option<Model>> = (0..k)
        .map(|s| Model::fit(n[s], &sum[s], &products[s], pitch[s]))
        .collect();
    let cost: Vec<Vec<f32>> = present
        .iter()
        .map(|b| {
            models
                .iter()
                .map(|model| model.as_ref().map_or(f32::INFINITY, |m| m.cost(blocks, *b)))
                .collect()
        })
        .collect();
    (viterbi(&cost, present, RESEGMENT_PENALTY), cost)
}

/// k-means steps over every window from `centroids`, then the cheapest speaker sequence over
/// the distances (staying with a speaker is free, changing costs).
fn refine(points: &[Vec<f32>], mut centroids: Vec<Vec<f32>>, present: &[usize]) -> Vec<usize> {
    let mut assigned = vec![0usize; points.len()];
    for _ in 0..4 {
        for (i, p) in points.iter().enumerate() {
            assigned[i] = nearest(&centroids, p).0;
        }
        for (c, centre) in centroids.iter_mut().enumerate() {
            let members: Vec<&Vec<f32>> = points
                .iter()
                .zip(&assigned)
                .filter(|(_, a)| **a == c)
                .map(|(p, _)| p)
                .collect();
            if !members.is_empty() {
                *centre = centroid(&members);
            }
        }
    }
    let dims = points.first().map_or(1, Vec::len) as f32;
    let cost: Vec<Vec<f32>> = points
        .iter()
        .map(|p| centroids.iter().map(|c| distance(p, c) / dims).collect())
        .collect();
    viterbi(&cost, present, 1.5)
}

fn nearest(centroids: &[Vec<f32>], p: &[f32]) -> (usize, f32) {
    centroids
        .iter()
        .enumerate()
        .map(|(c, centre)| (c, distance(p, centre)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0))
}

/// The cheapest speaker sequence: `cost[i][s]` per present block, `penalty` per change of
/// speaker; a silence between blocks (a gap in `present`) halves the penalty, since turns
/// change hands at pauses.
fn viterbi(cost: &[Vec<f32>], present: &[usize], penalty: f32) -> Vec<usize> {
    let k = cost.first().map_or(0, Vec::len);
    if k == 0 {
        return Vec::new();
    }
    let mut total: Vec<f32> = cost[0].clone();
    let mut back: Vec<Vec<u8>> = Vec::with_capacity(cost.len());
    back.push(vec![0; k]);
    for i in 1..cost.len() {
        let change = if present[i] > present[i - 1] + 1 {
            penalty / 2.0
        } else {
            penalty
        };
        let mut next = vec![0f32; k];
        let mut from = vec![0u8; k];
        for s in 0..k {
            let (mut best, mut arg) = (f32::INFINITY, 0);
            for (p, t) in total.iter().enumerate() {
                let v = t + if p == s { 0.0 } else { change };
                if v < best {
                    best = v;
                    arg = p;
                }
            }
            next[s] = best + cost[i][s];
            from[s] = arg as u8;
        }
        total = next;
        back.push(from);
    }
    let mut state = total
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(s, _)| s);
    let mut path = vec![0usize; cost.len()];
    for i in (0..cost.len()).rev() {
        path[i] = state;
        state = back[i][state] as usize;
    }
    path
}

/// Voiced stretches within frames `[from, to)`, split at silences of 300 ms or more.
fn stretches(voiced: &[bool], from: usize, to: usize) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for (f, v) in voiced
        .iter()
        .enumerate()
        .take(to.min(voiced.len()))
        .skip(from)
    {
        if !v {
            continue;
        }
        current = match current {
            Some((a, b)) if f - b <= 30 => Some((a, f)),
            Some(done) => {
                out.push(done);
                Some((f, f))
            }
            None => Some((f, f)),
        };
    }
    out.extend(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A voice-like buzz (harmonics of `f0` with a falling envelope), one 25 ms window.
    fn buzz(f0: f32, offset: usize) -> Vec<f32> {
        (0..WINDOW)
            .map(|i| {
                let t = (i + offset) as f32 / TARGET_RATE as f32;
                (1..=12)
                    .map(|h| (2.0 * std::f32::consts::PI * f0 * h as f32 * t).sin() / h as f32)
                    .sum::<f32>()
                    * 0.1
            })
            .collect()
    }

    #[test]
    fn paired_frames_give_each_its_own_spectrum_and_pitch() {
        let mut analyser = Analyser::new();
        let mut frames = Frames {
            energy: Vec::new(),
            cepstra: Vec::new(),
            pitch: Vec::new(),
        };
        let (low, high) = (buzz(110.0, 0), buzz(230.0, 37));
        analyser.pair(&low, &high, 2, &mut frames);
        analyser.pair(&high, &high, 1, &mut frames);
        let hz: Vec<f32> = frames.pitch.iter().map(|p| p.exp()).collect();
        assert!((hz[0] - 110.0).abs() < 4.0, "{hz:?}");
        assert!((hz[1] - 230.0).abs() < 8.0, "{hz:?}");
        // The same frame analysed alone gives the same features as in a pair.
        assert_eq!(
            frames.cepstra[COEFFS..2 * COEFFS],
            frames.cepstra[2 * COEFFS..]
        );
        assert!((frames.pitch[1] - frames.pitch[2]).abs() < 1e-4);
        // Noise has no pitch.
        let mut seed = 1u64;
        let noise: Vec<f32> = (0..WINDOW)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                ((seed >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.2
            })
            .collect();
        analyser.pair(&noise, &noise, 1, &mut frames);
        assert_eq!(frames.pitch[3], 0.0);
    }

    #[test]
    fn the_covariance_inverse_and_log_determinant_are_exact() {
        // A symmetric positive-definite matrix with strong correlations between neighbours.
        let n = COEFFS;
        let mut m = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                m[i * n + j] = 0.6f64.powi((i as i32 - j as i32).abs()) * (1.0 + i as f64 * 0.1);
            }
        }
        for i in 0..n {
            for j in 0..i {
                let v = (m[i * n + j] + m[j * n + i]) / 2.0;
                m[i * n + j] = v;
                m[j * n + i] = v;
            }
        }
        let (p, log_det) = invert(&m).expect("positive definite");
        for i in 0..n {
            for j in 0..n {
                let v: f64 = (0..n).map(|k| m[i * n + k] * p[k * n + j]).sum();
                assert!(
                    (v - f64::from(u8::from(i == j))).abs() < 1e-9,
                    "({i},{j}) = {v}"
                );
            }
        }
        // Of a diagonal matrix, the log-determinant is the sum of the logs.
        let mut d = vec![0f64; n * n];
        for i in 0..n {
            d[i * n + i] = (i + 1) as f64;
        }
        let (_, log_det_d) = invert(&d).expect("diagonal");
        let expected: f64 = (1..=n).map(|i| (i as f64).ln()).sum();
        assert!((log_det_d - expected).abs() < 1e-9);
        assert!(log_det.is_finite());
        // Not positive definite: no inverse.
        let mut singular = vec![1f64; n * n];
        singular[0] = -1.0;
        assert!(invert(&singular).is_none());
    }

    #[test]
    fn short_gaps_are_filled_and_blips_dropped() {
        let mut flags = vec![
            true, true, false, true, true, false, false, false, true, false,
        ];
        fill_runs(&mut flags, false, 2);
        assert!(flags[2]);
        assert!(!flags[5]);
        fill_runs(&mut flags, true, 2);
        assert!(!flags[8]);
    }

    #[test]
    fn viterbi_prefers_staying() {
        // One noisy block in a run of speaker 0 does not start a turn of speaker 1.
        let cost = vec![
            vec![0.1, 2.0],
            vec![0.1, 2.0],
            vec![1.0, 0.5],
            vec![0.1, 2.0],
            vec![2.0, 0.1],
            vec![2.0, 0.1],
            vec![2.0, 0.1],
        ];
        let present: Vec<usize> = (0..cost.len()).collect();
        assert_eq!(viterbi(&cost, &present, 1.0), vec![0, 0, 0, 0, 1, 1, 1]);
    }
}
