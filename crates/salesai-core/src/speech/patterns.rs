//! The shapes of what people say in a sales call, as regular expressions over both languages:
//! who is the rep, who decides, which product they use today, when things happen, what the rep
//! asks, what the customer objects to. Each pattern describes a way of speaking ("a demo from
//! <Name>", "<Name>, our CFO", "下週二下午三點可以"), not a list of answers, so it finds names
//! and dates nobody configured.

use std::sync::LazyLock;

use regex::Regex;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in patterns compile")
}

/// A speaker label that names the seller's side.
pub static REP_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^(rep|sales(person|man|woman| rep| manager| consultant)?|seller|agent|ae|sdr|bdr|account (executive|manager)|consultant|advisor|業務|銷售|顧問|專員|業代|門市專員|客服|我方)\b|\((rep|sales|業務)\)|業務|顧問",
    )
});

/// A speaker label that names the customer's side (a role or a generic word).
pub static CUSTOMER_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^(customer|client|buyer|prospect|owner|co-?owner|founder|ceo|cfo|coo|cto|cio|president|director|vp|head|gm|manager|store manager|office manager|operations|ops|finance|it|procurement|staff|employee|clerk|receptionist|chef|partner|guest|caller|user|mr\.?|ms\.?|mrs\.?|dr\.?)\b|客戶|老闆|老闆娘|店長|店員|經理|主管|負責人|股東|合夥人|會計|員工|廚師|主廚|櫃台|設計師|美容師|院長|總監|執行長|財務|採購|助理|小姐|先生|太太",
    )
});

/// A speaker label that is itself a decision-making role.
pub static DM_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^(owner|co-?owner|founder|co-?founder|ceo|cfo|coo|president|managing director|gm|general manager|principal)\b|老闆|老闆娘|負責人|執行長|董事長|總經理|院長|創辦人",
    )
});

/// The seller pitching: "our system", "we can", "我們的系統", "幫您".
pub static PITCH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(our (system|product|platform|solution|app|software|tool|pos|plan|pricing|team can|customers)|we (can|offer|provide|support|integrate|include|help)|let me (show|walk|share)|i can (send|show|set)|our (other )?clients)\b|我們(的)?(系統|產品|方案|平台|功能|服務)|幫您|跟您|您的|您們|可以幫|我們可以|我幫你",
    )
});

/// The customer describing their own business: "our restaurant", "we currently", "我們店".
pub static OWN_BUSINESS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(our (store|restaurant|shop|salon|clinic|business|company|staff|kitchen|customers|guests|office|warehouse|team)|we (currently|still|usually|have|use|do|lose|spend|open|close)|my (staff|team|wife|husband|partner|boss|store|shop))\b|我們(店|家|這邊|現在|目前|平常|都|每天|生意|客人|員工|老闆)|店裡|我老公|我老婆",
    )
});

/// A decision-making role word, English.
const ROLE_EN: &str = r"owner|co-?owner|founder|co-?founder|ceo|cfo|coo|cto|cio|president|vice president(?: of \w+)?|vp(?: of \w+)?|head of \w+|director(?: of \w+)?|finance director|managing director|general manager|gm|partner|boss|controller|procurement(?: manager)?|purchasing manager|operations manager|office manager|it manager|store manager|manager|board|accountant|business partner";

/// "our owner, Mr. Chen", "our CFO Lisa", "the owner (Mr. Chen)": role then name.
pub static ROLE_THEN_NAME: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?i:\b(?:our|my|the|their)\s+(?:[a-z]+\s+)?((?:{ROLE_EN})s?))\b(?:,?\s+(?:is\s+)?(?:(?i:mr|ms|mrs|dr|miss)\.?\s+)?([A-Z][a-z]+(?:\s+[A-Z][a-z]+)?))?"
    ))
});

/// "Lisa, our CFO", "Mr. Chen is the owner": name then role.
pub static NAME_THEN_ROLE: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"\b((?:(?i:mr|ms|mrs|dr)\.?\s+)?[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?)(?:,\s+|\s+is\s+|\s+\()(?i:our|my|the)\s+(?i:(?:[a-z]+\s+)?({ROLE_EN}))\b"
    ))
});

/// "Mr. Chen signs", "Mr. Chen has to approve": a titled name with authority.
pub static TITLED_NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b((?i:mr|ms|mrs|dr)\.?\s+[A-Z][a-z]+)"));

/// A relative named as "my …" (who may hold the decision in a family business).
pub static KIN_EN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\bmy (brother|sister|wife|husband|business partner|partner|dad|father|mom|mother|son|daughter|uncle|aunt|cousin)\b",
    )
});

/// Authority words: someone signs, approves, decides.
pub static AUTHORITY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(signs?|signs off|sign-?off|approves?|approval|decides?|decision|final say|makes? the (final )?(call|decision)|holds the purse|controls the budget|pays the bills|has to (ok|okay|approve)|needs to (ok|okay|approve|see|sign)|handles (the )?(money|finances|budget|books|purchasing)|on board|buy-?in|have to approve|would have to approve)\b|決定|拍板|點頭|作主|做主|簽|同意|說了算|管錢|在管|管帳|批准|同意",
    )
});

/// The speaker deciding for themselves.
pub static SELF_AUTHORITY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(i'?m the (owner|founder|ceo|boss|one who decides|decision maker)|i am the (owner|founder|ceo|boss|decision maker)|i own (the|this|my)|(it'?s|it is) my (call|decision|business|money)|i (decide|make the (final )?(call|decision)s?|sign (off|the)|can sign|have the budget|have final say)|i can make (that|this|the) (call|decision)|up to me)\b|我是老闆|我是負責人|我就是老闆|我說了算|我決定|我來決定|我可以決定|我能決定|我作主|我做主|我就可以決定|錢是我在管|我自己決定|我簽就好|我可以簽|交給我決定|由我決定|我負責決定",
    )
});

