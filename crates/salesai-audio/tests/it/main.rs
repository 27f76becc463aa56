//! Real files in the formats reps upload — MP3, M4A/AAC, Ogg Vorbis, FLAC, WAV — made by
//! ffmpeg (CI installs it; elsewhere the test is skipped with a note unless `CI=true`), and
//! Opus, which has no decoder here and must say so for the pass-through.

use std::path::Path;
use std::process::Command;

fn ffmpeg(out: &Path, codec: &[&str], rate: &str) -> bool {
    match Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300:duration=3",
            "-ac",
            "2",
            "-ar",
            rate,
        ])
        .args(codec)
        .arg(out)
        .status()
    {
        Ok(status) => {
            assert!(status.success(), "ffmpeg failed to make {}", out.display());
            true
        }
        Err(_) => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "ffmpeg is required in CI"
            );
            eprintln!("note: ffmpeg not installed; skipping the format test");
            false
        }
    }
}

#[test]
fn every_accepted_format_decodes_to_16k_mono() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str], &str)] = &[
        ("mp3", &["-c:a", "libmp3lame", "-b:a", "64k"], "44100"),
        ("m4a", &["-c:a", "aac", "-b:a", "64k"], "44100"),
        ("ogg", &["-c:a", "libvorbis"], "44100"),
        ("flac", &["-c:a", "flac"], "48000"),
        ("wav", &["-c:a", "pcm_s16le"], "22050"),
    ];
    for (ext, codec, rate) in cases {
        let path = dir.path().join(format!("tone.{ext}"));
        if !ffmpeg(&path, codec, rate) {
            return;
        }
        let prepared =
            salesai_audio::prepare(&path, Some(ext)).unwrap_or_else(|e| panic!("{ext}: {e}"));
        assert_eq!(prepared.source_channels, 2, "{ext}");
        assert_eq!(prepared.source_rate.to_string(), *rate, "{ext}");
        assert!(
            (2_900..=3_150).contains(&prepared.duration_ms),
            "{ext}: {} ms",
            prepared.duration_ms
        );
        let loud = prepared.energy[10..20].iter().sum::<f32>() / 10.0;
        assert!(loud > 0.05, "{ext}: the tone survives ({loud})");
        // The extension is only a hint: a wrong one still decodes.
        assert!(
            salesai_audio::prepare(&path, Some("mp3")).is_ok() || *ext == "mp3",
            "{ext} with a wrong hint"
        );
        let flac = salesai_audio::encode_flac(&prepared, 0, prepared.duration_ms).unwrap();
        assert!(flac.starts_with(b"fLaC"));
    }
}

#[test]
fn opus_asks_for_the_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.webm");
    if !ffmpeg(&path, &["-c:a", "libopus"], "48000") {
        return;
    }
    match salesai_audio::prepare(&path, Some("webm")) {
        Err(salesai_audio::AudioError::UnsupportedCodec(codec)) => {
            assert!(codec.to_lowercase().contains("opus"), "{codec}")
        }
        other => panic!("expected UnsupportedCodec, got {other:?}"),
    }
}
