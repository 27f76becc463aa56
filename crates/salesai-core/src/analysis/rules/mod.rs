//! The offline analyser: a deterministic rules engine that fills the same contract as the LLM
//! agents from lexicons (zh-TW and English pain words, money and time quantities, decision
//! roles, timelines, configured competitors), so the whole flow runs with no keys. Its output
//! is marked `engine: rules` wherever it is stored or shown.
//!
//! It is honest about what it is: it counts and quotes; it does not understand. Scores come
//! from how much evidence of each dimension the transcript holds, every claim carries the
//! quote it came from, and what it cannot find stays empty.

use super::{
    ActionItem, Agent, AgentOutputs, Alert, BuyerOutput, ChampionAssessment, CoachOutput,
    CompetitorMention, ContextOutput, CrmOutput, DecisionAssessment, Evidence, Level,
    MetricsAssessment, NextAction, Objection, PainAssessment, QuantifiedItem, SellerOutput, Spin,
    Strategy, SummaryOutput,
};

use crate::domain::Score;
use crate::speech::{is_pain_text, is_question, patterns};
use crate::transcript::{Role, Segment, clock, is_cjk};

pub mod numbers;
pub mod write;
use write::amount;

use numbers::{Period, Quantity, Unit};

/// The engine's name, as stored with its outputs.
pub const ENGINE: &str = "rules";

/// The language of messages the engine writes: the project's one language type.
pub use crate::language::Language;

/// What the engine reads.
#[derive(Debug, Clone, Copy)]
pub struct RulesInput<'a> {
    /// The transcript.
    pub segments: &'a [Segment],
    /// Competitor names configured for the product line.
    pub competitors: &'a [String],
    /// The upload form's answers (`decision_maker_present`, `store_type`, …).
    pub metadata: &'a serde_json::Value,
    /// The language to write in.
    pub language: Language,
    /// The product line's own additions to the engine's vocabulary.
    pub lexicon: &'a Lexicon,
}

pub use crate::product_line::Lexicon;

impl Lexicon {
    fn has(words: &[String], text: &str) -> bool {
        let t = text.to_lowercase();
        words
            .iter()
            .any(|w| !w.trim().is_empty() && t.contains(&w.trim().to_lowercase()))
    }
}

/// Which side of the table a line was said on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Rep,
    Customer,
    /// No speaker label, or one the engine could not place.
    Unknown,
}

