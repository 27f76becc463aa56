//! Talk analytics: how the rep ran the call, computed in code from timed segments with roles —
//! talk-to-listen ratio, longest rep monologue, longest customer story, interactivity,
//! patience, questions asked, and the share of the call on the customer's business versus the
//! product — with the commonly cited healthy ranges as configurable targets.
//!
//! Segments with no role (overlapping speech, a lone unplaced speaker) count toward nobody:
//! the figures are over attributed time, and [`TalkStats::attributed_share`] says how much
//! that is.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::speech::{is_pain_text, is_question, patterns};
use crate::transcript::{Attribution, Role, Segment};

/// A stretch of one side talking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Stretch {
    /// Where it starts, ms.
    pub start_ms: u64,
    /// Its length, ms.
    pub duration_ms: u64,
}

/// The figures of one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TalkStats {
    /// From the first word to the last, ms.
    pub duration_ms: u64,
    /// The rep's speaking time, ms.
    pub rep_ms: u64,
    /// The customer side's speaking time, ms.
    pub customer_ms: u64,
    /// Speech nobody is placed on (overlap, unplaced speakers), ms.
    pub unattributed_ms: u64,
    /// The rep's share of attributed speaking time, 0–1.
    pub talk_ratio: f64,
    /// The rep's longest stretch with no customer line in between.
    pub longest_monologue: Option<Stretch>,
    /// The customer side's longest such stretch.
    pub longest_customer_story: Option<Stretch>,
    /// Changes of speaker side per minute of call.
    pub switches_per_minute: f64,
    /// The average pause before the rep answers the customer, ms.
    pub patience_ms: Option<u64>,
    /// Questions the rep asked.
    pub rep_questions: u32,
    /// Questions the rep asked per hour of call.
    pub questions_per_hour: f64,
    /// The share of topical time on the customer's business (their work, their problems), 0–1;
    /// the rest is on the product (features, price, the pitch). `None` when neither came up.
    pub business_share: Option<f64>,
    /// The share of speech with a side, 0–1.
    pub attributed_share: f64,
    /// Whether any side was inferred rather than known.
    pub inferred: bool,
}

/// Healthy ranges: a figure outside its range is flagged for coaching. Defaults are the
/// commonly cited ones from published analyses of recorded sales calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TalkTargets {
    /// The rep's share of talk, lowest healthy (0.40).
    pub talk_ratio_min: f64,
    /// The rep's share of talk, highest healthy (0.60; top performers are near 0.43).
    pub talk_ratio_max: f64,
    /// The longest rep monologue, seconds (150).
    pub monologue_max_s: u64,
    /// The longest customer story worth aiming for, seconds (60; checked on calls of 10
    /// minutes or more).
    pub story_min_s: u64,
    /// Side changes per minute, at least (2).
    pub switches_min: f64,
    /// The pause before the rep answers, ms, at least (600).
    pub patience_min_ms: u64,
    /// Rep questions per hour, at least (11).
    pub questions_per_hour_min: f64,
}

impl Default for TalkTargets {
    fn default() -> Self {
        TalkTargets {
            talk_ratio_min: 0.40,
            talk_ratio_max: 0.60,
            monologue_max_s: 150,
            story_min_s: 60,
            switches_min: 2.0,
            patience_min_ms: 600,
            questions_per_hour_min: 11.0,
        }
    }
}

