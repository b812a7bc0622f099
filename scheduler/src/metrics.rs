//! `/metrics` with upstream's scheduler metric names, so dashboards written for
//! kube-scheduler read ours.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The scheduler's metrics, registered in one registry.
pub struct Metrics {
    registry: Registry,
    /// By `result` (scheduled, unschedulable, error) and `profile`.
    pub attempts: IntCounterVec,
    pub attempt_duration: HistogramVec,
    /// From entering the queue to being bound, for pods scheduled, by attempts needed.
    pub pod_scheduling_duration: HistogramVec,
    /// By `queue` (active, backoff, unschedulable).
    pub pending_pods: IntGaugeVec,
    /// Pods moved back to be retried, by `queue` and cluster `event`.
    pub queue_incoming: IntCounterVec,
    pub preemption_attempts: IntCounter,
    pub preemption_victims: Histogram,
}

fn registered<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: T,
) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let attempts = IntCounterVec::new(
            Opts::new("scheduler_schedule_attempts_total", "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem."),
            &["result", "profile"],
        )
        .expect("valid metric");
        let attempt_duration = HistogramVec::new(
            HistogramOpts::new(
                "scheduler_scheduling_attempt_duration_seconds",
                "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
            )
            .buckets(prometheus::exponential_buckets(0.001, 2.0, 15).expect("valid buckets")),
            &["result", "profile"],
        )
        .expect("valid metric");
        let pod_scheduling_duration = HistogramVec::new(
            HistogramOpts::new("scheduler_pod_scheduling_sli_duration_seconds", "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue and might involve multiple scheduling attempts.")
                .buckets(prometheus::exponential_buckets(0.01, 2.0, 20).expect("valid buckets")),
            &["attempts"],
        )
        .expect("valid metric");
        let pending_pods = IntGaugeVec::new(
            Opts::new("scheduler_pending_pods", "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods."),
            &["queue"],
        )
        .expect("valid metric");
        let queue_incoming = IntCounterVec::new(
            Opts::new(
                "scheduler_queue_incoming_pods_total",
                "Number of pods added to scheduling queues by event and queue type.",
            ),
            &["queue", "event"],
        )
        .expect("valid metric");
        let preemption_attempts = IntCounter::new(
            "scheduler_preemption_attempts_total",
            "Total preemption attempts in the cluster till now",
        )
        .expect("valid metric");
        let preemption_victims = Histogram::with_opts(
            HistogramOpts::new(
                "scheduler_preemption_victims",
                "Number of selected preemption victims",
            )
            .buckets(prometheus::exponential_buckets(1.0, 2.0, 7).expect("valid buckets")),
        )
        .expect("valid metric");
        Metrics {
            attempts: registered(&registry, attempts),
            attempt_duration: registered(&registry, attempt_duration),
            pod_scheduling_duration: registered(&registry, pod_scheduling_duration),
            pending_pods: registered(&registry, pending_pods),
            queue_incoming: registered(&registry, queue_incoming),
            preemption_attempts: registered(&registry, preemption_attempts),
            preemption_victims: registered(&registry, preemption_victims),
            registry,
        }
    }

    /// The registry holding them, for the component server's `/metrics`.
    pub fn registry(&self) -> Registry {
        self.registry.clone()
    }
}