/// Places every line: by the role salesai attached to it (a channel, a label, a correction,
/// or an inference from the voices), else — for a transcript placed by nobody — by speaker
/// label ("業務", "Owner", "Customer"), then, for names, by how they talk (see
/// [`crate::speakers::rep_likeness`]). A line with no role in a placed transcript (overlapping
/// speech) stays unknown rather than guessed.
fn sides(segments: &[Segment]) -> Vec<Side> {
    if segments.iter().any(|s| s.role.is_some()) {
        return segments
            .iter()
            .map(|s| match s.role {
                Some(Role::Rep) => Side::Rep,
                Some(Role::Customer) => Side::Customer,
                None => Side::Unknown,
            })
            .collect();
    }
    let mut labels: Vec<&str> = Vec::new();
    for s in segments {
        if let Some(name) = s.speaker.as_deref()
            && !labels.contains(&name)
        {
            labels.push(name);
        }
    }
    let mut side_of: Vec<(&str, Side)> = labels
        .iter()
        .map(|l| {
            let side = match crate::speakers::label_role(l, None) {
                Some(Role::Rep) => Side::Rep,
                Some(Role::Customer) => Side::Customer,
                None => Side::Unknown,
            };
            (*l, side)
        })
        .collect();
    let unknown = side_of.iter().filter(|(_, s)| *s == Side::Unknown).count();
    if unknown > 0 && labels.len() >= 2 {
        let rep_known = side_of.iter().any(|(_, s)| *s == Side::Rep);
        let score = |label: &str| -> f64 {
            let lines: Vec<&Segment> = segments
                .iter()
                .filter(|s| s.speaker.as_deref() == Some(label))
                .collect();
            crate::speakers::rep_likeness(&lines)
        };
        let best = side_of
            .iter()
            .filter(|(_, s)| *s == Side::Unknown)
            .map(|(l, _)| (*l, score(l)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        for (label, side) in side_of.iter_mut() {
            if *side == Side::Unknown {
                *side = if !rep_known && best.is_some_and(|(b, _)| b == *label) {
                    Side::Rep
                } else {
                    Side::Customer
                };
            }
        }
    }
    segments
        .iter()
        .map(|s| {
            s.speaker
                .as_deref()
                .and_then(|l| side_of.iter().find(|(x, _)| *x == l).map(|(_, s)| *s))
                .unwrap_or(Side::Unknown)
        })
        .collect()
}

/// How well a line states a buying timeline: an answer to "when", a future marker ("next",
/// "by", "before", "下個月", "年底前") count for it; the past ("went up this year", "去年") against.
fn timeline_rank(text: &str, asked_when: bool) -> i32 {
    2 * i32::from(asked_when) + i32::from(patterns::FUTURE.is_match(text))
        - 2 * i32::from(patterns::PAST.is_match(text))
}

fn evidence(segment: &Segment) -> Evidence {
    Evidence {
        quote: shorten(&segment.text, 160),
        start_ms: segment.start_ms,
    }
}

fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

fn score(value: f64) -> Score {
    Score::new(value.round().clamp(0.0, 100.0) as i64).expect("clamped")
}

/// A person who decides or influences, as found in the call.
#[derive(Debug, Clone, PartialEq)]
struct Person {
    name: Option<String>,
    role: Option<String>,
}

impl Person {
    fn label(&self) -> String {
        match (&self.name, &self.role) {
            (Some(n), Some(r)) => format!("{n} ({r})"),
            (Some(n), None) => n.clone(),
            (None, Some(r)) => r.clone(),
            (None, None) => String::new(),
        }
    }
}

/// A quantity with the line it was said in.
struct Said<'a> {
    segment: &'a Segment,
    quantity: Quantity,
}

/// What the engine found in a transcript, shared by all six agents.
struct Findings<'a> {
    segments: &'a [Segment],
    /// Customer lines that describe a pain, with how many pain patterns each matched.
    pains: Vec<(&'a Segment, usize)>,
    /// Money the customer loses or spends on the problem (and hours it takes).
    losses: Vec<Said<'a>>,
    /// Every other amount the customer said (prices, revenue).
    other_money: Vec<Said<'a>>,
    /// Budget lines, with the amount when one was said.
    budget: Vec<(&'a Segment, Option<Quantity>)>,
    /// Buying timelines, best first.
    timeline: Vec<&'a Segment>,
    /// Next steps agreed: the proposal and the acceptance (the same line when the customer
    /// proposed and accepted at once).
    agreed: Vec<(&'a Segment, &'a Segment)>,
    /// Proposals the customer put off.
    put_off: Vec<&'a Segment>,
    /// Lines where the customer claims the decision.
    owner: Vec<&'a Segment>,
    /// Lines where the customer defers to someone else.
    defers: Vec<&'a Segment>,
    /// A speaker whose label is itself a deciding role spoke.
    dm_spoke: bool,
    /// The role of the customer on the call, when known.
    contact_role: Option<String>,
    /// People who decide or influence.
    people: Vec<Person>,
    positive: Vec<&'a Segment>,
    negative: Vec<&'a Segment>,
    objections: Vec<&'a Segment>,
    lost: Vec<&'a Segment>,
    close_asks: Vec<&'a Segment>,
    criteria: Vec<String>,
    switch_concerns: Vec<&'a Segment>,
    roi: Vec<&'a Segment>,
    spin: [u32; 4],
    /// SPIN questions by kind, each weighted by how fully the customer answered it.
    spin_weight: [f64; 4],
    /// Questions that uncovered a problem: problem questions, and any question the customer
    /// answered with a pain.
    problem_found: u32,
    competitors: Vec<CompetitorMention>,
    dm_from_form: Option<bool>,
    sides: Vec<Side>,
    /// The day the call was held (from the metadata's [`super::CALL_DATE_KEY`]).
    call_date: Option<chrono::NaiveDate>,
}

impl<'a> Findings<'a> {
    fn side(&self, segment: &Segment) -> Side {
        self.segments
            .iter()
            .position(|s| std::ptr::eq(s, segment))
            .map_or(Side::Unknown, |i| self.sides[i])
    }

    fn agreed_next_step(&self) -> bool {
        !self.agreed.is_empty()
    }

    fn is_lost(&self) -> bool {
        !self.lost.is_empty() && self.agreed.is_empty()
    }

    /// Whether the person on the call decides: their own claim first, then their deferring to
    /// someone else (even an owner-labelled speaker may say "my wife holds the money"), then a
    /// speaker labelled with a deciding role, then the upload form.
    fn has_authority(&self) -> Option<bool> {
        if !self.owner.is_empty() {
            Some(true)
        } else if !self.defers.is_empty() {
            Some(false)
        } else if self.dm_spoke {
            Some(true)
        } else {
            self.dm_from_form
        }
    }
}

fn form_flag(metadata: &serde_json::Value, key: &str) -> Option<bool> {
    metadata.get(key).and_then(|v| {
        v.as_bool().or_else(|| match v.as_str()?.trim() {
            "yes" | "true" | "是" | "有" | "Yes" | "YES" => Some(true),
            "no" | "false" | "否" | "沒有" | "No" | "NO" => Some(false),
            _ => None,
        })
    })
}

fn push_person(people: &mut Vec<Person>, person: Person) {
    if person.name.is_none() && person.role.is_none() {
        return;
    }
    // Merge a role-only entry with a later named one of the same role, and the reverse.
    if let Some(existing) = people.iter_mut().find(|p| {
        (p.role.is_some() && p.role == person.role && (p.name.is_none() || person.name.is_none()))
            || (p.name.is_some() && p.name == person.name)
    }) {
        if existing.name.is_none() {
            existing.name = person.name;
        }
        if existing.role.is_none() {
            existing.role = person.role;
        }
        return;
    }
    people.push(person);
}

/// Adds every titled name in `text` ("Mr. Chen", "Dr. Morgan") not yet known by its surname.
fn push_titled_names(people: &mut Vec<Person>, text: &str) {
    for c in patterns::TITLED_NAME.captures_iter(text) {
        let name = c[1].to_owned();
        let surname = name.split_whitespace().last().unwrap_or("").to_owned();
        if !people
            .iter()
            .any(|p| p.name.as_deref().is_some_and(|n| n.contains(&surname)))
        {
            push_person(
                people,
                Person {
                    name: Some(name),
                    role: None,
                },
            );
        }
    }
}

/// The role word in the form people use it ("CFO", "owner").
fn role_label(role: &str) -> String {
    let lower = role.to_lowercase();
    let short = ["ceo", "cfo", "coo", "cto", "cio", "gm", "vp"];
    if short.contains(&lower.as_str()) || lower.starts_with("vp ") {
        lower.to_uppercase()
    } else {
        lower
    }
}

fn clean_name(raw: &str) -> String {
    raw.trim()
        .trim_end_matches(['.', ',', '\'', '-', '&'])
        .trim_end_matches(" POS")
        .trim_end_matches(" CRM")
        .trim()
        .to_owned()
}

fn find<'a>(input: &RulesInput<'a>) -> Findings<'a> {
    let segments = input.segments;
    let sides = sides(segments);
    let mut f = Findings {
        segments,
        pains: Vec::new(),
        losses: Vec::new(),
        other_money: Vec::new(),
        budget: Vec::new(),
        timeline: Vec::new(),
        agreed: Vec::new(),
        put_off: Vec::new(),
        owner: Vec::new(),
        defers: Vec::new(),
        dm_spoke: false,
        contact_role: None,
        people: Vec::new(),
        positive: Vec::new(),
        negative: Vec::new(),
        objections: Vec::new(),
        lost: Vec::new(),
        close_asks: Vec::new(),
        criteria: Vec::new(),
        switch_concerns: Vec::new(),
        roi: Vec::new(),
        spin: [0; 4],
        spin_weight: [0.0; 4],
        problem_found: 0,
        competitors: Vec::new(),
        dm_from_form: form_flag(input.metadata, "decision_maker_present"),
        sides: sides.clone(),
        call_date: input
            .metadata
            .get(super::CALL_DATE_KEY)
            .and_then(|d| d.as_str())
            .and_then(|d| d.parse().ok()),
    };
    let own_products: Vec<String> = input
        .lexicon
        .own_products
        .iter()
        .map(|p| p.to_lowercase())
        .collect();
    let not_competitor = |name: &str| {
        let lower = name.to_lowercase();
        own_products
            .iter()
            .any(|p| lower.contains(p.as_str()) || p.contains(&lower))
            || input
                .lexicon
                .not_competitors
                .iter()
                .any(|n| n.to_lowercase() == lower)
    };
    // Speaker labels that are themselves roles: "老闆娘：", "Owner:", "CFO:".
    for (segment, side) in segments.iter().zip(&sides) {
        if *side == Side::Customer
            && let Some(label) = segment.speaker.as_deref()
        {
            if patterns::DM_LABEL.is_match(label) {
                f.dm_spoke = true;
            }
            if f.contact_role.is_none() {
                let role = patterns::ROLE_ZH
                    .captures(label)
                    .map(|c| c[2].to_owned())
                    .or_else(|| {
                        let l = label.to_lowercase();
                        (patterns::CUSTOMER_LABEL.is_match(label)
                            && ![
                                "customer", "client", "buyer", "prospect", "客戶", "guest",
                                "caller", "user",
                            ]
                            .iter()
                            .any(|g| l.starts_with(g)))
                        .then(|| role_label(label.trim()))
                    });
                f.contact_role = role;
            }
        }
    }
    let mut timeline: Vec<(i32, &Segment)> = Vec::new();
    for (index, segment) in segments.iter().enumerate() {
        let text = segment.text.as_str();
        let side = sides[index];
        let customer = side != Side::Rep;
        let rep = side != Side::Customer;
        let question = is_question(text);
        let previous = index.checked_sub(1).map(|i| &segments[i]);
        let lower = text.to_lowercase();

        // People who decide, from anyone's words.
        for c in patterns::ROLE_THEN_NAME.captures_iter(text) {
            push_person(
                &mut f.people,
                Person {
                    name: c.get(2).map(|m| m.as_str().to_owned()),
                    role: Some(role_label(&c[1])),
                },
            );
        }
        for c in patterns::NAME_THEN_ROLE.captures_iter(text) {
            push_person(
                &mut f.people,
                Person {
                    name: Some(c[1].trim().to_owned()),
                    role: Some(role_label(&c[2])),
                },
            );
        }
        if patterns::AUTHORITY.is_match(text) {
            push_titled_names(&mut f.people, text);
        }
        for c in patterns::ROLE_ZH.captures_iter(text) {
            let role = c[2].to_owned();
            // Kinship words alone are people, not roles, unless they decide ("問我老公").
            let kin = matches!(
                role.as_str(),
                "老公" | "老婆" | "太太" | "先生" | "大姐" | "大哥" | "姐" | "哥"
            );
            if kin && !(patterns::DEFERS.is_match(text) || patterns::AUTHORITY.is_match(text)) {
                continue;
            }
            // A bare 哥/姐 is only someone when it is "my" one ("我哥是股東").
            let mine = text.contains(&format!("我{role}"));
            if kin && c.get(1).is_none() && matches!(role.as_str(), "姐" | "哥" | "先生") && !mine
            {
                continue;
            }
            let name = c.get(1).map(|s| format!("{}{}", s.as_str(), role));
            push_person(
                &mut f.people,
                Person {
                    name,
                    role: Some(role),
                },
            );
        }

        // A relative who decides: "my brother signs anything over five grand", or named in
        // one line and deciding in the next ("my husband handles that." — "he decides").
        if customer {
            let kin = patterns::KIN_EN.captures(text).map(|c| c[1].to_lowercase());
            let decides = patterns::AUTHORITY.is_match(text) || patterns::DEFERS.is_match(text);
            let kin_before = previous
                .filter(|_| decides)
                .and_then(|p| patterns::KIN_EN.captures(&p.text))
                .map(|c| c[1].to_lowercase());
            if let Some(kin) = kin.filter(|_| decides).or(kin_before) {
                push_person(
                    &mut f.people,
                    Person {
                        name: None,
                        role: Some(kin),
                    },
                );
            }
        }

        if customer {
            let self_authority = patterns::SELF_AUTHORITY.is_match(text) && !question;
            // "Can you decide this?" — "Yes." / "可以決定嗎？" — "可以".
            let asked_authority = previous.is_some_and(|p| {
                is_question(&p.text)
                    && patterns::AUTHORITY.is_match(&p.text)
                    && patterns::ASKS_YOU.is_match(&p.text)
            });
            let says_yes = patterns::ACCEPT.is_match(text) && !patterns::DEFERS.is_match(text);
            let claims = self_authority || (asked_authority && says_yes);
            if claims {
                f.owner.push(segment);
            }
            // Someone else named with authority: "our COO, James Walker, approves",
            // "要給黃董事長簽".
            let someone_else = patterns::ROLE_THEN_NAME.is_match(text)
                || patterns::NAME_THEN_ROLE.is_match(text)
                || patterns::TITLED_NAME.is_match(text)
                || patterns::ROLE_ZH
                    .captures_iter(text)
                    .any(|c| patterns::zh_role_decides(&c[2]));
            // "Who signs off on this?" — "Dr. Morgan, the practice owner."
            let asked_who_decides = previous.is_some_and(|p| {
                is_question(&p.text)
                    && patterns::AUTHORITY.is_match(&p.text)
                    && patterns::ASKS_WHO.is_match(&p.text)
            });
            if asked_who_decides && !claims {
                push_titled_names(&mut f.people, text);
            }
            let third_party = someone_else
                && (patterns::AUTHORITY.is_match(text) || asked_who_decides)
                && !patterns::DELEGATED_TO_ME.is_match(text);
            if (patterns::DEFERS.is_match(text) || third_party) && !claims {
                f.defers.push(segment);
            }
            let pain_hits = usize::from(patterns::PAIN_EN.is_match(text))
                + usize::from(patterns::PAIN_ZH.is_match(text))
                + usize::from(Lexicon::has(&input.lexicon.pain, text))
                + patterns::PAIN_EN
                    .find_iter(text)
                    .count()
                    .saturating_sub(1)
                    .min(2)
                + patterns::PAIN_ZH
                    .find_iter(text)
                    .count()
                    .saturating_sub(1)
                    .min(2);
            // The answer to "what goes wrong?" is a pain whatever its words, unless it says
            // nothing is wrong.
            let answers_problem = previous.is_some_and(|p| {
                sides[index - 1] != Side::Customer
                    && is_question(&p.text)
                    && (patterns::SPIN_PROBLEM.is_match(&p.text)
                        || patterns::SPIN_IMPLICATION.is_match(&p.text))
            }) && !patterns::NOTHING_WRONG.is_match(text)
                && !question;
            let pain_hits = pain_hits + usize::from(answers_problem);
            let pain = pain_hits > 0
                && !patterns::NOT_PAIN.is_match(text)
                && !(question && side == Side::Unknown);
            if pain && side != Side::Rep {
                f.pains.push((segment, pain_hits));
            }
            // An amount given in answer to "how much does that cost / how much are the fees",
            // right after the customer described a pain.
            let from = index.saturating_sub(3);
            let pain_before = segments[from..index]
                .iter()
                .zip(&sides[from..index])
                .any(|(s, side)| *side != Side::Rep && is_pain_text(&s.text));
            let asked_cost = previous.is_some_and(|p| {
                is_question(&p.text)
                    && (patterns::SPIN_IMPLICATION.is_match(&p.text)
                        || (pain_before && patterns::ASKS_AMOUNT.is_match(&p.text)))
            });
            let asked_budget = previous
                .is_some_and(|p| patterns::BUDGET.is_match(&p.text) && is_question(&p.text));
            let budget_words = patterns::BUDGET.is_match(text);
            let price_talk = lower.contains("price")
                || lower.contains("quote")
                || text.contains("報價")
                || text.contains("價格")
                || text.contains("多少錢");
            let asked_period = previous
                .filter(|p| is_question(&p.text))
                .map_or(Period::Once, |p| numbers::period_mentioned(&p.text));
            for mut quantity in numbers::quantities(text) {
                // "每個月大概損失多少？" — "大概三萬元吧": the answer recurs as asked.
                if quantity.period == Period::Once {
                    quantity.period = asked_period;
                }
                let said = Said { segment, quantity };
                match said.quantity.unit {
                    Unit::Money => {
                        let loss_words = patterns::ROI.is_match(text)
                            || [
                                "lose",
                                "losing",
                                "lost",
                                "cost us",
                                "costs us",
                                "costing us",
                                "waste",
                                "wasting",
                                "overtime",
                                "成本",
                                "代價",
                                "丟掉",
                                "報廢",
                                "過期",
                                "spend",
                                "spending",
                                "spent",
                                "paying",
                                "pay ",
                                "burn",
                                "損失",
                                "多花",
                                "少賺",
                                "賠",
                                "浪費",
                                "虧",
                                "花",
                                "付",
                                "流失",
                            ]
                            .iter()
                            .any(|w| lower.contains(w));
                        if (budget_words || asked_budget || said.quantity.ceiling) && !loss_words {
                            f.budget.push((segment, Some(said.quantity)));
                        } else if (pain || asked_cost || loss_words) && !price_talk && !question {
                            f.losses.push(said);
                        } else {
                            f.other_money.push(said);
                        }
                    }
                    Unit::Hours if pain || asked_cost => f.losses.push(said),
                    _ => {}
                }
            }
            if budget_words && !question && !f.budget.iter().any(|(s, _)| std::ptr::eq(*s, segment))
            {
                f.budget.push((segment, None));
            }
            let asked_when = previous
                .is_some_and(|p| is_question(&p.text) && patterns::ASKS_WHEN.is_match(&p.text));
            if patterns::TIME.is_match(text)
                && (patterns::TIMELINE_CONTEXT.is_match(text) || asked_when)
                && !question
            {
                timeline.push((timeline_rank(text, asked_when), segment));
            }
            if patterns::POSITIVE.is_match(text) && !question {
                f.positive.push(segment);
            }
            let objection = (patterns::OBJECTION.is_match(text)
                || Lexicon::has(&input.lexicon.objection, text))
                && !question;
            if objection {
                f.objections.push(segment);
                f.negative.push(segment);
            }
            if patterns::LOST.is_match(text) && !question {
                f.lost.push(segment);
                if !objection {
                    f.negative.push(segment);
                }
            }
            for (pattern, criterion) in patterns::CRITERIA_RE.iter() {
                if pattern.is_match(text) && !f.criteria.iter().any(|c| c == criterion) {
                    f.criteria.push((*criterion).to_owned());
                }
            }
            if patterns::SWITCH_CONCERN.is_match(text) && (objection || question || pain) {
                f.switch_concerns.push(segment);
            }
            if patterns::ROI.is_match(text) {
                f.roi.push(segment);
            }
        }
        if rep && patterns::ROI.is_match(text) && !customer {
            f.roi.push(segment);
        }
        if rep && question {
            let kinds = [
                &*patterns::SPIN_SITUATION,
                &*patterns::SPIN_PROBLEM,
                &*patterns::SPIN_IMPLICATION,
                &*patterns::SPIN_NEED,
            ];
            // The most specific kind a question matches; answered when the customer's next line
            // says something (not a bare yes or no). A question of any kind that the customer
            // answers with a pain uncovered a problem too.
            let reply = segments
                .get(index + 1)
                .filter(|n| sides[index + 1] != Side::Rep && n.text.chars().count() >= 6);
            // How fully it was answered: half for the question, up to half more as the
            // customer's reply grows to a full sentence (30 characters).
            let answered =
                0.5 + 0.5 * reply.map_or(0.0, |r| (r.text.chars().count() as f64 / 30.0).min(1.0));
            if let Some(kind) = (0..4).rev().find(|k| kinds[*k].is_match(text)) {
                f.spin[kind] += 1;
                f.spin_weight[kind] += answered;
            }
            if !kinds[1].is_match(text) && reply.is_some_and(|r| is_pain_text(&r.text)) {
                f.problem_found += 1;
                f.spin_weight[1] += 0.5 * answered;
            }
        }
        if rep && patterns::CLOSE_ASK.is_match(text) && side != Side::Customer {
            f.close_asks.push(segment);
        }
        // Next steps: a proposal (a step, or a time) answered by a yes in the next two lines,
        // or a customer naming a time and agreeing to it in one breath.
        let proposal = (patterns::CLOSE_ASK.is_match(text)
            || (patterns::STEP.is_match(text) && patterns::TIME.is_match(text)))
            && !patterns::NURTURE.is_match(text);
        if proposal && side != Side::Customer {
            for (next, next_side) in segments.iter().zip(&sides).skip(index + 1).take(2) {
                if *next_side == Side::Rep {
                    continue;
                }
                if patterns::PUT_OFF.is_match(&next.text) {
                    f.put_off.push(next);
                    break;
                }
                if patterns::ACCEPT.is_match(&next.text)
                    && (patterns::TIME.is_match(text)
                        || patterns::TIME.is_match(&next.text)
                        || patterns::STEP.is_match(text))
                {
                    if !f.agreed.iter().any(|(_, a)| std::ptr::eq(*a, next)) {
                        f.agreed.push((segment, next));
                    }
                    break;
                }
            }
        }
        if customer
            && side != Side::Unknown
            && patterns::TIME.is_match(text)
            && patterns::ACCEPT.is_match(text)
            && !patterns::PUT_OFF.is_match(text)
            && (patterns::STEP.is_match(text)
                || previous.is_some_and(|p| patterns::CLOSE_ASK.is_match(&p.text)))
            && !f.agreed.iter().any(|(_, a)| std::ptr::eq(*a, segment))
        {
            f.agreed.push((segment, segment));
        }

        // Competitors: configured names, and names said the way people talk about products.
        let mut names: Vec<String> = input
            .competitors
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty() && lower.contains(&n.to_lowercase()))
            .map(str::to_owned)
            .collect();
        let mut candidates: Vec<String> = patterns::COMPETITOR_EN
            .captures_iter(text)
            .chain(patterns::COMPETITOR_EN_BEFORE.captures_iter(text))
            .map(|c| c[1].to_owned())
            .collect();
        candidates.extend(
            patterns::COMPETITOR_EN_SUBJECT
                .captures_iter(text)
                .chain(patterns::COMPETITOR_EN_CHOSEN.captures_iter(text))
                .map(|c| c[1].to_owned()),
        );
        candidates.extend(
            patterns::BRAND_SHAPE
                .captures_iter(text)
                .map(|c| c[1].to_owned()),
        );
        let offer_context = patterns::OFFER_WORDS.is_match(text)
            || previous.is_some_and(|p| patterns::OFFER_WORDS.is_match(&p.text));
        if offer_context {
            candidates.extend(
                patterns::COMPETITOR_EN_FROM
                    .captures_iter(text)
                    .map(|c| c[1].to_owned()),
            );
        }
        let chinese_line = text.chars().any(is_cjk) && side != Side::Rep;
        for c in patterns::COMPETITOR_ZH_SYSTEM
            .captures_iter(text)
            .filter(|_| chinese_line)
        {
            // Keep what follows the last verb or particle: "已經裝了饗賓" → "饗賓".
            let raw = &c[1];
            let name = raw
                .rfind(|ch: char| "了過用裝是在把跟和從到做換加".contains(ch))
                .map_or(raw, |at| &raw[at + '了'.len_utf8()..]);
            if name.chars().count() >= 2 {
                candidates.push(name.to_owned());
            }
        }
        for (trigger, name) in patterns::zh_competitor_mentions(text) {
            if !patterns::weak_zh_trigger(&trigger) || name.is_ascii() {
                candidates.push(name);
            }
        }
        for candidate in candidates {
            let name = clean_name(&candidate);
            let last = name.split_whitespace().last().unwrap_or("").to_lowercase();
            let a_person = f.people.iter().any(|p| {
                p.name
                    .as_deref()
                    .is_some_and(|n| n.to_lowercase().split_whitespace().any(|w| w == last))
            });
            if patterns::plausible_product(&name)
                && name.chars().any(char::is_alphabetic)
                && !a_person
            {
                names.push(name);
            }
        }
        for name in names {
            if not_competitor(&name)
                || f.competitors
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case(&name))
            {
                continue;
            }
            let attitude =
                if patterns::POSITIVE.is_match(text) && !patterns::OBJECTION.is_match(text) {
                    "positive"
                } else if patterns::OBJECTION.is_match(text) || is_pain_text(text) {
                    "negative"
                } else {
                    "neutral"
                };
            f.competitors.push(CompetitorMention {
                name,
                quote: shorten(text, 160),
                start_ms: segment.start_ms,
                attitude: attitude.into(),
            });
        }
    }
    // The timeline that best says when they will buy comes first; equals keep their order. A
    // line that agreed a meeting is a next step, not a buying timeline.
    timeline.retain(|(_, s)| {
        !f.agreed
            .iter()
            .any(|(p, a)| std::ptr::eq(*p, *s) || std::ptr::eq(*a, *s))
    });
    timeline.sort_by_key(|(rank, _)| std::cmp::Reverse(*rank));
    f.timeline = timeline.into_iter().map(|(_, s)| s).collect();
    // A customer who defers and names nobody still points at a decider ("I have to ask").
    if f.people.is_empty()
        && let Some(role) = f.contact_role.clone()
        && f.dm_spoke
    {
        push_person(
            &mut f.people,
            Person {
                name: None,
                role: Some(role),
            },
        );
    }
    f
}

