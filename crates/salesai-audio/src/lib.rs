//! Audio preparation in-process: decode (symphonia), downmix, resample to 16 kHz mono, measure
//! loudness, and encode chunks as FLAC — no FFmpeg, no Lambda.
//!
//! Architecture invariant: memory does not grow with the recording's length. The decoded,
//! resampled audio goes to a temporary file of 16-bit samples (115 MB an hour, on disk); only
//! the loudness envelope (one float per 100 ms) and one chunk at a time are held in memory.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use salesai_core::ErrorCode;
pub mod der;
pub mod diarize;

use symphonia::core::audio::{AudioBuffer, AudioBufferRef};
use symphonia::core::codecs::{CODEC_TYPE_NULL, CODEC_TYPE_OPUS, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// The sample rate Whisper works at.
pub const TARGET_RATE: u32 = 16_000;
/// Loudness frames are this long.
pub const FRAME_MS: u64 = 100;

/// An audio failure.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The codec has no decoder here (Opus): the caller may pass the file through unchanged.
    #[error("no decoder for codec {0}")]
    UnsupportedCodec(String),
    /// The file could not be decoded.
    #[error("the audio could not be decoded: {0}")]
    Decode(String),
    /// Local disk trouble.
    #[error("audio scratch file: {0}")]
    Io(#[from] std::io::Error),
}

impl AudioError {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            AudioError::UnsupportedCodec(_) | AudioError::Decode(_) => ErrorCode::AudioDecodeFailed,
            AudioError::Io(_) => ErrorCode::Internal,
        }
    }
}

/// A recording decoded to 16 kHz mono.
#[derive(Debug)]
pub struct Prepared {
    /// The container/codec as probed (e.g. `mp3`).
    pub codec: String,
    /// The original sample rate.
    pub source_rate: u32,
    /// The original channel count.
    pub source_channels: usize,
    /// Length of the normalised audio.
    pub duration_ms: u64,
    /// Samples in the scratch file.
    pub samples: u64,
    /// RMS per `FRAME_MS` frame, full scale 1.0.
    pub energy: Vec<f32>,
    /// 16-bit little-endian mono samples at 16 kHz.
    pub pcm: tempfile::NamedTempFile,
}

/// A polyphase windowed-sinc resampler (any ratio), with the low-pass at 0.45 of the lower
/// rate so nothing above Whisper's 8 kHz Nyquist folds back as noise.
struct Resampler {
    step: f64,
    phases: usize,
    taps: usize,
    table: Vec<f32>,
    history: Vec<f32>,
    position: f64,
}

impl Resampler {
    fn new(from: u32, to: u32) -> Resampler {
        let step = f64::from(from) / f64::from(to);
        let cutoff = 0.9 * (f64::from(to) / f64::from(from)).min(1.0) / 2.0;
        let half = if step > 1.0 {
            (8.0 * step).ceil() as usize
        } else {
            8
        };
        let taps = 2 * half;
        let phases = 256;
        let mut table = vec![0f32; phases * taps];
        for p in 0..phases {
            let frac = p as f64 / phases as f64;
            let mut sum = 0.0;
            for t in 0..taps {
                let x = t as f64 - (half as f64 - 1.0) - frac;
                let sinc = if x.abs() < 1e-9 {
                    1.0
                } else {
                    (2.0 * std::f64::consts::PI * cutoff * x).sin() / (std::f64::consts::PI * x)
                };
                let sinc = if x.abs() < 1e-9 { 2.0 * cutoff } else { sinc };
                let w = 0.42
                    + 0.5 * (std::f64::consts::PI * x / half as f64).cos()
                    + 0.08 * (2.0 * std::f64::consts::PI * x / half as f64).cos();
                let v = sinc * w.max(0.0);
                table[p * taps + t] = v as f32;
                sum += v;
            }
            for t in 0..taps {
                table[p * taps + t] /= sum as f32;
            }
        }
        // Zeros before the first sample; the first output is centred on the first real input.
        Resampler {
            step,
            phases,
            taps,
            table,
            history: vec![0.0; taps],
            position: taps as f64,
        }
    }

