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
use crate::transcript::{Segment, clock, is_cjk};

/// The engine's name, as stored with its outputs.
pub const ENGINE: &str = "rules";

/// The language of messages the engine writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Traditional Chinese (Taiwan).
    ZhTw,
    /// English.
    En,
}

impl Language {
    /// Picks the language a transcript is mostly in.
    pub fn detect(segments: &[Segment]) -> Language {
        let (cjk, other) =
            segments
                .iter()
                .flat_map(|s| s.text.chars())
                .fold((0, 0), |(c, o), ch| {
                    if is_cjk(ch) {
                        (c + 1, o)
                    } else if ch.is_alphabetic() {
                        (c, o + 1)
                    } else {
                        (c, o)
                    }
                });
        // A CJK character carries about as much as a short English word.
        if cjk * 4 >= other {
            Language::ZhTw
        } else {
            Language::En
        }
    }
}

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
}

const PAIN: &[&str] = &[
    "problem",
    "issue",
    "slow",
    "manual",
    "by hand",
    "mistake",
    "error",
    "waste",
    "frustrat",
    "difficult",
    "struggle",
    "losing",
    "lose ",
    "lost ",
    "headache",
    "complain",
    "too busy",
    "short-staffed",
    "overwhelm",
    "time-consuming",
    "painful",
    "問題",
    "麻煩",
    "困擾",
    "很慢",
    "太慢",
    "手寫",
    "手動",
    "出錯",
    "錯誤",
    "浪費",
    "頭痛",
    "抱怨",
    "損失",
    "不方便",
    "人手不足",
    "忙不過來",
    "來不及",
    "漏單",
    "算錯",
    "很累",
];
const MONEY_UNITS_EN: &[&str] = &[
    "dollars",
    "dollar",
    "usd",
    "ntd",
    "nt$",
    "$",
    "k a month",
    "bucks",
];
const MONEY_UNITS_ZH: &[&str] = &["萬元", "萬", "千元", "元", "塊"];
const MONTHLY: &[&str] = &[
    "a month",
    "per month",
    "monthly",
    "every month",
    "/month",
    "每個月",
    "每月",
    "一個月",
    "月費",
];
const TIME: &[&str] = &[
    "next week",
    "next month",
    "this month",
    "end of the month",
    "end of month",
    "by friday",
    "this quarter",
    "next quarter",
    "tomorrow",
    "asap",
    "deadline",
    "before ",
    "by the end",
    "下週",
    "下禮拜",
    "下個月",
    "這個月",
    "月底",
    "明天",
    "盡快",
    "年底",
    "這週",
    "下一季",
    "之前",
];
const OWNER: &[&str] = &[
    "i'm the owner",
    "i am the owner",
    "i own",
    "i decide",
    "my decision",
    "i make the decision",
    "我是老闆",
    "我決定",
    "我說了算",
    "我來決定",
    "我是負責人",
];
const NOT_OWNER: &[&str] = &[
    "ask my boss",
    "check with",
    "ask the owner",
    "my manager decides",
    "need approval",
    "問老闆",
    "問一下老闆",
    "跟老闆討論",
    "老闆決定",
    "要請示",
    "問股東",
];
const ROLES: &[(&str, &str)] = &[
    ("owner", "owner"),
    ("boss", "owner"),
    ("manager", "manager"),
    ("partner", "partner"),
    ("director", "director"),
    ("ceo", "owner"),
    ("老闆", "owner"),
    ("店長", "manager"),
    ("經理", "manager"),
    ("股東", "partner"),
    ("合夥人", "partner"),
    ("負責人", "owner"),
];
const BUDGET: &[&str] = &[
    "budget",
    "afford",
    "price",
    "cost",
    "預算",
    "價格",
    "價錢",
    "費用",
    "多少錢",
];
const POSITIVE: &[&str] = &[
    "interested",
    "sounds good",
    "sounds great",
    "great",
    "i like",
    "love it",
    "makes sense",
    "let's do",
    "perfect",
    "不錯",
    "有興趣",
    "很好",
    "喜歡",
    "可以考慮",
    "好啊",
    "聽起來",
    "很方便",
];
const NEGATIVE: &[&str] = &[
    "not sure",
    "too expensive",
    "think about it",
    "maybe later",
    "not interested",
    "no need",
    "再考慮",
    "考慮看看",
    "太貴",
    "不確定",
    "之後再說",
    "沒興趣",
    "不需要",
    "再看看",
];
const CLOSE_ASK: &[&str] = &[
    "sign",
    "contract",
    "start today",
    "shall we",
    "get started",
    "start the trial",
    "go ahead",
    "簽約",
    "合約",
    "今天就",
    "要不要先",
    "試用",
    "下單",
    "開始用",
    "先訂",
];
const CRITERIA: &[(&str, &str)] = &[
    ("price", "price"),
    ("cheap", "price"),
    ("easy", "ease of use"),
    ("simple", "ease of use"),
    ("support", "support"),
    ("integrat", "integration"),
    ("fast", "speed"),
    ("report", "reporting"),
    ("價格", "price"),
    ("便宜", "price"),
    ("簡單", "ease of use"),
    ("好用", "ease of use"),
    ("客服", "support"),
    ("整合", "integration"),
    ("速度", "speed"),
    ("報表", "reporting"),
];
const SWITCH_CONCERNS: &[&str] = &[
    "migrat",
    "switch",
    "learn",
    "training",
    "data",
    "轉換",
    "換系統",
    "學習",
    "教育訓練",
    "資料",
];
const ROI: &[&str] = &[
    "save", "roi", "pay back", "payback", "return", "省", "回本", "划算", "賺",
];
const SPIN_SITUATION: &[&str] = &[
    "how many",
    "currently",
    "today",
    "what system",
    "how do you",
    "現在",
    "目前",
    "用什麼",
    "幾個",
    "怎麼",
];
const SPIN_PROBLEM: &[&str] = &[
    "problem",
    "difficult",
    "challenge",
    "frustrat",
    "困擾",
    "問題",
    "麻煩",
    "困難",
];
const SPIN_IMPLICATION: &[&str] = &[
    "how much does",
    "impact",
    "affect",
    "cost you",
    "what happens",
    "影響",
    "損失",
    "代表",
    "會怎樣",
];
const SPIN_NEED: &[&str] = &[
    "would it help",
    "if you could",
    "what if",
    "benefit",
    "how would",
    "如果可以",
    "幫助",
    "省下",
    "會不會比較",
];

