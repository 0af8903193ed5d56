//! The operator's Prometheus metrics (`GET /metrics`): reconciles, their
//! errors and durations, and the steps taken, by kind.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::planner::Step;
use crate::status::step_name;

/// The operator's metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    errors: Counter,
    steps: Family<Vec<(&'static str, &'static str)>, Counter>,
    durations: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("raftcfg_operator");
        let reconciles = Counter::default();
        let errors = Counter::default();
        let steps = Family::default();
        // 5 ms to about 10 s.
        let durations = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed and were retried",
            errors.clone(),
        );
        registry.register("steps", "Planner steps carried out, by step", steps.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            durations.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            steps,
            durations,
        }
    }
}

impl Metrics {
    /// Counts a finished reconcile.
    pub fn reconciled(&self, took: Duration, failed: bool) {
        self.reconciles.inc();
        if failed {
            self.errors.inc();
        }
        self.durations.observe(took.as_secs_f64());
    }

    /// Counts a step about to be carried out.
    pub fn step(&self, step: &Step) {
        self.steps
            .get_or_create(&vec![("step", step_name(step))])
            .inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_reconciles_are_counted_in_the_rendered_text() {
        let metrics = Metrics::default();
        metrics.step(&Step::Bootstrap);
        metrics.step(&Step::Bootstrap);
        metrics.reconciled(Duration::from_millis(20), true);
        let text = metrics.render();
        assert!(
            text.contains("raftcfg_operator_steps_total{step=\"Bootstrap\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("raftcfg_operator_reconciles_total 1"),
            "{text}"
        );
        assert!(
            text.contains("raftcfg_operator_reconcile_errors_total 1"),
            "{text}"
        );
        assert!(
            text.contains("raftcfg_operator_reconcile_duration_seconds_count 1"),
            "{text}"
        );
    }
}
