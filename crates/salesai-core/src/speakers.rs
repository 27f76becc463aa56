//! Who said what: speaker turns found in audio become speakers on transcript segments, and
//! every speaker is placed on a side of the table (rep or customer) — from a label the file or
//! the channel gives (known), or from how they talk and the rep's voice (inferred, with a
//! confidence).
//!
//! Architecture invariant: an inference never overwrites a fact. A segment whose role is
//! already known (a stereo channel, a label, a person's correction) keeps it; overlapping
//! speech and turns too short to place get no speaker rather than a guess.

use serde::{Deserialize, Serialize};

use crate::speech::{is_pain_text, is_question, patterns};
use crate::transcript::{Attribution, Role, Segment};

/// One stretch of a recording and who spoke in it, as the audio says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// Start, ms from the beginning of the recording.
    pub start_ms: u64,
    /// End, ms.
    pub end_ms: u64,
    /// The speaker's number (0-based, in order of first appearance); `None` for overlapping
    /// speech or a turn too short to place.
    pub speaker: Option<u32>,
    /// How sure the clustering is of the speaker, percent.
    pub confidence: u8,
}

/// One speaker's voice print: a fixed-length summary of their voice (spectral features), never
/// sent anywhere, compared by cosine similarity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Voice {
    /// The speaker's number, as in [`Turn::speaker`].
    pub speaker: u32,
    /// The print.
    pub print: Vec<f32>,
    /// Seconds of speech it was built from.
    pub seconds: f64,
}

/// The voices of a recording as the preparation heard them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diarization {
    /// Speaker turns, in time order (mono audio); empty when each channel is one speaker.
    pub turns: Vec<Turn>,
    /// One print per speaker (per channel for stereo dialer recordings).
    pub voices: Vec<Voice>,
    /// For a stereo recording split by channel: the rep's speaker number (a fact).
    #[serde(default)]
    pub rep_channel: Option<u32>,
}

/// A rep's voice profile: the mean print of calls where their side was known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoiceProfile {
    /// The mean print, weighted by seconds.
    pub print: Vec<f32>,
    /// Seconds of the rep's speech behind it.
    pub seconds: f64,
    /// Calls behind it.
    pub calls: u32,
}

impl VoiceProfile {
    /// The profile after learning `voice` (seconds-weighted mean; a print of another length —
    /// from an older feature set — starts the profile over).
    pub fn learn(profile: Option<VoiceProfile>, voice: &Voice) -> VoiceProfile {
        match profile {
            Some(p) if p.print.len() == voice.print.len() && p.seconds > 0.0 => {
                let total = p.seconds + voice.seconds;
                let print = p
                    .print
                    .iter()
                    .zip(&voice.print)
                    .map(|(a, b)| {
                        ((f64::from(*a) * p.seconds + f64::from(*b) * voice.seconds) / total) as f32
                    })
                    .collect();
                VoiceProfile {
                    print,
                    seconds: total,
                    calls: p.calls + 1,
                }
            }
            _ => VoiceProfile {
                print: voice.print.clone(),
                seconds: voice.seconds,
                calls: 1,
            },
        }
    }
}

/// Cosine similarity of two prints (0 when either is empty or their lengths differ).
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        dot += f64::from(*x) * f64::from(*y);
        na += f64::from(*x) * f64::from(*x);
        nb += f64::from(*y) * f64::from(*y);
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (dot / (na.sqrt() * nb.sqrt())) as f32
    }
}

/// The label of a voice found in mono audio ("Speaker 1", "說話者 1").
pub fn speaker_label(speaker: u32, chinese: bool) -> String {
    if chinese {
        format!("說話者 {}", speaker + 1)
    } else {
        format!("Speaker {}", speaker + 1)
    }
}

/// The speaker number back from a label made by [`speaker_label`].
pub fn speaker_number(label: &str) -> Option<u32> {
    let n = label
        .strip_prefix("Speaker ")
        .or_else(|| label.strip_prefix("說話者 "))?;
    n.parse::<u32>().ok()?.checked_sub(1)
}

/// The least share of a segment's time one voice must cover for the segment to be theirs.
const MAJORITY: f64 = 0.6;

