//! Sentences from facts: what the rules engine writes for people to read — the next action,
//! the customer's pain, the meeting notes, the follow-up message, coaching — composed from
//! what it found (the kind of pain and its figure, the step agreed with its day and people,
//! the deal's state), never glued from transcript lines. Quotes stay in the fields made for
//! them (evidence, objections). Wording varies by fact, not by chance: the same call always
//! reads the same, and calls that agreed different things read differently.
//!
//! Pure: a [`Facts`] in, strings out, in the product line's language.

use chrono::{Datelike, Duration, NaiveDate, Weekday};

use crate::language::Language;

/// What a pain is about, as far as words tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PainKind {
    /// Orders or requests are missed or forgotten.
    Missed,
    /// Work is typed in twice, by hand, on paper or spreadsheets.
    Manual,
    /// Mistakes that must be redone or refunded.
    Errors,
    /// Reconciling money or stock.
    Reconciling,
    /// Customers or callers wait; capacity overflows.
    Waiting,
    /// A system freezes, crashes or goes down.
    Breakdowns,
    /// Bookings clash, customers do not show.
    Bookings,
    /// Money leaks away: fees, misuse, lost leads.
    Leakage,
}

/// The kind of a pain line, from its words (`None`: not one the writer knows).
pub fn pain_kind(text: &str) -> Option<PainKind> {
    let t = text.to_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| t.contains(w));
    // Most specific first.
    if any(&[
        "freez",
        "crash",
        "down time",
        "downtime",
        "停機",
        "當機",
        "卡住",
        "壞掉",
    ]) {
        Some(PainKind::Breakdowns)
    } else if any(&[
        "no-show",
        "no show",
        "double-book",
        "撞期",
        "爽約",
        "預約",
        "appointment",
    ]) {
        Some(PainKind::Bookings)
    } else if any(&["reconcil", "對帳", "對不起來", "books don", "查不到"]) {
        Some(PainKind::Reconciling)
    } else if any(&[
        "wrong order",
        "mistake",
        "error",
        "mis-ship",
        "打錯",
        "算錯",
        "出錯",
        "錯誤",
        "重做",
    ]) {
        Some(PainKind::Errors)
    } else if any(&[
        "漏單",
        "漏看",
        "漏掉",
        "忘記",
        "miss",
        "forgot",
        "lose orders",
        "lost order",
    ]) {
        Some(PainKind::Missed)
    } else if any(&[
        "by hand",
        "manual",
        "copying",
        "re-enter",
        "retype",
        "spreadsheet",
        "excel",
        "paper",
        "clipboard",
        "手寫",
        "手動",
        "人工",
        "重打",
        "再打",
        "紙本",
    ]) {
        Some(PainKind::Manual)
    } else if any(&[
        "wait",
        "queue",
        "line up",
        "slow",
        "call back",
        "接不完",
        "打不進來",
        "排隊",
        "等很久",
        "等到",
        "太慢",
        "很慢",
        "翻桌",
    ]) {
        Some(PainKind::Waiting)
    } else if any(&[
        "fee",
        "leak",
        "bleeding",
        "fuel card",
        "personal",
        "lose lead",
        "leads",
        "流失",
        "手續費",
        "損失",
        "成本",
    ]) {
        Some(PainKind::Leakage)
    } else {
        None
    }
}

/// A pain as the writer states it.
#[derive(Debug, Clone)]
pub struct PainFact {
    /// What it is about (`None`: the writer says "an operational problem").
    pub kind: Option<PainKind>,
    /// What it costs a month, when the customer put a figure on it.
    pub monthly: Option<f64>,
}

/// The kind of next step agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Sign the agreement.
    Sign,
    /// Install on site.
    Install,
    /// A trial or pilot.
    Trial,
    /// A demo.
    Demo,
    /// Send a quote or proposal.
    Quote,
    /// A survey or assessment on site.
    Survey,
    /// A meeting or call.
    Meeting,
}

/// The kind of a step from the words of its proposal and acceptance.
pub fn step_kind(text: &str) -> StepKind {
    let t = text.to_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if any(&[
        "sign",
        "docusign",
        "contract",
        "agreement",
        "order form",
        "合約",
        "簽約",
        "簽",
    ]) {
        StepKind::Sign
    } else if any(&["install", "set up", "setup", "安裝", "裝好", "上線"]) {
        StepKind::Install
    } else if any(&["trial", "pilot", "試用"]) {
        StepKind::Trial
    } else if any(&["survey", "assess", "評估", "量一下", "看產線", "現場"]) {
        StepKind::Survey
    } else if any(&["demo", "示範", "展示", "演示"]) {
        StepKind::Demo
    } else if any(&["quote", "proposal", "pricing", "報價"]) {
        StepKind::Quote
    } else {
        StepKind::Meeting
    }
}

/// When a step happens: as said, and as a date when it could be resolved against the call's.
#[derive(Debug, Clone, PartialEq)]
pub struct When {
    /// The words, as said ("下週三下午兩點", "Monday at ten").
    pub said: String,
    /// The day and time, resolved ("12/9（二）15:00", "Mon 12/7 10:00").
    pub resolved: Option<String>,
}

