//! Iterating on the speaker turns: scores `diarize` on stereo calls kept by
//! `salesai bench diarize --keep DIR` (one speaker per channel), without the synthesis. A mono
//! file in the folder is only timed (no truth).
//!
//! `cargo run --release -p salesai-audio --example der -- DIR`

use std::path::Path;

use salesai_audio::der;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: der DIR")?;
    let mut paths: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    paths.sort();
    let (mut weighted, mut seconds) = ([0f64; 5], 0f64);
    for path in &paths {
        let prepared = salesai_audio::prepare(path, Some("wav"))?;
        let started = std::time::Instant::now();
        let found = salesai_audio::diarize::diarize(&prepared)?;
        let ms = started.elapsed().as_millis();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let Some((channels, rate)) = read_stereo(path)? else {
            let unplaced = found.turns.iter().filter(|t| t.speaker.is_none()).count();
            println!(
                "{name}: {ms} ms, {} speakers, {} turns ({unplaced} unplaced)",
                found.voices.len(),
                found.turns.len()
            );
            continue;
        };
        let d = der::score(&der::truth(&channels, rate), &found.turns);
        let secs = prepared.duration_ms as f64 / 1000.0;
        println!(
            "{name:<18} {secs:>6.1}s spk {} DER {:>5.1}% miss {:>4.1}% (overlap {:>4.1}%) FA {:>4.1}% conf {:>5.1}% unc {:>4.1}% ({ms} ms)",
            found.voices.len(),
            d.total() * 100.0,
            d.missed * 100.0,
            d.overlap * 100.0,
            d.false_alarm * 100.0,
            d.confusion * 100.0,
            d.uncertain * 100.0
        );
        for (w, v) in
            weighted
                .iter_mut()
                .zip([d.total(), d.missed, d.overlap, d.false_alarm, d.confusion])
        {
            *w += v * secs;
        }
        seconds += secs;
    }
    if seconds > 0.0 {
        let p = |i: usize| weighted[i] / seconds * 100.0;
        println!(
            "overall DER {:.1}% miss {:.1}% (overlap {:.1}%) FA {:.1}% conf {:.1}%",
            p(0),
            p(1),
            p(2),
            p(3),
            p(4)
        );
    }
    Ok(())
}

/// The two channels of a 16-bit PCM WAV as written by `salesai_audio::pcm16_wav`, and its
/// rate; `None` for a file that is not two-channel.
type Channels = (Vec<Vec<f32>>, usize);
fn read_stereo(path: &Path) -> Result<Option<Channels>, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    if bytes.len() < 44 || u16::from_le_bytes(bytes[22..24].try_into()?) != 2 {
        return Ok(None);
    }
    let rate = u32::from_le_bytes(bytes[24..28].try_into()?) as usize;
    let mut channels = vec![Vec::new(), Vec::new()];
    for frame in bytes[44..].chunks_exact(4) {
        channels[0].push(f32::from(i16::from_le_bytes([frame[0], frame[1]])) / 32768.0);
        channels[1].push(f32::from(i16::from_le_bytes([frame[2], frame[3]])) / 32768.0);
    }
    Ok(Some((channels, rate)))
}
