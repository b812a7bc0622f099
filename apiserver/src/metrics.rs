//! `/metrics` in Prometheus format, with upstream's request metrics so dashboards and
//! alerts written for kube-apiserver read ours too.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The apiserver's metrics.
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub durations: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("apiserver_request_total", "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code."),
            &["verb", "group", "version", "resource", "subresource", "code"],
        )
        .expect("valid metric");
        let durations = HistogramVec::new(
            HistogramOpts::new("apiserver_request_duration_seconds", "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.")
                .buckets(vec![0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0]),
            &["verb", "group", "version", "resource", "subresource"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(durations.clone()))
            .expect("unique metric");
        Metrics {
            registry,
            requests,
            durations,
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
