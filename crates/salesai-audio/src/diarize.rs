//! Speaker turns for mono recordings, in-process and offline: who spoke when, with no model
//! file and no network call.
//!
//! The method is the classical one: mel-frequency cepstral coefficients every 10 ms, an energy
//! voice-activity decision against the recording's own noise floor, one embedding per 1.25 s
//! window (the coefficients' mean and spread), agglomerative clustering (average linkage) of a
//! sample of the windows into speakers — two unless the audio clearly holds more — refined over
//! every window, then a Viterbi pass that prefers staying with the same speaker, so a turn
//! changes hands only when the voice does. A stretch no voice explains well (two people at
//! once) or a turn too short to place gets no speaker.
//!
//! Architecture invariant: memory is bounded by the recording's length at 42 bytes per 10 ms
//! frame (about 15 MB for an hour), never by its samples: the 16 kHz scratch file is read in
//! blocks.

use std::io::{BufReader, Read};

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
}

impl Frames {
    fn cepstrum(&self, frame: usize) -> impl Iterator<Item = f32> + '_ {
        self.cepstra[frame * COEFFS..(frame + 1) * COEFFS]
            .iter()
            .map(|c| f32::from(*c) / 100.0)
    }
}

/// A radix-2 complex FFT of [`FFT`] points with tables built once.
struct Fourier {
    cos: Vec<f32>,
    sin: Vec<f32>,
    reverse: Vec<usize>,
}

impl Fourier {
    fn new() -> Fourier {
        let bits = FFT.trailing_zeros();
        Fourier {
            cos: (0..FFT / 2)
                .map(|k| (-2.0 * std::f64::consts::PI * k as f64 / FFT as f64).cos() as f32)
                .collect(),
            sin: (0..FFT / 2)
                .map(|k| (-2.0 * std::f64::consts::PI * k as f64 / FFT as f64).sin() as f32)
                .collect(),
            reverse: (0..FFT)
                .map(|i| i.reverse_bits() >> (usize::BITS - bits))
                .collect(),
        }
    }

