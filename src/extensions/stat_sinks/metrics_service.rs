//! `envoy.stat_sinks.metrics_service` (Envoy's `extensions/stat_sinks/
//! metrics_service`): at every stats flush, one `StreamMetricsMessage` on a
//! long-lived `envoy.service.metrics.v3.MetricsService/StreamMetrics` client
//! stream (`common::grpc_client`) to the `grpc_service`'s cluster. The stream
//! opens at the first flush, its first message carrying the `identifier`
//! (the node, as xDS sends it); once the service ends it (the upload stops
//! at the service's reset), the next flush opens another, with the
//! identifier again, as Envoy's. Each used stat is a Prometheus
//! `MetricFamily` of its own, stamped with the flush's time, in Envoy's
//! order: counters (the value, or with `report_counters_as_deltas` the change
//! since the previous flush), gauges, then per histogram a summary (the
//! interval's quantiles, count and sum) and a histogram (the interval's
//! cumulative bucket counts over the stat's bounds), as `histogram_emit_mode`
//! asks. With `emit_tags_as_labels` a family is named by the tag-extracted
//! name and its metric labelled with the tags; otherwise by the full name.
//! `transport_api_version` must be V3; `batch_size` is refused. The stream has
//! no deadline: `grpc_service.timeout` bounds nothing, as in Envoy 1.40 (its
//! stream outlived a 0.5 s timeout).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use envoy_types::pb::envoy::config::core::v3::{ApiVersion, Node};
use envoy_types::pb::envoy::config::metrics::v3::{HistogramEmitMode, MetricsServiceConfig};
use envoy_types::pb::envoy::service::metrics::v3::stream_metrics_message::Identifier;
use envoy_types::pb::envoy::service::metrics::v3::StreamMetricsMessage;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::io::prometheus::client::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary,
};

use crate::config::bootstrap::decode_any;
use crate::config::{ConfigError, FieldPath};
use crate::extensions::common::grpc_client::{ClientStream, GrpcClient};
use crate::stats::sink::{MetricSnapshot, Sink};
use crate::stats::{Distribution, Store, SUPPORTED_QUANTILES};
use crate::thread_local::Slot;
use crate::upstream::ThreadLocalClusterManager;

pub const CONFIG_TYPE: &str = "envoy.config.metrics.v3.MetricsServiceConfig";
const STREAM_PATH: &str = "/envoy.service.metrics.v3.MetricsService/StreamMetrics";

#[derive(Debug)]
pub struct MetricsServiceSink {
    grpc: Rc<GrpcClient>,
    clusters: Slot<ThreadLocalClusterManager>,
    /// Sent as the first message's identifier.
    node: Node,
    counters_as_deltas: bool,
    emit_tags_as_labels: bool,
    summaries: bool,
    histograms: bool,
    /// The open stream, if any.
    stream: RefCell<Option<ClientStream>>,
}

impl MetricsServiceSink {
    /// `path` points at the `typed_config`.
    pub fn from_any(
        any: &Any,
        path: &FieldPath,
        node: &Node,
        clusters: &Slot<ThreadLocalClusterManager>,
        cluster_exists: &dyn Fn(&str) -> bool,
    ) -> Result<MetricsServiceSink, ConfigError> {
        let c: MetricsServiceConfig = decode_any(any, path)?;
        if c.transport_api_version != ApiVersion::V3 as i32 {
            return Err(path.field_error("transport_api_version", "only V3 is supported"));
        }
        let Some(grpc) = &c.grpc_service else {
            return Err(path.field_error("grpc_service", "a metrics service needs a grpc_service"));
        };
        let grpc = GrpcClient::from_proto(grpc, &path.child("grpc_service"), cluster_exists)?;
        let mode = HistogramEmitMode::try_from(c.histogram_emit_mode).unwrap_or(HistogramEmitMode::SummaryAndHistogram);
        Ok(MetricsServiceSink {
            grpc: Rc::new(grpc),
            clusters: clusters.clone(),
            node: node.clone(),
            counters_as_deltas: c.report_counters_as_deltas.is_some_and(|v| v.value),
            emit_tags_as_labels: c.emit_tags_as_labels,
            summaries: mode != HistogramEmitMode::Histogram,
            histograms: mode != HistogramEmitMode::Summary,
            stream: RefCell::new(None),
        })
    }

