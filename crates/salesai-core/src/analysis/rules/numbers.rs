//! Quantities as people say them: money and time in digits, in English words and in Chinese
//! numerals, with the period they recur over ("four thousand dollars a month", "about 4k a
//! month", "三萬", "兩三萬", "五萬以內", "一年三十六萬", "三萬五", "每天兩個小時").
//!
//! The parser reads the shape of an amount (a number, a scale, a currency, a period, a bound),
//! not a list of phrases, so it finds amounts no fixture spelled out. It is deliberately
//! cautious about counts: "12 tables", "三個人" and "兩年" are not money.

/// How often an amount recurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Once, or not said.
    Once,
    /// Every day.
    Day,
    /// Every week.
    Week,
    /// Every month.
    Month,
    /// Every year.
    Year,
}

impl Period {
    /// The factor that turns an amount of this period into a monthly one (None for once).
    pub fn per_month(self) -> Option<f64> {
        match self {
            Period::Once => None,
            Period::Day => Some(30.0),
            Period::Week => Some(52.0 / 12.0),
            Period::Month => Some(1.0),
            Period::Year => Some(1.0 / 12.0),
        }
    }
}

/// What an amount measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Money (any currency).
    Money,
    /// Hours of people's time.
    Hours,
    /// A share ("20%", "兩成").
    Percent,
}

/// One quantity found in a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    /// The amount; for a range ("兩三萬", "3 to 4k") its middle.
    pub value: f64,
    /// The upper bound of a range or of "up to" / "以內" (equal to `value` otherwise).
    pub upper: f64,
    /// What it measures.
    pub unit: Unit,
    /// How often it recurs.
    pub period: Period,
    /// "up to", "以內", "no more than": a ceiling, as budgets are said.
    pub ceiling: bool,
    /// The words it was read from, as said.
    pub said: String,
}

impl Quantity {
    /// The amount per month, when it recurs.
    pub fn monthly(&self) -> Option<f64> {
        self.period.per_month().map(|f| round_money(self.value * f))
    }
}

fn round_money(v: f64) -> f64 {
    if v >= 100.0 {
        v.round()
    } else {
        (v * 100.0).round() / 100.0
    }
}

/// Every quantity in `text`, in order.
pub fn quantities(text: &str) -> Vec<Quantity> {
    let lower = text.to_lowercase();
    let tokens = tokenize(&lower);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match read_number(&tokens, i) {
            Some((number, next)) => {
                if let Some(q) = classify(&lower, &tokens, i, next, number) {
                    out.push(q);
                }
                i = next.max(i + 1);
            }
            None => i += 1,
        }
    }
    out
}

/// The period a line talks about, anywhere in it ("how much a month?", "每個月大概損失多少"):
/// an amount said in answer recurs over it.
pub fn period_mentioned(text: &str) -> Period {
    let t = text.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if has(&[
        "a month",
        "per month",
        "each month",
        "every month",
        "monthly",
        "last month",
        "that month",
        "每個月",
        "每月",
        "一個月",
        "上個月",
        "月費",
    ]) {
        Period::Month
    } else if has(&[
        "a year",
        "per year",
        "each year",
        "every year",
        "annual",
        "yearly",
        "每年",
        "一年",
    ]) {
        Period::Year
    } else if has(&[
        "a week",
        "per week",
        "each week",
        "every week",
        "weekly",
        "每週",
        "每周",
        "一週",
        "每個禮拜",
        "一個禮拜",
    ]) {
        Period::Week
    } else if has(&[
        "a day",
        "per day",
        "each day",
        "every day",
        "daily",
        "a night",
        "every night",
        "每天",
        "一天",
        "每晚",
    ]) {
        Period::Day
    } else {
        Period::Once
    }
}

/// Money amounts only.
pub fn money(text: &str) -> Vec<Quantity> {
    quantities(text)
        .into_iter()
        .filter(|q| q.unit == Unit::Money)
        .collect()
}

/// A token: a run of ASCII letters/digits (with `.`/`,` inside numbers), one CJK character, or
/// one symbol. Byte offsets into the lower-cased text.
#[derive(Debug, Clone)]
struct Token<'a> {
    text: &'a str,
    start: usize,
    end: usize,
}

fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let bytes: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < bytes.len() {
        let (start, c) = bytes[i];
        if c.is_ascii_digit() {
            let mut j = i + 1;
            while j < bytes.len() {
                let ch = bytes[j].1;
                let joins = (ch == ',' || ch == '.')
                    && bytes.get(j + 1).is_some_and(|(_, n)| n.is_ascii_digit());
                if ch.is_ascii_digit() || joins {
                    j += 1;
                } else {
                    break;
                }
            }
            let end = bytes.get(j).map_or(text.len(), |(b, _)| *b);
            tokens.push(Token {
                text: &text[start..end],
                start,
                end,
            });
            i = j;
        } else if c.is_ascii_alphabetic() {
            let mut j = i + 1;
            while j < bytes.len() && (bytes[j].1.is_ascii_alphabetic() || bytes[j].1 == '\'') {
                j += 1;
            }
            let end = bytes.get(j).map_or(text.len(), |(b, _)| *b);
            tokens.push(Token {
                text: &text[start..end],
                start,
                end,
            });
            i = j;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            let end = bytes.get(i + 1).map_or(text.len(), |(b, _)| *b);
            tokens.push(Token {
                text: &text[start..end],
                start,
                end,
            });
            i += 1;
        }
    }
    tokens
}

/// A number read from tokens, before its unit is known.
#[derive(Debug, Clone, Copy)]
struct Number {
    value: f64,
    upper: f64,
    /// Written with a CJK numeral or unit (萬/千): its unit words follow in Chinese.
    chinese: bool,
    /// Written with a "k" ("4k", "3 to 4k"): in speech, nearly always money.
    k: bool,
}

fn english_small(word: &str) -> Option<f64> {
    Some(match word {
        "zero" => 0.0,
        "one" => 1.0,
        "two" => 2.0,
        "three" => 3.0,
        "four" => 4.0,
        "five" => 5.0,
        "six" => 6.0,
        "seven" => 7.0,
        "eight" => 8.0,
        "nine" => 9.0,
        "ten" => 10.0,
        "eleven" => 11.0,
        "twelve" => 12.0,
        "thirteen" => 13.0,
        "fourteen" => 14.0,
        "fifteen" => 15.0,
        "sixteen" => 16.0,
        "seventeen" => 17.0,
        "eighteen" => 18.0,
        "nineteen" => 19.0,
        "twenty" => 20.0,
        "thirty" => 30.0,
        "forty" => 40.0,
        "fifty" => 50.0,
        "sixty" => 60.0,
        "seventy" => 70.0,
        "eighty" => 80.0,
        "ninety" => 90.0,
        _ => return None,
    })
}

fn english_scale(word: &str) -> Option<f64> {
    Some(match word {
        "hundred" => 100.0,
        "thousand" | "grand" => 1_000.0,
        "k" => 1_000.0,
        "million" | "mil" | "m" => 1_000_000.0,
        "billion" | "bn" => 1_000_000_000.0,
        _ => return None,
    })
}