    /// In place, `re`/`im` of length [`FFT`].
    fn transform(&self, re: &mut [f32], im: &mut [f32]) {
        for i in 0..FFT {
            let j = self.reverse[i];
            if j > i {
                re.swap(i, j);
                im.swap(i, j);
            }
        }
        let mut size = 2;
        while size <= FFT {
            let half = size / 2;
            let step = FFT / size;
            for start in (0..FFT).step_by(size) {
                for k in 0..half {
                    let (wr, wi) = (self.cos[k * step], self.sin[k * step]);
                    let (a, b) = (start + k, start + k + half);
                    let tr = re[b] * wr - im[b] * wi;
                    let ti = re[b] * wi + im[b] * wr;
                    re[b] = re[a] - tr;
                    im[b] = im[a] - ti;
                    re[a] += tr;
                    im[a] += ti;
                }
            }
            size *= 2;
        }
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

/// Reads the scratch file once and computes every frame's features.
fn features(prepared: &Prepared) -> Result<Frames, AudioError> {
    let fourier = Fourier::new();
    let filters = mel_filters();
    let hamming: Vec<f32> = (0..WINDOW)
        .map(|i| {
            (0.54 - 0.46 * (2.0 * std::f64::consts::PI * i as f64 / (WINDOW - 1) as f64).cos())
                as f32
        })
        .collect();
    let dct: Vec<f32> = (1..=COEFFS)
        .flat_map(|k| {
            (0..BANDS).map(move |b| {
                (std::f64::consts::PI * k as f64 * (b as f64 + 0.5) / BANDS as f64).cos() as f32
            })
        })
        .collect();
    let count = (prepared.samples as usize).saturating_sub(WINDOW) / HOP + 1;
    let mut frames = Frames {
        energy: Vec::with_capacity(count),
        cepstra: Vec::with_capacity(count * COEFFS),
    };
    let mut reader = BufReader::with_capacity(128 * 1024, prepared.pcm.reopen()?);
    let mut ring: Vec<f32> = Vec::with_capacity(WINDOW + HOP);
    // One buffer for the whole file: the first frame reads WINDOW samples, each next one HOP.
    let mut bytes = vec![0u8; WINDOW * 2];
    let (mut re, mut im) = (vec![0f32; FFT], vec![0f32; FFT]);
    let mut bands = [0f32; BANDS];
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
        for i in 0..FFT {
            re[i] = if i < WINDOW {
                ring[i] * hamming[i]
            } else {
                0.0
            };
            im[i] = 0.0;
        }
        fourier.transform(&mut re, &mut im);
        let mut total = 0f32;
        for (band, filter) in bands.iter_mut().zip(&filters) {
            let mut sum = 0f32;
            for (bin, weight) in filter {
                sum += (re[*bin] * re[*bin] + im[*bin] * im[*bin]) * weight;
            }
            total += sum;
            *band = (sum + 1e-10).ln();
        }
        frames.energy.push((total + 1e-10).ln());
        for k in 0..COEFFS {
            let row = &dct[k * BANDS..(k + 1) * BANDS];
            let c: f32 = row.iter().zip(&bands).map(|(w, b)| w * b).sum();
            frames
                .cepstra
                .push((c * 100.0).round().clamp(-32_767.0, 32_767.0) as i16);
        }
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
    /// First and last voiced frame of each block, when any.
    span: Vec<Option<(usize, usize)>>,
}

fn blocks(frames: &Frames, voiced: &[bool]) -> Blocks {
    let count = frames.energy.len().div_ceil(BLOCK);
    let mut out = Blocks {
        voiced: vec![0; count],
        sum: vec![[0.0; COEFFS]; count],
        squares: vec![[0.0; COEFFS]; count],
        span: vec![None; count],
    };
    for (frame, is_voiced) in voiced.iter().enumerate() {
        if !is_voiced {
            continue;
        }
        let b = frame / BLOCK;
        out.voiced[b] += 1;
        for (k, c) in frames.cepstrum(frame).enumerate() {
            out.sum[b][k] += c;
            out.squares[b][k] += c * c;
        }
        out.span[b] = Some(match out.span[b] {
            Some((first, _)) => (first, frame),
            None => (frame, frame),
        });
    }
    out
}

/// The embedding of the window around block `b`: mean and spread of its
/// voiced frames' cepstra; `None` with under 0.4 s of speech in it.
fn embedding(blocks: &Blocks, b: usize) -> Option<Vec<f32>> {
    let from = b.saturating_sub(REACH);
    let to = (b + REACH + 1).min(blocks.voiced.len());
    let n: u32 = blocks.voiced[from..to].iter().sum();
    if n < 40 || blocks.voiced[b] == 0 {
        return None;
    }
    let n = n as f32;
    let mut out = vec![0f32; COEFFS * 2];
    for k in 0..COEFFS {
        let s: f32 = (from..to).map(|i| blocks.sum[i][k]).sum();
        let q: f32 = (from..to).map(|i| blocks.squares[i][k]).sum();
        let mean = s / n;
        out[k] = mean;
        out[COEFFS + k] = (q / n - mean * mean).max(0.0).sqrt();
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
    // Standardise each dimension over the recording, so no coefficient dominates.
    let dims = COEFFS * 2;
    let mut mean = vec![0f64; dims];
    let mut var = vec![0f64; dims];
    for b in &present {
        for (k, v) in raw[*b].as_ref().expect("present").iter().enumerate() {
            mean[k] += f64::from(*v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= present.len() as f64);
    for b in &present {
        for (k, v) in raw[*b].as_ref().expect("present").iter().enumerate() {
            var[k] += (f64::from(*v) - mean[k]).powi(2);
        }
    }
    let scale: Vec<f64> = var
        .iter()
        .map(|v| (v / present.len() as f64).sqrt().max(1e-6))
        .collect();
    let points: Vec<Vec<f32>> = present
        .iter()
        .map(|b| {
            raw[*b]
                .as_ref()
                .expect("present")
                .iter()
                .enumerate()
                .map(|(k, v)| ((f64::from(*v) - mean[k]) / scale[k]) as f32)
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
    let mut centroids: Vec<Vec<f32>> = (0..k)
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
    // Refine over every window (k-means steps from the agglomerative start).
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
    // Viterbi over the present blocks: staying with a speaker is free, changing costs.
    let cost: Vec<Vec<f32>> = points
        .iter()
        .map(|p| {
            centroids
                .iter()
                .map(|c| distance(p, c) / dims as f32)
                .collect()
        })
        .collect();
    let path = viterbi(&cost, &present, 1.5);
    let typical = {
        let mut own: Vec<f32> = path.iter().enumerate().map(|(i, s)| cost[i][*s]).collect();
        own.sort_by(f32::total_cmp);
        own[own.len() / 2].max(1e-6)
    };
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
            let mut others: Vec<f32> = cost[j].clone();
            others.remove(speaker);
            let second = others.into_iter().fold(f32::INFINITY, f32::min);
            let own = cost[j][speaker];
            let margin = if second.is_finite() {
                ((second - own) / (second + own)).clamp(0.0, 1.0)
            } else {
                1.0
            };
            // Far from every voice and about as far from each: two at once, or noise.
            let overlap = margin < 0.08 && own > 2.5 * typical;
            sure += if overlap {
                0.0
            } else {
                50.0 + 50.0 * (margin / 0.3).min(1.0)
            };
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

    #[test]
    fn the_fft_finds_a_tone() {
        let fourier = Fourier::new();
        let mut re: Vec<f32> = (0..FFT)
            .map(|i| (2.0 * std::f32::consts::PI * 32.0 * i as f32 / FFT as f32).sin())
            .collect();
        let mut im = vec![0f32; FFT];
        fourier.transform(&mut re, &mut im);
        let power: Vec<f32> = (0..FFT / 2)
            .map(|i| re[i] * re[i] + im[i] * im[i])
            .collect();
        let peak = power
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        assert_eq!(peak, 32);
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