    /// Feeds mono input, appends output samples.
    fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.history.extend_from_slice(input);
        let half = self.taps / 2;
        while (self.position as usize) + half < self.history.len() {
            let base = self.position.floor();
            let frac = self.position - base;
            let phase = ((frac * self.phases as f64) as usize).min(self.phases - 1);
            let start = base as usize + 1 - half;
            let coeffs = &self.table[phase * self.taps..(phase + 1) * self.taps];
            let window = &self.history[start..start + self.taps];
            let mut lanes = [0f32; 8];
            for (c, x) in coeffs.chunks_exact(8).zip(window.chunks_exact(8)) {
                for k in 0..8 {
                    lanes[k] += c[k] * x[k];
                }
            }
            out.push(lanes.iter().sum());
            self.position += self.step;
        }
        // Drop consumed input, keep what the next outputs still need.
        let keep_from = (self.position.floor() as usize).saturating_sub(half);
        if keep_from > 0 {
            self.history.drain(..keep_from);
            self.position -= keep_from as f64;
        }
    }
}

/// Decodes `path` (a file of any supported format; `extension` is a hint only) to 16 kHz mono.
pub fn prepare(path: &Path, extension: Option<&str>) -> Result<Prepared, AudioError> {
    let mut tracks = prepare_tracks(path, extension, false)?;
    Ok(tracks.remove(0))
}

/// One output of the decoder: a mono 16 kHz stream being written to its scratch file.
struct Track {
    pcm: tempfile::NamedTempFile,
    writer: BufWriter<File>,
    resampler: Option<Resampler>,
    input: Vec<f32>,
    resampled: Vec<f32>,
    bytes: Vec<u8>,
    energy: Vec<f32>,
    frame_sum: f64,
    frame_count: usize,
    total: u64,
}

impl Track {
    fn new() -> Result<Track, AudioError> {
        let pcm = tempfile::NamedTempFile::new()?;
        let writer = BufWriter::with_capacity(256 * 1024, pcm.reopen()?);
        Ok(Track {
            pcm,
            writer,
            resampler: None,
            input: Vec::new(),
            resampled: Vec::new(),
            bytes: Vec::new(),
            energy: Vec::new(),
            frame_sum: 0.0,
            frame_count: 0,
            total: 0,
        })
    }

    /// Resamples `self.input` (at `rate`) and appends it to the scratch file and the envelope.
    fn push(&mut self, rate: u32) -> Result<(), AudioError> {
        const FRAME_LEN: usize = (TARGET_RATE as u64 * FRAME_MS / 1000) as usize;
        self.resampled.clear();
        if rate == TARGET_RATE {
            self.resampled.extend_from_slice(&self.input);
        } else {
            self.resampler
                .get_or_insert_with(|| Resampler::new(rate, TARGET_RATE))
                .process(&self.input, &mut self.resampled);
        }
        self.bytes.clear();
        for s in &self.resampled {
            let clamped = s.clamp(-1.0, 1.0);
            self.bytes
                .extend_from_slice(&((clamped * 32767.0) as i16).to_le_bytes());
            self.frame_sum += f64::from(clamped * clamped);
            self.frame_count += 1;
            if self.frame_count == FRAME_LEN {
                self.energy
                    .push((self.frame_sum / FRAME_LEN as f64).sqrt() as f32);
                self.frame_sum = 0.0;
                self.frame_count = 0;
            }
        }
        self.writer.write_all(&self.bytes)?;
        self.total += self.resampled.len() as u64;
        Ok(())
    }

    fn finish(mut self, codec: &str, rate: u32, channels: usize) -> Result<Prepared, AudioError> {
        if self.frame_count > 0 {
            self.energy
                .push((self.frame_sum / self.frame_count as f64).sqrt() as f32);
        }
        self.writer.flush()?;
        Ok(Prepared {
            codec: codec.to_owned(),
            source_rate: rate,
            source_channels: channels,
            duration_ms: self.total * 1000 / u64::from(TARGET_RATE),
            samples: self.total,
            energy: self.energy,
            pcm: self.pcm,
        })
    }
}