fn lower(text: &str) -> String {
    text.to_lowercase()
}

fn hits<'a>(text: &str, words: &[&'a str]) -> Vec<&'a str> {
    let t = lower(text);
    words.iter().copied().filter(|w| t.contains(w)).collect()
}

fn is_question(text: &str) -> bool {
    let t = text.trim_end();
    t.ends_with('?') || t.ends_with('？') || t.ends_with('嗎') || t.ends_with("呢")
}

fn evidence(segment: &Segment) -> Evidence {
    Evidence {
        quote: shorten(&segment.text, 160),
        start_ms: segment.start_ms,
    }
}

/// Segments in order of appearance, each once.
fn distinct_segments<'a>(segments: impl Iterator<Item = &'a Segment>) -> Vec<&'a Segment> {
    let mut out: Vec<&Segment> = Vec::new();
    for s in segments {
        if !out.iter().any(|o| std::ptr::eq(*o, s)) {
            out.push(s);
        }
    }
    out
}

/// The value of a run of Chinese numerals such as 三萬, 兩千五百 or 十二 (None if not one).
fn chinese_number(text: &str) -> Option<f64> {
    let digit = |c: char| match c {
        '零' => Some(0),
        '一' => Some(1),
        '二' | '兩' => Some(2),
        '三' => Some(3),
        '四' => Some(4),
        '五' => Some(5),
        '六' => Some(6),
        '七' => Some(7),
        '八' => Some(8),
        '九' => Some(9),
        _ => None,
    };
    let mut total = 0u64;
    let mut section = 0u64;
    let mut current: Option<u64> = None;
    let mut any = false;
    for c in text.chars() {
        if let Some(d) = digit(c) {
            current = Some(d);
            any = true;
            continue;
        }
        let unit = match c {
            '十' => 10,
            '百' => 100,
            '千' => 1000,
            '萬' => 10_000,
            _ => return None,
        };
        any = true;
        if unit == 10_000 {
            total += (section + current.unwrap_or(0)) * 10_000;
            section = 0;
        } else {
            section += current.unwrap_or(1) * unit;
        }
        current = None;
    }
    any.then(|| (total + section + current.unwrap_or(0)) as f64)
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

/// A number followed (or preceded) by a money unit, e.g. `NT$3,000`, `$12k`, `3萬`, `5000元`.
fn money_in(text: &str) -> Vec<(f64, String)> {
    let t = lower(text);
    let chars: Vec<char> = t.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit() || chars[i] == ',' || chars[i] == '.')
            {
                i += 1;
            }
            let number: String = chars[start..i].iter().filter(|c| **c != ',').collect();
            let Ok(mut value) = number.trim_end_matches('.').parse::<f64>() else {
                continue;
            };
            let before: String = chars[start.saturating_sub(4)..start].iter().collect();
            let after: String = chars[i..(i + 10).min(chars.len())].iter().collect();
            let after_trim = after.trim_start();
            let mut is_money = MONEY_UNITS_EN
                .iter()
                .any(|u| before.ends_with(u) || after_trim.starts_with(u))
                || before.ends_with("nt$")
                || before.ends_with('$');
            if after_trim.starts_with('k') {
                value *= 1000.0;
            }
            for unit in MONEY_UNITS_ZH {
                if after_trim.starts_with(unit) {
                    is_money = true;
                    if unit.starts_with('萬') {
                        value *= 10_000.0;
                    } else if unit.starts_with('千') {
                        value *= 1000.0;
                    }
                    break;
                }
            }
            if is_money {
                let shown: String = chars[start.saturating_sub(3)..(i + 4).min(chars.len())]
                    .iter()
                    .collect();
                found.push((value, shown.trim().to_owned()));
            }
        } else if chinese_number(&chars[i].to_string()).is_some()
            && !matches!(chars[i], '十' | '百' | '千' | '萬')
        {
            let start = i;
            while i < chars.len() && chinese_number(&chars[i].to_string()).is_some() {
                i += 1;
            }
            let run: String = chars[start..i].iter().collect();
            let after: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if let Some(value) = chinese_number(&run)
                && (after.starts_with('元')
                    || after.starts_with('塊')
                    || run.ends_with('萬')
                    || run.ends_with('千'))
                && (run.chars().count() > 1 || after.starts_with('元') || after.starts_with('塊'))
            {
                found.push((
                    value,
                    format!(
                        "{run}{}",
                        after
                            .chars()
                            .next()
                            .filter(|c| *c == '元' || *c == '塊')
                            .map(String::from)
                            .unwrap_or_default()
                    ),
                ));
            }
        } else {
            i += 1;
        }
    }
    found
}