impl TalkTargets {
    /// Reads `ratio=40-60,monologue=150,story=60,switches=2,patience=600,questions=11` (any
    /// subset; the rest keep their defaults).
    pub fn parse(raw: &str) -> Result<TalkTargets, String> {
        let mut targets = TalkTargets::default();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("talk target {part:?} is not key=value"))?;
            let number = |v: &str| -> Result<f64, String> {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| format!("talk target {key}: {v:?} is not a number"))
            };
            match key.trim() {
                "ratio" => {
                    let (low, high) = value.split_once('-').ok_or_else(|| {
                        format!("talk target ratio: {value:?} is not LOW-HIGH percent, e.g. 40-60")
                    })?;
                    let (low, high) = (number(low)? / 100.0, number(high)? / 100.0);
                    if low > high || high > 1.0 {
                        return Err(format!(
                            "talk target ratio: {value:?} must be LOW-HIGH within 0-100"
                        ));
                    }
                    targets.talk_ratio_min = low;
                    targets.talk_ratio_max = high;
                }
                "monologue" => targets.monologue_max_s = number(value)? as u64,
                "story" => targets.story_min_s = number(value)? as u64,
                "switches" => targets.switches_min = number(value)?,
                "patience" => targets.patience_min_ms = number(value)? as u64,
                "questions" => targets.questions_per_hour_min = number(value)?,
                other => {
                    return Err(format!(
                        "unknown talk target {other:?}; use ratio, monologue, story, switches, patience or questions"
                    ));
                }
            }
        }
        Ok(targets)
    }
}

/// A figure outside its healthy range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TalkFlag {
    /// The rep talked more than the range allows.
    TalksTooMuch,
    /// The rep talked less than the range allows.
    TalksTooLittle,
    /// A rep monologue longer than the target.
    LongMonologue,
    /// The customer never told a long story.
    ShortCustomerStory,
    /// Few changes of speaker: a presentation rather than a conversation.
    LowInteractivity,
    /// The rep answers before the customer has finished thinking.
    Impatient,
    /// Few discovery questions.
    FewQuestions,
}

impl TalkStats {
    /// The figures out of range, in the order a coach would raise them.
    pub fn flags(&self, targets: &TalkTargets) -> Vec<TalkFlag> {
        let mut flags = Vec::new();
        if self.talk_ratio > targets.talk_ratio_max {
            flags.push(TalkFlag::TalksTooMuch);
        } else if self.talk_ratio < targets.talk_ratio_min {
            flags.push(TalkFlag::TalksTooLittle);
        }
        if self
            .longest_monologue
            .is_some_and(|m| m.duration_ms > targets.monologue_max_s * 1000)
        {
            flags.push(TalkFlag::LongMonologue);
        }
        if self.duration_ms >= 600_000
            && self
                .longest_customer_story
                .is_none_or(|s| s.duration_ms < targets.story_min_s * 1000)
        {
            flags.push(TalkFlag::ShortCustomerStory);
        }
        if self.duration_ms >= 120_000 && self.switches_per_minute < targets.switches_min {
            flags.push(TalkFlag::LowInteractivity);
        }
        if self
            .patience_ms
            .is_some_and(|p| p < targets.patience_min_ms)
        {
            flags.push(TalkFlag::Impatient);
        }
        if self.duration_ms >= 300_000 && self.questions_per_hour < targets.questions_per_hour_min {
            flags.push(TalkFlag::FewQuestions);
        }
        flags
    }
}

/// The product side of a call: features, price, plans, demos, integrations.
static PRODUCT_TALK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(pric(e|es|ing)|plans?|features?|integrat\w*|demo|trial|licen[cs]e\w*|subscription|modules?|dashboard|app|software|platform|system|setup|onboarding|discount|quote|contract)\b|功能|方案|價格|報價|費用|月費|年費|系統|平台|軟體|整合|試用|展示|模組|授權|合約|折扣|安裝|設定",
    )
    .expect("valid regex")
});

/// Pauses longer than this are not a rep's patience but a gap in the call (someone left to
/// check something): they are left out of the average.
const MAX_PAUSE_MS: u64 = 5_000;