/// The time a step was set for, from its lines (acceptance first): the words as said and,
/// when the call's date is known, the date they mean.
pub fn when_of(texts: &[&str], call_date: Option<NaiveDate>, lang: Language) -> Option<When> {
    for text in texts {
        let said = said_time(text);
        if let Some(said) = said {
            let resolved = call_date.and_then(|d| resolve(&said, d, lang));
            return Some(When { said, resolved });
        }
    }
    None
}

static TIME_PHRASE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"(?ix)
        # Chinese: day words, then a part of the day, then an hour
        ((下下|下|這|本)(個)?(週|周|禮拜|星期)[一二三四五六日天]|明天|後天|今天|今晚|[\d一二三四五六七八九十]+月[\d一二三四五六七八九十]+(號|日)|月底|月初|年底|農曆年前|過年前)
        ((上午|下午|晚上|早上|中午)?([一二三四五六七八九十兩\d]+點(半|[\d一二三四五六七八九十]+分)?)?)
        |
        # English
        \b(((next|this)\s+)?(monday|tuesday|wednesday|thursday|friday|saturday|sunday)|(next|this)\s+(week|month))(\s+(morning|afternoon|evening))?(\s+at\s+(\d{1,2}(:\d{2})?\s*(am|pm)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|noon))?\b
        |\b(tonight|tomorrow(\s+(morning|afternoon))?|today)\b
        |\bthe\s+first\s+of\s+next\s+month\b
        |\b(january|february|march|april|may|june|july|august|september|october|november|december)\s+\d{1,2}(st|nd|rd|th)?\b
        |\bafter\s+new\s+year\b",
    )
    .expect("a valid pattern")
});

fn said_time(text: &str) -> Option<String> {
    let m = TIME_PHRASE.find(text)?;
    let said = m.as_str().trim();
    (!said.is_empty()).then(|| said.to_owned())
}

fn zh_number(raw: &str) -> Option<u32> {
    if let Ok(n) = raw.parse() {
        return Some(n);
    }
    let digit = |c: char| "零一二三四五六七八九".find(c).map(|i| (i / 3) as u32);
    let chars: Vec<char> = raw
        .chars()
        .map(|c| if c == '兩' { '二' } else { c })
        .collect();
    match chars.as_slice() {
        [c] if *c == '十' => Some(10),
        [c] => digit(*c),
        ['十', u] => Some(10 + digit(*u)?),
        [t, '十'] => Some(digit(*t)? * 10),
        [t, '十', u] => Some(digit(*t)? * 10 + digit(*u)?),
        _ => None,
    }
}

fn weekday_of(c: char) -> Option<Weekday> {
    Some(match c {
        '一' => Weekday::Mon,
        '二' => Weekday::Tue,
        '三' => Weekday::Wed,
        '四' => Weekday::Thu,
        '五' => Weekday::Fri,
        '六' => Weekday::Sat,
        '日' | '天' => Weekday::Sun,
        _ => return None,
    })
}

fn weekday_en(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" => Weekday::Mon,
        "tuesday" => Weekday::Tue,
        "wednesday" => Weekday::Wed,
        "thursday" => Weekday::Thu,
        "friday" => Weekday::Fri,
        "saturday" => Weekday::Sat,
        "sunday" => Weekday::Sun,
        _ => return None,
    })
}

/// The next `day` after `from` (in the week after `from`'s week when `next_week`).
fn upcoming(from: NaiveDate, day: Weekday, next_week: bool) -> NaiveDate {
    if next_week {
        let monday = from - Duration::days(i64::from(from.weekday().num_days_from_monday()));
        monday + Duration::days(7 + i64::from(day.num_days_from_monday()))
    } else {
        let ahead = (7 + i64::from(day.num_days_from_monday())
            - i64::from(from.weekday().num_days_from_monday()))
            % 7;
        from + Duration::days(if ahead == 0 { 7 } else { ahead })
    }
}

