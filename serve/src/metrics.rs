//! `/metrics` in Prometheus' text format: requests and their latency per
//! route and status, rows predicted, requests with fields a model did not use,
//! and the version each model serves.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::live::Live;
use contract::Dataset;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Model {
    model: String,
}

impl Model {
    fn of(dataset: Dataset) -> Self {
        Self {
            model: dataset.name().to_string(),
        }
    }
}

type Latency = Family<Route, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    latency: Latency,
    rows: Family<Model, Counter>,
    ignored: Family<Model, Counter>,
    version: Family<Model, Gauge>,
    loaded: Family<Model, Gauge>,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("serve");
        let requests = Family::<RouteStatus, Counter>::default();
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        let rows = Family::<Model, Counter>::default();
        let ignored = Family::<Model, Counter>::default();
        let version = Family::<Model, Gauge>::default();
        let loaded = Family::<Model, Gauge>::default();
        registry.register(
            "requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request to response, by route",
            latency.clone(),
        );
        registry.register("predicted_rows", "Rows predicted, by model", rows.clone());
        // By model only: the field names come from the clients, and a label
        // per name would let a client grow the exposition without bound.
        registry.register(
            "requests_with_ignored_fields",
            "Prediction requests whose rows had keys that are none of the dataset's columns, by model",
            ignored.clone(),
        );
        registry.register(
            "model_version",
            "The version number each model serves (0: the layout before versions)",
            version.clone(),
        );
        registry.register(
            "model_loaded",
            "1 when the model has a champion loaded",
            loaded.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            rows,
            ignored,
            version,
            loaded,
        }
    }

    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RouteStatus {
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&Route {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    pub fn predicted(&self, dataset: Dataset, rows: usize) {
        self.rows
            .get_or_create(&Model::of(dataset))
            .inc_by(rows as u64);
    }

    /// A request answered with `ignored_fields`.
    pub fn ignored_fields(&self, dataset: Dataset) {
        self.ignored.get_or_create(&Model::of(dataset)).inc();
    }

    /// The text exposition, with the model gauges read from `live` now.
    pub fn render(&self, live: &Live) -> String {
        for dataset in Dataset::ALL {
            let key = Model::of(dataset);
            let served = live.current(dataset);
            self.loaded
                .get_or_create(&key)
                .set(i64::from(served.is_some()));
            let number = served.and_then(|s| s.version).map_or(0, |v| i64::from(v.0));
            self.version.get_or_create(&key).set(number);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