/// The Chinese or the English text (the engine's messages are written Chinese first).
fn zh(language: Language, zh: &str, en: &str) -> String {
    language.pick(en, zh).to_owned()
}

fn context(f: &Findings<'_>) -> ContextOutput {
    let confirmed = match f.has_authority() {
        Some(v) if !f.owner.is_empty() || !f.defers.is_empty() || f.dm_spoke => Some(v),
        _ => None,
    };
    let urgency = match (f.timeline.len() + f.agreed.len(), f.pains.len()) {
        (0, 0) => None,
        (t, p) if t >= 2 || (t >= 1 && p >= 3) => Some(Level::High),
        (t, p) if t >= 1 || p >= 2 => Some(Level::Medium),
        _ => Some(Level::Low),
    };
    let mut evidence: Vec<Evidence> = f
        .owner
        .iter()
        .chain(&f.defers)
        .chain(&f.timeline)
        .take(4)
        .map(|s| evidence(s))
        .collect();
    evidence.dedup();
    ContextOutput {
        decision_maker_present: f.dm_from_form.or(confirmed),
        decision_maker_confirmed: confirmed,
        urgency,
        deadline: f.timeline.first().map(|s| shorten(&s.text, 120)),
        motivation: main_pain(f).map(|s| shorten(&s.text, 160)),
        barriers: f
            .objections
            .iter()
            .chain(&f.switch_concerns)
            .take(3)
            .map(|s| shorten(&s.text, 120))
            .collect(),
        evidence,
    }
}