/// What the engine found in a transcript, shared by all six agents.
struct Findings<'a> {
    segments: &'a [Segment],
    pains: Vec<(&'a Segment, &'static str)>,
    money: Vec<(&'a Segment, f64, String, bool)>,
    times: Vec<&'a Segment>,
    owner: Vec<&'a Segment>,
    not_owner: Vec<&'a Segment>,
    roles: Vec<String>,
    budget: Vec<&'a Segment>,
    positive: Vec<&'a Segment>,
    negative: Vec<&'a Segment>,
    close_asks: Vec<&'a Segment>,
    criteria: Vec<String>,
    switch_concerns: Vec<&'a Segment>,
    roi: Vec<&'a Segment>,
    spin: [u32; 4],
    competitors: Vec<CompetitorMention>,
    dm_from_form: Option<bool>,
}

fn find<'a>(input: &RulesInput<'a>) -> Findings<'a> {
    let mut f = Findings {
        segments: input.segments,
        pains: Vec::new(),
        money: Vec::new(),
        times: Vec::new(),
        owner: Vec::new(),
        not_owner: Vec::new(),
        roles: Vec::new(),
        budget: Vec::new(),
        positive: Vec::new(),
        negative: Vec::new(),
        close_asks: Vec::new(),
        criteria: Vec::new(),
        switch_concerns: Vec::new(),
        roi: Vec::new(),
        spin: [0; 4],
        competitors: Vec::new(),
        dm_from_form: input.metadata.get("decision_maker_present").and_then(|v| {
            v.as_bool().or_else(|| match v.as_str()? {
                "yes" | "true" | "是" | "有" => Some(true),
                "no" | "false" | "否" | "沒有" => Some(false),
                _ => None,
            })
        }),
    };
    for (index, segment) in input.segments.iter().enumerate() {
        let text = &segment.text;
        // An answer to "how much a month?" is monthly too.
        let asked_monthly = index > 0 && !hits(&input.segments[index - 1].text, MONTHLY).is_empty();
        for word in hits(text, PAIN) {
            if !f.pains.iter().any(|(_, w)| *w == word) {
                f.pains.push((segment, word));
            }
        }
        let monthly = asked_monthly || !hits(text, MONTHLY).is_empty();
        for (value, shown) in money_in(text) {
            f.money.push((segment, value, shown, monthly));
        }
        if !hits(text, TIME).is_empty() {
            f.times.push(segment);
        }
        if !hits(text, OWNER).is_empty() {
            f.owner.push(segment);
        }
        if !hits(text, NOT_OWNER).is_empty() {
            f.not_owner.push(segment);
        }
        let t = lower(text);
        for (word, role) in ROLES {
            if t.contains(word) && !f.roles.iter().any(|r| r == role) {
                f.roles.push((*role).to_owned());
            }
        }
        if !hits(text, BUDGET).is_empty() {
            f.budget.push(segment);
        }
        if !hits(text, POSITIVE).is_empty() {
            f.positive.push(segment);
        }
        if !hits(text, NEGATIVE).is_empty() {
            f.negative.push(segment);
        }
        if !hits(text, CLOSE_ASK).is_empty() {
            f.close_asks.push(segment);
        }
        for (word, criterion) in CRITERIA {
            if t.contains(word) && !f.criteria.iter().any(|c| c == criterion) {
                f.criteria.push((*criterion).to_owned());
            }
        }
        if !hits(text, SWITCH_CONCERNS).is_empty() {
            f.switch_concerns.push(segment);
        }
        if !hits(text, ROI).is_empty() {
            f.roi.push(segment);
        }
        if is_question(text) {
            for (i, words) in [SPIN_SITUATION, SPIN_PROBLEM, SPIN_IMPLICATION, SPIN_NEED]
                .iter()
                .enumerate()
            {
                if !hits(text, words).is_empty() {
                    f.spin[i] += 1;
                }
            }
        }
        for name in input.competitors {
            if !name.trim().is_empty() && t.contains(&lower(name.trim())) {
                let attitude = if !hits(text, POSITIVE).is_empty() {
                    "positive"
                } else if !hits(text, NEGATIVE).is_empty() || !hits(text, PAIN).is_empty() {
                    "negative"
                } else {
                    "neutral"
                };
                f.competitors.push(CompetitorMention {
                    name: name.trim().to_owned(),
                    quote: shorten(text, 160),
                    start_ms: segment.start_ms,
                    attitude: attitude.into(),
                });
            }
        }
    }
    f
}

