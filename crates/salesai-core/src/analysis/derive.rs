//! Scores derived in code from the agents' outputs: the PDCM total, the overall score, the
//! qualification, a MEDDIC view and the risks. An LLM is never asked for these, so they are
//! consistent across engines and runs.

use serde::{Deserialize, Serialize};

use super::rules::Language;
use super::{AgentOutputs, Level};
use crate::domain::Score;

pub use crate::product_line::Methodology;

/// How qualified the deal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Qualification {
    /// Overall ≥ strong threshold.
    Strong,
    /// Overall ≥ medium threshold.
    Medium,
    /// Overall ≥ weak threshold.
    Weak,
    /// Below.
    AtRisk,
}

impl Qualification {
    /// The stored name (`strong`, `medium`, `weak`, `at_risk`; the serde name too).
    pub fn as_str(self) -> &'static str {
        match self {
            Qualification::Strong => "strong",
            Qualification::Medium => "medium",
            Qualification::Weak => "weak",
            Qualification::AtRisk => "at_risk",
        }
    }

    /// Reads a stored name (`atrisk` and `at risk` are older spellings of `at_risk`).
    pub fn parse(raw: &str) -> Option<Qualification> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "strong" => Some(Qualification::Strong),
            "medium" => Some(Qualification::Medium),
            "weak" => Some(Qualification::Weak),
            "at_risk" | "atrisk" | "at risk" => Some(Qualification::AtRisk),
            _ => None,
        }
    }
}

/// MEDDIC, mapped from PDCM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meddic {
    /// M: from PDCM Metrics.
    pub metrics: Score,
    /// E: from Decision (authority).
    pub economic_buyer: Score,
    /// D: from Champion criteria.
    pub decision_criteria: Score,
    /// D: from Decision (timeline, process).
    pub decision_process: Score,
    /// I: from Pain.
    pub identify_pain: Score,
    /// C: from Champion attitude.
    pub champion: Score,
}

/// A risk to the deal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// A stable code (`NO_DECISION_MAKER`, `COMPETITOR`, …).
    pub code: String,
    /// What it means.
    pub message: String,
    /// How serious.
    pub severity: Level,
}

/// Everything derived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DerivedScores {
    /// Weighted PDCM total.
    pub pdcm_total: Score,
    /// The overall score (= PDCM total).
    pub overall: Score,
    /// The qualification band.
    pub qualification: Qualification,
    /// The MEDDIC view.
    pub meddic: Meddic,
    /// The weakest PDCM dimension's name.
    pub weakest_dimension: String,
    /// Risks found.
    pub risks: Vec<Risk>,
}

fn clamp(value: f64) -> Score {
    Score::new(value.round().clamp(0.0, 100.0) as i64).expect("clamped to 0..=100")
}

/// Derives the scores.
pub fn derive(outputs: &AgentOutputs, methodology: &Methodology) -> DerivedScores {
    derive_in(outputs, methodology, Language::En)
}