/// The pain said most strongly (first among equals).
fn main_pain<'a>(f: &Findings<'a>) -> Option<&'a Segment> {
    let with_loss = |s: &Segment| f.losses.iter().any(|l| std::ptr::eq(l.segment, s));
    f.pains
        .iter()
        .enumerate()
        .max_by_key(|(i, (s, hits))| (*hits + 2 * usize::from(with_loss(s)), std::cmp::Reverse(*i)))
        .map(|(_, (s, _))| *s)
}

fn distinct<'a>(segments: impl Iterator<Item = &'a Segment>) -> Vec<&'a Segment> {
    let mut out: Vec<&Segment> = Vec::new();
    for s in segments {
        if !out.iter().any(|o| std::ptr::eq(*o, s)) {
            out.push(s);
        }
    }
    out
}

fn money_losses<'a, 'b>(f: &'b Findings<'a>) -> impl Iterator<Item = &'b Said<'a>> {
    f.losses.iter().filter(|l| l.quantity.unit == Unit::Money)
}

/// The pains as the writer states them: each distinct pain line's kind, with the monthly
/// figure said on it (a loss said on another line goes to the first pain).
fn pain_facts(f: &Findings<'_>) -> Vec<write::PainFact> {
    let losses: Vec<&Said<'_>> = money_losses(f).collect();
    let mut pains: Vec<write::PainFact> = distinct(f.pains.iter().map(|(s, _)| *s))
        .into_iter()
        .map(|s| write::PainFact {
            kind: write::pain_kind(&s.text),
            monthly: losses
                .iter()
                .find(|l| std::ptr::eq(l.segment, s))
                .and_then(|l| l.quantity.monthly()),
        })
        .collect();
    // A figure said on a line of no known kind belongs to the pain it measures: the first
    // known one without a figure of its own.
    let mut i = 0;
    while i < pains.len() {
        if pains[i].kind.is_none()
            && pains[i].monthly.is_some()
            && let Some(j) = pains
                .iter()
                .position(|p| p.kind.is_some() && p.monthly.is_none())
        {
            pains[j].monthly = pains[i].monthly;
            pains.remove(i);
        } else {
            i += 1;
        }
    }
    let placed = pains.iter().any(|p| p.monthly.is_some());
    if !placed && let Some(loss) = losses.first() {
        let monthly = loss.quantity.monthly();
        match pains.first_mut() {
            Some(first) => first.monthly = monthly,
            None => pains.push(write::PainFact {
                kind: write::pain_kind(&loss.segment.text),
                monthly,
            }),
        }
    }
    // Known kinds first: they say more.
    pains.sort_by_key(|p| p.kind.is_none());
    pains
}