fn zh(language: Language, zh: &str, en: &str) -> String {
    match language {
        Language::ZhTw => zh.to_owned(),
        Language::En => en.to_owned(),
    }
}

fn context(f: &Findings<'_>) -> ContextOutput {
    let confirmed = if !f.owner.is_empty() {
        Some(true)
    } else if !f.not_owner.is_empty() {
        Some(false)
    } else {
        None
    };
    let urgency = match (f.times.len(), f.pains.len()) {
        (0, 0) => None,
        (t, p) if t >= 2 || (t >= 1 && p >= 3) => Some(Level::High),
        (t, p) if t >= 1 || p >= 2 => Some(Level::Medium),
        _ => Some(Level::Low),
    };
    let mut evidence: Vec<Evidence> = f
        .owner
        .iter()
        .chain(&f.not_owner)
        .chain(&f.times)
        .take(4)
        .map(|s| evidence(s))
        .collect();
    evidence.dedup();
    ContextOutput {
        decision_maker_present: f.dm_from_form.or(confirmed),
        decision_maker_confirmed: confirmed,
        urgency,
        deadline: f.times.first().map(|s| shorten(&s.text, 120)),
        motivation: f.pains.first().map(|(s, _)| shorten(&s.text, 160)),
        barriers: f
            .negative
            .iter()
            .chain(&f.switch_concerns)
            .take(3)
            .map(|s| shorten(&s.text, 120))
            .collect(),
        evidence,
    }
}