/// A question put to the person on the call ("can you decide", "您可以決定嗎").
pub static ASKS_YOU: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\b(you|your)\b|您|你|店長|老闆"));

/// Authority handed to the speaker: "老闆都交給我決定", "the owner leaves it to me".
pub static DELEGATED_TO_ME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(leaves? (it|that|this|those decisions) (to|up to) me|trusts me with|lets me (decide|choose|sign)|(i'?m|i am) (authorized|allowed) to)\b|交給我|由我(決定|負責)|我(負責|可以)決定|授權給我",
    )
});

/// A question asking who ("who signs off", "誰決定").
pub static ASKS_WHO: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b(who|whose|anyone|anybody|someone)\b|誰|哪位|什麼人"));

/// A question asking for an amount ("how much are the fees", "大概多少").
pub static ASKS_AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(how much|what does (that|it|this) (cost|run)|what are (the|those) (fees|costs)|how big (is|are)|worth|what'?s the value|what was (that|it|this))\b|多少|幾(萬|千)",
    )
});

/// A question asking when ("when does it renew", "什麼時候").
pub static ASKS_WHEN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(when|timeline|timing|time ?frame|how soon|deadline|by when)\b|什麼時候|時程|多久|哪時候|何時",
    )
});

/// The speaker deferring to someone else.
pub static DEFERS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(check with|run (it|this|that) by|talk (it over )?(to|with) (my|our|the)|ask (my|our|the)|not my (call|decision)|not up to me|above my pay grade|i can'?t (decide|sign|approve)|i don'?t (decide|make the (call|decision))|need(s)? (approval|sign-?off)|get (approval|sign-?off)|have to (ask|check)|(he|she|they) (decides?|signs?|makes? the (call|decision)|approves?)|(owner|boss|ceo|cfo|partner|director|manager|board) (decides|signs|approves|has to|needs to|will decide|makes the)|signs anything|(i'?m|i am) not the (one|person) (who|that) (decides|signs|makes)|the (owner|boss|ceo|cfo|partner|director|manager) does|(he|she|they) (has|have|holds|owns|controls) the (budget|money|final say)|(owner|boss|manager|director|decision maker)('s| is) (out|away|not here|off|on vacation|traveling)|not (here|in) today|need (her|him|them|my \w+|our \w+) (on board|to (agree|approve|sign|say yes|okay|ok))|(i'?m|i am) (just )?(the|an?) (assistant|receptionist|intern|employee|staff member|clerk|temp)|decided above me|above my head)\b|(老闆|老闆娘|店長|負責人|經理|主管)[^，。,]{0,4}(不在|休假|出國|沒來|請假|在忙|很忙|外出|出去了|不方便)|問(一下)?(我們)?(老闆|老闆娘|店長|經理|主管|股東|合夥人|總部|家人|老公|老婆)|跟(我們)?(老闆|老闆娘|店長|經理|主管|股東|合夥人|總部|家人|老公|老婆)(討論|商量|報告|確認|說|講)|(老闆|老闆娘|總部|股東|主管)(決定|說了算|拍板|點頭|同意|簽|在管|要看|作主|做主)|我(沒辦法|不能|無法|不能夠)(決定|作主|做主)|不是我(決定|能決定|說了算)|我回去問|我再問問|請示|要報告|我(只)?是(助理|店員|員工|工讀生|櫃台|美容師|廚師|外場|內場|小妹)|跟(他|她|他們|她們)(討論|商量|確認|報告)|(錢|帳)是[^我，。]{1,4}在管|(錢|帳)是我(太太|老婆|老公|先生|媽媽|爸爸|老闆|合夥人)在管",
    )
});

/// Chinese decision-making roles, with an optional surname before ("陳老闆", "林經理").
pub static ROLE_ZH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"([陳林黃張李王吳劉蔡楊許鄭謝郭洪曾邱廖賴周徐蘇葉莊呂江何蕭羅高潘簡朱鍾彭游詹胡施沈余盧梁趙顏柯翁魏孫戴范方宋鄧杜傅侯曹薛丁卓馬阮董溫唐藍石蔣古紀姚連馮歐程湯田康姜白汪鄒尤巫鐘黎涂龔嚴韓袁金童陸夏柳邵錢伍倪于譚駱熊任甘秦顧毛章史官俞雷饒闕凌崔尹孔辛易辜桂])?(老闆娘|老闆|店長|總經理|經理|主管|負責人|股東|合夥人|執行長|董事長|財務長|財務|會計|總監|院長|創辦人|區經理|督導|老公|老婆|太太|先生|大姐|大哥|姐|哥)",
    )
});

/// Chinese roles that decide or hold the money (the others only influence).
pub fn zh_role_decides(role: &str) -> bool {
    matches!(
        role,
        "老闆娘"
            | "老闆"
            | "總經理"
            | "負責人"
            | "股東"
            | "合夥人"
            | "執行長"
            | "董事長"
            | "財務長"
            | "院長"
            | "創辦人"
    )
}

/// Words that ask about money: a budget question or answer.
pub static BUDGET: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(budget\w*|afford|(can|could|willing to|able to|want to|plan to|planning to|prepared to) (spend|pay|invest)|set aside|allocated|approved (for|up to))\b|預算|能接受|可以接受|最多(只)?(能|可以)?(花|付|出)|頂多|不超過|以內|之內|打算花|願意花|願意付",
    )
});