fn resolve(said: &str, call: NaiveDate, lang: Language) -> Option<String> {
    let lower = said.to_lowercase();
    let (date, hour_min) = if lower
        .chars()
        .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    {
        let day = if let Some(rest) = lower
            .split_once(['週', '周'])
            .or_else(|| lower.split_once("禮拜"))
            .or_else(|| lower.split_once("星期"))
        {
            let next_week = rest.0.contains('下');
            let c = rest.1.chars().next()?;
            Some(upcoming(call, weekday_of(c)?, next_week))
        } else if lower.starts_with("明天") {
            Some(call + Duration::days(1))
        } else if lower.starts_with("後天") {
            Some(call + Duration::days(2))
        } else if lower.starts_with("今") {
            Some(call)
        } else if let Some((m, rest)) = lower.split_once('月') {
            let d: String = rest
                .chars()
                .take_while(|c| *c != '號' && *c != '日')
                .collect();
            let (month, day) = (zh_number(m)?, zh_number(&d)?);
            let year = if month < call.month() {
                call.year() + 1
            } else {
                call.year()
            };
            NaiveDate::from_ymd_opt(year, month, day)
        } else {
            None
        }?;
        let hour = lower.split_once('點').and_then(|(h, _)| {
            let digits: String = h
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_digit() || "一二三四五六七八九十兩".contains(*c))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let mut hour = zh_number(&digits)?;
            if (lower.contains("下午") || lower.contains("晚上")) && hour < 12 {
                hour += 12;
            }
            Some((hour, if lower.contains("點半") { 30 } else { 0 }))
        });
        (day, hour)
    } else {
        let words: Vec<&str> = lower.split_whitespace().collect();
        let day = if lower.starts_with("tomorrow") {
            call + Duration::days(1)
        } else if lower.starts_with("tonight") || lower.starts_with("today") {
            call
        } else if lower.starts_with("the first of next month") {
            let (y, m) = if call.month() == 12 {
                (call.year() + 1, 1)
            } else {
                (call.year(), call.month() + 1)
            };
            NaiveDate::from_ymd_opt(y, m, 1)?
        } else {
            let next_week = words.first() == Some(&"next");
            let day = words.iter().find_map(|w| weekday_en(w))?;
            upcoming(call, day, next_week)
        };
        let hour = lower.split_once(" at ").and_then(|(_, h)| {
            let h = h.trim();
            let named = [
                "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve",
            ];
            let (number, pm) = (
                h.trim_end_matches("am").trim_end_matches("pm").trim(),
                h.ends_with("pm"),
            );
            let (hh, mm) = match number.split_once(':') {
                Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
                None if number == "noon" => (12, 0),
                None => (
                    number.parse::<u32>().ok().or_else(|| {
                        named
                            .iter()
                            .position(|n| *n == number)
                            .map(|i| i as u32 + 1)
                    })?,
                    0,
                ),
            };
            // An hour said without am/pm in business talk: 1–7 is the afternoon.
            let hh = if pm || (!h.ends_with("am") && (1..=7).contains(&hh)) {
                hh + 12
            } else {
                hh
            };
            Some((hh, mm))
        });
        (day, hour)
    };
    let weekday = |d: NaiveDate| -> &'static str {
        let i = d.weekday().num_days_from_monday() as usize;
        match lang {
            Language::ZhTw => ["一", "二", "三", "四", "五", "六", "日"][i],
            Language::En => ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][i],
        }
    };
    let day = match lang {
        Language::ZhTw => format!("{}/{}（{}）", date.month(), date.day(), weekday(date)),
        Language::En => format!("{} {}/{}", weekday(date), date.month(), date.day()),
    };
    Some(match (hour_min, lang) {
        (Some((h, m)), Language::ZhTw) if h < 24 && m < 60 => format!("{day}{h:02}:{m:02}"),
        (Some((h, m)), Language::En) if h < 24 && m < 60 => format!("{day} {h:02}:{m:02}"),
        _ => day,
    })
}

/// The step agreed, as the writer states it.
#[derive(Debug, Clone)]
pub struct StepFact {
    /// What it is.
    pub kind: StepKind,
    /// When.
    pub when: Option<When>,
    /// The tool or channel named for it (DocuSign).
    pub via: Option<String>,
}

/// Everything the writer states a call from.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The product line's language.
    pub lang: Language,
    /// The customer said no.
    pub lost: bool,
    /// The pains, most telling first.
    pub pains: Vec<PainFact>,
    /// The step agreed, if one was.
    pub step: Option<StepFact>,
    /// Who decides, as a label ("我哥", "Rachel (VP of Finance)"), when named.
    pub decider: Option<String>,
    /// Whether the person who decides was on the call.
    pub decider_present: Option<bool>,
    /// The budget said, when an amount was.
    pub budget: Option<f64>,
    /// The buying timeline as said ("農曆年前", "after Labor Day").
    pub timeline: Option<String>,
    /// Competitors named.
    pub competitors: Vec<String>,
    /// The customer pushed back on price.
    pub price_objection: bool,
    /// The deal is ready to close.
    pub close_now: bool,
    /// The customer put the next step off.
    pub put_off: bool,
}

impl Facts {
    fn t(&self, zh: &str, en: &str) -> String {
        match self.lang {
            Language::ZhTw => zh.to_owned(),
            Language::En => en.to_owned(),
        }
    }

    fn zh(&self) -> bool {
        self.lang == Language::ZhTw
    }

    /// The total monthly loss the customer put a figure on.
    pub fn monthly_loss(&self) -> Option<f64> {
        let sum: f64 = self.pains.iter().filter_map(|p| p.monthly).sum();
        (sum > 0.0).then_some(sum)
    }
}

/// An amount as people write it: "2.5 萬元" / "14.8 萬元", "$2,500".
pub fn money(value: f64, lang: Language) -> String {
    match lang {
        Language::ZhTw if value >= 10_000.0 => {
            let wan = value / 10_000.0;
            let text = format!("{wan:.1}");
            format!("{} 萬元", text.trim_end_matches(".0"))
        }
        Language::ZhTw => format!("{} 元", group(value)),
        Language::En => format!("${}", group(value)),
    }
}

/// A money amount as people read it: "4,000", "35,000".
pub fn amount(value: f64) -> String {
    let whole = value.round() as i64;
    let digits = whole.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if whole < 0 { format!("-{out}") } else { out }
}