/// Decodes `path` to 16 kHz mono tracks: one downmixed track, or — with `split_channels` and a
/// stereo source — one track per channel (a dialer recording with the rep on one side and the
/// customer on the other), so each can be transcribed with a real speaker label.
pub fn prepare_tracks(
    path: &Path,
    extension: Option<&str>,
    split_channels: bool,
) -> Result<Vec<Prepared>, AudioError> {
    let file = File::open(path)?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| AudioError::Decode(format!("unrecognised container: {e}")))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::Decode("the file has no audio track".into()))?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let codec_name = if params.codec == CODEC_TYPE_OPUS {
        "opus".to_owned()
    } else {
        symphonia::default::get_codecs()
            .get_codec(params.codec)
            .map(|d| d.short_name.to_owned())
            .unwrap_or_else(|| format!("{:?}", params.codec))
    };
    let mut decoder =
        match symphonia::default::get_codecs().make(&params, &DecoderOptions::default()) {
            Ok(d) => d,
            Err(SymphoniaError::Unsupported(_)) => {
                return Err(AudioError::UnsupportedCodec(codec_name));
            }
            Err(e) => return Err(AudioError::Decode(e.to_string())),
        };
    let mut source_rate = params.sample_rate.unwrap_or(0);
    let mut source_channels = params.channels.map(|c| c.count()).unwrap_or(0);
    // Only for decoders whose samples are not f32 already (MP3, AAC, Vorbis are).
    let mut converted: Option<AudioBuffer<f32>> = None;
    let mut tracks: Vec<Track> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(AudioError::Decode(e.to_string())),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            // A corrupt frame is skipped, as players do; a file of nothing but corrupt frames
            // ends with nothing decoded and fails below.
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(e) => return Err(AudioError::Decode(e.to_string())),
        };
        let spec = *decoded.spec();
        source_rate = spec.rate;
        source_channels = spec.channels.count();
        // The decoder's own planar buffer, one slice per channel: downmixed straight from
        // there, with no interleaved copy in between.
        let buf: &AudioBuffer<f32> = match &decoded {
            AudioBufferRef::F32(buf) => buf.as_ref(),
            other => {
                let fits = converted
                    .as_ref()
                    .is_some_and(|c| c.capacity() >= other.capacity() && *c.spec() == spec);
                if !fits {
                    converted = Some(AudioBuffer::new(other.capacity() as u64, spec));
                }
                let dest = converted.as_mut().expect("made above");
                other.convert(dest);
                dest
            }
        };
        let planes = buf.planes();
        let planes = planes.planes();
        let channels = planes.len().max(1);
        if tracks.is_empty() {
            let count = if split_channels && channels >= 2 {
                2
            } else {
                1
            };
            for _ in 0..count {
                tracks.push(Track::new()?);
            }
        }
        if planes.is_empty() {
            continue;
        }
        if tracks.len() == 1 {
            let t = &mut tracks[0];
            t.input.clear();
            t.input.extend_from_slice(planes[0]);
            if channels > 1 {
                for plane in &planes[1..] {
                    for (sum, x) in t.input.iter_mut().zip(plane.iter()) {
                        *sum += *x;
                    }
                }
                let scale = 1.0 / channels as f32;
                for sum in t.input.iter_mut() {
                    *sum *= scale;
                }
            }
            t.push(source_rate)?;
        } else {
            for (t, plane) in tracks.iter_mut().zip(planes.iter()) {
                t.input.clear();
                t.input.extend_from_slice(plane);
                t.push(source_rate)?;
            }
        }
    }
    if tracks.is_empty() {
        return Err(AudioError::Decode(
            "no audio could be decoded from the file".into(),
        ));
    }
    tracks
        .into_iter()
        .map(|t| t.finish(&codec_name, source_rate, source_channels))
        .collect()
}

/// A FLAC encoder source reading 16-bit mono samples from the scratch file.
struct PcmSource {
    reader: BufReader<File>,
    remaining: usize,
    buf: Vec<i32>,
    bytes: Vec<u8>,
}