/// Everything the writer needs, from the findings.
fn facts(
    f: &Findings<'_>,
    buyer: &BuyerOutput,
    strategy: Strategy,
    lang: Language,
) -> write::Facts {
    let step = f.agreed.first().map(|(proposal, accept)| {
        let text = format!("{} {}", proposal.text, accept.text);
        let lower = text.to_lowercase();
        write::StepFact {
            kind: write::step_kind(&text),
            when: write::when_of(&[&accept.text, &proposal.text], f.call_date, lang),
            via: ["DocuSign", "pilot", "Zoom", "Teams", "Google Meet"]
                .iter()
                .find(|v| lower.contains(&v.to_lowercase()))
                .map(|v| (*v).to_owned()),
        }
    });
    let price_words = [
        "貴",
        "便宜",
        "價錢",
        "預算不",
        "price",
        "expensive",
        "cheaper",
        "cost too",
        "a lot",
    ];
    write::Facts {
        lang,
        lost: f.is_lost(),
        pains: pain_facts(f),
        step,
        decider: f.people.iter().map(Person::label).find(|l| !l.is_empty()),
        decider_present: f.has_authority(),
        budget: f
            .budget
            .iter()
            .find_map(|(_, q)| q.as_ref().map(|q| q.upper)),
        timeline: f
            .timeline
            .first()
            .and_then(|s| write::when_of(&[&s.text], None, lang))
            .map(|w| w.said),
        competitors: buyer.competitors.iter().map(|c| c.name.clone()).collect(),
        price_objection: f.objections.iter().any(|o| {
            let t = o.text.to_lowercase();
            price_words.iter().any(|w| t.contains(w))
        }),
        close_now: strategy == Strategy::CloseNow,
        put_off: !f.put_off.is_empty(),
    }
}