/// Gives every segment the speaker whose turns cover most of its time, as an inference with
/// a confidence; a segment no voice covers for [`MAJORITY`] of its time (two people at once,
/// or turns too short to place) gets no speaker and is marked uncertain.
pub fn attach(segments: &mut [Segment], turns: &[Turn], chinese: bool) {
    let mut first = 0;
    for segment in segments.iter_mut() {
        // Turns are in time order: skip those that ended before this segment starts.
        while first < turns.len() && turns[first].end_ms <= segment.start_ms {
            first += 1;
        }
        let (start, end) = if segment.end_ms > segment.start_ms {
            (segment.start_ms, segment.end_ms)
        } else {
            (segment.start_ms, segment.start_ms + 1)
        };
        let mut cover: Vec<(u32, f64, f64)> = Vec::new();
        for turn in turns[first..].iter().take_while(|t| t.start_ms < end) {
            let overlap = turn
                .end_ms
                .min(end)
                .saturating_sub(turn.start_ms.max(start)) as f64;
            if overlap <= 0.0 {
                continue;
            }
            if let Some(speaker) = turn.speaker {
                match cover.iter_mut().find(|c| c.0 == speaker) {
                    Some(c) => {
                        c.1 += overlap;
                        c.2 += overlap * f64::from(turn.confidence);
                    }
                    None => cover.push((speaker, overlap, overlap * f64::from(turn.confidence))),
                }
            }
        }
        let length = (end - start) as f64;
        let best = cover.iter().max_by(|a, b| a.1.total_cmp(&b.1));
        // Segment edges from speech-to-text are loose: share of the voiced part of it.
        let voiced: f64 = cover.iter().map(|c| c.1).sum();
        match best {
            Some((speaker, time, weighted)) if *time >= MAJORITY * voiced && voiced > 0.0 => {
                let share = time / voiced;
                let sure = weighted / time / 100.0;
                segment.speaker = Some(speaker_label(*speaker, chinese));
                segment.attribution = Some(Attribution::Inferred);
                segment.confidence = Some((share * sure * 100.0).round().clamp(0.0, 100.0) as u8);
            }
            _ => {
                segment.speaker = None;
                segment.role = None;
                segment.attribution = Some(Attribution::Uncertain);
                segment.confidence = Some(if voiced > 0.0 {
                    (voiced / length * 50.0).round().clamp(0.0, 50.0) as u8
                } else {
                    0
                });
            }
        }
    }
}

/// What salesai knows besides the words when placing speakers.
#[derive(Debug, Default)]
pub struct RoleHints<'a> {
    /// The rep's name as salesai knows it (a transcript label with it is the rep).
    pub rep_name: Option<&'a str>,
    /// The rep's voice profile, when salesai has heard them before.
    pub rep_profile: Option<&'a VoiceProfile>,
    /// The recording's voices, for comparing with the profile (mono audio only).
    pub voices: &'a [Voice],
}

/// How a speaker was placed.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The speaker's label.
    pub speaker: String,
    /// Their side.
    pub role: Role,
    /// Whether their side is a fact.
    pub known: bool,
    /// How sure, percent.
    pub confidence: u8,
    /// Their voice's similarity to the rep's profile, when both exist.
    pub voice_match: Option<f32>,
}

