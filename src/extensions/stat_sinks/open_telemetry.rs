//! `envoy.stat_sinks.open_telemetry` (Envoy's `extensions/stat_sinks/
//! open_telemetry`): at every stats flush, one OTLP `ExportMetricsServiceRequest`
//! as a unary gRPC call (`common::grpc_client`) to the `grpc_service`'s
//! cluster, its answer not acted on and, as in Envoy, not bounded by the
//! service's `timeout`. The request holds one resource
//! (`common::otlp::resource`: the SDK's attributes and the
//! `resource_detectors`'), one scope, and a metric per used stat, in Envoy's
//! order: gauges (a `Gauge`), counters (a monotonic `Sum`, the value or, with
//! `report_counters_as_deltas`, the change since the previous flush) and
//! histograms (a `Histogram` over the stat's bucket bounds, of everything
//! flushed or, with `report_histograms_as_deltas`, of the interval just
//! closed). A metric is named `prefix.` and the tag-extracted name (or the
//! full name without `use_tag_extracted_name`), its tags its data point's
//! attributes, sorted by name (none without `emit_tags_as_attributes`). As
//! deltas, a counter that did not change and a histogram without a sample in
//! the interval are left out. A data point's start time is the previous flush
//! for a delta, the sink's creation for a cumulative value, unset for a gauge:
//! all as Envoy 1.40 sent them, except that Envoy sends the creation time in
//! microseconds where OTLP has nanoseconds (Courier sends nanoseconds). The HTTP exporter, `custom_metric_conversions` and
//! `max_data_points_per_request` are refused by the supported-fields table.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::extensions::stat_sinks::open_telemetry::v3::sink_config::ProtocolSpecifier;
use envoy_types::pb::envoy::extensions::stat_sinks::open_telemetry::v3::SinkConfig;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::opentelemetry::proto::common::v1::{InstrumentationScope, KeyValue};

use crate::config::bootstrap::decode_any;
use crate::config::{ConfigError, FieldPath};
use crate::extensions::common::grpc_client::GrpcClient;
use crate::extensions::common::otlp::metrics::{
    Data, ExportMetricsServiceRequest, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, Value, TEMPORALITY_CUMULATIVE, TEMPORALITY_DELTA,
};
use crate::extensions::common::otlp::{resource, string_attribute, Resource};
use crate::stats::sink::{MetricSnapshot, Sink};
use crate::stats::Distribution;
use crate::stats::Store;
use crate::thread_local::Slot;
use crate::upstream::ThreadLocalClusterManager;

pub const CONFIG_TYPE: &str = "envoy.extensions.stat_sinks.open_telemetry.v3.SinkConfig";
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

#[derive(Debug)]
pub struct OpenTelemetrySink {
    grpc: Rc<GrpcClient>,
    clusters: Slot<ThreadLocalClusterManager>,
    counters_as_deltas: bool,
    histograms_as_deltas: bool,
    emit_tags_as_attributes: bool,
    use_tag_extracted_name: bool,
    /// `prefix` and a dot, or empty.
    prefix: String,
    resource: Resource,
    /// The sink's creation (nanoseconds since the epoch): the cumulative
    /// metrics' start.
    created: u64,
    /// The previous flush: the deltas' start.
    last_flush: Cell<u64>,
}

impl OpenTelemetrySink {
    /// `path` points at the `typed_config`.
    pub fn from_any(
        any: &Any,
        path: &FieldPath,
        clusters: &Slot<ThreadLocalClusterManager>,
        cluster_exists: &dyn Fn(&str) -> bool,
    ) -> Result<OpenTelemetrySink, ConfigError> {
        let c: SinkConfig = decode_any(any, path)?;
        let Some(ProtocolSpecifier::GrpcService(grpc)) = &c.protocol_specifier else {
            return Err(path.field_error("grpc_service", "Courier exports over gRPC only: grpc_service is required"));
        };
        let mut grpc = GrpcClient::from_proto(grpc, &path.child("grpc_service"), cluster_exists)?;
        // Envoy 1.40's sink sends with the async client's default options: the
        // service's `timeout` bounds nothing (an export to a collector that never
        // answered was still active 1.5 s past a 0.5 s timeout).
        grpc.timeout = None;
        let resource = resource::detect(&c.resource_detectors, None, &path.child("resource_detectors"))?;
        Ok(OpenTelemetrySink {
            grpc: Rc::new(grpc),
            clusters: clusters.clone(),
            counters_as_deltas: c.report_counters_as_deltas,
            histograms_as_deltas: c.report_histograms_as_deltas,
            emit_tags_as_attributes: c.emit_tags_as_attributes.is_none_or(|v| v.value),
            use_tag_extracted_name: c.use_tag_extracted_name.is_none_or(|v| v.value),
            prefix: if c.prefix.is_empty() { String::new() } else { format!("{}.", c.prefix) },
            resource,
            created: unix_nanos(SystemTime::now()),
            last_flush: Cell::new(unix_nanos(SystemTime::now())),
        })
    }

