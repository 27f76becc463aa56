//! Transcripts: the segment type every stage shares, and parsers for the transcript files
//! salesai accepts instead of audio (WebVTT, SRT, JSON segments, plain text).

use serde::{Deserialize, Serialize};

use crate::domain::InvalidInput;

/// One stretch of speech.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Segment {
    /// Who spoke: a label from the file, a channel's side, or a voice found in mono audio
    /// ("Speaker 1"); `None` when nobody can say (overlapping speech, a turn too short to place).
    pub speaker: Option<String>,
    /// Start, milliseconds from the beginning of the recording.
    pub start_ms: u64,
    /// End, milliseconds from the beginning of the recording.
    pub end_ms: u64,
    /// What was said.
    pub text: String,
    /// The speaker's side of the table, once salesai has placed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// How the speaker and role are known: the analysis trusts a fact more than an inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
    /// Confidence in the speaker and role, percent: 100 for what is known, less for an
    /// inference (the share of the segment's time its voice covers, times how sure the role is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
}

impl Segment {
    /// A segment with text and times only: who spoke is not known yet.
    pub fn said(start_ms: u64, end_ms: u64, text: impl Into<String>) -> Segment {
        Segment {
            start_ms,
            end_ms,
            text: text.into(),
            ..Segment::default()
        }
    }
}

/// Which side of the table a speaker is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The seller: salesai's user.
    Rep,
    /// Anyone on the buying side.
    Customer,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Rep => "rep",
            Role::Customer => "customer",
        }
    }

    /// Reads a stored name.
    pub fn parse(raw: &str) -> Option<Role> {
        match raw {
            "rep" => Some(Role::Rep),
            "customer" => Some(Role::Customer),
            _ => None,
        }
    }

    /// The other side.
    pub fn other(self) -> Role {
        match self {
            Role::Rep => Role::Customer,
            Role::Customer => Role::Rep,
        }
    }
}

/// How salesai knows who spoke a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Attribution {
    /// A fact: a stereo channel, a label in the uploaded transcript, or a person's correction.
    Known,
    /// Inferred: the voice from speaker turns of mono audio, the role from what was said and
    /// the rep's voice profile; see the segment's confidence.
    Inferred,
    /// Overlapping speech, or a turn too short to place: no speaker is guessed.
    Uncertain,
}

impl Attribution {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Attribution::Known => "known",
            Attribution::Inferred => "inferred",
            Attribution::Uncertain => "uncertain",
        }
    }

    /// Reads a stored name.
    pub fn parse(raw: &str) -> Option<Attribution> {
        match raw {
            "known" => Some(Attribution::Known),
            "inferred" => Some(Attribution::Inferred),
            "uncertain" => Some(Attribution::Uncertain),
            _ => None,
        }
    }
}

/// A transcript file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TranscriptFormat {
    /// WebVTT (`WEBVTT` header, `00:00:01.000 --> …` cues).
    WebVtt,
    /// SubRip (numbered cues, `00:00:01,000 --> …`).
    Srt,
    /// JSON: an array of `{start, end, text, speaker?}` in seconds, or `{"segments": [...]}`
    /// (OpenAI `verbose_json`).
    Json,
    /// Plain UTF-8 text; `Name: words` lines keep their speaker.
    Text,
}

impl TranscriptFormat {
    /// Its usual file extension, kept as the conversation's media format once parsed: `txt`
    /// alone means the times were estimated ([`crate::domain::Media::times_estimated`]).
    pub fn extension(self) -> &'static str {
        match self {
            TranscriptFormat::WebVtt => "vtt",
            TranscriptFormat::Srt => "srt",
            TranscriptFormat::Json => "json",
            TranscriptFormat::Text => "txt",
        }
    }
}

/// Recognises a transcript by its content (never by its file name).
pub fn detect_format(text: &str) -> TranscriptFormat {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with("WEBVTT") {
        TranscriptFormat::WebVtt
    } else if trimmed.starts_with('{') || trimmed.starts_with('[') {
        TranscriptFormat::Json
    } else if trimmed
        .lines()
        .take(3)
        .any(|l| l.contains("-->") && l.contains(','))
    {
        TranscriptFormat::Srt
    } else {
        TranscriptFormat::Text
    }
}

/// Parses a transcript file. Empty results are an error: there is nothing to analyse.
pub fn parse_transcript(text: &str) -> Result<(TranscriptFormat, Vec<Segment>), InvalidInput> {
    let format = detect_format(text);
    let body = text.trim_start_matches('\u{feff}');
    let segments = match format {
        TranscriptFormat::WebVtt | TranscriptFormat::Srt => parse_cues(body)?,
        TranscriptFormat::Json => parse_json(body)?,
        TranscriptFormat::Text => parse_text(body),
    };
    let segments: Vec<Segment> = segments
        .into_iter()
        .filter(|s| !s.text.trim().is_empty())
        .collect();
    if segments.is_empty() {
        return Err(InvalidInput(
            "the transcript holds no text; upload a WebVTT, SRT, JSON or plain-text transcript with the conversation".into(),
        ));
    }
    Ok((format, segments))
}