/// A time: a day, a date, a relative period, a deadline.
pub static TIME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(today|tonight|tomorrow|this (week|weekend|month|quarter|year|monday|tuesday|wednesday|thursday|friday|saturday|sunday|spring|summer|fall|autumn|winter)|next (week|month|quarter|year|monday|tuesday|wednesday|thursday|friday|saturday|sunday|spring|summer|fall|autumn|winter|season|time)|(in|within|over) (the )?(next )?(a|\w+|\d+|a few|a couple( of)?|couple of) (days?|weeks?|months?|quarters?|years?)|(the )?week of|the (first|second|third|fourth|fifth|\w+teenth|twelfth|tenth|eleventh|twentieth|\w+ieth|\d+(st|nd|rd|th))|end of (the |this |next )?(week|month|quarter|year|q[1-4])|q[1-4]|(monday|tuesday|wednesday|thursday|friday|saturday|sunday)s?|(january|february|march|april|june|july|august|september|october|november|december)|\d{1,2}(:\d{2})? ?(am|pm)|(morning|afternoon|evening)|asap|as soon as possible|deadline|by the \d+(st|nd|rd|th)|\d+(st|nd|rd|th) of|labor day|memorial day|thanksgiving|christmas|new year'?s?|busy season|holiday (season|rush|peak)|black friday|tax season|back to school)\b|今天|明天|後天|今晚|這(個)?(週|周|禮拜|星期|月|季)|下(個|一)?(週|周|禮拜|星期|月|季)|下下(週|周|禮拜|個月)|(週|周|禮拜|星期)[一二三四五六日天]|[一二三四五六七八九十兩\d]+(到[一二三四五六七八九十兩\d]+)?(個)?(月|週|周|禮拜|星期|天)(內|之內|後|以後|左右)|月底|月初|年底|年初|年前|年後|過年|農曆年|中秋|端午|母親節|旺季|開學|開幕|[\d一二三四五六七八九十]+月[\d一二三四五六七八九十]+(號|日)|[\d一二三四五六七八九十]+月(底|初|中)|[一二三四五六七八九十\d]+號|(上午|下午|晚上|早上|中午)|[一二三四五六七八九十兩\d]+點|盡快|越快越好|馬上",
    )
});

/// Markers of the future in a time expression.
pub static FUTURE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(next|by|before|within|until|end of|in (a|one|two|three|\d+) \w+|upcoming|coming|soon|ideally|will|going to|plan)\b|下(個|週|周|禮拜|季)|前|內|之前|以前|年底|月底|開幕|到期|預計|打算",
    )
});

/// Markers of the past.
pub static PAST: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(went|was|were|did|had|ago|last (week|month|year|quarter)|used to|already)\b|上個|去年|之前有|以前有|已經",
    )
});

/// Buying timelines: going live, opening, a contract ending, a decision date.
pub static TIMELINE_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(go[- ]?live|launch|open(ing|s)?|roll ?out|switch|start using|up and running|in place|implement\w*|decide|decision|buy|purchase|contract (ends|expires|runs|is up|renew\w*)|renewal|expires?|deadline|by then|before (we|the|our)|budget (cycle|year|opens)|fiscal|new (store|location|branch)|need (it|this|something)|want|plan\w*|aim|hop(e|ing)|target|ideally|expect\w*|goal|live|renew\w*|peak|season|start|begin|kick ?off|get going)\b|開幕|開店|開張|上線|導入|換系統|換掉|開始用|到期|合約|新店|分店|裝潢|之前要|前要|要用|決定|買|搞定|準備好|換|想在|希望|打算|之前|以前|要在|前",
    )
});

/// A meeting or step that can be agreed: a demo, a trial, a visit, a quote, a signing.
pub static STEP: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(demo|trial|pilot|meeting|meet|call|visit|come (by|over|in)|stop by|install\w*|set ?up|onboard\w*|training|quote|proposal|contract|agreement|paperwork|sign\w*|follow[- ]?up|walk ?through|presentation|session|chat|talk|schedule\w*|book\w*|appointment|estimate|survey|kick-?off|set up|come out|swing by|drop by|pop over|head over)\b|示範|試用|見面|拜訪|過來|過去|去店|來店|安裝|裝機|教育訓練|報價|合約|簽約|簽|再約|約|聊|談|討論|開會|說明|確認|電話|打給|打電話|聯絡|回覆|回電|再約|再談|導入|規劃",
    )
});

/// A customer accepting a proposal.
pub static ACCEPT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(^\W*(yes|yeah|yep|sure|ok|okay|sounds good|sounds great|perfect|great|deal|absolutely|definitely|of course|works|fine|good|let'?s do it|alright|all right)\b|\b(works for (me|us)|that works|(tuesday|monday|wednesday|thursday|friday|saturday|sunday|morning|afternoon|evening|then|\d ?(am|pm)|tomorrow|next \w+)( \w+)? (works|is fine|is good|is perfect)|sounds (good|great|like a plan)|(is|are|would be|sounds) (perfect|fine|good|great|ok|okay)|works( for (me|us))?|perfect|let'?s do (it|that)|see you (then|on|next|tomorrow)|i'?ll be there|count (me|us) in|send (it|them|that) over|go ahead|book it|lock it in|i'?m in|we'?re in)\b|^\W*(好|好啊|好的|好喔|好哦|可以|可以啊|沒問題|OK|行|嗯，?好|那就|就這樣|歡迎)|可以啊|可以喔|沒問題|好啊|就這樣|到時候見|那就(這樣|約|先)|麻煩你了|等你(們)?(來|過來)|都可以|(時間|那天|那個時間|這個時間|早上|中午|上午|下午|晚上|[一二三四五六日天]|點|號|後)(都)?(可以|OK|ok|沒問題|方便|有空|都在|在店))",
    )
});