/// [`derive`] with the risk messages written in `language` (a zh-TW line's report reads them in
/// Traditional Chinese).
pub fn derive_in(
    outputs: &AgentOutputs,
    methodology: &Methodology,
    language: Language,
) -> DerivedScores {
    let say = |zh: &str, en: &str| match language {
        Language::ZhTw => zh.to_owned(),
        Language::En => en.to_owned(),
    };
    let buyer = &outputs.buyer;
    let p = f64::from(buyer.pain.score.value());
    let d = f64::from(buyer.decision.score.value());
    let c = f64::from(buyer.champion.score.value());
    let m = f64::from(buyer.metrics.score.value());
    let total = (p * f64::from(methodology.pain_weight)
        + d * f64::from(methodology.decision_weight)
        + c * f64::from(methodology.champion_weight)
        + m * f64::from(methodology.metrics_weight))
        / 100.0;
    let pdcm_total = clamp(total);
    let overall = pdcm_total;
    let qualification = match overall.value() {
        v if v >= methodology.strong_at => Qualification::Strong,
        v if v >= methodology.medium_at => Qualification::Medium,
        v if v >= methodology.weak_at => Qualification::Weak,
        _ => Qualification::AtRisk,
    };
    let authority = match buyer.decision.has_authority {
        Some(true) => 100.0,
        Some(false) => 20.0,
        None => 40.0,
    };
    let process = if buyer.decision.timeline.is_some() {
        70.0
    } else {
        30.0
    };
    let criteria = (buyer.champion.primary_criteria.len() as f64 * 35.0).min(100.0);
    let meddic = Meddic {
        metrics: buyer.metrics.score,
        economic_buyer: clamp((d + authority) / 2.0),
        decision_criteria: clamp((c + criteria) / 2.0),
        decision_process: clamp((d + process) / 2.0),
        identify_pain: buyer.pain.score,
        champion: buyer.champion.score,
    };
    let dims = [
        ("pain", p),
        ("decision", d),
        ("champion", c),
        ("metrics", m),
    ];
    let weakest_dimension = dims
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(n, _)| (*n).to_owned())
        .unwrap_or_default();

    let mut risks = Vec::new();
    if outputs.context.decision_maker_present == Some(false)
        || buyer.decision.has_authority == Some(false)
    {
        risks.push(Risk {
            code: "NO_DECISION_MAKER".into(),
            message: say(
                "做決定的人不在這次對話中",
                "the person who decides was not in the call",
            ),
            severity: Level::High,
        });
    }
    for competitor in &buyer.competitors {
        risks.push(Risk {
            code: "COMPETITOR".into(),
            message: match language {
                Language::ZhTw => format!("提到競品 {}", competitor.name),
                Language::En => format!("competitor {} came up", competitor.name),
            },
            severity: if competitor.attitude == "positive" {
                Level::High
            } else {
                Level::Medium
            },
        });
    }
    if buyer.pain.score.value() < 40 {
        risks.push(Risk {
            code: "WEAK_PAIN".into(),
            message: say(
                "痛點不明確：客戶缺少改變的理由",
                "no clear pain: the customer has little reason to change",
            ),
            severity: Level::Medium,
        });
    }
    if buyer.metrics.quantified_items.is_empty() {
        risks.push(Risk {
            code: "NO_METRICS".into(),
            message: say(
                "沒有量化任何損失或效益：缺少投資報酬的依據",
                "nothing was quantified: no ROI to sell on",
            ),
            severity: Level::Low,
        });
    }
    if !outputs.seller.asked_for_close && overall.value() >= methodology.strong_at {
        risks.push(Risk {
            code: "NO_CLOSE_ASKED".into(),
            message: say(
                "條件很好的案子，但業務沒有提出成交",
                "a strong deal, but the rep did not ask for the close",
            ),
            severity: Level::Medium,
        });
    }
    if buyer.champion.attitude.as_deref() == Some("negative") {
        risks.push(Risk {
            code: "NEGATIVE_ATTITUDE".into(),
            message: say("客戶態度偏負面", "the customer sounded negative"),
            severity: Level::High,
        });
    }
    DerivedScores {
        pdcm_total,
        overall,
        qualification,
        meddic,
        weakest_dimension,
        risks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_methodology_is_valid_and_bands_are_inclusive() {
        let m = Methodology::default();
        assert!(m.validate().is_ok());
        assert!(
            Methodology {
                pain_weight: 36,
                ..m.clone()
            }
            .validate()
            .is_err()
        );
        assert!(
            Methodology {
                medium_at: 80,
                ..m.clone()
            }
            .validate()
            .is_err()
        );
        let outputs = super::super::rules::tests_support::outputs_with_pdcm(70, 70, 70, 70);
        let derived = derive(&outputs, &m);
        assert_eq!(derived.overall.value(), 70);
        assert_eq!(derived.qualification, Qualification::Strong);
        let outputs = super::super::rules::tests_support::outputs_with_pdcm(100, 0, 0, 0);
        let derived = derive(&outputs, &m);
        assert_eq!(derived.pdcm_total.value(), 35, "pain weighs 35 %");
        assert_eq!(derived.qualification, Qualification::Weak);
        assert_eq!(derived.weakest_dimension, "decision");
        let outputs = super::super::rules::tests_support::outputs_with_pdcm(0, 0, 0, 100);
        assert_eq!(derive(&outputs, &m).qualification, Qualification::AtRisk);
        let zh = derive_in(&outputs, &m, Language::ZhTw);
        let weak = zh.risks.iter().find(|r| r.code == "WEAK_PAIN").unwrap();
        assert!(weak.message.contains("痛點"), "{weak:?}");
        assert!(
            zh.risks.iter().all(|r| !r.message.is_ascii()),
            "every risk in zh-TW: {zh:?}"
        );
    }
}