fn group(value: f64) -> String {
    amount(value)
}

/// The pain in a sentence, with its figure: "尖峰時段漏單；每月約損失 2.5 萬元".
pub fn pain_sentence(pain: &PainFact, lang: Language) -> String {
    let zh = lang == Language::ZhTw;
    let what = match (pain.kind, zh) {
        (Some(PainKind::Missed), true) => "訂單或需求被漏掉，尖峰時最嚴重",
        (Some(PainKind::Missed), false) => "Orders and requests slip through, worst at peak times",
        (Some(PainKind::Manual), true) => "資料靠手寫或人工重打，耗時又容易出錯",
        (Some(PainKind::Manual), false) => {
            "Work is written or re-keyed by hand, slow and error-prone"
        }
        (Some(PainKind::Errors), true) => "出錯後要重做或賠償",
        (Some(PainKind::Errors), false) => "Mistakes have to be redone or paid back",
        (Some(PainKind::Reconciling), true) => "對帳耗時，帳目對不起來",
        (Some(PainKind::Reconciling), false) => {
            "Reconciling takes days and the numbers don't match"
        }
        (Some(PainKind::Waiting), true) => "客人等候、電話或排隊消化不了，生意因此流失",
        (Some(PainKind::Waiting), false) => {
            "Customers wait or can't get through, and business walks away"
        }
        (Some(PainKind::Breakdowns), true) => "系統或設備會停擺，停一次就有損失",
        (Some(PainKind::Breakdowns), false) => {
            "Systems or equipment go down, and every outage costs money"
        }
        (Some(PainKind::Bookings), true) => "預約撞期、客人爽約，時段空轉",
        (Some(PainKind::Bookings), false) => "Bookings clash or don't show, and slots go empty",
        (Some(PainKind::Leakage), true) => "錢在看不見的地方流失",
        (Some(PainKind::Leakage), false) => "Money leaks away where nobody sees it",
        (None, true) => "營運上有讓客戶困擾的問題",
        (None, false) => "An operational problem the customer wants solved",
    };
    match (pain.monthly, zh) {
        (Some(v), true) => format!("{what}；每月約損失 {}", money(v, lang)),
        (Some(v), false) => format!("{what}, costing about {} a month", money(v, lang)),
        (None, _) => what.to_owned(),
    }
}

/// How the product helps with a pain (the meeting notes' "how we help").
fn help_sentence(kind: Option<PainKind>, lang: Language) -> &'static str {
    let zh = lang == Language::ZhTw;
    match (kind, zh) {
        (Some(PainKind::Missed), true) => "每張單自動進系統與廚房／現場，不再靠人記",
        (Some(PainKind::Missed), false) => {
            "every order goes straight into the system, so nothing depends on memory"
        }
        (Some(PainKind::Manual), true) => "資料只輸入一次，各處自動同步",
        (Some(PainKind::Manual), false) => "data is entered once and flows everywhere it is needed",
        (Some(PainKind::Errors), true) => "用系統檢核取代人工，錯誤在發生前就擋下",
        (Some(PainKind::Errors), false) => "checks in the system stop mistakes before they ship",
        (Some(PainKind::Reconciling), true) => "帳目即時彙整，對帳從幾天變幾分鐘",
        (Some(PainKind::Reconciling), false) => {
            "figures roll up live, so reconciling takes minutes instead of days"
        }
        (Some(PainKind::Waiting), true) => "線上預約／自助流程分散尖峰，客人不用等",
        (Some(PainKind::Waiting), false) => {
            "self-service and online booking spread the peak so nobody waits"
        }
        (Some(PainKind::Breakdowns), true) => "穩定的系統與即時告警，問題在停擺前就處理",
        (Some(PainKind::Breakdowns), false) => {
            "a stable system with early alerts catches problems before they stop you"
        }
        (Some(PainKind::Bookings), true) => "自動擋掉重複時段並提醒客人，減少爽約",
        (Some(PainKind::Bookings), false) => {
            "clashing slots are blocked and reminders cut no-shows"
        }
        (Some(PainKind::Leakage), true) => "每筆金流都有紀錄與報表，漏洞一眼看出",
        (Some(PainKind::Leakage), false) => {
            "every transaction is tracked and reported, so leaks show at once"
        }
        (None, true) => "依客戶提到的狀況設定流程，先從最痛的環節開始",
        (None, false) => {
            "we set the product up around the problem they raised, starting where it hurts most"
        }
    }
}