/// A customer putting a proposal off.
pub static PUT_OFF: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(not yet|let me think|i'?ll think|need to think|think about it|maybe later|not now|i'?ll (get back|let you know)|we'?ll see|call me (later|next)|no,? (thanks|thank you)|not interested|i don'?t think so|hold off|let me check|call you back|get back to you|not sure about)\b|再考慮|考慮看看|再想想|再說|不用了|先不用|再看看|之後再|我再跟你說|再聯絡|改天|不要",
    )
});

/// The rep asking for a commitment: the close, or a concrete next step.
pub static CLOSE_ASK: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(shall we|should we|can we (book|schedule|set|get|start|do|put|lock)|could we (book|schedule|set|get|start|do|put)|let'?s (book|schedule|set|get|start|do|put|lock|pencil)|would you like to|do you want to (start|try|sign|go|move|book)|are you ready|ready to (sign|start|go|move)|how about|what about (monday|tuesday|wednesday|thursday|friday|next|tomorrow)|does (monday|tuesday|wednesday|thursday|friday|saturday|tomorrow|next \w+|that|this \w+|\d+ ?(am|pm)) work|work for you|sign (up|today|the)|send (you |over )?(the |a |an )?(contract|agreement|proposal|quote|paperwork|invoice|order form)|start (the |a |your )?(trial|pilot|onboarding)|book (a|the|you)|schedule (a|the)|set up (a|the)|move forward|get (you )?started|go ahead|when can (we|you)|when would be a good time|what time works)\b|要不要|可不可以(先|約)|可以約|約(個|一下)?(時間|下週|下禮拜|週|禮拜|星期)|簽約|先(試用|訂|簽)|幫您(安排|報價|開通|安裝)|什麼時候方便|哪天方便|哪一天|幾點方便|方便嗎|可以嗎|好嗎|行嗎|今天就|我(們)?(下週|明天|下禮拜)(過去|過來|去)",
    )
});

/// Objections and doubts.
pub static OBJECTION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(too expensive|expensive|pricey|costs? too much|too much money|can'?t afford|cannot afford|out of (our )?budget|over (our )?budget|no budget|not sure|unsure|don'?t know if|need to think|think (about it|it over)|not (the )?right time|not now|maybe later|bad timing|worried|concerns?|concerned|afraid|risky|happy with (our|what we|the current|it)|already (use|have|signed|paid)|locked in|under contract|contract (with|until|runs)|too (complicated|complex|much work|much hassle)|don'?t have (the )?time|no time|learning curve|hassle|not convinced|skeptic\w*|hesitant|not interested|no need|don'?t need|(price|cost|quote) (was|is|seems) (too |really |a bit )?(high|steep|more)|twice (as much|theirs|the price)|more expensive|cheaper)\b|太貴|很貴|好貴|有點貴|貴了|預算不夠|沒預算|沒有預算|再考慮|考慮看看|再想想|想一下|擔心|怕|不確定|不知道要不要|沒時間|太複雜|很複雜|學不會|不會用|合約還沒到期|還沒到期|綁約|用得還好|還好啦|不需要|沒興趣|要換很|換系統很|不想換",
    )
});

/// Pains: something going wrong in the customer's business, in English.
pub static PAIN_EN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(problems?|issues?|trouble|headaches?|nightmare|painful|struggl\w*|frustrat\w*|annoy\w*|complain\w*|a mess|messy|chaos|chaotic|hassle|slow|manual(ly)?|by hand|on paper|takes? (forever|ages|hours|too long)|time[- ]consuming|tedious|mistakes?|errors?|wrong|mix-?ups?|missed|missing|lost|losing|lose|waste\w*|late|behind|no-?shows?|double[- ]book\w*|overbook\w*|churn\w*|forgot|forget|confus\w*|can'?t (keep|tell|see|track|get|find|handle|figure)|no way to|hard to|difficult|impossible|no idea|no visibility|not able to|too (many|much|long|busy|slow)|short[- ]staffed|understaffed|overwhelm\w*|burn(ed|t)? out|overtime|stress\w*|fall(s|ing)? through|drop(ped)?|outdated|crash\w*|downtime|unreliable|slip\w*|fire drills?|miss(es)?|runs? out|no matter what|down the drain|every (two|three|few|couple( of)?|other|\d+) (days|weeks|months)|freez\w*|froze|glitch\w*|lag\w*|jam\w*|stuck|broke|breaks|fail\w*|insane|crazy|walk(ed)? out|run(ning)? out|ran out|out of stock|short on|cancel\w*|worst|every time|each time|constantly|all the time|again and again|leak\w*|damage\w*|rot\w*|noisy|outage\w*|terrible|awful|horrible|killing (us|me)|keeps? (going up|rising|increasing|breaking|crashing|happening|failing)|breaking down|going up|too high|through the roof|(don'?t|do not|never) know (where|why|what|who|how|when|if)|takes? (me|us|them|her|him)? ?(a few |several |two |three |\d+ )?(hours|days|forever|ages))\b",
    )
});

/// Pains in Chinese.
pub static PAIN_ZH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(對|查|找|算|做|忙|追|接|記|管|抓|看|搞|趕|跟|排|處理)(不起來|不上|不到|不了|不完|不出來|不清楚|不過來)|丟掉|過期|報廢|缺貨|延期|重做|做錯|退費|退貨|排很久|卡卡|問題|麻煩|困擾|頭痛|很煩|好煩|抱怨|客訴|負評|很慢|太慢|好慢|手寫|手動|人工|出錯|錯誤|算錯|打錯|弄錯|漏單|漏掉|漏接|忘記|浪費|損失|不方便|人手不足|缺人|請不到人|忙不過來|來不及|等很久|等太久|排很久|很亂|混亂|對不上|對帳|搞不清楚|不知道|沒辦法|無法|很難|困難|很累|好累|加班|爽約|放鳥|沒來|流失|跑掉|少賺|賠錢|虧|常常|每次都|一直|當機|卡住|不準|算不清|查不到|花很多時間|花時間|要花|太多|抓不到|看不到|管不到",
    )
});