fn buyer(f: &Findings<'_>, lang: Language) -> BuyerOutput {
    let loss = money_losses(f).next().or_else(|| f.losses.first());
    let quantified_loss = loss.map(|l| shorten(&l.segment.text, 160));
    let pain_segments = distinct(f.pains.iter().map(|(s, _)| *s));
    let implication_explored = f.spin[2] > 0;
    let pain_score = if pain_segments.is_empty() {
        10.0
    } else {
        32.0 + 11.0 * pain_segments.len().min(4) as f64
            + if quantified_loss.is_some() { 12.0 } else { 0.0 }
            + if implication_explored { 5.0 } else { 0.0 }
    };
    let pain_score = score(pain_score.min(95.0));
    let pain_level = match pain_score.value() {
        v if v >= 80 => "P1",
        v if v >= 60 => "P2",
        v if v >= 35 => "P3",
        _ => "P4",
    };
    let has_authority = f.has_authority();
    let budget_amount = f.budget.iter().find_map(|(_, q)| q.as_ref());
    let lost = f.is_lost();
    let mut decision: f64 =
        15.0 + match has_authority {
            Some(true) => 28.0,
            Some(false) => 0.0,
            None => 8.0,
        } + if f.timeline.is_empty() { 0.0 } else { 14.0 }
            + if f.budget.is_empty() { 0.0 } else { 10.0 }
            + if budget_amount.is_some() { 5.0 } else { 0.0 }
            + if f.agreed_next_step() { 15.0 } else { 0.0 }
            + if has_authority != Some(true) && !f.people.is_empty() {
                5.0
            } else {
                0.0
            };
    if lost {
        decision = decision.min(22.0);
    }
    let decision_score = score(decision);
    let (pos, neg) = (f.positive.len() as f64, f.negative.len() as f64);
    let attitude = if lost {
        Some("negative".to_owned())
    } else if pos == 0.0 && neg == 0.0 {
        if f.agreed_next_step() {
            Some("positive".to_owned())
        } else {
            None
        }
    } else if pos > neg {
        Some("positive".to_owned())
    } else if neg > pos {
        Some("negative".to_owned())
    } else {
        Some("neutral".to_owned())
    };
    let mut champion: f64 = 40.0
        + (10.0 * (pos - neg)).clamp(-30.0, 30.0)
        + 3.0 * f.criteria.len().min(4) as f64
        + if f.agreed_next_step() { 15.0 } else { 0.0 }
        - if f.put_off.is_empty() { 0.0 } else { 8.0 };
    if lost {
        champion = champion.min(12.0);
    }
    let champion_score = score(champion);
    let money: Vec<&Said<'_>> = money_losses(f).collect();
    let hours = f.losses.iter().any(|l| l.quantity.unit == Unit::Hours);
    let metrics = match money.len() {
        0 if hours => 35.0,
        0 => 10.0,
        1 => 48.0,
        _ => 62.0,
    } + if hours && !money.is_empty() { 8.0 } else { 0.0 }
        + if f.roi.is_empty() { 0.0 } else { 15.0 }
        + if budget_amount.is_some() { 5.0 } else { 0.0 };
    let metrics_score = score(metrics);
    let metrics_level = match metrics_score.value() {
        v if v >= 80 => "M1",
        v if v >= 60 => "M2",
        v if v >= 35 => "M3",
        _ => "M4",
    };
    let monthly: Vec<f64> = money.iter().filter_map(|m| m.quantity.monthly()).collect();
    let annual = (!monthly.is_empty()).then(|| (monthly.iter().sum::<f64>() * 12.0).round());
    let probability = score(
        0.35 * f64::from(pain_score.value())
            + 0.35 * f64::from(decision_score.value())
            + 0.3 * f64::from(champion_score.value())
            + if f.agreed_next_step() { 8.0 } else { 0.0 }
            - if lost { 20.0 } else { 0.0 },
    );
    let not_closed_reason = if lost {
        Some(zh(
            lang,
            "客戶已表明不採用或選擇了其他方案",
            "the customer declined or chose another option",
        ))
    } else if has_authority == Some(false) {
        Some(zh(
            lang,
            "決策者不在場，需要決策者點頭",
            "the decision maker was not in the call",
        ))
    } else if neg > pos {
        Some(zh(
            lang,
            "客戶仍有疑慮（價格或時機）",
            "the customer still has doubts (price or timing)",
        ))
    } else if let Some((proposal, accept)) = f.agreed.first() {
        Some(match lang {
            Language::ZhTw => format!(
                "已約定下一步（{}），尚未成交",
                shorten(&pick_step_quote(proposal, accept).text, 60)
            ),
            Language::En => format!(
                "a next step was agreed ({}); not signed yet",
                shorten(&pick_step_quote(proposal, accept).text, 60)
            ),
        })
    } else if f.close_asks.is_empty() {
        Some(zh(
            lang,
            "業務沒有提出成交或下一步要求",
            "the rep did not ask for the close or a next step",
        ))
    } else {
        None
    };
    let breakthrough = if lost {
        Some(zh(
            lang,
            "了解落選原因，保持聯繫，等待下一次機會",
            "learn why we lost and keep in touch for the next window",
        ))
    } else if money.is_empty() {
        Some(zh(
            lang,
            "把客戶的損失量化成每月金額，建立投資報酬",
            "quantify the customer's loss per month to build the ROI case",
        ))
    } else if has_authority != Some(true) {
        Some(zh(
            lang,
            "安排與決策者的第二次會談",
            "book a second meeting with the decision maker",
        ))
    } else {
        Some(zh(
            lang,
            "提出試用或簽約的具體日期",
            "propose a concrete trial or signing date",
        ))
    };
    let mut missed = Vec::new();
    if f.spin[2] == 0 && !f.pains.is_empty() {
        missed.push(zh(
            lang,
            "客戶提到痛點，但沒有追問影響（Implication）",
            "the customer named a pain but its impact was not explored (Implication)",
        ));
    }
    if money.is_empty() {
        missed.push(zh(
            lang,
            "沒有量化損失或效益",
            "the loss or the gain was not put in money",
        ));
    }
    if f.budget.is_empty() {
        missed.push(zh(lang, "沒有確認預算", "budget was not discussed"));
    }
    if has_authority != Some(true) && f.people.is_empty() {
        missed.push(zh(lang, "沒有問清楚誰做決定", "who decides was not asked"));
    }
    let contact_role = f
        .contact_role
        .clone()
        .or_else(|| (!f.owner.is_empty()).then(|| zh(lang, "老闆", "owner")));
    BuyerOutput {
        pain: PainAssessment {
            score: pain_score,
            level: pain_level.into(),
            main_pain: pain_facts(f).first().map(|p| write::pain_sentence(p, lang)),
            quantified_loss,
            evidence: pain_segments.iter().take(3).map(|s| evidence(s)).collect(),
        },
        decision: DecisionAssessment {
            score: decision_score,
            contact_role,
            has_authority,
            budget_awareness: f.budget.first().map(|(s, _)| shorten(&s.text, 120)),
            timeline: f.timeline.first().map(|s| shorten(&s.text, 120)),
            risk: (has_authority != Some(true)).then(|| {
                let who = f
                    .people
                    .iter()
                    .find(|p| p.name.is_some())
                    .or(f.people.first());
                match (lang, who) {
                    (Language::ZhTw, Some(p)) => format!("決策者（{}）未在場確認", p.label()),
                    (Language::En, Some(p)) => {
                        format!("the decision maker ({}) has not confirmed", p.label())
                    }
                    _ => zh(lang, "決策權未確認", "decision authority not confirmed"),
                }
            }),
            evidence: distinct(
                f.owner
                    .iter()
                    .chain(&f.defers)
                    .copied()
                    .chain(f.budget.iter().map(|(s, _)| *s)),
            )
            .into_iter()
            .take(3)
            .map(evidence)
            .collect(),
        },
        champion: ChampionAssessment {
            score: champion_score,
            attitude,
            customer_type: f.criteria.first().map(|c| format!("{c}-driven")),
            primary_criteria: f.criteria.clone(),
            switch_concerns: f
                .switch_concerns
                .iter()
                .take(3)
                .map(|s| shorten(&s.text, 120))
                .collect(),
            evidence: distinct(f.positive.iter().chain(&f.negative).copied())
                .into_iter()
                .take(3)
                .map(evidence)
                .collect(),
        },
        metrics: MetricsAssessment {
            score: metrics_score,
            level: metrics_level.into(),
            quantified_items: f
                .losses
                .iter()
                .map(|l| QuantifiedItem {
                    description: format!("{} — {}", l.quantity.said, shorten(&l.segment.text, 100)),
                    monthly_value: (l.quantity.unit == Unit::Money)
                        .then(|| l.quantity.monthly())
                        .flatten(),
                })
                .collect(),
            annual_impact: annual,
            roi_line: f.roi.first().map(|s| shorten(&s.text, 120)),
        },
        deal_probability: probability,
        not_closed_reason,
        breakthrough,
        competitors: f.competitors.clone(),
        missed_opportunities: missed,
    }
}

/// The line of an agreed step that says when: the customer's, when it names the time.
fn pick_step_quote<'a>(proposal: &'a Segment, accept: &'a Segment) -> &'a Segment {
    if patterns::TIME.is_match(&accept.text) || !patterns::TIME.is_match(&proposal.text) {
        accept
    } else {
        proposal
    }
}

/// A step agreed, as a sentence: when (as said, and the date) and what.
fn step_sentence(f: &Findings<'_>, proposal: &Segment, accept: &Segment, lang: Language) -> String {
    let text = format!("{} {}", proposal.text, accept.text);
    let lower = text.to_lowercase();
    let step = write::StepFact {
        kind: write::step_kind(&text),
        when: write::when_of(&[&accept.text, &proposal.text], f.call_date, lang),
        via: ["DocuSign", "pilot"]
            .iter()
            .find(|v| lower.contains(&v.to_lowercase()))
            .map(|v| (*v).to_owned()),
    };
    write::step_sentence(&step, lang)
}