fn step_phrase(facts: &Facts, step: &StepFact) -> String {
    let via = step.via.as_deref();
    match (step.kind, facts.zh()) {
        (StepKind::Sign, true) => "簽約".to_owned(),
        (StepKind::Sign, false) => match via {
            Some(v) => format!("get the agreement signed via {v}"),
            None => "get the agreement signed".to_owned(),
        },
        (StepKind::Install, true) => "到場安裝".to_owned(),
        (StepKind::Install, false) => "install on site".to_owned(),
        (StepKind::Trial, true) => "開始試用".to_owned(),
        (StepKind::Trial, false) => match via {
            Some(v) => format!("start the {v}"),
            None => "start the trial".to_owned(),
        },
        (StepKind::Demo, true) => "做示範".to_owned(),
        (StepKind::Demo, false) => "give the demo".to_owned(),
        (StepKind::Quote, true) => "寄出報價".to_owned(),
        (StepKind::Quote, false) => "send the quote".to_owned(),
        (StepKind::Survey, true) => "現場評估".to_owned(),
        (StepKind::Survey, false) => "do the site survey".to_owned(),
        (StepKind::Meeting, true) => "會談".to_owned(),
        (StepKind::Meeting, false) => "hold the meeting".to_owned(),
    }
}

fn when_text(when: &When, lang: Language) -> String {
    match (&when.resolved, lang) {
        (Some(r), Language::ZhTw) => format!("{r}（{}）", when.said),
        (Some(r), Language::En) => format!("{r} ({})", when.said),
        (None, _) => when.said.clone(),
    }
}

/// What to bring or prepare, from the deal's facts (at most three).
fn bring(facts: &Facts) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(step) = &facts.step {
        match step.kind {
            StepKind::Sign => {
                out.push(facts.t("合約與導入時程", "the agreement and the onboarding plan"))
            }
            StepKind::Install => {
                out.push(facts.t("設備與安裝檢查表", "the hardware and the install checklist"))
            }
            StepKind::Trial => out.push(facts.t(
                "試用範圍與成功標準",
                "the trial's scope and success criteria",
            )),
            StepKind::Survey => out.push(facts.t("評估清單", "the survey checklist")),
            _ => {}
        }
    }
    if let Some(loss) = facts.monthly_loss() {
        out.push(match facts.lang {
            Language::ZhTw => format!("以每月約 {}損失試算的回本表", money(loss, facts.lang)),
            Language::En => format!(
                "a payback sheet built on the {} a month they lose",
                money(loss, facts.lang)
            ),
        });
    }
    if facts.price_objection {
        out.push(facts.t(
            "分階段或單店起步的方案",
            "a phased or single-site option for the price",
        ));
    }
    if let Some(c) = facts.competitors.first() {
        out.push(match facts.lang {
            Language::ZhTw => format!("與{}的比較", spaced(c)),
            Language::En => format!("a side-by-side with {c}"),
        });
    }
    if facts.decider_present == Some(false) {
        out.push(match (&facts.decider, facts.lang) {
            (Some(d), Language::ZhTw) => format!("給{d}看的一頁摘要"),
            (Some(d), Language::En) => format!("a one-page summary for {d}"),
            (None, _) => facts.t(
                "給決策者看的一頁摘要",
                "a one-page summary for the decision maker",
            ),
        });
    }
    out.truncate(3);
    out
}

/// A name inside Chinese text: Latin names get a space on each side, Chinese ones none.
fn spaced(name: &str) -> String {
    if name.chars().next().is_some_and(|c| c.is_ascii()) {
        format!(" {name} ")
    } else {
        name.to_owned()
    }
}

fn list(items: &[String], lang: Language) -> String {
    match lang {
        Language::ZhTw => items.join("、"),
        Language::En => match items {
            [] => String::new(),
            [one] => one.clone(),
            [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        },
    }
}

/// Capitalises the first letter of an English sentence.
pub fn capital(text: String) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() => c.to_ascii_uppercase().to_string() + chars.as_str(),
        _ => text,
    }
}