/// "No problem", "沒問題": pain words that say the opposite.
pub static NOT_PAIN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(no problem|not a problem|no issues?|not an issue|no worries|never (had|have) (a|any) (problem|issue))\b|沒問題|不麻煩|沒什麼問題|還好|不會麻煩",
    )
});

/// An answer that says there is nothing wrong ("Not really.", "還好").
pub static NOTHING_WRONG: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^\W*(no|nope|not really|not much|nothing|none|never|it'?s fine|we'?re fine|it works|all good|fine)\b|^\W*(還好|沒有|不會|沒什麼|都還好|還可以)",
    )
});

/// "X pitched us", "X quoted us eighteen thousand": a company as the subject of a sales verb.
pub static COMPETITOR_EN_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b([A-Z][\w&'-]*(?:\s+[A-Z][\w&-]*){0,2})\s+(?i:pitched|quoted|demoed|offered|reached out|came in (?:at|lower|cheaper)|is cheaper|was cheaper|charges|charged|gave us a (?:quote|price|demo|proposal|bid)|sent us (?:a |an |their |some )?(?:quote|proposal|offer|bid|pricing|prices|demo|info\w*))\b",
    )
});

/// A product tried, replaced or chosen: "we trialed Samsara", "the POS we're replacing is
/// Toast", "decided to go with Mindbody".
pub static COMPETITOR_EN_CHOSEN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?i:trialed|trialled|piloted|replacing|dropping|leaving|go with|going with|decided on|(?:pos|system|software|tool|app|platform|vendor) (?:we're|we are) (?:replacing|using|on|leaving) is)\s+([A-Z][\w&'.-]*(?:\s+[A-Z][\w&-]*)?)",
    )
});

/// "from ABC Roofing" when the line is about a quote, an estimate or a demo.
pub static COMPETITOR_EN_FROM: LazyLock<Regex> =
    LazyLock::new(|| re(r"\bfrom\s+([A-Z][\w&'-]*(?:\s+[A-Z][\w&-]*){0,2})"));

/// Words that make "from <Name>" a vendor: a quote, an estimate, a proposal, a demo.
pub static OFFER_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(quotes?|quoted|estimates?|proposals?|bids?|demos?|offers?|pitch\w*|prices?|pricing|trial)\b",
    )
});

/// "饗賓的系統", "客立樂POS": a name right before the word for a system.
pub static COMPETITOR_ZH_SYSTEM: LazyLock<Regex> =
    LazyLock::new(|| re(r"([\p{Han}A-Za-z0-9.]{2,8})\s?的?(?:系統|平台|POS)"));

/// Brand-shaped words anywhere: inner capitals ("QuickBooks", "CrowdStrike", "iCHEF") or
/// letters with digits ("eats365").
pub static BRAND_SHAPE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\b([A-Z][a-z]+[A-Z][A-Za-z]+|[a-z]{1,2}[A-Z]{2,}[A-Za-z]*|[A-Za-z]{2,}\d+[A-Za-z]*)\b")
});

/// Keeping in touch ("mind if I check back next year", "有需要再聯絡"): not a next step.
pub static NURTURE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(reach out|check in|check back|follow up|touch base|stay in touch|keep in touch|circle back|get back|send (you )?(some |a )?(info|information|case study|video|brochure|materials?))\b|再聯絡|保持聯繫|之後再|有需要再|再找我|寄資料|留資料|放著",
    )
});

/// Positive reactions.
pub static POSITIVE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(interested|sounds (good|great|interesting|promising)|love (it|that|this)|i like (it|that|this|the)|we like|makes sense|impressive|exactly what|that'?s (great|perfect|helpful|useful|what we need)|perfect|excited|helpful|useful|really nice|very nice|cool|let'?s do|i'?m in|want to try|keen|that would (help|be great|save)|would love)\b|不錯|有興趣|很好|喜歡|聽起來(很|蠻|滿|挺)?(不錯|好|方便|棒)|很方便|太好了|正是|想試|可以試|好用|很棒|蠻好|滿好|挺好|心動|需要這個|正好|剛好需要|很實用|好方便",
    )
});

/// The customer walking away or already gone.
pub static LOST: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(decided to go with|went with|chose|signed with|going with|go with|stick(ing)? with|stay(ing)? with|not interested|no need for|don'?t need (it|this|a)|no thanks|not for us|waste of (time|money)|not going to (buy|switch|change|move)|won'?t be (buying|switching|moving)|no budget (this|for)|not in the budget|already (signed|bought|purchased|committed))\b|沒興趣|不需要|不用了|算了|已經(決定|簽|買|換|訂)|決定(用|選|跟)|選了|簽了|維持現狀|先不用|暫時不(用|需要|考慮)|不考慮|不會換",
    )
});