/// Places every speaker whose side is not known yet (see the module doc), writes the role,
/// attribution and confidence onto their segments, and returns the placements. A lone speaker
/// with no label is left unplaced: with nobody to compare with, their side is a guess.
pub fn assign_roles(segments: &mut [Segment], hints: &RoleHints<'_>) -> Vec<Placement> {
    let mut labels: Vec<String> = Vec::new();
    for s in segments.iter() {
        if let Some(name) = s.speaker.as_deref()
            && !labels.iter().any(|l| l == name)
        {
            labels.push(name.to_owned());
        }
    }
    let mut placements: Vec<Placement> = Vec::new();
    let mut open: Vec<&str> = Vec::new();
    for label in &labels {
        let lines = || {
            segments
                .iter()
                .filter(|s| s.speaker.as_deref() == Some(label))
        };
        // A role already written (a channel, a correction) stands.
        if let Some(role) = lines().find_map(|s| s.role)
            && lines().all(|s| s.attribution == Some(Attribution::Known))
        {
            placements.push(Placement {
                speaker: label.clone(),
                role,
                known: true,
                confidence: 100,
                voice_match: None,
            });
            continue;
        }
        let heard = lines().any(|s| s.attribution == Some(Attribution::Inferred));
        let by_label = label_role(label, hints.rep_name);
        match by_label {
            Some(role) if !heard => placements.push(Placement {
                speaker: label.clone(),
                role,
                known: true,
                confidence: 100,
                voice_match: None,
            }),
            _ => open.push(label),
        }
    }
    if !open.is_empty() && labels.len() >= 2 {
        let rep_known = placements.iter().any(|p| p.role == Role::Rep);
        let voice_of = |label: &str| -> Option<f32> {
            let profile = hints.rep_profile?;
            let voice = hints
                .voices
                .iter()
                .find(|v| Some(v.speaker) == speaker_number(label))?;
            Some(similarity(&voice.print, &profile.print))
        };
        let matches: Vec<Option<f32>> = open.iter().map(|l| voice_of(l)).collect();
        let mean_match = {
            let known: Vec<f32> = matches.iter().flatten().copied().collect();
            (!known.is_empty()).then(|| known.iter().sum::<f32>() / known.len() as f32)
        };
        let scores: Vec<f64> = open
            .iter()
            .zip(&matches)
            .map(|(label, voice)| {
                let lines: Vec<&Segment> = segments
                    .iter()
                    .filter(|s| s.speaker.as_deref() == Some(*label))
                    .collect();
                let text = rep_likeness(&lines);
                // The voice counts as much as a clear lead in the words: prints of one
                // person across calls are far closer than prints of two people.
                let voice = match (voice, mean_match) {
                    (Some(v), Some(mean)) => f64::from(v - mean) * 8.0,
                    _ => 0.0,
                };
                text + voice
            })
            .collect();
        let best = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        let mut sorted = scores.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let margin = if rep_known {
            // The rep is known: every other speaker is on the customer's side.
            1.0
        } else if sorted.len() >= 2 {
            sorted[0] - sorted[1]
        } else {
            // One open speaker against placed ones: the other side of theirs.
            0.5
        };
        let sure = (50.0 + 50.0 * (margin * 3.0).tanh())
            .round()
            .clamp(50.0, 100.0) as u8;
        let lone_side = placements.first().map(|p| p.role.other());
        for (i, label) in open.iter().enumerate() {
            let role = if rep_known {
                Role::Customer
            } else if open.len() == 1 {
                lone_side.unwrap_or(Role::Rep)
            } else if Some(i) == best {
                Role::Rep
            } else {
                Role::Customer
            };
            placements.push(Placement {
                speaker: (*label).to_owned(),
                role,
                known: false,
                confidence: sure,
                voice_match: matches[i],
            });
        }
    }
    for placement in &placements {
        for segment in segments
            .iter_mut()
            .filter(|s| s.speaker.as_deref() == Some(placement.speaker.as_str()))
        {
            let first_placement = segment.role.is_none();
            segment.role = Some(placement.role);
            if placement.known && segment.attribution != Some(Attribution::Inferred) {
                segment.attribution = Some(Attribution::Known);
                segment.confidence = Some(100);
            } else if first_placement {
                // The voice's confidence times the role's; a re-run (after a correction of
                // another speaker) keeps what the first placement said.
                segment.attribution = Some(Attribution::Inferred);
                let voice = f64::from(segment.confidence.unwrap_or(100)) / 100.0;
                segment.confidence = Some((voice * f64::from(placement.confidence)).round() as u8);
            }
        }
    }
    placements
}

/// A person's correction: every segment of `speaker` is on `role`'s side, as a fact.
/// Returns how many segments changed hands.
pub fn correct(segments: &mut [Segment], speaker: &str, role: Role) -> usize {
    let mut changed = 0;
    for segment in segments
        .iter_mut()
        .filter(|s| s.speaker.as_deref() == Some(speaker))
    {
        if segment.role != Some(role) {
            changed += 1;
        }
        segment.role = Some(role);
        segment.attribution = Some(Attribution::Known);
        segment.confidence = Some(100);
    }
    changed
}

/// A label that names a side: "業務", "Rep", "Customer", "老闆", or the rep's own name.
pub fn label_role(label: &str, rep_name: Option<&str>) -> Option<Role> {
    let label = label.trim();
    if let Some(name) = rep_name.map(str::trim).filter(|n| n.chars().count() >= 2)
        && (label.eq_ignore_ascii_case(name)
            || label
                .to_lowercase()
                .split_whitespace()
                .next()
                .is_some_and(|first| name.to_lowercase().split_whitespace().next() == Some(first)))
    {
        return Some(Role::Rep);
    }
    if patterns::REP_LABEL.is_match(label) {
        Some(Role::Rep)
    } else if patterns::CUSTOMER_LABEL.is_match(label) {
        Some(Role::Customer)
    } else {
        None
    }
}