/// The next action: what, when, with whom, what to bring, and a line to say.
pub fn next_action(facts: &Facts) -> (String, Option<String>, Option<String>) {
    let lang = facts.lang;
    let bring = bring(facts);
    // Someone to meet besides the person on the call: the one who decides, when not on it.
    let with = facts
        .decider
        .as_ref()
        .filter(|_| facts.decider_present != Some(true));
    if facts.lost {
        let action = match (facts.competitors.first(), lang) {
            (Some(c), Language::ZhTw) => format!("記錄輸給{}的原因，三個月後再關心一次", spaced(c)),
            (Some(c), Language::En) => {
                format!("Log why we lost to {c} and check back in three months")
            }
            (None, _) => facts.t(
                "記錄這次沒成交的原因，三個月後再關心一次",
                "Log why this one didn't close and check back in three months",
            ),
        };
        return (action, None, Some(facts.t("3 個月後", "In 3 months")));
    }
    if let Some(step) = &facts.step {
        let what = step_phrase(facts, step);
        let when = step.when.as_ref().map(|w| when_text(w, lang));
        let action = match lang {
            Language::ZhTw => {
                let mut s = String::new();
                if let Some(w) = &when {
                    s.push_str(w);
                }
                if let Some(d) = with {
                    s.push_str(&format!("與{d}"));
                }
                s.push_str(&what);
                if !bring.is_empty() {
                    s.push_str(&format!("：備妥{}", list(&bring, lang)));
                }
                s
            }
            Language::En => {
                let mut s = capital(what.clone());
                if let Some(d) = with {
                    s.push_str(&format!(" with {d}"));
                }
                if let Some(w) = &when {
                    s.push_str(&format!(", {w}"));
                }
                if !bring.is_empty() {
                    s.push_str(&format!("; bring {}", list(&bring, lang)));
                }
                s
            }
        };
        let script = script(facts, step);
        let deadline = step.when.as_ref().map(|w| {
            let d = w.resolved.clone().unwrap_or_else(|| w.said.clone());
            if lang == Language::En { capital(d) } else { d }
        });
        return (action, Some(script), deadline);
    }
    let loss = facts.monthly_loss().map(|l| money(l, lang));
    if facts.close_now {
        let action = match lang {
            Language::ZhTw => format!(
                "兩天內送出報價並約好簽約時間{}",
                if bring.is_empty() {
                    String::new()
                } else {
                    format!("：附上{}", list(&bring, lang))
                }
            ),
            Language::En => format!(
                "Send the quote within two days and book the signing{}",
                if bring.is_empty() {
                    String::new()
                } else {
                    format!("; include {}", list(&bring, lang))
                }
            ),
        };
        let script = match (&loss, lang) {
            (Some(l), Language::ZhTw) => {
                format!("「每月 {l} 的損失，越早導入越早止血；這週把合約確認好，好嗎？」")
            }
            (Some(l), Language::En) => format!(
                "\"Every month costs you {l}; shall we confirm the agreement this week so it stops sooner?\""
            ),
            (None, Language::ZhTw) => {
                "「您提到的狀況我們都能處理，這週先把合約確認好，好嗎？」".to_owned()
            }
            (None, Language::En) => {
                "\"We can handle everything you raised; shall we confirm the agreement this week?\""
                    .to_owned()
            }
        };
        return (
            action,
            Some(script),
            Some(facts.t("2 天內", "Within 2 days")),
        );
    }
    if facts.decider_present == Some(false)
        || facts.decider.is_some() && facts.decider_present != Some(true)
    {
        let who = facts
            .decider
            .clone()
            .unwrap_or_else(|| facts.t("決策者", "the decision maker"));
        let action = match lang {
            Language::ZhTw => format!(
                "一週內約到{who}，帶{}當面說明",
                list(&bring, lang).if_empty(|| "一頁摘要".into())
            ),
            Language::En => format!(
                "Get time with {who} within a week and bring {}",
                list(&bring, lang).if_empty(|| "a one-page summary".into())
            ),
        };
        let script = match (&loss, lang) {
            (Some(l), Language::ZhTw) => {
                format!("「每月 {l} 的損失，{who}一定也會想知道；可以請他一起聽十五分鐘嗎？」")
            }
            (Some(l), Language::En) => format!(
                "\"{who} will want to see the {l} a month too — could we get fifteen minutes with them?\""
            ),
            (None, Language::ZhTw) => {
                format!("「這個決定需要{who}點頭，方便幫我約十五分鐘跟他說明嗎？」")
            }
            (None, Language::En) => format!(
                "\"Since {who} makes the call, could you help me get fifteen minutes with them?\""
            ),
        };
        return (
            action,
            Some(script),
            Some(facts.t("1 週內", "Within 1 week")),
        );
    }
    if facts.pains.iter().any(|p| p.kind.is_some()) {
        let pain = pain_sentence(&facts.pains[0], lang);
        let action = match lang {
            Language::ZhTw => format!(
                "一週內安排示範或試用，聚焦在「{}」",
                pain.split('；').next().unwrap_or(&pain)
            ),
            Language::En => format!(
                "Set up a demo or trial within a week, focused on this: {}",
                lowercase_first(pain.split(", costing").next().unwrap_or(&pain))
            ),
        };
        let script = facts.t(
            "「要不要先試用一週，用您店裡真實的狀況看看效果？」",
            "\"How about a one-week trial on your own day-to-day work, so you see the difference first-hand?\"",
        );
        return (
            action,
            Some(script),
            Some(facts.t("1 週內", "Within 1 week")),
        );
    }
    let action = facts.t(
        "兩週內寄一個同業案例，並約好下次聯繫時間",
        "Send a case study from a similar business within two weeks and agree on the next touchpoint",
    );
    (action, None, Some(facts.t("2 週內", "Within 2 weeks")))
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

trait IfEmpty {
    fn if_empty(self, other: impl FnOnce() -> String) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, other: impl FnOnce() -> String) -> String {
        if self.is_empty() { other() } else { self }
    }
}

fn script(facts: &Facts, step: &StepFact) -> String {
    let lang = facts.lang;
    let when = step
        .when
        .as_ref()
        .map(|w| w.said.clone())
        .unwrap_or_else(|| facts.t("約好的時間", "the time we set"));
    let loss = facts.monthly_loss().map(|l| money(l, lang));
    match (step.kind, lang) {
        (StepKind::Sign, Language::ZhTw) => {
            format!("「合約我這就寄給您，{when}簽好後，我們馬上排導入。」")
        }
        (StepKind::Sign, Language::En) => format!(
            "\"I'm sending the agreement now; once it's signed {when}, we schedule onboarding right away.\""
        ),
        (StepKind::Install, Language::ZhTw) => {
            format!("「{when}我們到店安裝，當天就能讓員工上手。」")
        }
        (StepKind::Install, Language::En) => {
            format!("\"We'll install {when} and have your team using it the same day.\"")
        }
        (_, Language::ZhTw) => match loss {
            Some(l) => format!("「{when}見，我會帶每月 {l} 損失的試算，讓大家一起看回本時間。」"),
            None => format!("「{when}見，您提到的問題我會整理好解法一起帶過去。」"),
        },
        (_, Language::En) => match loss {
            Some(l) => format!(
                "\"See you {when}; I'll bring the numbers on the {l} a month so everyone sees the payback.\""
            ),
            None => format!("\"See you {when}; I'll come with answers to everything you raised.\""),
        },
    }
}

