//! The transcript on the call page (compact, seekable lines) and how the call was run (talk
//! figures with the "Who is who?" correction).

use maud::{Markup, html};
use salesai_core::domain::{Conversation, ConversationStatus};

use super::super::i18n::{Lang, clock};

/// The transcript's lines, written compactly (a 60-minute call has ~700 of them and its page
/// must stay under 100 KB): each line's start as `data-t` (`m:ss`, shown by the stylesheet and
/// read by the script that seeks the recording on a click), the speaker only where the speaker
/// changes, and no end tags (HTML closes a list item at the next one). The line at `t`
/// (seconds; a search hit or a shared moment) is `#hit`.
pub(super) fn transcript_lines(
    lang: Lang,
    segments: &[salesai_core::transcript::Segment],
    t: Option<u64>,
) -> maud::PreEscaped<String> {
    use salesai_core::transcript::{Attribution, Role};
    use std::fmt::Write as _;
    let hit = t.and_then(|t| {
        let at = t.saturating_mul(1000).saturating_add(999);
        segments.iter().rposition(|s| s.start_ms <= at)
    });
    let mut out = String::with_capacity(segments.len() * 128);
    let mut previous: Option<(Option<&str>, Option<Role>)> = None;
    for (i, s) in segments.iter().enumerate() {
        let _ = write!(out, "<li data-t=\"{}\"", clock(s.start_ms as i64));
        if hit == Some(i) {
            out.push_str(" id=\"hit\"");
        }
        out.push('>');
        let who = (s.speaker.as_deref(), s.role);
        if s.speaker.is_none() && s.attribution == Some(Attribution::Uncertain) {
            // Two at once, or a turn too short to place: said so, not guessed.
            let _ = write!(out, "<b class=u>{}</b>", lang.t().overlap);
        } else if who.0.is_some() && previous != Some(who) {
            // Short attributes: a 60-minute call has hundreds of speaker changes.
            out.push_str(match s.role {
                Some(Role::Customer) => "<b class=c",
                _ => "<b",
            });
            if s.attribution == Some(Attribution::Inferred) {
                let _ = write!(
                    out,
                    " title=\"{} {}%\"",
                    lang.t().inferred_confidence,
                    s.confidence.unwrap_or(0)
                );
            }
            out.push('>');
            let label = s.speaker.as_deref().unwrap_or_default();
            let side = s.role.map(|r| role_name(lang, r));
            match side {
                Some(side) if side != label => {
                    let _ = maud::Escaper::new(&mut out).write_str(side);
                    out.push_str(" · ");
                    let _ = maud::Escaper::new(&mut out).write_str(label);
                }
                _ => {
                    let _ = maud::Escaper::new(&mut out).write_str(label);
                }
            }
            if s.attribution == Some(Attribution::Inferred) {
                out.push('?');
            }
            out.push_str("</b>");
        }
        previous = Some(who);
        let _ = maud::Escaper::new(&mut out).write_str(&s.text);
    }
    maud::PreEscaped(out)
}

pub(super) fn role_name(lang: Lang, role: salesai_core::transcript::Role) -> &'static str {
    match role {
        salesai_core::transcript::Role::Rep => lang.t().rep,
        salesai_core::transcript::Role::Customer => lang.t().customer,
    }
}