/// How much a speaker's lines sound like the seller's: asking questions and describing the
/// product count for it; describing one's own business and its pains count against. Per line,
/// so a talkative speaker does not win by volume.
pub fn rep_likeness(lines: &[&Segment]) -> f64 {
    let n = lines.len().max(1) as f64;
    let questions = lines.iter().filter(|s| is_question(&s.text)).count() as f64;
    let pitch = lines
        .iter()
        .filter(|s| patterns::PITCH.is_match(&s.text))
        .count() as f64;
    let own = lines
        .iter()
        .filter(|s| patterns::OWN_BUSINESS.is_match(&s.text))
        .count() as f64;
    let pains = lines.iter().filter(|s| is_pain_text(&s.text)).count() as f64;
    (questions + 1.5 * pitch - own - 0.5 * pains) / n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(start: u64, end: u64, speaker: Option<u32>) -> Turn {
        Turn {
            start_ms: start,
            end_ms: end,
            speaker,
            confidence: 90,
        }
    }

    #[test]
    fn segments_take_the_voice_that_covers_them() {
        let turns = [
            turn(0, 4_000, Some(0)),
            turn(4_000, 4_600, None),
            turn(4_600, 9_000, Some(1)),
        ];
        let mut segments = vec![
            Segment::said(0, 3_800, "How do you take orders today?"),
            Segment::said(3_900, 4_700, "Well—"),
            Segment::said(4_700, 8_800, "We write them by hand."),
        ];
        attach(&mut segments, &turns, false);
        assert_eq!(segments[0].speaker.as_deref(), Some("Speaker 1"));
        assert_eq!(segments[0].attribution, Some(Attribution::Inferred));
        assert_eq!(segments[0].confidence, Some(90));
        // Mostly overlap: marked, not guessed.
        assert_eq!(segments[1].speaker, None);
        assert_eq!(segments[1].attribution, Some(Attribution::Uncertain));
        assert_eq!(segments[2].speaker.as_deref(), Some("Speaker 2"));
    }

    #[test]
    fn the_rep_is_the_one_who_asks_and_pitches() {
        let mut segments = vec![
            Segment::said(
                0,
                1,
                "Thanks for making time. How do you take orders today?",
            ),
            Segment::said(
                1,
                2,
                "We write every order by hand and lose tickets on busy nights.",
            ),
            Segment::said(
                2,
                3,
                "That sounds painful. What does a mis-shipped order cost you?",
            ),
            Segment::said(
                3,
                4,
                "About two thousand dollars a month, our staff hate it.",
            ),
            Segment::said(
                4,
                5,
                "Our system can print tickets to the kitchen. Shall we try a week?",
            ),
        ];
        for (i, s) in segments.iter_mut().enumerate() {
            s.speaker = Some(speaker_label((i % 2) as u32, false));
            s.attribution = Some(Attribution::Inferred);
            s.confidence = Some(90);
        }
        let placed = assign_roles(&mut segments, &RoleHints::default());
        assert_eq!(placed.len(), 2);
        assert_eq!(segments[0].role, Some(Role::Rep));
        assert_eq!(segments[2].role, Some(Role::Rep));
        assert_eq!(segments[1].role, Some(Role::Customer));
        assert_eq!(segments[1].attribution, Some(Attribution::Inferred));
        // A clear lead in the words: the voice's confidence stands.
        assert_eq!(segments[1].confidence, Some(90));
    }

    #[test]
    fn labels_are_facts_and_names_are_placed_by_their_words() {
        let mut segments = vec![
            Segment {
                speaker: Some("業務".into()),
                ..Segment::said(0, 1, "請問您現在怎麼記帳？")
            },
            Segment {
                speaker: Some("王小明".into()),
                ..Segment::said(1, 2, "我們店裡都是手寫的。")
            },
        ];
        assign_roles(&mut segments, &RoleHints::default());
        assert_eq!(segments[0].role, Some(Role::Rep));
        assert_eq!(segments[0].attribution, Some(Attribution::Known));
        assert_eq!(segments[1].role, Some(Role::Customer));
        assert_eq!(segments[1].attribution, Some(Attribution::Inferred));
    }

    #[test]
    fn the_reps_voice_decides_when_the_words_do_not() {
        let mut segments = vec![Segment::said(0, 1, "Okay."), Segment::said(1, 2, "Right.")];
        for (i, s) in segments.iter_mut().enumerate() {
            s.speaker = Some(speaker_label(i as u32, false));
            s.attribution = Some(Attribution::Inferred);
            s.confidence = Some(100);
        }
        let profile = VoiceProfile {
            print: vec![0.0, 1.0, 0.2],
            seconds: 100.0,
            calls: 2,
        };
        let voices = [
            Voice {
                speaker: 0,
                print: vec![1.0, 0.1, 0.0],
                seconds: 1.0,
            },
            Voice {
                speaker: 1,
                print: vec![0.1, 0.9, 0.25],
                seconds: 1.0,
            },
        ];
        assign_roles(
            &mut segments,
            &RoleHints {
                rep_profile: Some(&profile),
                voices: &voices,
                ..RoleHints::default()
            },
        );
        assert_eq!(segments[1].role, Some(Role::Rep));
        assert_eq!(segments[0].role, Some(Role::Customer));
    }

    /// The call of issue #14: with its labels stripped (a mono recording), the rules engine
    /// took the rep's own words for the customer's pain (here: the rep's story of what other shops lose). With the voices attached and
    /// the roles placed, every quote about the customer comes from a customer line.
    #[test]
    fn a_mono_call_no_longer_quotes_the_rep_as_the_customer() {
        use crate::analysis::rules::{Lexicon, RulesInput, analyze};
        use crate::language::Language;
        let labelled = "Rep: Thanks for making time. How do you handle shipping today?\n\
            Customer: We pack everything by hand and mistakes happen every week.\n\
            Rep: That sounds painful. Most shops we talk to lose three thousand dollars a month to mis-shipped orders, a real headache.\n\
            Customer: For us it is around forty dollars a return, about two thousand a month.\n\
            Rep: Our platform checks every order before it ships. Who else decides on tools like this?\n\
            Customer: I run operations, but our CFO signs off on anything over five hundred a month.\n\
            Rep: Would a two week trial next month work for you?\n\
            Customer: Yes, next month works.";
        let (_, truth) = crate::transcript::parse_transcript(labelled).unwrap();
        let customer_lines: Vec<&str> = truth
            .iter()
            .filter(|s| s.speaker.as_deref() == Some("Customer"))
            .map(|s| s.text.as_str())
            .collect();
        // Mono: no labels, the voices as speaker turns would give them (3 s a line).
        let mut segments: Vec<Segment> = truth
            .iter()
            .enumerate()
            .map(|(i, s)| Segment::said(i as u64 * 3_000, i as u64 * 3_000 + 2_900, s.text.clone()))
            .collect();
        let turns: Vec<Turn> = truth
            .iter()
            .enumerate()
            .map(|(i, s)| Turn {
                start_ms: i as u64 * 3_000,
                end_ms: i as u64 * 3_000 + 2_900,
                speaker: Some(u32::from(s.speaker.as_deref() == Some("Customer"))),
                confidence: 85,
            })
            .collect();
        attach(&mut segments, &turns, false);
        assign_roles(&mut segments, &RoleHints::default());
        for (segment, truth) in segments.iter().zip(&truth) {
            let expected = if truth.speaker.as_deref() == Some("Rep") {
                Role::Rep
            } else {
                Role::Customer
            };
            assert_eq!(segment.role, Some(expected), "{}", segment.text);
        }
        let out = analyze(&RulesInput {
            segments: &segments,
            competitors: &[],
            metadata: &serde_json::json!({}),
            language: Language::En,
            lexicon: &Lexicon::default(),
        });
        assert!(!out.buyer.pain.evidence.is_empty(), "{:?}", out.buyer.pain);
        for evidence in &out.buyer.pain.evidence {
            assert!(
                customer_lines
                    .iter()
                    .any(|l| l.contains(evidence.quote.trim_end_matches('…'))),
                "pain quoted from a rep line: {}",
                evidence.quote
            );
        }
        for item in &out.buyer.metrics.quantified_items {
            assert_ne!(
                item.monthly_value,
                Some(3000.0),
                "the rep's figure taken as the customer's: {item:?}"
            );
        }
    }

    #[test]
    fn a_correction_is_a_fact() {
        let mut segments = vec![Segment {
            speaker: Some("Speaker 1".into()),
            role: Some(Role::Customer),
            attribution: Some(Attribution::Inferred),
            confidence: Some(60),
            ..Segment::said(0, 1, "hi")
        }];
        assert_eq!(correct(&mut segments, "Speaker 1", Role::Rep), 1);
        assert_eq!(segments[0].attribution, Some(Attribution::Known));
        let placed = assign_roles(&mut segments, &RoleHints::default());
        assert_eq!(placed[0].role, Role::Rep);
        assert!(placed[0].known);
    }

    #[test]
    fn profiles_are_weighted_means() {
        let first = VoiceProfile::learn(
            None,
            &Voice {
                speaker: 0,
                print: vec![1.0, 0.0],
                seconds: 30.0,
            },
        );
        let second = VoiceProfile::learn(
            Some(first),
            &Voice {
                speaker: 0,
                print: vec![0.0, 1.0],
                seconds: 10.0,
            },
        );
        assert_eq!(second.calls, 2);
        assert!((second.print[0] - 0.75).abs() < 1e-6);
        assert!((similarity(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
    }
}