/// `HH:MM:SS.mmm`, `MM:SS.mmm` or with `,` as the decimal separator.
fn parse_timestamp(raw: &str) -> Option<u64> {
    let raw = raw.trim().replace(',', ".");
    let (clock, fraction) = raw.split_once('.').unwrap_or((&raw, "0"));
    let parts: Vec<u64> = clock
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    // Bounded, so no number in a file can overflow (found by the fuzz tests): a call of more
    // than 1,000 hours is not a call.
    let (h, m, s) = match parts.as_slice() {
        [h, m, s] => (*h, *m, *s),
        [m, s] => (0, *m, *s),
        _ => return None,
    };
    if h > 1_000 || m > 60_000 || s > 3_600_000 {
        return None;
    }
    let seconds = h * 3600 + m * 60 + s;
    if seconds > 1_000 * 3600 {
        return None;
    }
    // The first three digits of the fraction (characters, not bytes: "5字" must not split).
    let digits: String = fraction.chars().take(3).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let millis: u64 = format!("{digits:0<3}").parse().ok()?;
    Some(seconds * 1000 + millis)
}

fn parse_cues(body: &str) -> Result<Vec<Segment>, InvalidInput> {
    let mut segments = Vec::new();
    let normalized = body.replace("\r\n", "\n");
    for block in normalized.split("\n\n") {
        let mut lines = block.lines().skip_while(|l| !l.contains("-->"));
        let Some(timing) = lines.next() else { continue };
        let (start, rest) = timing
            .split_once("-->")
            .ok_or_else(|| InvalidInput(format!("cue timing {timing:?} is not `start --> end`")))?;
        let end = rest.split_whitespace().next().unwrap_or_default();
        let (Some(start_ms), Some(end_ms)) = (parse_timestamp(start), parse_timestamp(end)) else {
            return Err(InvalidInput(format!(
                "cue timing {timing:?} has a timestamp that is not HH:MM:SS.mmm"
            )));
        };
        let mut speaker = None;
        let mut text = Vec::new();
        for line in lines {
            let mut line = line.trim().to_owned();
            // WebVTT voice tags: <v Name>text</v>
            if let Some(rest) = line.strip_prefix("<v")
                && let Some((name, said)) = rest.split_once('>')
            {
                // `<v.class Name>`: classes come first, up to the first space.
                let name = if name.starts_with('.') {
                    name.split_once(' ').map_or("", |(_, n)| n)
                } else {
                    name
                };
                speaker = Some(name.trim().to_owned());
                line = said.replace("</v>", "");
            }
            let cleaned = strip_tags(&line);
            if !cleaned.is_empty() {
                text.push(cleaned);
            }
        }
        let joined = text.join(" ");
        let (speaker, joined) = match speaker {
            Some(s) => (Some(s), joined),
            None => split_speaker(&joined),
        };
        segments.push(Segment {
            speaker,
            start_ms,
            end_ms: end_ms.max(start_ms),
            text: joined,
            ..Default::default()
        });
    }
    Ok(segments)
}

fn strip_tags(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_tag = false;
    for c in line.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_owned()
}

/// `Name: words` → (Some(Name), words) when the name is short and has no sentence punctuation.
fn split_speaker(line: &str) -> (Option<String>, String) {
    // The first colon, full-width or ASCII ("業務:" is as common as "業務：" in typed notes); a
    // label is short, has a letter, no sentence punctuation, and is not a clock time ("12:30").
    let split = line
        .find(['：', ':'])
        .map(|at| {
            let colon = line[at..].chars().next().map_or(1, char::len_utf8);
            (&line[..at], &line[at + colon..])
        })
        .filter(|(name, said)| {
            let n = name.trim();
            let clock_time = n.chars().last().is_some_and(|c| c.is_ascii_digit())
                && said.chars().next().is_some_and(|c| c.is_ascii_digit());
            !n.is_empty()
                && !clock_time
                && n.chars().count() <= 24
                && n.chars().any(char::is_alphabetic)
                && !n.contains(['.', '?', '!', '。', '？', '，', ','])
                && !said.starts_with("//")
        });
    match split {
        Some((name, said)) => (Some(name.trim().to_owned()), said.trim().to_owned()),
        None => (None, line.trim().to_owned()),
    }
}

