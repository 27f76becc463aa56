//! Periods of scheduled work: the key that names one run per period, so however many nodes
//! enqueue it, the database keeps one.

use chrono::{DateTime, NaiveTime, Utc};

/// The idempotency key `{kind}:{local date}` of a daily task due at `now`, or `None` before
/// today's local time `at`.
pub fn due_key(kind: &str, now: DateTime<Utc>, tz: chrono_tz::Tz, at: NaiveTime) -> Option<String> {
    let local = now.with_timezone(&tz);
    (local.time() >= at).then(|| format!("{kind}:{}", local.format("%Y-%m-%d")))
}