/// The customer's choice criteria.
pub static CRITERIA: &[(&str, &str)] = &[
    (
        r"(?i)\b(price|pricing|cheap\w*|cost|affordab\w*)\b|價格|價錢|便宜|費用|划算",
        "price",
    ),
    (
        r"(?i)\b(easy|simple|intuitive|user[- ]friendly|learn)\b|簡單|好用|好上手|容易|學",
        "ease of use",
    ),
    (
        r"(?i)\b(support|service|help ?desk|responsive)\b|客服|服務|售後|維修",
        "support",
    ),
    (
        r"(?i)\b(integrat\w*|connect\w*|sync\w*|api)\b|整合|串接|連動|同步",
        "integration",
    ),
    (
        r"(?i)\b(fast|speed|quick\w*|real[- ]time)\b|速度|快|即時",
        "speed",
    ),
    (
        r"(?i)\b(reports?|reporting|analytics|dashboard|data)\b|報表|分析|數據",
        "reporting",
    ),
    (
        r"(?i)\b(reliab\w*|stable|uptime|offline)\b|穩定|當機|斷網|離線",
        "reliability",
    ),
];

/// Compiled [`CRITERIA`].
pub static CRITERIA_RE: LazyLock<Vec<(Regex, &'static str)>> =
    LazyLock::new(|| CRITERIA.iter().map(|(p, c)| (re(p), *c)).collect());

/// Switching worries: data, learning, training, migration.
pub static SWITCH_CONCERN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(migrat\w*|switch\w*|learning curve|retrain\w*|training|transfer (our|the) data|move (our|the) data|lose (our|the) data|downtime|set ?up time)\b|轉換|換系統|學習|教育訓練|資料(轉|搬)|搬資料|重新學|員工會不會",
    )
});

/// Return on investment: saving, paying back, earning more.
pub static ROI: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(save[sd]?|saving|roi|pay(s)? (for )?itself|pay ?back|return on|worth it|earn more|more revenue|cut (costs|our)|free up)\b|省下|省了|省錢|省時間|回本|划算|多賺|賺回來|值得",
    )
});

/// SPIN: the four kinds of question, in order of how specific they are (a question counts
/// once, as the most specific kind it matches).
pub static SPIN_NEED: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(would (it|that|this) help|how would (that|it|this) help|what would (it|that) mean|what would you do with|if you (could|had|didn'?t have to)|if we could|if there (was|were)|how valuable|would (that|it|this) (be|make) (useful|valuable|easier|worth|a difference|a big)|imagine|how much would you save|how much (time|money) would|make (your|life|things) easier|free up|what if)\b|如果(可以|能|有|不用)|會不會比較|有沒有幫助|有幫助嗎|對您(來說)?(有|會)|對你(來說)?(有|會)|省下來|能省|會輕鬆|方便很多|值不值得|可以多",
    )
});
/// Implication questions.
pub static SPIN_IMPLICATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(cost(s|ing)? you|how much (time|money|revenue|business|does)|what does (that|this|it) (cost|mean)|what happens (when|if|to)|how (does|did|do) (that|this|it|those) (affect|impact|hit)|impact|effect on|consequences?|how often (does|do|is)|do you lose|are you losing|have you lost|what would happen|result in|end up|knock-on|how many (customers|orders|guests|bookings|clients|deals|sales|hours) (do|are|did|have))\b|影響|損失|代表什麼|會怎樣|會怎麼樣|多久(一次|會)|造成|多花|少賺|損失多少|損失大概|流失|後果|客人會不會|大概(多少|幾)(錢|單|個|次)|會不會(跑掉|流失|不開心|抱怨)",
    )
});
/// Problem questions.
pub static SPIN_PROBLEM: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(problems?|issues?|challenges?|difficult\w*|hard(est)?|frustrat\w*|struggl\w*|trouble|pain( points?)?|bottlenecks?|happy with|satisfied with|complain\w*|(doesn'?t|does not|isn'?t|is not) work\w*|go(es)? wrong|worr\w*|biggest|annoy\w*|slow|mistakes?|errors?|headaches?|what would you change|what'?s missing|what'?s (going on|wrong|happening|up with)|what happened|what seems to be)\b|困擾|問題|麻煩|困難|不方便|滿意|最(頭痛|困擾|麻煩|擔心)|卡在|哪裡不好|出錯|抱怨|辛苦|不順|頭痛|要改善",
    )
});
/// Situation questions.
pub static SPIN_SITUATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(how many|how (do|does|did) (you|your|the team|your team|they)|what (do|does) (you|your)|what (system|software|tool|pos|process|platform)|who (handles|does|manages|takes care|is in charge|looks after)|tell me (about|a bit)|walk me through|how long have you|how big|currently|right now|today|at the moment|how often do you|what kind of|where do you|when do you|how are you (handling|managing|doing))\b|現在|目前|平常|平時|通常|怎麼(處理|做|點|記|排|算|管|收|預約|結帳)|用什麼|有幾|幾(個|位|間|桌|家|台|個人)|多少(人|桌|間|位|客人|單|設計師)|誰(負責|在管|處理)|營業時間|開多久|開幾年|一天(大概)?(多少|幾)",
    )
});

/// A question, with or without a question mark (speech-to-text often drops them).
pub static QUESTION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)[?？]\s*$|[?？]|^\W*(how|what|who|when|where|why|which|do|does|did|are|is|can|could|would|will|have|has|should|shall)\b|[嗎呢]\s*[。，！!.]?\s*$|什麼|怎麼|多少|幾(個|位|次|點|天|間|桌|台|家)|哪(裡|個|天|家|一)|是不是|有沒有|會不會|要不要|對不對|可不可以|能不能|好不好",
    )
});