    /// The metric's name and its data point's attributes.
    fn name_and_attributes(&self, full_name: &str, store: &Store) -> (String, Vec<KeyValue>) {
        let tagged = store.lock().config().tags().extract_with_envoy_tag_names(full_name);
        let name = format!("{}{}", self.prefix, if self.use_tag_extracted_name { &tagged.name } else { full_name });
        let mut tags = if self.emit_tags_as_attributes { tagged.tags } else { Vec::new() };
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        (name, tags.iter().map(|(k, v)| string_attribute(k, v)).collect())
    }

    /// The export request for `snapshot`.
    pub fn request(&self, snapshot: &MetricSnapshot, store: &Store) -> ExportMetricsServiceRequest {
        let time = unix_nanos(snapshot.time);
        let previous = self.last_flush.replace(time);
        let start = |delta| if delta { previous } else { self.created };
        let point = |attributes, start, value| NumberDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: time,
            value: Some(Value::AsInt(value)),
        };
        let mut metrics = Vec::with_capacity(snapshot.gauges.len() + snapshot.counters.len());
        for (full_name, value) in &snapshot.gauges {
            let (name, attributes) = self.name_and_attributes(full_name, store);
            let data = Data::Gauge(Gauge { data_points: vec![point(attributes, 0, *value)] });
            metrics.push(Metric { name, data: Some(data) });
        }
        let deltas = self.counters_as_deltas;
        for c in snapshot.counters.iter().filter(|c| !deltas || c.delta > 0) {
            let (name, attributes) = self.name_and_attributes(&c.name, store);
            let value = i64::try_from(if deltas { c.delta } else { c.value }).unwrap_or(i64::MAX);
            let data = Data::Sum(Sum {
                data_points: vec![point(attributes, start(deltas), value)],
                aggregation_temporality: temporality(deltas),
                is_monotonic: true,
            });
            metrics.push(Metric { name, data: Some(data) });
        }
        let deltas = self.histograms_as_deltas;
        for (full_name, histogram) in &snapshot.histograms {
            let samples = if deltas { &histogram.interval } else { &histogram.cumulative };
            if samples.is_empty() {
                continue;
            }
            let (name, attributes) = self.name_and_attributes(full_name, store);
            let bounds = store.lock().config().buckets(full_name).to_vec();
            let point = histogram_point(samples, bounds, attributes, start(deltas), time);
            let data =
                Data::Histogram(Histogram { data_points: vec![point], aggregation_temporality: temporality(deltas) });
            metrics.push(Metric { name, data: Some(data) });
        }
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![ScopeMetrics { scope: None::<InstrumentationScope>, metrics }],
            }],
        }
    }
}

/// Envoy's histogram data point: the count, the approximate sum, and the count
/// of each bucket on its own, the last one past the highest bound.
fn histogram_point(
    samples: &Distribution,
    bounds: Vec<f64>,
    attributes: Vec<KeyValue>,
    start: u64,
    time: u64,
) -> HistogramDataPoint {
    let count = samples.sample_count();
    let cumulative = samples.bucket_counts(&bounds);
    let mut bucket_counts = Vec::with_capacity(cumulative.len() + 1);
    let mut below = 0;
    for up_to in cumulative {
        bucket_counts.push(up_to.saturating_sub(below));
        below = up_to;
    }
    bucket_counts.push(count.saturating_sub(below));
    HistogramDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: time,
        count,
        sum: Some(samples.sample_sum()),
        bucket_counts,
        explicit_bounds: bounds,
    }
}

fn temporality(deltas: bool) -> i32 {
    if deltas {
        TEMPORALITY_DELTA
    } else {
        TEMPORALITY_CUMULATIVE
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Sink for OpenTelemetrySink {
    fn flush(&self, snapshot: &MetricSnapshot, store: &Store) {
        let message = self.request(snapshot, store);
        let (grpc, clusters) = (self.grpc.clone(), self.clusters.clone());
        tokio::task::spawn_local(async move {
            if let Err(e) = grpc.call(&clusters, EXPORT_PATH, &message, &[]).await {
                tracing::debug!("open_telemetry stat sink: export to {} failed: {e:?}", grpc.cluster);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each bucket counts its own samples (a sample on a bound in that bound's
    /// bucket, as Envoy's `computeDisjointBuckets`), the last one those past the
    /// highest bound; the sum is Envoy's approximation.
    #[test]
    fn histogram_buckets_are_disjoint_with_an_overflow_bucket() {
        let store = Store::new();
        let h = store.histogram("h");
        for v in [0, 1, 7, 7, 20, 5000] {
            h.record(v);
        }
        store.flush_histograms();
        let samples = h.snapshot().cumulative;
        let point = histogram_point(&samples, vec![1.0, 10.0, 100.0], Vec::new(), 5, 9);
        assert_eq!(point.explicit_bounds, [1.0, 10.0, 100.0]);
        assert_eq!(point.bucket_counts, [2, 2, 1, 1]);
        assert_eq!((point.count, point.start_time_unix_nano, point.time_unix_nano), (6, 5, 9));
        assert_eq!(point.sum, Some(samples.sample_sum()));
    }
}
