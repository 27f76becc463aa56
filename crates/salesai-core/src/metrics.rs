//! Prometheus metrics: one registry per process, shared by HTTP and workers.
//!
//! Counters and histograms are updated as things happen; the queue gauges are refreshed from
//! the database at scrape time ([`Metrics::set_queue_stats`]), because the queue is shared by
//! every node and no single process's memory knows its depth.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::queue::QueueStats;

type Labels2 = [(&'static str, String); 2];
type Labels3 = [(&'static str, String); 3];
type Labels4 = [(&'static str, String); 4];

/// The process's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    http_requests: Family<Labels3, Counter>,
    http_duration: Family<Labels2, Histogram>,
    jobs: Family<Labels4, Counter>,
    job_duration: Family<Labels2, Histogram>,
    queue_depth: Family<Labels2, Gauge>,
    queue_oldest: Family<[(&'static str, String); 1], Gauge>,
    queue_paused: Family<[(&'static str, String); 1], Gauge>,
    queue_expired_leases: Family<[(&'static str, String); 1], Gauge>,
    window_completed: Family<[(&'static str, String); 1], Gauge>,
    window_failures: Family<Labels2, Gauge>,
    slack_signature_failures: Family<[(&'static str, String); 2], Counter>,
    /// The sum of `slack_signature_failures` over its labels, for the monitor's flush.
    slack_signature_failures_sum: AtomicU64,
    slack_events: Family<[(&'static str, String); 2], Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every salesai metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("salesai");
        let http_requests = Family::<Labels3, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            http_requests.clone(),
        );
        let http_duration = Family::<Labels2, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            http_duration.clone(),
        );
        let jobs = Family::<Labels4, Counter>::default();
        registry.register(
            "jobs",
            "Job attempts finished, by queue, kind, outcome and error code",
            jobs.clone(),
        );
        let job_duration = Family::<Labels2, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 22))
        });
        registry.register(
            "job_duration_seconds",
            "Job attempt duration by queue and kind",
            job_duration.clone(),
        );
        let queue_depth = Family::<Labels2, Gauge>::default();
        registry.register(
            "queue_depth",
            "Jobs per queue and status (shared by all nodes)",
            queue_depth.clone(),
        );
        let queue_oldest = Family::<[(&'static str, String); 1], Gauge>::default();
        registry.register(
            "queue_oldest_waiting_seconds",
            "Age of the oldest due job waiting in each queue",
            queue_oldest.clone(),
        );
        let queue_paused = Family::<[(&'static str, String); 1], Gauge>::default();
        registry.register(
            "queue_paused",
            "1 when the queue is paused",
            queue_paused.clone(),
        );
        let queue_expired_leases = Family::<[(&'static str, String); 1], Gauge>::default();
        registry.register(
            "queue_expired_leases",
            "Running jobs whose lease has run out (a worker died)",
            queue_expired_leases.clone(),
        );
        let window_completed = Family::<[(&'static str, String); 1], Gauge>::default();
        registry.register(
            "queue_window_completed",
            "Jobs completed in the trailing window (all nodes)",
            window_completed.clone(),
        );
        let window_failures = Family::<Labels2, Gauge>::default();
        registry.register(
            "queue_window_failures",
            "Failed job attempts in the trailing window by error code (all nodes)",
            window_failures.clone(),
        );
        let slack_signature_failures = Family::<[(&'static str, String); 2], Counter>::default();
        registry.register(
            "slack_signature_failures",
            "Slack requests refused for a bad signature, by endpoint and reason",
            slack_signature_failures.clone(),
        );
        let slack_events = Family::<[(&'static str, String); 2], Counter>::default();
        registry.register(
            "slack_requests",
            "Verified Slack requests by kind and outcome (handled, duplicate, ignored)",
            slack_events.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            slack_signature_failures,
            slack_signature_failures_sum: AtomicU64::new(0),
            slack_events,
            http_requests,
            http_duration,
            jobs,
            job_duration,
            queue_depth,
            queue_oldest,
            queue_paused,
            queue_expired_leases,
            window_completed,
            window_failures,
        }
    }

    /// Counts one HTTP request. `route` is the matched route template, never the raw path, so
    /// ids in paths cannot blow up the number of series.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&[
                ("method", method.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
        self.http_duration
            .get_or_create(&[("method", method.to_owned()), ("route", route.to_owned())])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a Slack request refused for its signature.
    pub fn slack_signature_failure(&self, endpoint: &str, reason: &str) {
        self.slack_signature_failures
            .get_or_create(&[
                ("endpoint", endpoint.to_owned()),
                ("reason", reason.to_owned()),
            ])
            .inc();
        self.slack_signature_failures_sum
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The Slack signature failures counted so far (all endpoints and reasons).
    pub fn slack_signature_failures_total(&self) -> u64 {
        self.slack_signature_failures_sum.load(Ordering::Relaxed)
    }

    /// Counts a verified Slack request: `kind` (event type, command, interaction type) and
    /// `outcome` (`handled`, `duplicate`, `ignored`).
    pub fn slack_request(&self, kind: &str, outcome: &str) {
        self.slack_events
            .get_or_create(&[("kind", kind.to_owned()), ("outcome", outcome.to_owned())])
            .inc();
    }

    /// Counts one finished job attempt. `outcome` is `completed`, `retrying`, `dead`,
    /// `rescheduled` or `lease_lost`; `error_code` is empty on success.
    pub fn observe_job(
        &self,
        queue: &str,
        kind: &str,
        outcome: &str,
        error_code: &str,
        elapsed: Duration,
    ) {
        self.jobs
            .get_or_create(&[
                ("queue", queue.to_owned()),
                ("kind", kind.to_owned()),
                ("outcome", outcome.to_owned()),
                ("error_code", error_code.to_owned()),
            ])
            .inc();
        self.job_duration
            .get_or_create(&[("queue", queue.to_owned()), ("kind", kind.to_owned())])
            .observe(elapsed.as_secs_f64());
    }

    /// Replaces the queue gauges with fresh numbers from the database.
    pub fn set_queue_stats(&self, stats: &QueueStats) {
        self.queue_depth.clear();
        self.queue_oldest.clear();
        self.queue_paused.clear();
        self.queue_expired_leases.clear();
        self.window_completed.clear();
        self.window_failures.clear();
        for row in &stats.queues {
            for status in crate::queue::JobStatus::ALL {
                let count = row.depth.get(status.as_str()).copied().unwrap_or(0);
                self.queue_depth
                    .get_or_create(&[
                        ("queue", row.queue.clone()),
                        ("status", status.as_str().to_owned()),
                    ])
                    .set(count as i64);
            }
            let queue = [("queue", row.queue.clone())];
            self.queue_oldest
                .get_or_create(&queue)
                .set(row.oldest_waiting_secs as i64);
            self.queue_paused
                .get_or_create(&queue)
                .set(i64::from(row.paused));
            self.queue_expired_leases
                .get_or_create(&queue)
                .set(row.expired_leases as i64);
        }
        for window in &stats.windows {
            self.window_completed
                .get_or_create(&[("window", window.window.clone())])
                .set(window.completed as i64);
            for (code, count) in &window.failures_by_code {
                self.window_failures
                    .get_or_create(&[
                        ("window", window.window.clone()),
                        ("error_code", code.clone()),
                    ])
                    .set(*count as i64);
            }
        }
    }

    /// The registry in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{QueueStatsRow, WindowStats};

    #[test]
    fn renders_queue_and_request_series() {
        let metrics = Metrics::new();
        metrics.observe_http("GET", "/health", 200, Duration::from_millis(2));
        metrics.observe_job(
            "conversations",
            "noop",
            "completed",
            "",
            Duration::from_millis(5),
        );
        let mut row = QueueStatsRow {
            queue: "conversations".into(),
            oldest_waiting_secs: 42,
            ..Default::default()
        };
        row.depth.insert("queued".into(), 7);
        let mut window = WindowStats {
            window: "10m".into(),
            seconds: 600,
            completed: 3,
            ..Default::default()
        };
        window.failures_by_code.insert("GROQ_API_ERROR".into(), 2);
        metrics.set_queue_stats(&QueueStats {
            queues: vec![row],
            windows: vec![window],
        });
        let text = metrics.render();
        assert!(text.contains(r#"salesai_queue_depth{queue="conversations",status="queued"} 7"#));
        assert!(text.contains(r#"salesai_queue_depth{queue="conversations",status="dead"} 0"#));
        assert!(text.contains(r#"salesai_queue_oldest_waiting_seconds{queue="conversations"} 42"#));
        assert!(text.contains(
            r#"salesai_http_requests_total{method="GET",route="/health",status="200"} 1"#
        ));
        assert!(text.contains(
            r#"salesai_queue_window_failures{window="10m",error_code="GROQ_API_ERROR"} 2"#
        ));
        assert!(text.contains("salesai_job_duration_seconds_bucket"));
    }
}