/// Competitor names said after a way of talking about another product: "a demo from X", "we
/// use X", "switching from X", "compared with X". Names are capitalised or carry digits.
pub static COMPETITOR_EN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i:\b(?:a demo (?:from|of|with|by)|demo(?:ed)? (?:from|of|by)|(?:we|i|they)(?:'re|'ve|'d| are| have| were| had| do)?(?: been)?(?: also| already| still)?\s+(?:use|used|using|switched (?:from|to)|moved (?:from|to)|tried|trying|looked at|looking at|got a quote from|got a proposal from|talking to|evaluating|evaluated|signed with|signed up (?:at|with|for)|joined|went with|chose|on|pay|with)|currently (?:use|using|on|with|pay)|switching (?:from|to)|switch (?:from|to)|moving (?:from|to)|migrat\w+ (?:from|to)|compared (?:it |you |that |this )?(?:with|to|against)|comparing (?:you |it )?(?:with|to|against)|versus|vs\.?|instead of|rather than|(?:quote|proposal|offer|pitch|presentation) from|trial (?:of|with)|been using|still using|still on|go(?:ing)? with|decided (?:to go with|on)|stick(?:ing)? with|stay(?:ing)? with|happy with|unhappy with|(?:contract|renewal|policy|account|plan|subscription) with|locked in with|tied to|better than|cheaper than|test[- ]drov\w+(?: a| an| the)?|signed up (?:at|with|for)|went with|going with|chose|selected|picked|bought|(?:fine|ok|okay|satisfied|content|stuck|done|familiar) with|such as|like|e\.g\.|including)\s+)((?:[A-Z][\w&'\.-]*|[a-z]+[A-Z][\w]*|\w*\d\w*)(?:\s+(?:[A-Z][\w&-]*|\d+))?)",
    )
});

/// Competitor names before the noun that gives them away: "the Toyota dealer", "a HubSpot
/// quote", "their Square terminal".
pub static COMPETITOR_EN_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?i:at|from|with|the|a|an|their)\s+([A-Z][\w&'-]*(?:\s+[A-Z][\w&-]*)?)\s+(?i:dealer(?:ship)?|showroom|store|rep|sales ?(?:rep|guy|person|team)|quote|proposal|contract|subscription|account|terminal|system|platform|software)\b",
    )
});

/// Competitor names in Chinese: an ASCII brand, or a short CJK name, after "看過", "用過",
/// "現在用", "比較過", "換成", "也有在談", …
pub static COMPETITOR_ZH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(看過|用過|現在用|目前用|我們用|我們是用|我們在用|之前用|以前用|原本用|繼續用|還是用|一直用|都用|改用|使用|試用過|試過|比較過|比過|問過|找過|考慮過|在用|正在用|還在用|換成|換到|換掉|也有在談|也在談|也在看|有在看|報價的|找了|簽了|決定用|選了|聽過|demo過|示範過|裝了|安裝了|導入了|買了|訂了|換了|例如|像是|比如|包括|家用|跟|和|用)(?:的|了|那個|一下|家)?\s*(?:叫)?([A-Za-z][A-Za-z0-9\.&'-]*(?:\s?[A-Za-z0-9]+)?|[\p{Han}]{2,5}?)(?:的|了|，|。|,|\s|那|家|系統|也|但|覺得|啊|啦|嗎|比|$|、|和|跟|還|有|是|來|給|還|POS|pos|加)",
    )
});

/// Every (trigger, name) of [`COMPETITOR_ZH`] in `text`. The search resumes right after each
/// name, so a name's closing word can open the next ("例如iCHEF跟Dudoo").
pub fn zh_competitor_mentions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let Some(c) = COMPETITOR_ZH.captures_at(text, at) else {
            break;
        };
        let name = c.get(2).expect("the name group always takes part");
        out.push((c[1].to_owned(), name.as_str().to_owned()));
        at = name.end().max(at + 1);
        while !text.is_char_boundary(at) {
            at += 1;
        }
    }
    out
}

/// Triggers too common in Chinese to take a Chinese name after them (an ASCII brand is fine:
/// "跟Ocard比", "用Square").
pub fn weak_zh_trigger(trigger: &str) -> bool {
    matches!(trigger, "跟" | "和" | "用")
}