fn seller(f: &Findings<'_>, buyer: &BuyerOutput, lang: Language) -> SellerOutput {
    // Each stage on 0–100: every question counts by how fully it was answered (a bare
    // question half, a full answer whole), against what a call of this length should hold
    // (a stage every ~20 lines), saturating — so the four stages spread over the scale with
    // the questions asked instead of stepping 0, 34, 68.
    let expected = (f.segments.len() as f64 / 20.0).max(1.0);
    let part = |weight: f64| score(100.0 * (1.0 - (-1.1 * weight / expected).exp()));
    let problem_asked = f.spin[1] + f.problem_found;
    let spin = Spin {
        situation: part(f.spin_weight[0]),
        problem: part(f.spin_weight[1]),
        implication: part(f.spin_weight[2]),
        need_payoff: part(f.spin_weight[3]),
        completion: score(
            [f.spin[0], problem_asked, f.spin[2], f.spin[3]]
                .iter()
                .filter(|n| **n > 0)
                .count() as f64
                * 25.0,
        ),
    };
    // A small-step close counts: the rep asked for a commitment and got a date.
    let asked = !f.close_asks.is_empty() || f.agreed_next_step();
    let progress = score(
        20.0 + if asked { 20.0 } else { 0.0 }
            + if f.agreed_next_step() { 15.0 } else { 0.0 }
            + 0.3 * f64::from(spin.completion.value())
            + if f.timeline.is_empty() { 0.0 } else { 5.0 }
            + if buyer.champion.attitude.as_deref() == Some("positive") {
                10.0
            } else {
                0.0
            },
    );
    let strategy = if f.is_lost() {
        Strategy::KeepWarm
    } else if buyer.pain.score.value() >= 60
        && buyer.decision.score.value() >= 60
        && buyer.champion.attitude.as_deref() != Some("negative")
    {
        Strategy::CloseNow
    } else if buyer.pain.score.value() >= 40 || f.agreed_next_step() {
        Strategy::SmallStep
    } else {
        Strategy::KeepWarm
    };
    let (action, script, deadline) = write::next_action(&facts(f, buyer, strategy, lang));
    let next_action = NextAction {
        action,
        script,
        deadline,
    };
    let mut strengths = Vec::new();
    let mut improvements = Vec::new();
    if f.spin[0] > 0 {
        strengths.push(zh(
            lang,
            "有了解客戶現況",
            "explored the customer's current situation",
        ));
    }
    if f.spin[1] > 0 || f.problem_found > 0 {
        strengths.push(zh(lang, "有挖掘客戶問題", "asked about problems"));
    }
    if f.spin[2] > 0 {
        strengths.push(zh(
            lang,
            "有追問問題的影響",
            "explored what the problem costs",
        ));
    }
    if f.agreed_next_step() {
        strengths.push(zh(
            lang,
            "有約定具體的下一步",
            "secured a concrete next step",
        ));
    } else if asked {
        strengths.push(zh(
            lang,
            "有主動提出成交或下一步",
            "asked for the close or a next step",
        ));
    } else {
        improvements.push(zh(
            lang,
            "結尾要明確提出下一步或成交要求",
            "end with a clear ask: a next step or the close",
        ));
    }
    if f.spin[2] == 0 {
        improvements.push(zh(
            lang,
            "追問問題對營運的影響與損失",
            "ask what the problem costs the business (Implication)",
        ));
    }
    if f.spin[3] == 0 {
        improvements.push(zh(
            lang,
            "讓客戶自己說出解決後的好處",
            "let the customer state the payoff (Need-payoff)",
        ));
    }
    // A call below the strong band always has something to work on: its weakest dimension.
    let overall = (f64::from(buyer.pain.score.value())
        + f64::from(buyer.decision.score.value())
        + f64::from(buyer.champion.score.value())
        + f64::from(buyer.metrics.score.value()))
        / 4.0;
    if improvements.is_empty() && overall < 75.0 && !f.is_lost() {
        let dims = [
            (
                buyer.pain.score.value(),
                zh(
                    lang,
                    "再追問痛點的細節與發生頻率",
                    "dig deeper into the pain: how often, and who it hurts",
                ),
            ),
            (
                buyer.decision.score.value(),
                zh(
                    lang,
                    "確認誰做決定、預算多少、何時要用",
                    "pin down who decides, the budget and the date they need it by",
                ),
            ),
            (
                buyer.champion.score.value(),
                zh(
                    lang,
                    "找出客戶內部願意幫忙推動的人",
                    "find the person inside who will push for this",
                ),
            ),
            (
                buyer.metrics.score.value(),
                if money_losses(f).next().is_some() {
                    zh(
                        lang,
                        "把每月損失換算成回本時間，讓客戶自己說出值不值得",
                        "turn the monthly loss into a payback time and let the customer say whether it's worth it",
                    )
                } else {
                    zh(
                        lang,
                        "請客戶把損失換算成每月金額",
                        "ask the customer to put a monthly figure on the loss",
                    )
                },
            ),
        ];
        if let Some((_, advice)) = dims.into_iter().min_by_key(|(v, _)| *v) {
            improvements.push(advice);
        }
    }
    if lang == Language::En {
        strengths = strengths.into_iter().map(write::capital).collect();
        improvements = improvements.into_iter().map(write::capital).collect();
    }
    SellerOutput {
        progress_score: progress,
        asked_for_close: asked,
        strategy,
        next_action,
        spin,
        strengths,
        improvements,
    }
}

fn crm(f: &Findings<'_>, buyer: &BuyerOutput, lang: Language) -> CrmOutput {
    let (stage, reasoning) = if f.is_lost() {
        (
            "closed_lost",
            zh(lang, "客戶已表明不採用", "the customer declined"),
        )
    } else if f.agreed_next_step()
        && buyer.champion.attitude.as_deref() == Some("positive")
        && buyer.decision.has_authority == Some(true)
    {
        (
            "negotiation",
            zh(
                lang,
                "決策者在場、態度正面且已約定下一步",
                "the decision maker is positive and a next step is agreed",
            ),
        )
    } else if buyer.metrics.score.value() >= 45 {
        (
            "proposal",
            zh(
                lang,
                "已量化效益，可進入提案",
                "value was quantified; ready for a proposal",
            ),
        )
    } else if buyer.pain.score.value() >= 35 {
        (
            "needs_analysis",
            zh(
                lang,
                "已確認痛點，仍在需求分析",
                "pains confirmed; still analysing needs",
            ),
        )
    } else {
        (
            "qualification",
            zh(
                lang,
                "痛點不明確，仍在資格確認",
                "no clear pain yet; still qualifying",
            ),
        )
    };
    let budget = f.budget.first().map(|(s, q)| match q {
        Some(q) => format!("{} — {}", amount(q.upper), shorten(&s.text, 110)),
        None => shorten(&s.text, 120),
    });
    CrmOutput {
        stage: stage.into(),
        stage_confidence: score(55.0 + 5.0 * (f.pains.len().min(4) as f64)),
        reasoning,
        budget,
        decision_makers: f
            .people
            .iter()
            .map(Person::label)
            .filter(|l| !l.is_empty())
            .collect(),
        timeline: f.timeline.first().map(|s| shorten(&s.text, 120)),
        next_steps: f
            .agreed
            .iter()
            .take(3)
            .map(|(p, a)| step_sentence(f, p, a, lang))
            .collect(),
    }
}

fn summary(
    f: &Findings<'_>,
    buyer: &BuyerOutput,
    seller: &SellerOutput,
    crm: &CrmOutput,
    lang: Language,
) -> SummaryOutput {
    let facts = facts(f, buyer, seller.strategy, lang);
    let notes = write::meeting_notes(&facts, &seller.next_action.action);
    let follow_up = write::follow_up(&facts);
    let mut action_items = vec![ActionItem {
        owner: "us".into(),
        item: seller.next_action.action.clone(),
    }];
    if let Some(item) = write::customer_commitment(&facts) {
        action_items.push(ActionItem {
            owner: "customer".into(),
            item,
        });
    }
    SummaryOutput {
        meeting_notes_markdown: notes,
        follow_up_message: follow_up,
        key_decisions: crm.next_steps.clone(),
        action_items,
    }
}