#[derive(Deserialize)]
struct JsonSegment {
    #[serde(default)]
    start: f64,
    #[serde(default)]
    end: f64,
    text: String,
    #[serde(default)]
    speaker: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonTranscript {
    List(Vec<JsonSegment>),
    Object { segments: Vec<JsonSegment> },
}

fn parse_json(body: &str) -> Result<Vec<Segment>, InvalidInput> {
    let parsed: JsonTranscript = serde_json::from_str(body).map_err(|e| {
        InvalidInput(format!(
            "the JSON transcript is not a list of {{start, end, text}} segments (seconds) or {{\"segments\": [...]}}: {e}"
        ))
    })?;
    let list = match parsed {
        JsonTranscript::List(list) | JsonTranscript::Object { segments: list } => list,
    };
    let mut segments = Vec::with_capacity(list.len());
    for s in list {
        if !(s.start.is_finite() && s.end.is_finite()) || s.start < 0.0 || s.end < 0.0 {
            return Err(InvalidInput(
                "segment times must be non-negative seconds".into(),
            ));
        }
        let start_ms = (s.start * 1000.0).round() as u64;
        segments.push(Segment {
            speaker: s.speaker.filter(|v| !v.trim().is_empty()),
            start_ms,
            end_ms: ((s.end * 1000.0).round() as u64).max(start_ms),
            text: s.text.trim().to_owned(),
            ..Default::default()
        });
    }
    Ok(segments)
}

/// Plain text has no times; they are estimated from the text's length (about 4 CJK characters
/// or 15 other characters a second), so quotes still point at roughly the right place.
fn parse_text(body: &str) -> Vec<Segment> {
    let mut at = 0u64;
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (speaker, text) = split_speaker(line);
            let cjk = text.chars().filter(|c| is_cjk(*c)).count() as u64;
            let other = text.chars().count() as u64 - cjk;
            let duration = (cjk * 250 + other * 66).max(500);
            let segment = Segment {
                speaker,
                start_ms: at,
                end_ms: at + duration,
                text,
                ..Default::default()
            };
            at += duration;
            segment
        })
        .collect()
}

/// Whether a character is a CJK ideograph (used for length estimates and tokenising).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Whether a character belongs to a script written without spaces between words, which the
/// search's gram index covers: CJK ideographs of the Basic Multilingual Plane, kana and Hangul
/// syllables. (Kept to the BMP so SQLite's `unicode61` tokenizer reads every one as a letter.)
pub fn is_gram_char(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF // ideographs
        | 0x3041..=0x3096 | 0x30A1..=0x30FA // hiragana, katakana
        | 0xAC00..=0xD7A3) // Hangul syllables
}

/// The single characters and adjacent pairs of the unspaced-script runs of some text, for the
/// index that answers searches too short for a trigram index (`斑馬`, `萬`). A term of one or
/// two such characters is in a line exactly when it is one of that line's grams, so the index
/// gives the same calls as scanning every line with `LIKE` would.
#[derive(Debug, Default, Clone)]
pub struct SearchGrams {
    /// A character alone (`None`) or followed by the next; ordered as their text would be.
    grams: std::collections::BTreeSet<(char, Option<char>)>,
}

impl SearchGrams {
    /// Adds one line's (or one document's) grams; pairs never span two calls of `add`.
    pub fn add(&mut self, text: &str) {
        let mut previous: Option<char> = None;
        for c in text.chars() {
            if is_gram_char(c) {
                self.grams.insert((c, None));
                if let Some(p) = previous {
                    self.grams.insert((p, Some(c)));
                }
                previous = Some(c);
            } else {
                previous = None;
            }
        }
    }

    /// Whether no gram was found.
    pub fn is_empty(&self) -> bool {
        self.grams.is_empty()
    }

    /// How many distinct grams there are.
    pub fn len(&self) -> usize {
        self.grams.len()
    }

    /// The grams as one space-separated string, in a stable order: what the index stores.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.grams.len() * 7);
        for (i, (first, second)) in self.grams.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push(*first);
            if let Some(second) = second {
                out.push(*second);
            }
        }
        out
    }
}

/// The gram a search term is, when it is one the gram index answers: one or two characters of
/// an unspaced script (surrounding space trimmed). Longer terms go to the trigram index; short
/// terms in other scripts (`AI`, `5G`) are looked for line by line.
pub fn search_gram(term: &str) -> Option<String> {
    let term = term.trim();
    let n = term.chars().count();
    ((1..=2).contains(&n) && term.chars().all(is_gram_char)).then(|| term.to_owned())
}