impl flacenc::source::Source for PcmSource {
    fn channels(&self) -> usize {
        1
    }
    fn bits_per_sample(&self) -> usize {
        16
    }
    fn sample_rate(&self) -> usize {
        TARGET_RATE as usize
    }
    fn read_samples<F: flacenc::source::Fill>(
        &mut self,
        block_size: usize,
        dest: &mut F,
    ) -> Result<usize, flacenc::error::SourceError> {
        let n = block_size.min(self.remaining);
        self.bytes.resize(n * 2, 0);
        self.reader.read_exact(&mut self.bytes).map_err(|_| {
            flacenc::error::SourceError::by_reason(flacenc::error::SourceErrorReason::IO(None))
        })?;
        self.buf.clear();
        self.buf.extend(
            self.bytes
                .chunks_exact(2)
                .map(|b| i32::from(i16::from_le_bytes([b[0], b[1]]))),
        );
        self.remaining -= n;
        dest.fill_interleaved(&self.buf)?;
        Ok(n)
    }
}

/// Encodes `[start_ms, end_ms)` of the prepared audio as a FLAC file.
///
/// Frames are written as they are encoded, so memory holds the compressed output and one
/// 4,096-sample block, not the chunk's samples or its encoded frames. Fixed predictors only (no
/// LPC search): on speech the output is about 4 % larger and encoding is about three times
/// faster (measured in docs/BENCHMARKS.md); the chunk limits are far from binding either way.
pub fn encode_flac(prepared: &Prepared, start_ms: u64, end_ms: u64) -> Result<Vec<u8>, AudioError> {
    use flacenc::component::BitRepr;
    use flacenc::source::Source;
    const BLOCK: usize = 4096;
    let rate = u64::from(TARGET_RATE);
    let total = prepared.samples;
    let first = (start_ms * rate / 1000).min(total);
    let last = (end_ms * rate / 1000).min(total);
    let mut file = prepared.pcm.reopen()?;
    file.seek(SeekFrom::Start(first * 2))?;
    let samples = (last - first) as usize;
    let mut source = PcmSource {
        reader: BufReader::with_capacity(128 * 1024, file),
        remaining: samples,
        buf: Vec::with_capacity(BLOCK),
        bytes: Vec::with_capacity(BLOCK * 2),
    };
    let mut settings = flacenc::config::Encoder::default();
    settings.block_size = BLOCK;
    settings.subframe_coding.use_lpc = false;
    let config = flacenc::error::Verify::into_verified(settings)
        .map_err(|(_, e)| AudioError::Decode(format!("FLAC encoder settings: {e:?}")))?;
    let bad = |e: &dyn std::fmt::Debug| AudioError::Decode(format!("FLAC encoding failed: {e:?}"));
    let mut stream =
        flacenc::component::Stream::new(TARGET_RATE as usize, 1, 16).map_err(|e| bad(&e))?;
    stream
        .stream_info_mut()
        .set_block_sizes(BLOCK, BLOCK)
        .map_err(|e| bad(&e))?;
    stream.stream_info_mut().set_total_samples(samples);
    let mut sink = flacenc::bitsink::ByteSink::with_capacity(samples * 10);
    // A stream with no frames yet writes just the marker and STREAMINFO.
    stream.write(&mut sink).map_err(|e| bad(&e))?;
    let mut framebuf = flacenc::source::FrameBuf::with_size(1, BLOCK).map_err(|e| bad(&e))?;
    let mut frame_number = 0;
    loop {
        let n = source
            .read_samples(BLOCK, &mut framebuf)
            .map_err(|e| bad(&e))?;
        if n == 0 {
            break;
        }
        let frame = flacenc::encode_fixed_size_frame(
            &config,
            &framebuf,
            frame_number,
            stream.stream_info(),
        )
        .map_err(|e| bad(&e))?;
        frame.write(&mut sink).map_err(|e| bad(&e))?;
        frame_number += 1;
    }
    Ok(sink.into_inner())
}

