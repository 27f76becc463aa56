//! The binary's services: what runs inside `serve`/`worker` or behind a command, with no
//! argument parsing and no printing (that is `cli/`). Imports go one way: `cli` → `ops` →
//! `config`/`runtime`; nothing here imports `cli`.

pub mod doctor;
pub mod jobs;
pub mod monitor;
pub mod period;
pub mod prune;
pub mod schedule;

/// `text` cut to `max` characters, with an ellipsis when cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