/// The talk analytics card: each figure with its healthy range, ⚠️ on those outside it, and
/// the form that corrects who is who (which re-runs the analysis).
pub(super) fn talk_card(
    lang: Lang,
    c: &Conversation,
    csrf: &str,
    segments: &[salesai_core::transcript::Segment],
    talk: Option<&salesai_core::report::TalkReport>,
) -> Markup {
    use salesai_core::talk::TalkFlag;
    let stats = talk.map(|t| &t.stats);
    let mut speakers: Vec<(&str, Option<salesai_core::transcript::Role>, bool)> = Vec::new();
    for s in segments {
        if let Some(name) = s.speaker.as_deref()
            && !speakers.iter().any(|(n, _, _)| *n == name)
        {
            speakers.push((
                name,
                s.role,
                s.attribution == Some(salesai_core::transcript::Attribution::Known),
            ));
        }
    }
    let mins = |ms: u64| clock(ms as i64);
    html! {
        section.card #talk {
            h2 { (lang.t().how_call_was_run) }
            @if let (Some(st), Some(t)) = (stats, talk) {
                @let flags = &t.flags;
                @let targets = &t.targets;
                @let warn = |hit: bool| if hit { " ⚠️" } else { "" };
                dl.fields.talk {
                    dt { (lang.t().rep_s_share_of_talk) }
                    dd { (format!("{:.0}%", st.talk_ratio * 100.0)) (warn(flags.iter().any(|f| matches!(f, TalkFlag::TalksTooMuch | TalkFlag::TalksTooLittle))))
                        small.muted { " " (format!("{:.0}–{:.0}%", targets.talk_ratio_min * 100.0, targets.talk_ratio_max * 100.0)) } }
                    dt { (lang.t().longest_rep_monologue) }
                    dd { (st.longest_monologue.map(|m| mins(m.duration_ms)).unwrap_or_else(|| "—".into())) (warn(flags.contains(&TalkFlag::LongMonologue)))
                        small.muted { " ≤ " (mins(targets.monologue_max_s * 1000)) } }
                    dt { (lang.t().longest_customer_story) }
                    dd { (st.longest_customer_story.map(|m| mins(m.duration_ms)).unwrap_or_else(|| "—".into())) (warn(flags.contains(&TalkFlag::ShortCustomerStory)))
                        small.muted { " ≥ " (mins(targets.story_min_s * 1000)) } }
                    dt { (lang.t().interactivity) }
                    dd { (format!("{:.1}", st.switches_per_minute)) (lang.t().switches_min) (warn(flags.contains(&TalkFlag::LowInteractivity)))
                        small.muted { " ≥ " (targets.switches_min) } }
                    dt { (lang.t().patience) }
                    dd { (st.patience_ms.map(|p| format!("{:.1} s", p as f64 / 1000.0)).unwrap_or_else(|| "—".into())) (warn(flags.contains(&TalkFlag::Impatient)))
                        small.muted { " ≥ " (format!("{:.1} s", targets.patience_min_ms as f64 / 1000.0)) } }
                    dt { (lang.t().rep_questions) }
                    dd { (st.rep_questions) " · " (format!("{:.0}", st.questions_per_hour)) (lang.t().hour) (warn(flags.contains(&TalkFlag::FewQuestions)))
                        small.muted { " ≥ " (targets.questions_per_hour_min) } }
                    @if let Some(b) = st.business_share {
                        dt { (lang.t().customer_s_business_vs_product) }
                        dd { (format!("{:.0}% / {:.0}%", b * 100.0, (1.0 - b) * 100.0)) }
                    }
                }
                @if st.inferred {
                    p.muted { (lang.t().who_spoke_is_inferred_from_voices) }
                }
            } @else if c.media.times_estimated() {
                p.muted { (lang.t().uploaded_text_had_no_times_so) }
            } @else {
                p.muted { (lang.t().nobody_in_this_transcript_is_placed) }
            }
            @if !speakers.is_empty() && matches!(c.status, ConversationStatus::Completed | ConversationStatus::Failed) {
                details.edit-speakers {
                    summary { (lang.t().who_is_who) }
                    @for (name, role, known) in &speakers {
                        form.inline-form method="post" action={ "/calls/" (c.id) "/speakers" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="speaker" value=(name);
                            span.speaker { (name) @if !known { small.muted { (lang.t().inferred) } } }
                            select name="role" aria-label=(lang.t().side) {
                                option value="rep" selected[*role == Some(salesai_core::transcript::Role::Rep)] { (lang.t().rep) }
                                option value="customer" selected[*role == Some(salesai_core::transcript::Role::Customer)] { (lang.t().customer) }
                            }
                            button type="submit" { (lang.t().save_and_analyse_again) }
                        }
                    }
                }
            }
        }
    }
}
