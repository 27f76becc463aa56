//! The words salesai says in Slack, in each product line's language (`zh-TW` or English).

/// A message language: the project's one language type.
pub use salesai_core::language::Language;

/// `(key, English, 繁體中文)`.
const TEXTS: &[(&str, &str, &str)] = &[
    ("prompt", "Analyze this call?", "要分析這通電話嗎？"),
    ("analyze_button", "Analyze", "開始分析"),
    ("modal_title", "Analyze call", "分析通話"),
    ("submit", "Analyze", "送出"),
    ("cancel", "Cancel", "取消"),
    ("close", "Close", "關閉"),
    ("customer_number", "Customer number", "客戶編號"),
    ("customer_name", "Customer name", "客戶名稱"),
    ("contact_name", "Contact name", "聯絡人"),
    ("contact_phone", "Contact phone", "聯絡電話"),
    ("contact_email", "Contact e-mail", "聯絡人 Email"),
    ("required", "Required.", "必填。"),
    (
        "bad_customer_number",
        "Use letters, digits, - or _ (up to 64 characters).",
        "請使用英數字、- 或 _（最多 64 字元）。",
    ),
    (
        "bad_email",
        "That is not an e-mail address.",
        "Email 格式不正確。",
    ),
    ("bad_choice", "Pick one of the choices.", "請從選項中選擇。"),
    ("case", "Case", "案件"),
    ("stage", "Stage", "階段"),
    ("pending", "Queued", "排隊中"),
    ("downloading", "Downloading the file", "下載檔案"),
    ("checking_file", "Checking the file", "檢查檔案"),
    ("preparing", "Preparing audio", "處理音檔中"),
    ("transcribing", "Transcribing", "轉錄中"),
    ("analyzing", "Analyzing", "分析中"),
    ("completed", "Done", "完成"),
    ("failed", "Failed", "失敗"),
    ("overall", "Overall", "總分"),
    ("qualification", "Qualification", "資格"),
    ("strong", "Strong", "強"),
    ("medium", "Medium", "中"),
    ("weak", "Weak", "弱"),
    ("at_risk", "At risk", "高風險"),
    ("pain", "Pain", "痛點"),
    ("decision", "Decision", "決策"),
    ("champion", "Champion", "支持者"),
    ("metrics", "Metrics", "量化"),
    ("spin", "SPIN completion", "SPIN 完成度"),
    ("talk", "Talk", "談話"),
    ("talk_rep", "rep", "業務"),
    ("talk_monologue", "longest monologue", "最長獨白"),
    ("talk_questions", "questions/h", "提問/小時"),
    ("talk_patience", "patience", "停頓"),
    ("talk_inferred", "speakers inferred", "說話者為推測"),
    ("speakers_button", "Who is who?", "誰是誰？"),
    ("speakers_title", "Who is who?", "誰是誰？"),
    ("speakers_submit", "Analyse again", "重新分析"),
    (
        "speakers_which_rep",
        "Which speaker is the rep?",
        "哪一位是業務？",
    ),
    (
        "speakers_hint",
        "salesai told the voices apart and guessed each one's side. Say which speaker is the rep: the others are the customer's side, and the call is analysed again.",
        "salesai 依聲音分出說話者並推測各自的身分。請指出哪一位是業務：其他人即為客戶方，通話會重新分析。",
    ),
    (
        "speakers_done",
        "Speakers corrected; analysing the call again. Its card updates when the analysis is done.",
        "已更正說話者，正在重新分析；完成後結果卡會自動更新。",
    ),
    ("top_pains", "Top pains", "主要痛點"),
    ("strategy", "Strategy", "建議策略"),
    ("close_now", "Close now", "立即成交"),
    ("small_step", "Secure a small step", "爭取小承諾"),
    ("keep_warm", "Keep warm", "持續培養"),
    ("next_action", "Next action", "下一步"),
    ("competitor_alert", "Competitor alert", "競品警示"),
    ("coaching", "Coaching", "教練建議"),
    ("full_report", "Full report", "完整報告"),
    (
        "fallback_note",
        "The LLM could not answer for these parts; the offline rules engine filled them in",
        "以下部分 LLM 無法提供有效結果，改由離線規則引擎分析",
    ),
    (
        "not_a_call_file",
        "This file doesn't look like a recording or a transcript, so salesai won't analyse it. Send audio (mp3, m4a, wav, ogg, webm…) or a transcript (txt, vtt, srt, json).",
        "這個檔案看起來不是錄音或逐字稿，salesai 不會分析它。請傳送錄音檔（mp3、m4a、wav、ogg、webm…）或逐字稿（txt、vtt、srt、json）。",
    ),
    (
        "file_too_large",
        "This file is {size} MB; salesai takes files up to {limit} MB. Split the recording or compress it and send it again.",
        "此檔案為 {size} MB，salesai 接受的檔案上限為 {limit} MB。請分割或壓縮錄音後再傳送。",
    ),
    (
        "estimated_times",
        "Times are estimated: the uploaded text had none",
        "時間為估計值：上傳的文字檔未含時間",
    ),
    ("agent_context", "context", "情境"),
    ("agent_buyer", "buyer", "買方"),
    ("agent_seller", "seller", "業務表現"),
    ("agent_crm", "CRM", "CRM"),
    ("agent_summary", "summary", "會議摘要"),
    ("agent_coach", "coaching", "教練"),
    ("retry", "Retry", "重試"),
    ("retrying", "Retrying…", "重試中…"),
    ("failed_title", "Analysis failed", "分析失敗"),
    ("done_title", "Analysis complete", "分析完成"),
];

/// The text for `key` in `lang`. Unknown keys are a programming error caught by the tests;
/// at run time they show the key itself.
pub fn t(lang: Language, key: &str) -> &str {
    TEXTS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, en, zh)| match lang {
            Language::En => *en,
            Language::ZhTw => *zh,
        })
        .unwrap_or(key)
}

/// What an error code means, for a rep (shared with the web app).
pub use salesai_core::pipeline::explain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_has_both_languages_and_unique_keys() {
        let mut keys = std::collections::BTreeSet::new();
        for (key, en, zh) in TEXTS {
            assert!(keys.insert(*key), "duplicate key {key}");
            assert!(!en.is_empty() && !zh.is_empty(), "{key}");
        }
        assert_eq!(t(Language::ZhTw, "retry"), "重試");
        assert_eq!(t(Language::En, "retry"), "Retry");
        assert!(explain(Language::ZhTw, "FILE_DOWNLOAD_FAILED").contains("files:read"));
    }
}