fn cjk_digit(c: char) -> Option<u64> {
    Some(match c {
        '零' | '〇' => 0,
        '一' => 1,
        '二' | '兩' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

fn cjk_unit(c: char) -> Option<u64> {
    Some(match c {
        '十' => 10,
        '百' => 100,
        '千' => 1_000,
        '萬' | '万' => 10_000,
        '億' => 100_000_000,
        _ => return None,
    })
}

fn first_char(t: &Token<'_>) -> char {
    t.text.chars().next().unwrap_or(' ')
}

fn is_cjk_numeral(t: &Token<'_>) -> bool {
    let c = first_char(t);
    t.text.chars().count() == 1 && (cjk_digit(c).is_some() || cjk_unit(c).is_some())
}

/// Reads the number starting at token `i`: digits ("4,000", "1.5", "4k"), English words ("four
/// thousand", "twenty five hundred", "a hundred"), Chinese numerals and mixed forms ("三萬五",
/// "3萬5", "兩三萬", "十幾萬"), and ranges ("3 to 4k", "三到五萬").
fn read_number(tokens: &[Token<'_>], i: usize) -> Option<(Number, usize)> {
    let (first, mut next) = read_single(tokens, i)?;
    let mut number = first;
    // A range: "3 to 4k", "3-4 thousand", "三到五萬", "兩三萬" (handled in the CJK reader).
    if let Some(sep) = tokens.get(next)
        && matches!(sep.text, "to" | "-" | "–" | "~" | "到" | "至")
        && let Some((second, after)) = read_single(tokens, next + 1)
        && second.value > 0.0
    {
        let mut low = first.value;
        // "3 to 4k": the scale of the upper bound applies to a bare lower bound.
        if low < second.value / 100.0 && low > 0.0 {
            let scale = second.value / scale_free(second.value);
            low *= scale;
        }
        if low <= second.value {
            number = Number {
                value: (low + second.value) / 2.0,
                upper: second.value,
                chinese: first.chinese || second.chinese,
                k: first.k || second.k,
            };
            next = after;
        }
    }
    Some((number, next))
}

/// The leading digits of a value without its power-of-ten scale (4000 → 4, 35000 → 35).
fn scale_free(v: f64) -> f64 {
    let mut v = v;
    while v >= 10.0 && (v / 10.0).fract() == 0.0 {
        v /= 10.0;
    }
    v
}

fn read_single(tokens: &[Token<'_>], i: usize) -> Option<(Number, usize)> {
    let t = tokens.get(i)?;
    if t.text.as_bytes()[0].is_ascii_digit() {
        let mut value: f64 = t.text.replace(',', "").parse().ok()?;
        let mut j = i + 1;
        let mut chinese = false;
        let mut k = false;
        // "4k", "1.5m" (adjacent), "4 thousand", "3萬5", "3萬", "5千".
        if let Some(next) = tokens.get(j) {
            let adjacent = next.start == t.end;
            if let Some(scale) = english_scale(next.text)
                && (adjacent || !matches!(next.text, "k" | "m"))
                && (next.text != "m" || adjacent)
            {
                value *= scale;
                k = next.text == "k";
                j += 1;
                // "1.2 million" done; "2 thousand 5 hundred" is rare enough to ignore.
            } else if next.text.chars().count() == 1
                && let Some(unit) = cjk_unit(first_char(next))
                && unit >= 1000
            {
                value *= unit as f64;
                j += 1;
                chinese = true;
                // "3萬5" → 35,000; "3萬5千" → 35,000.
                if let Some(tail) = tokens.get(j)
                    && tail.start == tokens[j - 1].end
                    && tail.text.as_bytes()[0].is_ascii_digit()
                    && tail.text.len() == 1
                {
                    let d: f64 = tail.text.parse().unwrap_or(0.0);
                    let lower = unit as f64 / 10.0;
                    let skip_unit = tokens
                        .get(j + 1)
                        .is_some_and(|u| cjk_unit(first_char(u)) == Some(unit / 10));
                    value += d * lower;
                    j += if skip_unit { 2 } else { 1 };
                }
            }
        }
        return Some((
            Number {
                value,
                upper: value,
                chinese,
                k,
            },
            j,
        ));
    }
    if is_cjk_numeral(t) {
        return read_chinese(tokens, i);
    }
    read_english(tokens, i)
}

fn read_english(tokens: &[Token<'_>], i: usize) -> Option<(Number, usize)> {
    let mut total = 0.0;
    let mut current = 0.0;
    let mut any = false;
    let mut j = i;
    while let Some(t) = tokens.get(j) {
        if let Some(v) = english_small(t.text) {
            // "twenty five": tens then units add up.
            current += v;
            any = true;
        } else if t.text == "a"
            && tokens
                .get(j + 1)
                .is_some_and(|n| english_scale(n.text).is_some())
            && !any
        {
            current = 1.0;
            any = true;
        } else if t.text == "and"
            && any
            && tokens
                .get(j + 1)
                .is_some_and(|n| english_small(n.text).is_some())
        {
            // "three hundred and fifty"
        } else if t.text == "-"
            && any
            && tokens
                .get(j + 1)
                .is_some_and(|n| english_small(n.text).is_some())
        {
            // "twenty-five"
        } else if t.text == "half" && any && j > i {
            current += 0.5;
        } else if t.text == "and"
            && any
            && tokens.get(j + 1).is_some_and(|n| n.text == "a")
            && tokens.get(j + 2).is_some_and(|n| n.text == "half")
        {
            // "two and a half grand": the half is read next.
            j += 1;
        } else if let Some(scale) =
            english_scale(t.text).filter(|_| any && !matches!(t.text, "m" | "k"))
        {
            if scale >= 1000.0 {
                total += current.max(1.0) * scale;
                current = 0.0;
            } else {
                current = current.max(1.0) * scale;
            }
        } else {
            break;
        }
        j += 1;
    }
    if !any {
        return None;
    }
    // A lone "one" is nearly always a pronoun ("the one we use"), not a quantity.
    let value = total + current;
    if j == i + 1 && value <= 1.0 {
        return None;
    }
    Some((
        Number {
            value,
            upper: value,
            chinese: false,
            k: false,
        },
        j,
    ))
}

/// Chinese numerals: "三萬五千", "兩千五", "三萬五" (the digit after a unit is the next lower
/// unit), "兩三萬" (a range), "十幾萬" (about fifteen), "三十六萬".
fn read_chinese(tokens: &[Token<'_>], i: usize) -> Option<(Number, usize)> {
    let mut j = i;
    let mut chars = Vec::new();
    while let Some(t) = tokens.get(j) {
        let c = first_char(t);
        if t.text.chars().count() == 1
            && (cjk_digit(c).is_some() || cjk_unit(c).is_some() || c == '幾' || c == '多')
        {
            // "多" only counts right after a unit ("一萬多"), "幾" inside a number ("十幾萬").
            if (c == '多' || c == '幾') && chars.is_empty() {
                break;
            }
            chars.push(c);
            j += 1;
        } else {
            break;
        }
    }
    // "多" is a trailing approximation marker; drop it from the number.
    while chars.last() == Some(&'多') {
        chars.pop();
    }
    // "一個月", "一年": a trailing 一 before a period word belongs to the period, not the
    // amount ("三萬一個月" is 30,000 a month).
    if chars.len() > 1
        && chars.last() == Some(&'一')
        && tokens.get(j).is_some_and(|t| {
            matches!(
                first_char(t),
                '個' | '年'
                    | '天'
                    | '週'
                    | '周'
                    | '星'
                    | '禮'
                    | '次'
                    | '台'
                    | '間'
                    | '家'
                    | '位'
                    | '人'
                    | '套'
            )
        })
    {
        chars.pop();
        j -= 1;
    }
    if chars.is_empty() || (chars.len() == 1 && cjk_unit(chars[0]).is_some() && chars[0] != '十') {
        return None;
    }
    // "兩三萬", "三四千": two adjacent digits before a unit are a range.
    if chars.len() >= 3
        && let (Some(a), Some(b)) = (cjk_digit(chars[0]), cjk_digit(chars[1]))
        && b == a + 1
        && cjk_unit(chars[2]).is_some()
    {
        let rest: String = std::iter::once('一')
            .chain(chars[2..].iter().copied())
            .collect();
        let scale = chinese_value(&rest)?;
        return Some((
            Number {
                value: (a + b) as f64 / 2.0 * scale,
                upper: b as f64 * scale,
                chinese: true,
                k: false,
            },
            j,
        ));
    }
    // "十幾萬" ≈ 15萬, "幾千" is too vague.
    if let Some(pos) = chars.iter().position(|c| *c == '幾') {
        if pos == 0 {
            return None;
        }
        let mut approx = chars.clone();
        approx[pos] = '五';
        let s: String = approx.iter().collect();
        let v = chinese_value(&s)?;
        return Some((
            Number {
                value: v,
                upper: v,
                chinese: true,
                k: false,
            },
            j,
        ));
    }
    let s: String = chars.iter().collect();
    let v = chinese_value(&s)?;
    Some((
        Number {
            value: v,
            upper: v,
            chinese: true,
            k: false,
        },
        j,
    ))
}

/// The value of a run of Chinese numerals such as 三萬, 兩千五百, 十二, 三萬五 (None if not one).
pub fn chinese_value(text: &str) -> Option<f64> {
    let mut total = 0u64;
    let mut section = 0u64;
    let mut current: Option<u64> = None;
    let mut last_unit = 0u64;
    let mut any = false;
    for c in text.chars() {
        if let Some(d) = cjk_digit(c) {
            if current.is_some() {
                return None;
            }
            current = Some(d);
            any = true;
            continue;
        }
        let unit = cjk_unit(c)?;
        any = true;
        if unit >= 10_000 {
            total = (total + section + current.unwrap_or(0)) * unit;
            section = 0;
        } else {
            section += current.unwrap_or(1) * unit;
        }
        last_unit = unit;
        current = None;
    }
    // "三萬五": a digit after a unit is one unit lower (5 × 1000).
    let tail = match current {
        Some(d) if last_unit >= 100 => d * (last_unit / 10),
        Some(d) => d,
        None => 0,
    };
    any.then(|| (total + section + tail) as f64)
}

const CURRENCY_BEFORE: &[&str] = &[
    "$", "us$", "nt$", "usd", "ntd", "twd", "€", "£", "¥", "eur", "gbp", "hk$", "s$", "a$",
];
const CURRENCY_AFTER: &[&str] = &[
    "dollars", "dollar", "bucks", "usd", "ntd", "twd", "eur", "euros", "euro", "pounds", "grand",
    "元", "塊", "圓", "台幣", "美金", "美元", "萬元",
];
/// Words after a number that make it a count of something, not money.
const COUNT_NOUNS: &[&str] = &[
    "tables",
    "table",
    "seats",
    "people",
    "staff",
    "employees",
    "stores",
    "store",
    "locations",
    "shops",
    "branches",
    "orders",
    "customers",
    "clients",
    "users",
    "reps",
    "times",
    "covers",
    "percent",
    "years",
    "year",
    "months",
    "month",
    "weeks",
    "week",
    "days",
    "day",
    "minutes",
    "minute",
    "hours",
    "hour",
    "o'clock",
    "pm",
    "am",
    "licenses",
    "seats",
    "calls",
    "tickets",
    "个",
    "個",
    "人",
    "位",
    "次",
    "張",
    "筆",
    "單",
    "家",
    "間",
    "台",
    "桌",
    "分",
    "點",
    "號",
    "歲",
    "年",
    "天",
    "週",
    "周",
    "星",
    "禮",
    "小",
    "樓",
    "份",
    "杯",
    "種",
    "名",
    "成",
    "%",
];
/// Words after a bare number that make it money ("18,000 set aside", "120k approved").
const MONEY_AFTER: &[&str] = &["approved", "budgeted", "allocated", "earmarked", "aside"];
/// Verbs and nouns that make a nearby bare number money ("we pay 300 a month").
const MONEY_CONTEXT: &[&str] = &[
    "cost",
    "costs",
    "costing",
    "pay",
    "paying",
    "paid",
    "spend",
    "spending",
    "spent",
    "lose",
    "losing",
    "lost",
    "budget",
    "price",
    "priced",
    "fee",
    "fees",
    "save",
    "saving",
    "worth",
    "revenue",
    "charge",
    "charges",
    "invoice",
    "bill",
    "afford",
    "bleeding",
    "aside",
    "waste",
    "wasting",
    "花",
    "付",
    "賠",
    "損失",
    "虧",
    "預算",
    "費",
    "價",
    "省",
    "賺",
    "營業額",
    "營收",
    "租金",
    "薪水",
    "月費",
];

fn window_before<'a>(tokens: &'a [Token<'a>], i: usize, n: usize) -> &'a [Token<'a>] {
    &tokens[i.saturating_sub(n)..i]
}

fn period_near(text: &str, tokens: &[Token<'_>], start: usize, end: usize) -> Period {
    let from = tokens.get(end).map_or(text.len(), |t| t.start);
    let after: String = text[from..].chars().take(18).collect();
    let before_start = tokens.get(start).map_or(0, |t| t.start);
    let before: String = {
        let b: Vec<char> = text[..before_start].chars().collect();
        b[b.len().saturating_sub(10)..].iter().collect()
    };
    let after = after.trim_start();
    let en = |s: &str, words: &[&str]| words.iter().any(|w| s.starts_with(w));
    let an = [
        "a ", "an ", "per ", "each ", "every ", "/", "a-", "for the ",
    ];
    for (period, words) in [
        (Period::Month, &["month", "mo "][..]),
        (Period::Year, &["year", "annum", "yr"][..]),
        (Period::Week, &["week", "wk"][..]),
        (Period::Day, &["day", "night", "shift"][..]),
    ] {
        for a in an {
            if let Some(rest) = after.strip_prefix(a)
                && en(rest, words)
            {
                return period;
            }
        }
    }
    if after.starts_with("monthly") {
        return Period::Month;
    }
    if after.starts_with("annually") || after.starts_with("yearly") {
        return Period::Year;
    }
    if after.starts_with("weekly") {
        return Period::Week;
    }
    if after.starts_with("daily") {
        return Period::Day;
    }
    // Chinese: the period usually comes first ("每個月三萬", "一年三十六萬"), sometimes after
    // ("三萬一個月", "一個月三萬左右").
    let zh_before = |needles: &[&str]| needles.iter().any(|n| before.contains(n));
    let zh_after = |needles: &[&str]| {
        let head: String = after.chars().take(6).collect();
        needles.iter().any(|n| head.contains(n))
    };
    if zh_before(&[
        "每個月",
        "每月",
        "一個月",
        "月費",
        "一月",
        "月租",
        "個月要",
        "個月大概",
        "個月差不多",
    ]) || zh_after(&["一個月", "每個月", "/月", "每月", "一月", "月費"])
    {
        return Period::Month;
    }
    if zh_before(&["一年", "每年", "年費", "一整年", "全年"]) || zh_after(&["一年", "每年", "/年"])
    {
        return Period::Year;
    }
    if zh_before(&[
        "每週",
        "每周",
        "一週",
        "一周",
        "每個禮拜",
        "一個禮拜",
        "每星期",
        "一星期",
        "每個星期",
    ]) || zh_after(&["一週", "一個禮拜", "每週"])
    {
        return Period::Week;
    }
    if zh_before(&["每天", "一天", "每晚", "每日", "天天"]) || zh_after(&["一天", "每天"])
    {
        return Period::Day;
    }
    // A period said a few words earlier ("each month we lose about 4,000 dollars") or a little
    // later ("4,000 dollars or so, every month").
    let early: String = {
        let b: Vec<char> = text[..before_start].chars().collect();
        b[b.len().saturating_sub(30)..].iter().collect()
    };
    let late: String = after.chars().take(40).collect();
    match period_mentioned(&early) {
        Period::Once => period_mentioned(&late),
        period => period,
    }
}

fn classify(
    text: &str,
    tokens: &[Token<'_>],
    start: usize,
    end: usize,
    number: Number,
) -> Option<Quantity> {
    let before = window_before(tokens, start, 2);
    let next = tokens.get(end).map(|t| t.text).unwrap_or("");
    let next2 = tokens.get(end + 1).map(|t| t.text).unwrap_or("");
    let said_start = before
        .iter()
        .rev()
        .take_while(|t| CURRENCY_BEFORE.contains(&t.text) || t.text == "$")
        .last()
        .map_or(tokens[start].start, |t| t.start);
    let said_end = tokens
        .get(end.saturating_sub(1))
        .map_or(text.len(), |t| t.end);
    let mut said_end = said_end;
    let prefix_currency = before.iter().any(|t| CURRENCY_BEFORE.contains(&t.text))
        || before.last().is_some_and(|t| t.text.ends_with('$'));
    let mut suffix_currency = CURRENCY_AFTER.contains(&next)
        || (next == "塊" || next == "元")
        || (next == "萬" && next2 == "元");
    if suffix_currency && let Some(t) = tokens.get(end) {
        said_end = t.end;
    }
    // "塊錢", "元左右".
    if next == "k"
        && tokens
            .get(end)
            .is_some_and(|t| t.start == tokens[end - 1].end)
    {
        suffix_currency = true;
    }
    let percent = next == "%" || next == "percent" || (number.chinese && next == "成");
    let hours = matches!(next, "hours" | "hour" | "hrs" | "小") && (next != "小" || next2 == "時");
    let said = || text[said_start..said_end.max(said_start)].trim().to_owned();
    if percent {
        return Some(Quantity {
            value: number.value,
            upper: number.upper,
            unit: Unit::Percent,
            period: Period::Once,
            ceiling: false,
            said: said(),
        });
    }
    if hours {
        let period = period_near(text, tokens, start, end + if next == "小" { 2 } else { 1 });
        return Some(Quantity {
            value: number.value,
            upper: number.upper,
            unit: Unit::Hours,
            period,
            ceiling: false,
            said: said(),
        });
    }
    let count = COUNT_NOUNS.contains(&next)
        || (next == "多" && COUNT_NOUNS.contains(&next2))
        || (next == "k" && COUNT_NOUNS.contains(&next2));
    let money_word_near = window_before(tokens, start, 6).iter().any(|t| {
        MONEY_CONTEXT.iter().any(|w| {
            t.text == *w
                || (t.text.chars().count() == 1 && w.starts_with(t.text) && w.chars().count() == 1)
        })
    }) || {
        let b: Vec<char> = text[..tokens[start].start].chars().collect();
        let near: String = b[b.len().saturating_sub(8)..].iter().collect();
        MONEY_CONTEXT
            .iter()
            .any(|w| !w.is_ascii() && near.contains(w))
    };
    let big_chinese = number.chinese && number.value >= 1000.0;
    // The period comes after the currency word: "four thousand dollars a month", "三萬塊錢一個月".
    let mut unit_end = end;
    while tokens.get(unit_end).is_some_and(|t| {
        CURRENCY_AFTER.contains(&t.text)
            || matches!(t.text, "錢" | "左" | "右" | "台" | "幣" | "萬" | "元")
    }) {
        unit_end += 1;
    }
    let period = period_near(text, tokens, start, unit_end);
    // "two and a half grand": grand is money whatever comes after it.
    let grand = tokens[start..end].iter().any(|t| t.text == "grand");
    // "a hundred and twenty thousand approved for tooling", "eighteen thousand set aside".
    let money_word_after = tokens[end..]
        .iter()
        .take(3)
        .any(|t| MONEY_AFTER.contains(&t.text));
    let is_money = prefix_currency
        || suffix_currency
        || grand
        || (!count && money_word_after && number.value >= 100.0)
        || (!count && big_chinese)
        || (!count && number.k)
        || (!count && money_word_near && number.value >= 10.0)
        || (!count && period != Period::Once && number.value >= 100.0);
    if !is_money || number.value <= 0.0 {
        return None;
    }
    // Ceilings: "up to", "no more than", "under", "max", "以內", "之內", "以下", "不超過", "頂多", "最多".
    let before_text: String = {
        let b: Vec<char> = text[..tokens[start].start].chars().collect();
        b[b.len().saturating_sub(14)..].iter().collect()
    };
    let after_text: String = text[tokens.get(end).map_or(text.len(), |t| t.start)..]
        .chars()
        .take(6)
        .collect();
    let ceiling = [
        "up to",
        "no more than",
        "under ",
        "max ",
        "maximum",
        "at most",
        "not more than",
        "below",
        "cap",
        "不超過",
        "頂多",
        "最多",
        "上限",
    ]
    .iter()
    .any(|w| before_text.contains(w))
        || ["以內", "之內", "以下", "內", "max"].iter().any(|w| {
            after_text.starts_with(w) || after_text.trim_start_matches(['元', '塊']).starts_with(w)
        })
        // "超過兩千就太貴了", "more than 500 a month is too much": the line drawn is a ceiling.
        || ((before_text.contains("超過") || before_text.contains("more than") || before_text.contains("over "))
            && ["太貴", "就貴", "too much", "too expensive"].iter().any(|w| text.contains(w)));
    Some(Quantity {
        value: number.value,
        upper: if ceiling {
            number.upper.max(number.value)
        } else {
            number.upper
        },
        unit: Unit::Money,
        period,
        ceiling,
        said: said(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Quantity {
        let all = money(text);
        assert_eq!(all.len(), 1, "{text}: {all:?}");
        all.into_iter().next().unwrap()
    }

    #[test]
    fn english_amounts_in_digits_and_words() {
        let q = one("it costs us around four thousand dollars a month");
        assert_eq!((q.value, q.period), (4000.0, Period::Month));
        assert_eq!(q.monthly(), Some(4000.0));
        let q = one("about 4k a month in overtime");
        assert_eq!((q.value, q.period), (4000.0, Period::Month));
        assert_eq!(one("NT$3,000 per month").value, 3000.0);
        assert_eq!(one("$12k").value, 12_000.0);
        assert_eq!(one("we pay 300 a month for it").monthly(), Some(300.0));
        assert_eq!(one("twenty five hundred dollars").value, 2500.0);
        assert_eq!(
            one("call it twenty-five hundred a month").monthly(),
            Some(2500.0)
        );
        assert_eq!(one("a hundred and fifty bucks a week").value, 150.0);
        assert_eq!(one("$1.5 million a year").monthly(), Some(125_000.0));
        let q = one("our budget is up to 50,000 dollars");
        assert!(q.ceiling);
        let q = one("somewhere between 3 to 4k");
        assert_eq!((q.value, q.upper), (3500.0, 4000.0));
        assert_eq!(
            one("each month we lose about 2,000 dollars").period,
            Period::Month
        );
    }

    #[test]
    fn counts_are_not_money() {
        assert!(money("we have 12 tables and 3 stores").is_empty());
        assert!(money("one of them").is_empty());
        assert!(money("we open at 11 and have 40 seats").is_empty());
        assert!(money("我們有三個人").is_empty());
        assert!(money("開了兩年").is_empty());
        assert!(money("一天大概三百個客人").is_empty());
    }

    #[test]
    fn chinese_amounts() {
        assert_eq!(one("我們每個月損失大概 3萬").monthly(), Some(30_000.0));
        assert_eq!(one("5000元").value, 5000.0);
        assert_eq!(one("大概三萬元吧").value, 30_000.0);
        assert_eq!(one("每月兩千五百塊").monthly(), Some(2_500.0));
        let q = one("一年三十六萬");
        assert_eq!(q.monthly(), Some(30_000.0));
        let q = one("預算大概兩三萬");
        assert_eq!((q.value, q.upper), (25_000.0, 30_000.0));
        let q = one("五萬以內都可以");
        assert!(q.ceiling);
        assert_eq!(q.upper, 50_000.0);
        assert_eq!(one("三萬五").value, 35_000.0);
        assert_eq!(one("3萬5").value, 35_000.0);
        assert_eq!(one("三萬一個月").monthly(), Some(30_000.0));
        assert_eq!(one("一個月多花一萬多").monthly(), Some(10_000.0));
        assert_eq!(one("兩千五").value, 2_500.0);
        assert_eq!(one("十幾萬").value, 150_000.0);
        assert_eq!(chinese_value("十二"), Some(12.0));
        assert_eq!(chinese_value("三萬五千"), Some(35_000.0));
    }

    #[test]
    fn hours_and_shares() {
        let q = quantities("we spend three hours every night on it");
        assert_eq!(q[0].unit, Unit::Hours);
        assert_eq!(q[0].period, Period::Day);
        let q = quantities("每天要花兩個小時對帳");
        assert!(q.is_empty() || q[0].unit != Unit::Money, "{q:?}");
        let q = quantities("about 20% of orders");
        assert_eq!(q[0].unit, Unit::Percent);
    }
}

#[cfg(test)]
mod said_in_words {
    use super::money;

    #[test]
    fn amounts_said_in_words_are_money() {
        let first = |t: &str| money(t).first().map(|q| q.value);
        assert_eq!(
            first("we're bleeding two and a half grand a month"),
            Some(2500.0)
        );
        assert_eq!(
            first("We have a hundred and twenty thousand approved for tooling"),
            Some(120_000.0)
        );
        assert_eq!(
            first("We set aside about eighteen thousand for this year."),
            Some(18_000.0)
        );
        assert_eq!(first("硬體加第一年大概十四萬八以內"), Some(148_000.0));
        assert_eq!(first("一個月大概兩萬五跑掉"), Some(25_000.0));
        assert_eq!(first("we have eighteen tables"), None);
    }
}