/// Computes the figures; `None` when no segment has a side (nothing to say about the rep).
pub fn analyze(segments: &[Segment]) -> Option<TalkStats> {
    let placed: Vec<(&Segment, Role)> = segments
        .iter()
        .filter_map(|s| s.role.map(|r| (s, r)))
        .collect();
    if !placed.iter().any(|(_, r)| *r == Role::Rep)
        || !placed.iter().any(|(_, r)| *r == Role::Customer)
    {
        return None;
    }
    let length = |s: &Segment| s.end_ms.saturating_sub(s.start_ms);
    let start = segments.iter().map(|s| s.start_ms).min().unwrap_or(0);
    let end = segments.iter().map(|s| s.end_ms).max().unwrap_or(0);
    let duration_ms = end.saturating_sub(start).max(1);
    let (mut rep_ms, mut customer_ms, mut unattributed_ms) = (0u64, 0u64, 0u64);
    for s in segments {
        match s.role {
            Some(Role::Rep) => rep_ms += length(s),
            Some(Role::Customer) => customer_ms += length(s),
            None => unattributed_ms += length(s),
        }
    }
    // Stretches: consecutive lines of one side (unplaced lines neither break nor extend one).
    let mut longest: [Option<Stretch>; 2] = [None, None];
    let mut switches = 0u32;
    let mut pauses: Vec<u64> = Vec::new();
    let mut run: Option<(Role, u64, u64)> = None;
    let side = |r: Role| usize::from(r == Role::Customer);
    let close = |run: (Role, u64, u64), longest: &mut [Option<Stretch>; 2]| {
        let stretch = Stretch {
            start_ms: run.1,
            duration_ms: run.2.saturating_sub(run.1),
        };
        let slot = &mut longest[side(run.0)];
        if slot.is_none_or(|l| stretch.duration_ms > l.duration_ms) {
            *slot = Some(stretch);
        }
    };
    for (segment, role) in &placed {
        match run {
            Some((r, from, until)) if r == *role => {
                run = Some((r, from, until.max(segment.end_ms)));
            }
            Some(previous) => {
                switches += 1;
                if *role == Role::Rep {
                    let pause = segment.start_ms.saturating_sub(previous.2);
                    if pause <= MAX_PAUSE_MS {
                        pauses.push(pause);
                    }
                }
                close(previous, &mut longest);
                run = Some((*role, segment.start_ms, segment.end_ms));
            }
            None => run = Some((*role, segment.start_ms, segment.end_ms)),
        }
    }
    if let Some(last) = run {
        close(last, &mut longest);
    }
    let rep_questions: u32 = placed
        .iter()
        .filter(|(_, r)| *r == Role::Rep)
        .map(|(s, _)| {
            let marks = s.text.matches(['?', '？']).count() as u32;
            if marks > 0 {
                marks
            } else {
                u32::from(is_question(&s.text))
            }
        })
        .sum();
    let (mut business, mut product) = (0u64, 0u64);
    for (s, role) in &placed {
        let text = s.text.as_str();
        let about_product = patterns::PITCH.is_match(text) || PRODUCT_TALK.is_match(text);
        let about_business = patterns::OWN_BUSINESS.is_match(text)
            || (*role == Role::Customer && is_pain_text(text))
            || (*role == Role::Rep && is_question(text) && !about_product);
        if about_business && !about_product {
            business += length(s);
        } else if about_product && !about_business {
            product += length(s);
        } else if about_product && about_business {
            // Both: the customer on their own business wins on their lines, the pitch on the
            // rep's.
            if *role == Role::Customer {
                business += length(s);
            } else {
                product += length(s);
            }
        }
    }
    let minutes = duration_ms as f64 / 60_000.0;
    let talked = rep_ms + customer_ms;
    Some(TalkStats {
        duration_ms,
        rep_ms,
        customer_ms,
        unattributed_ms,
        talk_ratio: if talked == 0 {
            0.0
        } else {
            rep_ms as f64 / talked as f64
        },
        longest_monologue: longest[0],
        longest_customer_story: longest[1],
        switches_per_minute: f64::from(switches) / minutes,
        patience_ms: (!pauses.is_empty()).then(|| pauses.iter().sum::<u64>() / pauses.len() as u64),
        rep_questions,
        questions_per_hour: f64::from(rep_questions) / (minutes / 60.0),
        business_share: (business + product > 0)
            .then(|| business as f64 / (business + product) as f64),
        attributed_share: if talked + unattributed_ms == 0 {
            0.0
        } else {
            talked as f64 / (talked + unattributed_ms) as f64
        },
        inferred: segments
            .iter()
            .any(|s| s.role.is_some() && s.attribution != Some(Attribution::Known)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(role: Role, start_s: u64, end_s: u64, text: &str) -> Segment {
        Segment {
            speaker: Some(role.as_str().into()),
            role: Some(role),
            attribution: Some(Attribution::Known),
            confidence: Some(100),
            ..Segment::said(start_s * 1000, end_s * 1000, text)
        }
    }

    /// A 10-minute call: the rep pitches for 3 minutes straight, then the two trade lines.
    fn call() -> Vec<Segment> {
        let mut segments = vec![
            line(
                Role::Rep,
                0,
                60,
                "Let me show you our platform and its features.",
            ),
            line(Role::Rep, 60, 120, "Our pricing has three plans."),
            line(
                Role::Rep,
                120,
                180,
                "We can integrate with your accounting software.",
            ),
            line(
                Role::Customer,
                181,
                240,
                "We currently write every order by hand.",
            ),
        ];
        // 6 minutes of exchanges: rep 60 s, customer 60 s per 2 minutes, answered after 1 s.
        let mut t = 240;
        for _ in 0..3 {
            segments.push(line(
                Role::Rep,
                t + 1,
                t + 61,
                "How many orders do you lose a week?",
            ));
            segments.push(line(
                Role::Customer,
                t + 61,
                t + 120,
                "Our staff lose about ten.",
            ));
            t += 120;
        }
        segments
    }

    #[test]
    fn known_answers() {
        let stats = analyze(&call()).unwrap();
        // Rep: 180 + 3 × 60 = 360 s; customer: 59 + 3 × 59 = 236 s.
        assert_eq!(stats.rep_ms, 360_000);
        assert_eq!(stats.customer_ms, 236_000);
        assert!((stats.talk_ratio - 360.0 / 596.0).abs() < 1e-9);
        assert_eq!(
            stats.longest_monologue,
            Some(Stretch {
                start_ms: 0,
                duration_ms: 180_000
            })
        );
        assert_eq!(stats.longest_customer_story.unwrap().duration_ms, 59_000);
        // 7 changes of side in 10 minutes.
        assert!((stats.switches_per_minute - 0.7).abs() < 1e-9);
        assert_eq!(stats.patience_ms, Some(1_000));
        assert_eq!(stats.rep_questions, 3);
        assert!((stats.questions_per_hour - 18.0).abs() < 1e-9);
        // Business: 4 customer lines (236 s) and 3 rep questions (180 s); product: 180 s.
        assert!((stats.business_share.unwrap() - 416.0 / 596.0).abs() < 1e-9);
        assert!(!stats.inferred);
        let flags = stats.flags(&TalkTargets::default());
        assert_eq!(
            flags,
            vec![
                TalkFlag::TalksTooMuch,
                TalkFlag::LongMonologue,
                TalkFlag::ShortCustomerStory,
                TalkFlag::LowInteractivity
            ]
        );
    }

    #[test]
    fn no_sides_no_figures() {
        assert_eq!(analyze(&[Segment::said(0, 1000, "hello")]), None);
    }

    #[test]
    fn targets_parse_and_explain_mistakes() {
        let t = TalkTargets::parse("ratio=35-55, monologue=120").unwrap();
        assert!((t.talk_ratio_max - 0.55).abs() < 1e-9);
        assert_eq!(t.monologue_max_s, 120);
        assert_eq!(t.patience_min_ms, 600);
        assert!(
            TalkTargets::parse("ratio=60")
                .unwrap_err()
                .contains("LOW-HIGH")
        );
        assert!(
            TalkTargets::parse("speed=3")
                .unwrap_err()
                .contains("unknown")
        );
    }
}
