//! The shapes of speech salesai reads in both languages — questions, pains, who decides,
//! timelines, agreement — as regular expressions (`patterns`) and the predicates built on them.
//! The rules engine, the speaker placement and the talk figures all read them; this module
//! reads nothing of theirs.

pub mod patterns;

/// A question: a question mark, or (with no closing punctuation, as speech-to-text often
/// leaves it) an interrogative shape. A line closed with "。" or "." is a statement even when
/// it holds an embedded question ("我不確定老闆會不會看。").
pub fn is_question(text: &str) -> bool {
    let t = text.trim();
    if t.contains(['?', '？']) {
        return true;
    }
    if t.ends_with(['。', '.', '!', '！']) {
        return false;
    }
    patterns::QUESTION.is_match(t)
}

/// A line that speaks of a pain: a pain shape in either language, and not one of the shapes
/// that only look like one ("no problem", "沒問題").
pub fn is_pain_text(text: &str) -> bool {
    (patterns::PAIN_EN.is_match(text) || patterns::PAIN_ZH.is_match(text))
        && !patterns::NOT_PAIN.is_match(text)
}