/// Words that follow a competitor trigger but are not products: pronouns, places, generic
/// tools and ways of working, days and months.
pub const NOT_A_PRODUCT: &[&str] = &[
    "i",
    "we",
    "you",
    "they",
    "it",
    "the",
    "a",
    "an",
    "our",
    "my",
    "your",
    "their",
    "this",
    "that",
    "these",
    "those",
    "excel",
    "spreadsheets",
    "spreadsheet",
    "google sheets",
    "google",
    "sheets",
    "paper",
    "pen",
    "pencil",
    "notebook",
    "line",
    "whatsapp",
    "wechat",
    "facebook",
    "instagram",
    "email",
    "e-mail",
    "gmail",
    "outlook",
    "phone",
    "text",
    "zoom",
    "teams",
    "slack",
    "cash",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "mr",
    "ms",
    "mrs",
    "dr",
    "hi",
    "hello",
    "yes",
    "no",
    "ok",
    "okay",
    "so",
    "and",
    "but",
    "or",
    "if",
    "ai",
    "pos",
    "crm",
    "erp",
    "app",
    "ipad",
    "us",
    "them",
    "what",
    "which",
    "who",
    "how",
    "when",
    "there",
    "here",
    "next",
    "last",
    "one",
    "two",
    "both",
    "all",
    "some",
    "any",
    "whatever",
    "someone",
    "something",
    "nothing",
    "everything",
    "q1",
    "q2",
    "q3",
    "q4",
    "it's",
    "i'm",
    "we're",
    "you're",
    "they're",
    "lol",
    "in",
    "on",
    "at",
    "for",
    "手寫",
    "紙本",
    "紙",
    "電腦",
    "收銀機",
    "別家",
    "別的",
    "其他",
    "他們",
    "這個",
    "那個",
    "系統",
    "軟體",
    "一般",
    "傳統",
    "人工",
    "計算機",
    "本子",
    "筆記本",
    "記事本",
    "表單",
    "白板",
    "簿子",
    "現金",
    "平板",
    "手機",
    "自己",
    "我們",
    "你們",
    "一樣",
    "同一",
    "一套",
    "老闆",
    "老闆娘",
    "店長",
    "經理",
    "主管",
    "朋友",
    "同業",
    "隔壁",
    "家人",
    "老公",
    "老婆",
    "客人",
    "員工",
    "你們家",
    "您們",
    "您",
    "你",
    "他",
    "她",
    "它",
    "大家",
    "一家",
    "幾家",
    "很多",
    "好幾",
    "一些",
    "有些",
    "一下",
    "看看",
    "比較",
    "什麼",
    "誰",
    "哪家",
    "這家",
    "那家",
    "別人",
    "網路",
    "電話",
    "簡訊",
    "紙筆",
    "記帳",
    "手機版",
    "免費",
    "便宜",
    "一點",
    "一樣的",
    "那種",
    "這種",
    "多久",
    "預約",
    "表格",
    "公司",
    "廠商",
    "業務",
    "銷售",
    "系統商",
    "餐飲",
    "收銀",
    "考慮",
    "硬體",
    "做美業",
    "youtube",
    "linkedin",
    "ipad",
    "iphone",
    "macbook",
    "wifi",
    "iOS",
    "ios",
    "android",
    "gps",
    "usb",
    "covid19",
    "mp3",
    "4k",
    "5g",
    "如果",
    "因為",
    "所以",
    "但是",
    "可是",
    "然後",
    "這套",
    "那套",
    "整套",
    "新的",
    "舊的",
    "原本",
    "現在",
    "目前",
    "點餐",
    "收銀",
    "預約",
    "會員",
    "排班",
    "庫存",
    "管理",
    "記帳",
    "結帳",
    "類似",
    "相關",
    "同樣",
    "其它",
    "卡片",
    "單子",
    "紙卡",
    "結帳",
    "點餐",
    "出單機",
    "網路",
    "印表機",
    "外送",
    "其他家",
    "別間",
];

/// Whether a candidate name is a plausible product or company name.
pub fn plausible_product(name: &str) -> bool {
    let lower = name.trim().to_lowercase();
    if lower.chars().count() < 2 || NOT_A_PRODUCT.contains(&lower.as_str()) {
        return false;
    }
    // A two-word candidate whose first word is not a product ("Excel sheets").
    if let Some(first) = lower.split_whitespace().next()
        && NOT_A_PRODUCT.contains(&first.trim_end_matches(['.', ',']))
    {
        return false;
    }
    // CJK candidates: no particles or verbs inside.
    if !name.is_ascii() {
        let bad = [
            '的', '了', '是', '在', '用', '有', '過', '要', '我', '你', '他', '們', '個', '這',
            '那', '還', '就', '都', '也', '很', '會', '看', '說',
        ];
        if name.chars().any(|c| bad.contains(&c)) {
            return false;
        }
        let first = name.chars().next().unwrap_or(' ');
        // A name that starts with a numeral or a time word is a count or a date.
        if "一二三四五六七八九十兩幾每上下前後今明去不沒".contains(first) {
            return false;
        }
        // Generic things with a word after them ("紙本卡片", "手寫單").
        if NOT_A_PRODUCT
            .iter()
            .any(|g| !g.is_ascii() && g.chars().count() >= 2 && lower.starts_with(g))
        {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn competitors_are_found_from_how_they_are_talked_about() {
        let names = |text: &str| -> Vec<String> {
            COMPETITOR_EN
                .captures_iter(text)
                .map(|c| c[1].to_owned())
                .filter(|n| plausible_product(n))
                .collect()
        };
        assert_eq!(
            names("we had a demo from Lightspeed last week"),
            ["Lightspeed"]
        );
        assert_eq!(names("We use Excel for now"), Vec::<String>::new());
        assert_eq!(names("we're switching from HubSpot soon"), ["HubSpot"]);
        assert_eq!(names("compared with Zenoti it's cheaper"), ["Zenoti"]);
        let zh = |text: &str| -> Vec<String> {
            COMPETITOR_ZH
                .captures_iter(text)
                .map(|c| c[2].to_owned())
                .filter(|n| plausible_product(n))
                .collect()
        };
        assert_eq!(zh("我們之前有看過Ocard的方案"), ["Ocard"]);
        assert_eq!(zh("現在用客立樂的系統"), ["客立樂"]);
        assert_eq!(zh("現在用手寫的"), Vec::<String>::new());
    }

    #[test]
    fn decision_makers_with_names_and_roles() {
        let c = ROLE_THEN_NAME
            .captures("our owner, Mr. Chen, signs anything over five thousand dollars")
            .unwrap();
        assert_eq!((&c[1], &c[2]), ("owner", "Chen"));
        let c = NAME_THEN_ROLE
            .captures("Lisa, our CFO, wants numbers")
            .unwrap();
        assert_eq!((&c[1], &c[2]), ("Lisa", "CFO"));
        assert!(DEFERS.is_match("our owner, Mr. Chen, signs anything over five thousand dollars"));
        assert!(DEFERS.is_match("這個要問一下老闆娘"));
        assert!(SELF_AUTHORITY.is_match("我是老闆，我說了算"));
    }

    #[test]
    fn next_steps_agreed_in_both_languages() {
        assert!(ACCEPT.is_match("Tuesday afternoon works"));
        assert!(ACCEPT.is_match("下週二下午三點可以"));
        assert!(TIME.is_match("下週二下午三點可以"));
        assert!(CLOSE_ASK.is_match("How about Tuesday afternoon?"));
        assert!(!ACCEPT.is_match("Let me think about it"));
    }
}