fn buyer(f: &Findings<'_>, lang: Language) -> BuyerOutput {
    let quantified_loss = f
        .money
        .iter()
        .find(|(s, ..)| !hits(&s.text, PAIN).is_empty())
        .map(|(s, ..)| shorten(&s.text, 160));
    let pain_segments = distinct_segments(f.pains.iter().map(|(s, _)| *s));
    let pain_score = if f.pains.is_empty() {
        10.0
    } else {
        20.0 + 15.0 * pain_segments.len() as f64
            + 5.0 * f.pains.len().saturating_sub(pain_segments.len()) as f64
            + if quantified_loss.is_some() { 15.0 } else { 0.0 }
    };
    let pain_score = score(pain_score);
    let pain_level = match pain_score.value() {
        v if v >= 80 => "P1",
        v if v >= 60 => "P2",
        v if v >= 35 => "P3",
        _ => "P4",
    };
    let has_authority = if !f.owner.is_empty() {
        Some(true)
    } else if !f.not_owner.is_empty() {
        Some(false)
    } else {
        f.dm_from_form
    };
    let decision_score = score(
        20.0 + match has_authority {
            Some(true) => 35.0,
            Some(false) => 0.0,
            None => 10.0,
        } + if f.times.is_empty() { 0.0 } else { 20.0 }
            + if f.budget.is_empty() { 0.0 } else { 15.0 }
            + if f.close_asks.is_empty() { 0.0 } else { 10.0 },
    );
    let (pos, neg) = (f.positive.len() as f64, f.negative.len() as f64);
    let attitude = if pos == 0.0 && neg == 0.0 {
        None
    } else if pos > neg {
        Some("positive".to_owned())
    } else if neg > pos {
        Some("negative".to_owned())
    } else {
        Some("neutral".to_owned())
    };
    let champion_score = score(45.0 + 12.0 * (pos - neg) + 5.0 * f.criteria.len() as f64);
    let monthly: Vec<f64> = f.money.iter().filter(|m| m.3).map(|m| m.1).collect();
    let metrics_score = score(
        match f.money.len() {
            0 => 10.0,
            1 => 45.0,
            _ => 65.0,
        } + if f.roi.is_empty() { 0.0 } else { 20.0 },
    );
    let metrics_level = match metrics_score.value() {
        v if v >= 80 => "M1",
        v if v >= 60 => "M2",
        v if v >= 35 => "M3",
        _ => "M4",
    };
    let annual = (!monthly.is_empty()).then(|| monthly.iter().sum::<f64>() * 12.0);
    let probability = score(
        0.4 * f64::from(pain_score.value())
            + 0.3 * f64::from(decision_score.value())
            + 0.3 * f64::from(champion_score.value())
            + if f.close_asks.is_empty() { 0.0 } else { 5.0 },
    );
    let not_closed_reason = if has_authority == Some(false) {
        Some(zh(
            lang,
            "決策者不在場，需要老闆點頭",
            "the decision maker was not in the call",
        ))
    } else if neg > pos {
        Some(zh(
            lang,
            "客戶仍有疑慮（價格或時機）",
            "the customer still has doubts (price or timing)",
        ))
    } else if f.close_asks.is_empty() {
        Some(zh(
            lang,
            "業務沒有提出成交要求",
            "the rep did not ask for the close",
        ))
    } else {
        None
    };
    let breakthrough = if f.money.is_empty() {
        Some(zh(
            lang,
            "把客戶的損失量化成每月金額，建立投資報酬",
            "quantify the customer's loss per month to build the ROI case",
        ))
    } else if has_authority != Some(true) {
        Some(zh(
            lang,
            "安排與老闆的第二次會談",
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
    if f.money.is_empty() {
        missed.push(zh(lang, "沒有量化損失或效益", "nothing was quantified"));
    }
    if f.budget.is_empty() {
        missed.push(zh(lang, "沒有確認預算", "budget was not discussed"));
    }
    BuyerOutput {
        pain: PainAssessment {
            score: pain_score,
            level: pain_level.into(),
            main_pain: f.pains.first().map(|(s, _)| shorten(&s.text, 160)),
            quantified_loss,
            evidence: pain_segments.iter().take(3).map(|s| evidence(s)).collect(),
        },
        decision: DecisionAssessment {
            score: decision_score,
            contact_role: f.roles.first().cloned(),
            has_authority,
            budget_awareness: f.budget.first().map(|s| shorten(&s.text, 120)),
            timeline: f.times.first().map(|s| shorten(&s.text, 120)),
            risk: (has_authority != Some(true))
                .then(|| zh(lang, "決策權未確認", "decision authority not confirmed")),
            evidence: f
                .owner
                .iter()
                .chain(&f.not_owner)
                .chain(&f.budget)
                .take(3)
                .map(|s| evidence(s))
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
            evidence: f
                .positive
                .iter()
                .chain(&f.negative)
                .take(3)
                .map(|s| evidence(s))
                .collect(),
        },
        metrics: MetricsAssessment {
            score: metrics_score,
            level: metrics_level.into(),
            quantified_items: f
                .money
                .iter()
                .map(|(s, value, shown, monthly)| QuantifiedItem {
                    description: format!("{shown} — {}", shorten(&s.text, 100)),
                    monthly_value: monthly.then_some(*value),
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

fn seller(f: &Findings<'_>, buyer: &BuyerOutput, lang: Language) -> SellerOutput {
    let part = |n: u32| score(f64::from(n) * 34.0);
    let spin = Spin {
        situation: part(f.spin[0]),
        problem: part(f.spin[1]),
        implication: part(f.spin[2]),
        need_payoff: part(f.spin[3]),
        completion: score(f.spin.iter().filter(|n| **n > 0).count() as f64 * 25.0),
    };
    let asked = !f.close_asks.is_empty();
    let progress = score(
        25.0 + if asked { 25.0 } else { 0.0 }
            + 0.3 * f64::from(spin.completion.value())
            + if f.times.is_empty() { 0.0 } else { 10.0 }
            + if buyer.champion.attitude.as_deref() == Some("positive") {
                10.0
            } else {
                0.0
            },
    );
    let strategy = if buyer.pain.score.value() >= 60
        && buyer.decision.score.value() >= 60
        && buyer.champion.attitude.as_deref() != Some("negative")
    {
        Strategy::CloseNow
    } else if buyer.pain.score.value() >= 40 {
        Strategy::SmallStep
    } else {
        Strategy::KeepWarm
    };
    let next_action = match strategy {
        Strategy::CloseNow => NextAction {
            action: zh(
                lang,
                "48 小時內送出報價並約簽約時間",
                "send the quote within 48 hours and book the signing",
            ),
            script: Some(zh(
                lang,
                "「依您提到的狀況，我們下週一就能幫您上線，今天先把合約確認好好嗎？」",
                "\"Based on what you told me, we can have you live next Monday — shall we confirm the agreement today?\"",
            )),
            deadline: Some(zh(lang, "2 天內", "within 2 days")),
        },
        Strategy::SmallStep => NextAction {
            action: zh(
                lang,
                "安排試用或與決策者的示範",
                "set up a trial or a demo with the decision maker",
            ),
            script: Some(zh(
                lang,
                "「要不要先試用一週，讓老闆也看看實際效果？」",
                "\"How about a one-week trial so the owner can see the results first-hand?\"",
            )),
            deadline: Some(zh(lang, "1 週內", "within 1 week")),
        },
        Strategy::KeepWarm => NextAction {
            action: zh(
                lang,
                "寄送案例分享並約下次聯繫時間",
                "send a relevant case study and agree on a next touchpoint",
            ),
            script: None,
            deadline: Some(zh(lang, "2 週內", "within 2 weeks")),
        },
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
    if f.spin[1] > 0 {
        strengths.push(zh(lang, "有挖掘客戶問題", "asked about problems"));
    }
    if asked {
        strengths.push(zh(lang, "有主動提出成交", "asked for the close"));
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
    let (stage, reasoning) =
        if !f.close_asks.is_empty() && buyer.champion.attitude.as_deref() == Some("positive") {
            (
                "negotiation",
                zh(
                    lang,
                    "已提出成交且客戶態度正面",
                    "a close was asked for and the customer sounded positive",
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
    CrmOutput {
        stage: stage.into(),
        stage_confidence: score(55.0 + 5.0 * (f.pains.len().min(4) as f64)),
        reasoning,
        budget: f.budget.first().map(|s| shorten(&s.text, 120)),
        decision_makers: f.roles.clone(),
        timeline: f.times.first().map(|s| shorten(&s.text, 120)),
        next_steps: f
            .times
            .iter()
            .take(3)
            .map(|s| shorten(&s.text, 120))
            .collect(),
    }
}

fn summary(f: &Findings<'_>, seller: &SellerOutput, lang: Language) -> SummaryOutput {
    let bullets = |items: Vec<String>, empty: &str| {
        if items.is_empty() {
            format!("- {empty}\n")
        } else {
            items.iter().map(|i| format!("- {i}\n")).collect()
        }
    };
    let challenges: Vec<String> = f
        .pains
        .iter()
        .take(4)
        .map(|(s, _)| shorten(&s.text, 140))
        .collect();
    let agreed: Vec<String> = f
        .times
        .iter()
        .take(3)
        .map(|s| shorten(&s.text, 140))
        .collect();
    let (h1, h2, h3, h4, none) = match lang {
        Language::ZhTw => (
            "## 您目前的挑戰",
            "## 我們如何協助",
            "## 本次確認事項",
            "## 後續待辦",
            "（本次未提及）",
        ),
        Language::En => (
            "## Your challenges",
            "## How we help",
            "## What we agreed",
            "## Next steps",
            "(not discussed)",
        ),
    };
    let notes = format!(
        "{h1}\n{}\n{h2}\n- {}\n\n{h3}\n{}\n{h4}\n- {}\n",
        bullets(challenges, none),
        seller.next_action.action,
        bullets(agreed.clone(), none),
        seller.next_action.action,
    );
    let follow_up = match lang {
        Language::ZhTw => format!(
            "謝謝您今天撥空！依我們的討論，下一步是：{}。有任何問題歡迎隨時跟我說。",
            seller.next_action.action
        ),
        Language::En => format!(
            "Thank you for your time today! As discussed, the next step is to {}. Let me know if any questions come up.",
            seller.next_action.action
        ),
    };
    SummaryOutput {
        meeting_notes_markdown: notes,
        follow_up_message: follow_up,
        key_decisions: agreed,
        action_items: vec![ActionItem {
            owner: "us".into(),
            item: seller.next_action.action.clone(),
        }],
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
        .negative
        .iter()
        .map(|s| {
            let index = f
                .segments
                .iter()
                .position(|x| std::ptr::eq(x, *s))
                .unwrap_or(0);
            let answered = f
                .segments
                .get(index + 1)
                .is_some_and(|next| next.speaker != s.speaker || s.speaker.is_none());
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
    for (s, _) in f.pains.iter().take(1) {
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
    let summary = summary(&f, &seller, lang);
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
        }];
        let mut outputs = analyze(&RulesInput {
            segments: &segments,
            competitors: &[],
            metadata: &serde_json::json!({}),
            language: Language::En,
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
            out.buyer.competitors[0].attitude, "positive",
            "sounds good is in the same line"
        );
        assert!(out.seller.asked_for_close);
        assert!(out.seller.spin.situation.value() > 0 && out.seller.spin.implication.value() > 0);
        assert!(
            out.summary
                .meeting_notes_markdown
                .contains("## Your challenges")
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
        assert!(
            out.summary
                .meeting_notes_markdown
                .contains("## 您目前的挑戰")
        );
        assert!(
            out.coach
                .objections
                .iter()
                .any(|o| o.objection.contains("太貴"))
        );
    }

    #[test]
    fn money_is_found_in_both_languages() {
        assert_eq!(money_in("about NT$3,000 per month")[0].0, 3000.0);
        assert_eq!(money_in("我們每個月損失大概 3萬")[0].0, 30_000.0);
        assert_eq!(money_in("5000元")[0].0, 5000.0);
        assert_eq!(money_in("$12k")[0].0, 12_000.0);
        assert!(money_in("we have 12 tables").is_empty());
        assert_eq!(money_in("大概三萬元吧")[0].0, 30_000.0);
        assert_eq!(money_in("每月兩千五百塊")[0].0, 2_500.0);
        assert!(money_in("一個人",).is_empty(), "a count is not money");
        assert_eq!(chinese_number("十二"), Some(12.0));
        assert_eq!(chinese_number("三萬五千"), Some(35_000.0));
    }

    #[test]
    fn the_engine_is_deterministic() {
        let (_, segments) = parse_transcript(EN_CALL).unwrap();
        let input = RulesInput {
            segments: &segments,
            competitors: &[],
            metadata: &serde_json::json!({}),
            language: Language::En,
        };
        assert_eq!(analyze(&input), analyze(&input));
        assert_eq!(
            run_agent(Agent::Buyer, &input),
            serde_json::to_value(analyze(&input).buyer).unwrap()
        );
    }
}
