//! Measuring the analysis against labelled calls: which labelled facts an engine found, and how
//! well its overall scores order the calls by labelled deal strength.
//!
//! A labelled call is a transcript (`NAME.txt`, `.vtt`, `.srt` or `.json`) with a labels file
//! beside it (`NAME.toml`); the format is documented in `docs/EVAL.md`. This module is pure:
//! the binary reads the files, runs the engine and hands the outputs here.

use serde::{Deserialize, Serialize};

use super::AgentOutputs;
use super::rules::numbers;

/// The labels of one call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    /// A short description, for the report.
    #[serde(default)]
    pub title: Option<String>,
    /// The product line the call belongs to (`default` when absent).
    #[serde(default)]
    pub product_line: Option<String>,
    /// How strong the deal is after this call: 1 lost, 2 weak, 3 middling, 4 strong,
    /// 5 closing.
    pub strength: u8,
    /// The upload form's answers, as a rep would give them.
    #[serde(default)]
    pub form: Option<serde_json::Value>,
    /// The facts an analysis should find.
    #[serde(default)]
    pub facts: Facts,
}

/// What a fact label says: present (`true`), absent (`false`), a phrase the finding must
/// contain, or an amount it must state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Expect {
    /// Present or absent.
    Present(bool),
    /// An amount (money), within 10 %.
    Amount(f64),
    /// A phrase the finding contains (case-insensitive).
    Phrase(String),
}

/// The labelled facts of a call; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    /// The customer's main pain (a phrase from it, or `true`).
    pub pain: Option<Expect>,
    /// The money the pain costs per month.
    pub loss_monthly: Option<f64>,
    /// The people who decide: names and roles, each a phrase of a reported decision maker.
    #[serde(default)]
    pub decision_maker: Vec<String>,
    /// Whether the person who decides took part in the call.
    pub decision_maker_present: Option<bool>,
    /// The budget (an amount, a phrase, or whether one was discussed).
    pub budget: Option<Expect>,
    /// The buying timeline (a phrase, or whether one was said).
    pub timeline: Option<Expect>,
    /// Every competitor named in the call (an empty list: none was).
    pub competitors: Option<Vec<String>>,
    /// The next step agreed (a phrase, or whether one was).
    pub next_step: Option<Expect>,
    /// An objection the customer raised (a phrase, or whether one was raised).
    pub objection: Option<Expect>,
}

/// One labelled fact and whether the analysis found it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactResult {
    /// The kind of fact (`pain`, `loss_monthly`, `decision_maker`, …).
    pub fact: &'static str,
    /// What the label expects, for people.
    pub expected: String,
    /// Whether the analysis found it.
    pub found: bool,
    /// What the analysis said instead (empty when found).
    pub got: String,
}

/// Every fact kind, in report order.
pub const FACT_KINDS: [&str; 10] = [
    "pain",
    "loss_monthly",
    "decision_maker",
    "decision_maker_present",
    "budget",
    "timeline",
    "competitor",
    "next_step",
    "objection",
    "competitor_false_positive",
];

fn contains(haystack: &str, needle: &str) -> bool {
    haystack
        .to_lowercase()
        .contains(&needle.trim().to_lowercase())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.1 * b.abs().max(1.0)
}

fn check_text(fact: &'static str, expect: &Expect, said: &[String]) -> FactResult {
    let joined = said.join(" | ");
    let (expected, found) = match expect {
        Expect::Present(true) => ("present".to_owned(), !said.is_empty()),
        Expect::Present(false) => ("absent".to_owned(), said.is_empty()),
        Expect::Phrase(p) => (format!("\"{p}\""), said.iter().any(|s| contains(s, p))),
        Expect::Amount(a) => (
            format!("{a}"),
            said.iter().any(|s| {
                numbers::money(s)
                    .iter()
                    .any(|q| close(q.value, *a) || close(q.upper, *a))
            }),
        ),
    };
    FactResult {
        fact,
        expected,
        found,
        got: if found { String::new() } else { joined },
    }
}