/// A step as a sentence: "下週三下午兩點（12/9（三） 14:00）簽約", "Get the agreement signed,
/// Mon 12/7 10:00 (Monday at ten)".
pub fn step_sentence(step: &StepFact, lang: Language) -> String {
    let facts = Facts {
        lang,
        lost: false,
        pains: Vec::new(),
        step: None,
        decider: None,
        decider_present: None,
        budget: None,
        timeline: None,
        competitors: Vec::new(),
        price_objection: false,
        close_now: false,
        put_off: false,
    };
    let what = step_phrase(&facts, step);
    match (&step.when, lang) {
        (Some(w), Language::ZhTw) => format!("{}{what}", when_text(w, lang)),
        (Some(w), Language::En) => format!("{}, {}", capital(what), when_text(w, lang)),
        (None, Language::ZhTw) => what,
        (None, Language::En) => capital(what),
    }
}

/// What the customer committed to, when a step was agreed.
pub fn customer_commitment(facts: &Facts) -> Option<String> {
    let step = facts.step.as_ref()?;
    Some(match (step.kind, facts.lang) {
        (StepKind::Sign, Language::ZhTw) => "簽回合約".to_owned(),
        (StepKind::Sign, Language::En) => "Sign and return the agreement".to_owned(),
        (StepKind::Quote, Language::ZhTw) => "看過報價後回覆".to_owned(),
        (StepKind::Quote, Language::En) => "Review the quote and reply".to_owned(),
        (_, Language::ZhTw) => match &facts.decider {
            Some(d) if facts.decider_present != Some(true) => format!("準時出席，並請{d}一起參加"),
            _ => "準時出席".to_owned(),
        },
        (_, Language::En) => match &facts.decider {
            Some(d) if facts.decider_present != Some(true) => format!("Be there, with {d}"),
            _ => "Be there at the agreed time".to_owned(),
        },
    })
}

/// The meeting notes: what we heard, how we help, what was agreed, who does what next.
pub fn meeting_notes(facts: &Facts, action: &str) -> String {
    let lang = facts.lang;
    let (h1, h2, h3, h4, none) = match lang {
        Language::ZhTw => (
            "## 我們聽到的",
            "## 我們如何協助",
            "## 本次確認事項",
            "## 後續分工",
            "（本次未談到）",
        ),
        Language::En => (
            "## What we heard",
            "## How we help",
            "## What we agreed",
            "## Who does what next",
            "(not discussed)",
        ),
    };
    let mut kinds: Vec<Option<PainKind>> = Vec::new();
    let mut heard = Vec::new();
    for pain in &facts.pains {
        if kinds.contains(&pain.kind) {
            continue;
        }
        kinds.push(pain.kind);
        heard.push(pain_sentence(pain, lang));
        if heard.len() == 3 {
            break;
        }
    }
    let help: Vec<String> = kinds
        .iter()
        .map(|k| {
            let h = help_sentence(*k, lang);
            if lang == Language::En {
                capital(h.to_owned())
            } else {
                h.to_owned()
            }
        })
        .collect();
    let mut agreed = Vec::new();
    if let Some(step) = &facts.step {
        agreed.push(step_sentence(step, lang));
    }
    if let Some(b) = facts.budget {
        agreed.push(match lang {
            Language::ZhTw => format!("預算約 {}", money(b, lang)),
            Language::En => format!("Budget of about {}", money(b, lang)),
        });
    }
    if let Some(t) = &facts.timeline {
        agreed.push(match lang {
            Language::ZhTw => format!("時程：{t}"),
            Language::En => format!("Timing: {t}"),
        });
    }
    if facts.lost {
        agreed.push(facts.t(
            "客戶這次決定不採用",
            "The customer decided not to go ahead this time",
        ));
    }
    let mut next = vec![match lang {
        Language::ZhTw => format!("我方：{action}"),
        Language::En => format!("Us: {}", lowercase_first(action)),
    }];
    if let Some(item) = customer_commitment(facts) {
        next.push(match lang {
            Language::ZhTw => format!("客戶：{item}"),
            Language::En => format!("Customer: {}", lowercase_first(&item)),
        });
    }
    let bullets = |items: &[String]| -> String {
        if items.is_empty() {
            format!("- {none}\n")
        } else {
            items.iter().map(|i| format!("- {i}\n")).collect()
        }
    };
    format!(
        "{h1}\n{}\n{h2}\n{}\n{h3}\n{}\n{h4}\n{}",
        bullets(&heard),
        bullets(&help),
        bullets(&agreed),
        bullets(&next)
    )
}

