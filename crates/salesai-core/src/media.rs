//! What an upload is, decided by its first bytes (magic numbers), never by its file name: the
//! original named every file `audio.mp3` whatever it held.

use serde::{Deserialize, Serialize};

/// A recognised upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// MPEG audio (MP3).
    Mp3,
    /// RIFF WAVE.
    Wav,
    /// FLAC.
    Flac,
    /// Ogg (Vorbis or Opus).
    Ogg,
    /// MP4 / M4A (AAC).
    M4a,
    /// WebM / Matroska.
    Webm,
    /// A text transcript (WebVTT, SRT, JSON or plain text).
    Transcript,
}

impl MediaKind {
    /// Audio, rather than a transcript.
    pub fn is_audio(self) -> bool {
        self != MediaKind::Transcript
    }

    /// The file extension salesai stores it under.
    pub fn extension(self) -> &'static str {
        match self {
            MediaKind::Mp3 => "mp3",
            MediaKind::Wav => "wav",
            MediaKind::Flac => "flac",
            MediaKind::Ogg => "ogg",
            MediaKind::M4a => "m4a",
            MediaKind::Webm => "webm",
            MediaKind::Transcript => "txt",
        }
    }
}

/// What uploads may be, for error messages.
pub const ACCEPTED: &str = "audio (MP3, M4A/AAC, WAV, FLAC, Ogg Vorbis/Opus, WebM) or a transcript (WebVTT, SRT, JSON segments, UTF-8 text)";

/// Recognises an upload from its first bytes (64 are plenty).
pub fn sniff(head: &[u8]) -> Option<MediaKind> {
    if head.starts_with(b"ID3") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0) {
        return Some(MediaKind::Mp3);
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WAVE" {
        return Some(MediaKind::Wav);
    }
    if head.starts_with(b"fLaC") {
        return Some(MediaKind::Flac);
    }
    if head.starts_with(b"OggS") {
        return Some(MediaKind::Ogg);
    }
    if head.len() >= 8 && &head[4..8] == b"ftyp" {
        return Some(MediaKind::M4a);
    }
    if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return Some(MediaKind::Webm);
    }
    if looks_like_html(head) {
        // A web page is never a recording or a transcript: it is what a file host answers
        // instead of the file when the request lacked the right credentials.
        return None;
    }
    looks_like_text(head).then_some(MediaKind::Transcript)
}

/// An HTML document (`<!DOCTYPE html`, `<html`, `<head`), after any BOM and white space.
pub fn looks_like_html(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let start = text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .to_ascii_lowercase();
    ["<!doctype html", "<html", "<head", "<!--"]
        .iter()
        .any(|p| start.starts_with(p))
}

/// UTF-8 without control bytes (a cut multi-byte character at the end is allowed).
fn looks_like_text(head: &[u8]) -> bool {
    if head.is_empty() {
        return false;
    }
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !valid.is_empty()
        && !valid
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{feff}'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers_win_over_names() {
        assert_eq!(sniff(b"ID3\x04\x00rest"), Some(MediaKind::Mp3));
        assert_eq!(sniff(&[0xFF, 0xFB, 0x90, 0x00]), Some(MediaKind::Mp3));
        assert_eq!(sniff(b"RIFF\x24\x00\x00\x00WAVEfmt "), Some(MediaKind::Wav));
        assert_eq!(sniff(b"fLaC\x00\x00"), Some(MediaKind::Flac));
        assert_eq!(sniff(b"OggS\x00\x02"), Some(MediaKind::Ogg));
        assert_eq!(sniff(b"\x00\x00\x00\x20ftypM4A "), Some(MediaKind::M4a));
        assert_eq!(
            sniff(&[0x1A, 0x45, 0xDF, 0xA3, 0x01]),
            Some(MediaKind::Webm)
        );
        assert_eq!(
            sniff("WEBVTT\n\n00:00.000 --> 00:01.000\n你好".as_bytes()),
            Some(MediaKind::Transcript)
        );
        assert_eq!(sniff(b"<!DOCTYPE html><html><head>"), None);
        assert!(looks_like_html(b"\xef\xbb\xbf  <HTML lang=en>"));
        assert!(!looks_like_html(b"WEBVTT"));
        let cut = &"老闆說".as_bytes()[..7];
        assert_eq!(
            sniff(cut),
            Some(MediaKind::Transcript),
            "a character cut at the boundary is fine"
        );
        assert_eq!(sniff(b"%PDF-1.7\x00\x01\x02"), None);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n"), None);
        assert_eq!(sniff(b""), None);
    }
}