    /// The families of one flush.
    pub fn families(&self, snapshot: &MetricSnapshot, store: &Store) -> Vec<MetricFamily> {
        let time = snapshot.time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let mut out = Vec::with_capacity(snapshot.counters.len() + snapshot.gauges.len());
        let family = |full_name: &str, kind: MetricType, metric: Metric| {
            let (name, label) = if self.emit_tags_as_labels {
                let tagged = store.lock().config().tags().extract_with_envoy_tag_names(full_name);
                let labels =
                    tagged.tags.into_iter().map(|(k, v)| LabelPair { name: Some(k.into()), value: Some(v) }).collect();
                (tagged.name, labels)
            } else {
                (full_name.to_owned(), Vec::new())
            };
            MetricFamily {
                name: Some(name),
                r#type: Some(kind as i32),
                metric: vec![Metric { label, timestamp_ms: Some(time), ..metric }],
                ..Default::default()
            }
        };
        for c in &snapshot.counters {
            let value = if self.counters_as_deltas { c.delta } else { c.value } as f64;
            let metric =
                Metric { counter: Some(Counter { value: Some(value), ..Default::default() }), ..Default::default() };
            out.push(family(&c.name, MetricType::Counter, metric));
        }
        for (name, value) in &snapshot.gauges {
            let metric = Metric { gauge: Some(Gauge { value: Some(*value as f64) }), ..Default::default() };
            out.push(family(name, MetricType::Gauge, metric));
        }
        for (name, histogram) in &snapshot.histograms {
            let interval = &histogram.interval;
            if self.summaries {
                let metric = Metric { summary: Some(summary(interval)), ..Default::default() };
                out.push(family(name, MetricType::Summary, metric));
            }
            if self.histograms {
                let bounds = store.lock().config().buckets(name).to_vec();
                let metric = Metric { histogram: Some(buckets(interval, &bounds)), ..Default::default() };
                out.push(family(name, MetricType::Histogram, metric));
            }
        }
        out
    }
}

fn summary(samples: &Distribution) -> Summary {
    let quantile = SUPPORTED_QUANTILES
        .iter()
        .zip(samples.quantiles())
        .map(|(q, v)| Quantile { quantile: Some(*q), value: Some(v) })
        .collect();
    Summary {
        sample_count: Some(samples.sample_count()),
        sample_sum: Some(samples.sample_sum()),
        quantile,
        ..Default::default()
    }
}

/// Prometheus buckets: the count of samples up to each bound (no `+Inf`).
fn buckets(samples: &Distribution, bounds: &[f64]) -> Histogram {
    let bucket = bounds
        .iter()
        .zip(samples.bucket_counts(bounds))
        .map(|(b, n)| Bucket { upper_bound: Some(*b), cumulative_count: Some(n), ..Default::default() })
        .collect();
    Histogram {
        sample_count: Some(samples.sample_count()),
        sample_sum: Some(samples.sample_sum()),
        bucket,
        ..Default::default()
    }
}

impl Sink for MetricsServiceSink {
    fn flush(&self, snapshot: &MetricSnapshot, store: &Store) {
        let mut message = StreamMetricsMessage { identifier: None, envoy_metrics: self.families(snapshot, store) };
        let mut stream = self.stream.borrow_mut();
        if !stream.as_ref().is_some_and(ClientStream::is_open) {
            *stream = self.grpc.stream(&self.clusters, STREAM_PATH);
            // Only a stream's first message says who sends.
            message.identifier = Some(Identifier { node: Some(self.node.clone()) });
        }
        if let Some(open) = stream.as_ref() {
            open.send(&message);
        }
    }
}