/// The message to send the customer after the call, fit for the deal's state; never the
/// team's internal words (no "lost", no reason codes, no "record why").
pub fn follow_up(facts: &Facts) -> String {
    let lang = facts.lang;
    if facts.lost {
        return facts.t(
            "謝謝您撥空告訴我們您的決定，也謝謝這段時間的交流。之後若有任何需要，隨時找我。",
            "Thank you for letting me know your decision, and for the time you gave us. If anything changes or I can help later, I'm a message away.",
        );
    }
    let heard = facts
        .pains
        .first()
        .map(|p| help_sentence(p.kind, lang).to_owned());
    let mut out = facts.t("謝謝您今天撥空！", "Thank you for your time today! ");
    if let Some(h) = heard {
        out.push_str(&match lang {
            Language::ZhTw => format!("您提到的狀況，我們的做法是：{h}。"),
            Language::En => format!("On what you described: {h}. "),
        });
    }
    if let Some(step) = facts.step.as_ref().filter(|s| s.kind == StepKind::Sign) {
        out.push_str(&facts.t(
            "合約已經寄出，簽回後我們就排定導入時間，",
            "The agreement is on its way; once it's signed we'll set the onboarding dates. ",
        ));
        if let Some(w) = &step.when {
            out.push_str(&match lang {
                Language::ZhTw => format!("依約定在{}完成。", when_text(w, lang)),
                Language::En => format!("As agreed: {}.", when_text(w, lang)),
            });
        } else {
            out.push_str(&facts.t(
                "有任何問題歡迎隨時跟我說。",
                "Any questions, just reply here.",
            ));
        }
    } else if let Some(step) = &facts.step {
        let what = step_phrase(facts, step);
        out.push_str(&match (&step.when, lang) {
            (Some(w), Language::ZhTw) => format!("我們約好{}{what}，", when_text(w, lang)),
            (Some(w), Language::En) => format!("As agreed, we'll {what} {}. ", when_text(w, lang)),
            (None, Language::ZhTw) => format!("下一步我們會{what}，"),
            (None, Language::En) => format!("Next, we'll {what}. "),
        });
        out.push_str(&facts.t("到時見。", "See you then."));
    } else {
        out.push_str(&facts.t(
            "我會再整理相關資料給您，有任何問題歡迎隨時跟我說。",
            "I'll send over the details we discussed; let me know if any questions come up.",
        ));
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn times_are_found_and_resolved_against_the_call() {
        // Friday 2026-12-04.
        let call = Some(date(2026, 12, 4));
        let zh = |t: &str| when_of(&[t], call, Language::ZhTw);
        let en = |t: &str| when_of(&[t], call, Language::En);
        let w = zh("那我下週三下午兩點帶合約過去").unwrap();
        assert_eq!(w.said, "下週三下午兩點");
        assert_eq!(w.resolved.as_deref(), Some("12/9（三）14:00"));
        assert_eq!(
            zh("十二月十號早上可以").unwrap().resolved.as_deref(),
            Some("12/10（四）")
        );
        assert_eq!(
            en("Monday at ten works").unwrap().resolved.as_deref(),
            Some("Mon 12/7 10:00")
        );
        assert_eq!(
            en("come next Tuesday at 9").unwrap().resolved.as_deref(),
            Some("Tue 12/8 09:00")
        );
        assert_eq!(
            en("I'll sign tonight").unwrap().resolved.as_deref(),
            Some("Fri 12/4")
        );
        assert_eq!(
            en("the first of next month").unwrap().resolved.as_deref(),
            Some("Fri 1/1")
        );
        assert!(when_of(&["no time here"], call, Language::En).is_none());
        // Without the call's date: as said.
        let w = when_of(&["下週一下午兩點我在"], None, Language::ZhTw).unwrap();
        assert_eq!((w.said.as_str(), w.resolved), ("下週一下午兩點", None));
    }

    #[test]
    fn amounts_read_as_people_write_them() {
        assert_eq!(money(25_000.0, Language::ZhTw), "2.5 萬元");
        assert_eq!(money(148_000.0, Language::ZhTw), "14.8 萬元");
        assert_eq!(money(80_000.0, Language::ZhTw), "8 萬元");
        assert_eq!(money(2_500.0, Language::En), "$2,500");
        assert_eq!(money(120_000.0, Language::En), "$120,000");
    }

    #[test]
    fn steps_and_pains_are_told_apart() {
        assert_eq!(
            step_kind("I'll send it through DocuSign tonight"),
            StepKind::Sign
        );
        assert_eq!(step_kind("下週一先去量一下桌數"), StepKind::Survey);
        assert_eq!(step_kind("a two-week pilot"), StepKind::Trial);
        assert_eq!(pain_kind("加點常常忘記送"), Some(PainKind::Missed));
        assert_eq!(pain_kind("每次停半天"), None);
        assert_eq!(pain_kind("設備常常停機"), Some(PainKind::Breakdowns));
        assert_eq!(pain_kind("the fuel cards"), Some(PainKind::Leakage));
    }
}