/// Checks every labelled fact against an analysis.
pub fn check(labels: &Labels, outputs: &AgentOutputs) -> Vec<FactResult> {
    let facts = &labels.facts;
    let buyer = &outputs.buyer;
    let mut out = Vec::new();
    if let Some(expect) = &facts.pain {
        let said: Vec<String> = buyer
            .pain
            .main_pain
            .iter()
            .cloned()
            .chain(buyer.pain.evidence.iter().map(|e| e.quote.clone()))
            .collect();
        out.push(check_text("pain", expect, &said));
    }
    if let Some(monthly) = facts.loss_monthly {
        let values: Vec<f64> = buyer
            .metrics
            .quantified_items
            .iter()
            .filter_map(|q| q.monthly_value)
            .collect();
        let found = values.iter().any(|v| close(*v, monthly));
        out.push(FactResult {
            fact: "loss_monthly",
            expected: format!("{monthly}/month"),
            found,
            got: if found {
                String::new()
            } else {
                format!("{values:?}")
            },
        });
    }
    let people: Vec<String> = outputs
        .crm
        .decision_makers
        .iter()
        .cloned()
        .chain(buyer.decision.contact_role.iter().cloned())
        .collect();
    for who in &facts.decision_maker {
        out.push(check_text(
            "decision_maker",
            &Expect::Phrase(who.clone()),
            &people,
        ));
    }
    if let Some(present) = facts.decision_maker_present {
        let said = outputs
            .context
            .decision_maker_present
            .or(buyer.decision.has_authority);
        out.push(FactResult {
            fact: "decision_maker_present",
            expected: present.to_string(),
            found: said == Some(present),
            got: if said == Some(present) {
                String::new()
            } else {
                format!("{said:?}")
            },
        });
    }
    if let Some(expect) = &facts.budget {
        let said: Vec<String> = outputs
            .crm
            .budget
            .iter()
            .cloned()
            .chain(buyer.decision.budget_awareness.iter().cloned())
            .collect();
        out.push(check_text("budget", expect, &said));
    }
    if let Some(expect) = &facts.timeline {
        let said: Vec<String> = outputs
            .crm
            .timeline
            .iter()
            .cloned()
            .chain(buyer.decision.timeline.iter().cloned())
            .chain(outputs.context.deadline.iter().cloned())
            .collect();
        out.push(check_text("timeline", expect, &said));
    }
    if let Some(expected) = &facts.competitors {
        let said: Vec<String> = buyer.competitors.iter().map(|c| c.name.clone()).collect();
        for name in expected {
            let found = said.iter().any(|s| contains(s, name) || contains(name, s));
            out.push(FactResult {
                fact: "competitor",
                expected: name.clone(),
                found,
                got: if found {
                    String::new()
                } else {
                    said.join(", ")
                },
            });
        }
        // Names reported that nobody said: one fact, found when there are none.
        let extra: Vec<&String> = said
            .iter()
            .filter(|s| !expected.iter().any(|e| contains(s, e) || contains(e, s)))
            .collect();
        out.push(FactResult {
            fact: "competitor_false_positive",
            expected: "none".into(),
            found: extra.is_empty(),
            got: extra
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if let Some(expect) = &facts.next_step {
        out.push(check_text("next_step", expect, &outputs.crm.next_steps));
    }
    if let Some(expect) = &facts.objection {
        let said: Vec<String> = outputs
            .coach
            .objections
            .iter()
            .map(|o| o.objection.clone())
            .collect();
        out.push(check_text("objection", expect, &said));
    }
    out
}

/// The share of pairs of calls with different labelled strength whose overall scores are in
/// the same order (ties count half). 1.0 when there is no such pair.
pub fn pairwise_agreement(calls: &[(u8, i64)]) -> f64 {
    let mut pairs = 0.0;
    let mut agree = 0.0;
    for (i, a) in calls.iter().enumerate() {
        for b in &calls[i + 1..] {
            if a.0 == b.0 {
                continue;
            }
            pairs += 1.0;
            let (strong, weak) = if a.0 > b.0 { (a, b) } else { (b, a) };
            if strong.1 > weak.1 {
                agree += 1.0;
            } else if strong.1 == weak.1 {
                agree += 0.5;
            }
        }
    }
    if pairs == 0.0 { 1.0 } else { agree / pairs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_counts_ties_half_and_ignores_equal_labels() {
        assert_eq!(pairwise_agreement(&[(1, 10), (5, 90)]), 1.0);
        assert_eq!(pairwise_agreement(&[(1, 90), (5, 10)]), 0.0);
        assert_eq!(pairwise_agreement(&[(1, 50), (5, 50)]), 0.5);
        assert_eq!(pairwise_agreement(&[(3, 10), (3, 90)]), 1.0);
    }

    #[test]
    fn labels_parse_from_json_shapes() {
        let labels: Labels = serde_json::from_value(serde_json::json!({
            "strength": 4,
            "facts": {
                "pain": "mis-shipped",
                "loss_monthly": 4000.0,
                "decision_maker": ["Chen", "owner"],
                "budget": 50000.0,
                "timeline": true,
                "competitors": ["Lightspeed"]
            }
        }))
        .unwrap();
        assert_eq!(labels.facts.budget, Some(Expect::Amount(50000.0)));
        assert_eq!(labels.facts.timeline, Some(Expect::Present(true)));
        assert!(
            serde_json::from_value::<Labels>(serde_json::json!({"strength": 1, "nope": 1}))
                .is_err(),
            "a misspelt key is an error, not a silently ignored label"
        );
    }
}
