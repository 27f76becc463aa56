//! Property-based fuzzing of the parsers that read what people and machines upload: the
//! transcript parsers (WebVTT, SRT, JSON, plain text), the media sniffer and the calls list's
//! cursor. Arbitrary and near-valid inputs must give a result or an error, never a panic, and
//! what comes out must hold its invariants. The tricky files in `tests/corpus/` are parsed every
//! run; proptest keeps any failing case it finds in `proptest-regressions/` (commit them).
//! Bounded: proptest's default 256 cases per property (set `PROPTEST_CASES` for longer runs).

use proptest::prelude::*;
use salesai_core::media::{looks_like_html, sniff};
use salesai_core::store::CallCursor;
use salesai_core::transcript::{detect_format, parse_transcript};

fn check_segments(text: &str) {
    if let Ok((_, segments)) = parse_transcript(text) {
        assert!(!segments.is_empty(), "an Ok transcript has lines");
        for s in &segments {
            assert!(s.start_ms <= s.end_ms, "{s:?} ends before it starts");
            assert!(!s.text.trim().is_empty(), "an empty line was kept: {s:?}");
        }
    }
}

#[test]
fn the_corpus_parses_without_panicking() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/transcripts");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let _ = sniff(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = detect_format(&text);
        check_segments(&text);
        seen += 1;
    }
    assert!(seen >= 8, "the corpus is in the repository ({seen} files)");
}

/// A timestamp as people and tools write them, valid or not.
fn stamp() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100, 0u64..60, 0u64..60, 0u64..1000)
            .prop_map(|(h, m, s, ms)| format!("{h:02}:{m:02}:{s:02}.{ms:03}")),
        (0u64..60, 0u64..60, 0u64..1000).prop_map(|(m, s, ms)| format!("{m:02}:{s:02},{ms:03}")),
        any::<u64>().prop_map(|n| format!("{n}:00:00.000")),
        "[0-9:.,]{0,14}",
        Just(String::new()),
    ]
}

/// A near-valid cue file: a header or not, cues with valid or broken timestamps and text.
fn cue_file() -> impl Strategy<Value = String> {
    (
        prop::bool::ANY,
        prop::collection::vec(
            (
                stamp(),
                stamp(),
                "\\PC{0,40}",
                prop::option::of("[A-Za-z業務客戶 ]{0,8}"),
            ),
            0..12,
        ),
    )
        .prop_map(|(header, cues)| {
            let mut out = if header {
                "WEBVTT\n\n".to_owned()
            } else {
                String::new()
            };
            for (i, (a, b, text, who)) in cues.into_iter().enumerate() {
                out.push_str(&format!("{}\n{a} --> {b}\n", i + 1));
                match who {
                    Some(w) => out.push_str(&format!("<v {w}>{text}\n\n")),
                    None => out.push_str(&format!("{text}\n\n")),
                }
            }
            out
        })
}

/// A near-valid JSON transcript.
fn json_file() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        any::<i64>().prop_map(|i| serde_json::json!(i)),
        "\\PC{0,6}".prop_map(|s| serde_json::json!(s)),
        Just(serde_json::Value::Null),
    ];
    prop::collection::vec((number.clone(), number, "\\PC{0,30}"), 0..8).prop_map(|items| {
        let segs: Vec<serde_json::Value> = items
            .into_iter()
            .map(|(s, e, t)| serde_json::json!({"start": s, "end": e, "text": t}))
            .collect();
        serde_json::json!({ "segments": segs }).to_string()
    })
}

proptest! {
    #[test]
    fn any_text_parses_or_is_refused(text in "\\PC{0,400}") {
        check_segments(&text);
    }

    #[test]
    fn any_bytes_as_text(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check_segments(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn near_valid_cue_files(text in cue_file()) {
        check_segments(&text);
    }

    #[test]
    fn near_valid_json(text in json_file()) {
        check_segments(&text);
    }

    #[test]
    fn speaker_lines_in_plain_text(lines in prop::collection::vec(("[業務客戶A-Za-z ]{0,6}", prop::sample::select(vec![":", "：", " : ", ""]), "\\PC{0,30}"), 0..20)) {
        let text: String = lines.iter().map(|(w, c, t)| format!("{w}{c}{t}\n")).collect();
        check_segments(&text);
    }

    #[test]
    fn the_sniffer_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let _ = sniff(&bytes);
        let _ = looks_like_html(&bytes);
    }

    #[test]
    fn cursors_decode_anything_and_round_trip(raw in "\\PC{0,80}", us in -62_000_000_000_000_000i64..250_000_000_000_000_000, id in "[a-f0-9-]{1,64}", score in prop::option::of(0u8..=100)) {
        let _ = CallCursor::decode(&raw);
        if let Some(call_at) = chrono::DateTime::from_timestamp_micros(us) {
            let cursor = CallCursor { call_at, id, score };
            prop_assert_eq!(CallCursor::decode(&cursor.encode()), Some(cursor));
        }
    }
}
