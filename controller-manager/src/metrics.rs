//! Prometheus metrics served on `/metrics`, named like upstream's client-go workqueue metrics
//! (`workqueue_*{name}`) so existing dashboards read them, plus per-controller reconcile
//! counts and latency. They live in the default registry, which the component server
//! serves with `leader_election_master_status`.

use std::sync::LazyLock;

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge_vec, HistogramVec,
    IntCounterVec, IntGaugeVec,
};

/// Items waiting in a controller's queue (keys triggered but not yet being reconciled).
pub static WORKQUEUE_DEPTH: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!("workqueue_depth", "Current depth of workqueue", &["name"])
        .expect("metric")
});

/// Keys added to a controller's queue.
pub static WORKQUEUE_ADDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "workqueue_adds_total",
        "Total number of adds handled by workqueue",
        &["name"]
    )
    .expect("metric")
});

/// Keys re-added after a failed reconcile, with backoff.
pub static WORKQUEUE_RETRIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "workqueue_retries_total",
        "Total number of retries handled by workqueue",
        &["name"]
    )
    .expect("metric")
});

/// How long one reconcile of one key took.
pub static WORKQUEUE_WORK_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "workqueue_work_duration_seconds",
        "How long in seconds processing an item from workqueue takes.",
        &["name"],
        prometheus::exponential_buckets(1e-6, 10.0, 10).expect("buckets")
    )
    .expect("metric")
});

/// Reconciles per controller by outcome (`success` or `error`).
pub static RECONCILES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "controller_reconcile_total",
        "Total number of reconciliations per controller and result",
        &["name", "result"]
    )
    .expect("metric")
});