/// `m:ss` for a millisecond offset, as quotes are shown to people.
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grams_are_the_characters_and_pairs_of_each_run() {
        let mut grams = SearchGrams::default();
        grams.add("斑馬線 zebra 案子");
        grams.add("好");
        assert_eq!(grams.to_text(), "好 子 斑 斑馬 案 案子 線 馬 馬線");
        // Pairs never cross a space, a Latin word or a line.
        let mut two = SearchGrams::default();
        two.add("是 萬");
        two.add("萬");
        assert_eq!(two.to_text(), "是 萬");
        assert!(SearchGrams::default().is_empty());
        let mut latin = SearchGrams::default();
        latin.add("AI 5G only, ，。");
        assert!(latin.is_empty());
        // Kana and Hangul are unspaced-script characters too.
        let mut other = SearchGrams::default();
        other.add("カタ한국");
        assert_eq!(other.len(), 7);
    }

    #[test]
    fn only_short_unspaced_terms_are_grams() {
        assert_eq!(search_gram(" 斑馬 ").as_deref(), Some("斑馬"));
        assert_eq!(search_gram("萬").as_deref(), Some("萬"));
        assert_eq!(
            search_gram("斑馬線"),
            None,
            "three characters: the trigram index"
        );
        assert_eq!(search_gram("AI"), None);
        assert_eq!(search_gram("A股"), None);
        assert_eq!(search_gram(""), None);
        assert_eq!(search_gram("，"), None);
    }

    #[test]
    fn webvtt_with_voices() {
        let vtt = "WEBVTT\n\n1\n00:00:01.000 --> 00:00:04.500\n<v Rep>How do you take orders today?</v>\n\n00:01:05.250 --> 00:01:09.000 align:start\n<v.loud Customer>By hand, <b>and</b> we lose tickets.\n";
        let (format, segments) = parse_transcript(vtt).unwrap();
        assert_eq!(format, TranscriptFormat::WebVtt);
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[0].speaker.as_deref(), Some("Rep"));
        assert_eq!((segments[0].start_ms, segments[0].end_ms), (1000, 4500));
        assert_eq!(segments[1].speaker.as_deref(), Some("Customer"));
        assert_eq!(segments[1].start_ms, 65_250);
        assert_eq!(segments[1].text, "By hand, and we lose tickets.");
    }

    #[test]
    fn srt_with_speaker_prefixes() {
        let srt = "1\r\n00:00:00,000 --> 00:00:02,000\r\n老闆: 我們現在用手寫單\r\n\r\n2\r\n00:00:02,000 --> 00:00:05,123\r\nRep: Then let's fix that.\r\n";
        let (format, segments) = parse_transcript(srt).unwrap();
        assert_eq!(format, TranscriptFormat::Srt);
        assert_eq!(segments[0].speaker.as_deref(), Some("老闆"));
        assert_eq!(segments[0].text, "我們現在用手寫單");
        assert_eq!(segments[1].end_ms, 5123);
    }

    #[test]
    fn json_lists_and_verbose_json() {
        let list = r#"[{"start": 0.5, "end": 2, "text": " hi ", "speaker": "A"}]"#;
        let (_, a) = parse_transcript(list).unwrap();
        assert_eq!(
            a[0],
            Segment {
                speaker: Some("A".into()),
                start_ms: 500,
                end_ms: 2000,
                text: "hi".into(),
                ..Default::default()
            }
        );
        let verbose =
            r#"{"text": "x", "segments": [{"id": 0, "start": 1.0, "end": 1.5, "text": "yes"}]}"#;
        let (format, b) = parse_transcript(verbose).unwrap();
        assert_eq!(format, TranscriptFormat::Json);
        assert_eq!(b[0].start_ms, 1000);
        assert!(
            parse_transcript(r#"{"nope": 1}"#)
                .unwrap_err()
                .0
                .contains("segments")
        );
    }

    #[test]
    fn plain_text_gets_monotonic_estimated_times() {
        let (format, segments) =
            parse_transcript("Rep: Hello there\n\nCustomer: 我們每天都很忙\nok").unwrap();
        assert_eq!(format, TranscriptFormat::Text);
        assert_eq!(segments.len(), 3);
        assert!(segments.windows(2).all(|w| w[0].end_ms == w[1].start_ms));
        assert_eq!(segments[2].speaker, None);
        assert!(parse_transcript("  \n \n").is_err());
    }

    #[test]
    fn bad_cue_times_are_explained() {
        let err = parse_transcript("WEBVTT\n\nxx:yy --> 00:01.000\nhi\n").unwrap_err();
        assert!(err.0.contains("HH:MM:SS"), "{}", err.0);
        assert_eq!(clock(65_000), "1:05");
        assert_eq!(clock(3_725_000), "1:02:05");
    }
}