/// A 16-bit PCM WAV file around interleaved little-endian sample bytes: what tests, fixtures
/// and benchmarks feed the decoder (salesai never writes WAV itself).
pub fn pcm16_wav(channels: u16, rate: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(44 + data.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
    out.extend_from_slice(&(2 * channels).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(path: &Path, rate: u32, channels: u16, seconds: f32, tone_hz: f32) {
        let n = (rate as f32 * seconds) as usize;
        let mut data = Vec::with_capacity(n * channels as usize * 2);
        for i in 0..n {
            let v = if (i as f32 / rate as f32) < seconds / 2.0 {
                (2.0 * std::f32::consts::PI * tone_hz * i as f32 / rate as f32).sin() * 0.5
            } else {
                0.0
            };
            for _ in 0..channels {
                data.extend_from_slice(&((v * 32767.0) as i16).to_le_bytes());
            }
        }
        let out = pcm16_wav(channels, rate, &data);
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn stereo_44k_becomes_16k_mono_with_an_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wav");
        wav(&path, 44_100, 2, 4.0, 440.0);
        let prepared = prepare(&path, Some("wav")).unwrap();
        assert_eq!(
            (prepared.source_rate, prepared.source_channels),
            (44_100, 2)
        );
        assert!(
            (3_950..=4_050).contains(&prepared.duration_ms),
            "{}",
            prepared.duration_ms
        );
        assert!(
            (40..=41).contains(&prepared.energy.len()),
            "{}",
            prepared.energy.len()
        );
        assert!(
            prepared.energy[5] > 0.3,
            "tone half is loud: {}",
            prepared.energy[5]
        );
        assert!(
            prepared.energy[35] < 0.001,
            "silent half is quiet: {}",
            prepared.energy[35]
        );
        let bytes = std::fs::metadata(prepared.pcm.path()).unwrap().len();
        assert_eq!(bytes, prepared.samples * 2);

        let flac = encode_flac(&prepared, 1_000, 3_000).unwrap();
        assert!(flac.starts_with(b"fLaC"));
        // Decode it back: two seconds at 16 kHz mono.
        let back = dir.path().join("back.flac");
        std::fs::write(&back, &flac).unwrap();
        let again = prepare(&back, Some("flac")).unwrap();
        assert_eq!((again.source_rate, again.source_channels), (16_000, 1));
        assert!(
            (1_990..=2_010).contains(&again.duration_ms),
            "{}",
            again.duration_ms
        );
    }

    #[test]
    fn the_resampler_keeps_a_tone_and_rejects_aliases() {
        let mut r = Resampler::new(48_000, 16_000);
        let input: Vec<f32> = (0..48_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 48_000.0).sin())
            .collect();
        let mut out = Vec::new();
        r.process(&input, &mut out);
        let rms = (out[2000..14000].iter().map(|v| v * v).sum::<f32>() / 12000.0).sqrt();
        assert!((rms - 0.707).abs() < 0.02, "1 kHz passes: {rms}");
        let mut r = Resampler::new(48_000, 16_000);
        let alias: Vec<f32> = (0..48_000)
            .map(|i| (2.0 * std::f32::consts::PI * 12_000.0 * i as f32 / 48_000.0).sin())
            .collect();
        let mut out = Vec::new();
        r.process(&alias, &mut out);
        let rms = (out[2000..14000].iter().map(|v| v * v).sum::<f32>() / 12000.0).sqrt();
        assert!(
            rms < 0.02,
            "12 kHz would alias to 4 kHz; it is filtered: {rms}"
        );
    }

    #[test]
    fn stereo_channels_can_be_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wav");
        // Left: a tone for the whole file; right: silence.
        let rate = 8_000u32;
        let mut data = Vec::new();
        for i in 0..rate * 2 {
            let v = ((2.0 * std::f32::consts::PI * 300.0 * i as f32 / rate as f32).sin()
                * 0.5
                * 32767.0) as i16;
            data.extend_from_slice(&v.to_le_bytes());
            data.extend_from_slice(&0i16.to_le_bytes());
        }
        let out = pcm16_wav(2, rate, &data);
        std::fs::write(&path, out).unwrap();
        let tracks = prepare_tracks(&path, Some("wav"), true).unwrap();
        assert_eq!(tracks.len(), 2);
        assert!(tracks[0].energy[5] > 0.2, "left is loud");
        assert!(tracks[1].energy[5] < 0.001, "right is silent");
        assert_eq!(tracks[0].samples, tracks[1].samples);
        let mixed = prepare_tracks(&path, Some("wav"), false).unwrap();
        assert_eq!(mixed.len(), 1);
        assert!(
            (mixed[0].energy[5] - 0.177).abs() < 0.02,
            "downmix halves the tone: {}",
            mixed[0].energy[5]
        );
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.mp3");
        std::fs::write(&path, vec![0x42u8; 10_000]).unwrap();
        let err = prepare(&path, Some("mp3")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::AudioDecodeFailed, "{err}");
    }
}