fn coach(
    f: &Findings<'_>,
    buyer: &BuyerOutput,
    seller: &SellerOutput,
    lang: Language,
) -> CoachOutput {
    let overall = (f64::from(buyer.pain.score.value()) * 0.35
        + f64::from(buyer.decision.score.value()) * 0.25
        + f64::from(buyer.champion.score.value()) * 0.25
        + f64::from(buyer.metrics.score.value()) * 0.15) as u8;
    let alert = if seller.strategy == Strategy::CloseNow && !seller.asked_for_close {
        Alert {
            kind: "close_now".into(),
            severity: Level::High,
            reason: zh(
                lang,
                "成交條件已具備，但業務沒有提出成交",
                "the deal is ready but the rep did not ask for the close",
            ),
        }
    } else if f.is_lost() {
        Alert {
            kind: "deal_lost".into(),
            severity: Level::Medium,
            reason: zh(lang, "客戶表明不採用", "the customer declined"),
        }
    } else if buyer.decision.has_authority == Some(false) {
        Alert {
            kind: "missing_decision_maker".into(),
            severity: Level::Medium,
            reason: zh(
                lang,
                "決策者不在場",
                "the decision maker was not in the call",
            ),
        }
    } else if overall >= 80 {
        Alert {
            kind: "excellent".into(),
            severity: Level::Low,
            reason: zh(lang, "高品質的銷售對話", "an excellent sales conversation"),
        }
    } else if seller.progress_score.value() < 35 {
        Alert {
            kind: "low_progress".into(),
            severity: Level::Medium,
            reason: zh(lang, "這次對話推進有限", "little progress in this call"),
        }
    } else {
        Alert {
            kind: "none".into(),
            severity: Level::Low,
            reason: String::new(),
        }
    };
    let objections = f
        .objections
        .iter()
        .map(|s| {
            let index = f
                .segments
                .iter()
                .position(|x| std::ptr::eq(x, *s))
                .unwrap_or(0);
            // Handled: the rep answered it (the next line is theirs, or unlabelled).
            let answered = f.segments.get(index + 1).is_some_and(|next| {
                f.side(next) != Side::Customer && (next.speaker != s.speaker || s.speaker.is_none())
            });
            Objection {
                objection: shorten(&s.text, 140),
                start_ms: s.start_ms,
                handled: answered,
            }
        })
        .collect();
    let competitor_handling = (!buyer.competitors.is_empty()).then(|| {
        zh(lang, "不批評競品；聚焦客戶提到的痛點與我們的差異化，並提供轉換協助", "do not attack the competitor; anchor on the customer's pains and our difference, and offer migration help")
    });
    let mut notes = seller.improvements.clone();
    if let Some(s) = main_pain(f) {
        notes.push(match lang {
            Language::ZhTw => format!("在 {} 客戶提到痛點，可以再深入追問", clock(s.start_ms)),
            Language::En => format!(
                "at {} the customer named a pain worth digging into",
                clock(s.start_ms)
            ),
        });
    }
    let talk_tracks = vec![match lang {
        Language::ZhTw => "「這個問題每個月大概讓您損失多少？如果能省下來，對您代表什麼？」".to_owned(),
        Language::En => "\"Roughly what does that cost you each month? What would it mean for you to get that back?\"".to_owned(),
    }];
    if lang == Language::En {
        notes = notes.into_iter().map(write::capital).collect();
    }
    CoachOutput {
        manager_attention: alert.severity == Level::High,
        alert,
        coaching_notes: notes,
        objections,
        talk_tracks,
        competitor_handling,
    }
}

/// Runs every agent.
pub fn analyze(input: &RulesInput<'_>) -> AgentOutputs {
    let f = find(input);
    let lang = input.language;
    let context = context(&f);
    let buyer = buyer(&f, lang);
    let seller = seller(&f, &buyer, lang);
    let crm = crm(&f, &buyer, lang);
    let summary = summary(&f, &buyer, &seller, &crm, lang);
    let coach = coach(&f, &buyer, &seller, lang);
    AgentOutputs {
        context,
        buyer,
        seller,
        crm,
        summary,
        coach,
    }
}

/// One agent's output as JSON (the checkpointed form).
pub fn run_agent(agent: Agent, input: &RulesInput<'_>) -> serde_json::Value {
    let all = analyze(input);
    let value = match agent {
        Agent::Context => serde_json::to_value(&all.context),
        Agent::Buyer => serde_json::to_value(&all.buyer),
        Agent::Seller => serde_json::to_value(&all.seller),
        Agent::Crm => serde_json::to_value(&all.crm),
        Agent::Summary => serde_json::to_value(&all.summary),
        Agent::Coach => serde_json::to_value(&all.coach),
    };
    value.expect("agent outputs always serialise")
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// Outputs of an empty transcript with the four PDCM scores set.
    pub fn outputs_with_pdcm(p: i64, d: i64, c: i64, m: i64) -> AgentOutputs {
        let segments = vec![Segment {
            speaker: None,
            start_ms: 0,
            end_ms: 1,
            text: "hello".into(),
            ..Default::default()
        }];
        let mut outputs = analyze(&RulesInput {
            segments: &segments,
            competitors: &[],
            metadata: &serde_json::json!({}),
            language: Language::En,
            lexicon: &Lexicon::default(),
        });
        outputs.buyer.pain.score = Score::new(p).unwrap();
        outputs.buyer.decision.score = Score::new(d).unwrap();
        outputs.buyer.champion.score = Score::new(c).unwrap();
        outputs.buyer.metrics.score = Score::new(m).unwrap();
        outputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::parse_transcript;

    const EN_CALL: &str = "Rep: How do you take orders today?\n\
        Owner: By hand. It's slow and we make mistakes every night.\n\
        Rep: How much does that cost you?\n\
        Owner: We lose about $2,000 a month in wrong orders.\n\
        Rep: Would it help if you could send orders straight to the kitchen?\n\
        Owner: Sounds good. I'm the owner, I decide. We looked at Toast but it was too expensive.\n\
        Rep: Shall we start the trial next week?\n\
        Owner: Yes, next week works.";

    #[test]
    fn english_call_is_scored_with_quotes() {
        let (_, segments) = parse_transcript(EN_CALL).unwrap();
        let competitors = vec!["Toast".to_owned()];
        let input = RulesInput {
            segments: &segments,
            competitors: &competitors,
            metadata: &serde_json::json!({}),
            language: Language::detect(&segments),
            lexicon: &Lexicon::default(),
        };
        assert_eq!(input.language, Language::En);
        let out = analyze(&input);
        assert!(out.buyer.pain.score.value() >= 60, "{:?}", out.buyer.pain);
        assert!(!out.buyer.pain.evidence.is_empty());
        assert_eq!(out.buyer.decision.has_authority, Some(true));
        assert_eq!(out.buyer.metrics.quantified_items.len(), 1);
        assert_eq!(
            out.buyer.metrics.quantified_items[0].monthly_value,
            Some(2000.0)
        );
        assert_eq!(out.buyer.metrics.annual_impact, Some(24_000.0));
        assert_eq!(out.buyer.competitors[0].name, "Toast");
        assert_eq!(
            out.buyer.competitors[0].attitude, "negative",
            "'too expensive' is said of Toast, though 'sounds good' is in the same line"
        );
        assert!(out.seller.asked_for_close);
        assert!(out.seller.spin.situation.value() > 0 && out.seller.spin.implication.value() > 0);
        assert!(
            out.summary
                .meeting_notes_markdown
                .contains("## What we heard")
        );
        let derived = super::super::derive::derive(&out, &Default::default());
        assert!(derived.overall.value() > 50, "{derived:?}");
        assert!(derived.risks.iter().any(|r| r.code == "COMPETITOR"));
    }

    #[test]
    fn chinese_call_and_missing_information() {
        let call = "業務：您現在怎麼點餐呢？\n店長：都是手寫，常常漏單，很麻煩。\n店長：這個要問老闆，我沒辦法決定。\n業務：要不要先試用？\n店長：再考慮看看，太貴了。";
        let (_, segments) = parse_transcript(call).unwrap();
        let input = RulesInput {
            segments: &segments,
            competitors: &[],
            metadata: &serde_json::json!({"decision_maker_present": "no"}),
            language: Language::detect(&segments),
            lexicon: &Lexicon::default(),
        };
        assert_eq!(input.language, Language::ZhTw);
        let out = analyze(&input);
        assert_eq!(out.buyer.decision.has_authority, Some(false));
        assert_eq!(out.context.decision_maker_present, Some(false));
        assert!(out.buyer.metrics.quantified_items.is_empty());
        assert_eq!(
            out.buyer.metrics.annual_impact, None,
            "missing is null, not guessed"
        );
        assert_eq!(out.buyer.champion.attitude.as_deref(), Some("negative"));
        assert_eq!(out.coach.alert.kind, "missing_decision_maker");
        assert!(out.summary.meeting_notes_markdown.contains("## 我們聽到的"));
        assert!(
            out.coach
                .objections
                .iter()
                .any(|o| o.objection.contains("太貴"))
        );
    }

    #[test]
    fn the_engine_is_deterministic() {
        let (_, segments) = parse_transcript(EN_CALL).unwrap();
        let input = RulesInput {
            segments: &segments,
            competitors: &[],
            metadata: &serde_json::json!({}),
            language: Language::En,
            lexicon: &Lexicon::default(),
        };
        assert_eq!(analyze(&input), analyze(&input));
        assert_eq!(
            run_agent(Agent::Buyer, &input),
            serde_json::to_value(analyze(&input).buyer).unwrap()
        );
    }
}
