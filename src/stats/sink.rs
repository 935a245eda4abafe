//! Envoy's UDP statsd sinks, `envoy.stat_sinks.statsd` and `envoy.stat_sinks.dog_statsd`:
//! at every stats flush (`stats_flush_interval`, on the main thread) the bootstrap's
//! `stats_sinks` are sent, in list order, one line per stat: each used counter's
//! change since the previous flush (`prefix.name:delta|c`, zeros included once the
//! counter was used, as Envoy sends them), each used gauge's value (`|g`) and each
//! histogram sample of the interval just closed (`|ms`). The dog_statsd flavour
//! sends tag-extracted names with their tags (`|#tag:value,...`). Stats that
//! `stats_config.stats_matcher` rejects are not in the store's listing, so they are
//! never sent, as in Envoy. Sending is best effort: a full socket buffer or an
//! unreachable collector drops lines, never blocks the main thread.
//!
//! Each flush takes one [`MetricSnapshot`] that every sink reads, so the
//! sinks other layers build (the OpenTelemetry one, an extension) see the same
//! counters' deltas as the statsd ones; they plug in as [`Sink`]s.
//!
//! Envoy sends a histogram sample the moment it is recorded; Courier's histograms
//! keep counts per bucket (see `histogram`), so the samples go out at the next flush,
//! each as its bucket's lower bound (exact below 100, within 1 % above).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use envoy_types::pb::envoy::config::core::v3::{address, socket_address, Address};
use envoy_types::pb::envoy::config::metrics::v3::{
    dog_statsd_sink, stats_sink, statsd_sink, DogStatsdSink, StatsSink, StatsdSink as StatsdSinkProto,
};

use super::histogram::HistogramSnapshot;
use super::store::Store;
use crate::config::bootstrap::decode_any;
use crate::config::{ConfigError, FieldPath};

/// The statsd sink's config type.
pub const STATSD_TYPE: &str = "envoy.config.metrics.v3.StatsdSink";
/// The dog_statsd sink's config type.
pub const DOG_STATSD_TYPE: &str = "envoy.config.metrics.v3.DogStatsdSink";

/// The stat sinks Courier ships: (extension name, config message full name).
pub const STAT_SINKS: &[(&str, &str)] =
    &[("envoy.stat_sinks.statsd", STATSD_TYPE), ("envoy.stat_sinks.dog_statsd", DOG_STATSD_TYPE)];

/// Envoy's `prefix` when the config leaves it empty.
const DEFAULT_PREFIX: &str = "envoy";

/// A used counter at a flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSample {
    pub name: String,
    pub value: u64,
    /// Its change since the previous flush.
    pub delta: u64,
}

/// What one stats flush hands every sink (Envoy's `MetricSnapshot`): the used
/// counters, the used gauges' values and the used histograms' distributions,
/// each list in name order. Stats `stats_matcher` rejects are not in it.
#[derive(Debug)]
pub struct MetricSnapshot {
    pub counters: Vec<CounterSample>,
    pub gauges: Vec<(String, i64)>,
    /// The interval just closed and everything flushed so far.
    pub histograms: Vec<(String, HistogramSnapshot)>,
    /// When the snapshot was taken.
    pub time: std::time::SystemTime,
}

/// A stat sink: gets every flush's snapshot, on the main thread. Sending must
/// not block (a slow collector is the sink's own business).
pub trait Sink: fmt::Debug {
    /// `store` gives the names' tags and the histograms' bucket bounds.
    fn flush(&self, snapshot: &MetricSnapshot, store: &Store);
}

/// One UDP statsd collector and how lines are written for it.
#[derive(Debug)]
pub struct StatsdSink {
    socket: UdpSocket,
    target: SocketAddr,
    prefix: String,
    /// dog_statsd: tag-extracted names with `|#tags`.
    tagged: bool,
    /// dog_statsd's `max_bytes_per_datagram`: lines are joined with `\n` up to this
    /// size; 0 sends each line as its own datagram.
    max_bytes_per_datagram: usize,
}

impl StatsdSink {
    /// A sink writing to `target`, bound to an ephemeral port of the same family.
    pub fn new(target: SocketAddr, prefix: &str, tagged: bool, max_bytes_per_datagram: usize) -> std::io::Result<Self> {
        let local: SocketAddr = match target {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        let prefix = if prefix.is_empty() { DEFAULT_PREFIX } else { prefix };
        Ok(StatsdSink { socket, target, prefix: prefix.to_string(), tagged, max_bytes_per_datagram })
    }

    /// One statsd line: `prefix.name:value|kind`, and for dog_statsd the tags.
    fn line(&self, full_name: &str, value: &str, kind: &str, store: &Store) -> String {
        if !self.tagged {
            return format!("{}.{full_name}:{value}|{kind}", self.prefix);
        }
        let tagged = store.lock().config().tags().extract_with_envoy_tag_names(full_name);
        let mut line = format!("{}.{}:{value}|{kind}", self.prefix, tagged.name);
        for (i, (label, tag_value)) in tagged.tags.iter().enumerate() {
            line.push_str(if i == 0 { "|#" } else { "," });
            line.push_str(label);
            line.push(':');
            line.push_str(tag_value);
        }
        line
    }

    /// Sends `lines`, batched as Envoy's `UdpStatsdSink::writeBuffer` does.
    fn send(&self, lines: &[String]) {
        let mut batch = String::new();
        for line in lines {
            if line.len() >= self.max_bytes_per_datagram {
                self.send_datagram(line);
                continue;
            }
            if batch.len() + line.len() + 1 > self.max_bytes_per_datagram {
                self.send_datagram(&batch);
                batch.clear();
            } else if !batch.is_empty() {
                batch.push('\n');
            }
            batch.push_str(line);
        }
        if !batch.is_empty() {
            self.send_datagram(&batch);
        }
    }

    fn send_datagram(&self, data: &str) {
        if let Err(e) = self.socket.send_to(data.as_bytes(), self.target) {
            tracing::debug!("statsd sink {}: {e}", self.target);
        }
    }
}

/// The bootstrap's `stats_sinks` and what they need between flushes.
#[derive(Debug, Default)]
pub struct StatSinks {
    sinks: Vec<Box<dyn Sink>>,
    /// Each used counter's value at the previous flush (its delta's base).
    counters: HashMap<String, u64>,
    /// Gauges seen non-zero: Envoy keeps sending a gauge once it was used.
    used_gauges: HashSet<String>,
}

impl StatSinks {
    /// The sinks, in the bootstrap's order (the extension registry builds them).
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> StatSinks {
        StatSinks { sinks, ..Default::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// Sends the store's stats to every sink, in list order. Call after
    /// [`Store::flush_histograms`], whose interval it sends.
    pub fn flush(&mut self, store: &Store) {
        if self.sinks.is_empty() {
            return;
        }
        let snapshot = self.snapshot(store);
        for sink in &self.sinks {
            sink.flush(&snapshot, store);
        }
    }

    /// What this flush sends: used counters with their deltas, used gauges'
    /// values and used histograms.
    fn snapshot(&mut self, store: &Store) -> MetricSnapshot {
        let time = std::time::SystemTime::now();
        let stats = store.lock();
        let mut counters = Vec::new();
        for (name, counter) in stats.counters() {
            let value = counter.value();
            let previous = self.counters.get(&name).copied();
            if value == 0 && previous.is_none() {
                continue;
            }
            // A counter reset by `/reset_counters` starts over from zero.
            let delta = value.checked_sub(previous.unwrap_or(0)).unwrap_or(value);
            self.counters.insert(name.clone(), value);
            counters.push(CounterSample { name, value, delta });
        }
        let mut gauges = Vec::new();
        for (name, gauge) in stats.gauges() {
            let value = gauge.value();
            if value != 0 {
                self.used_gauges.insert(name.clone());
            } else if !self.used_gauges.contains(&name) {
                continue;
            }
            gauges.push((name, value));
        }
        let mut histograms = Vec::new();
        for (name, histogram) in stats.histograms() {
            let snapshot = histogram.snapshot();
            if snapshot.used() {
                histograms.push((name, snapshot));
            }
        }
        MetricSnapshot { counters, gauges, histograms, time }
    }
}

impl Sink for StatsdSink {
    /// Counters' deltas, gauges' values and each histogram sample of the
    /// interval just closed, as its bucket's lower bound.
    fn flush(&self, snapshot: &MetricSnapshot, store: &Store) {
        let mut lines = Vec::with_capacity(snapshot.counters.len() + snapshot.gauges.len());
        for c in &snapshot.counters {
            lines.push(self.line(&c.name, &c.delta.to_string(), "c", store));
        }
        for (name, value) in &snapshot.gauges {
            lines.push(self.line(name, &value.to_string(), "g", store));
        }
        for (name, histogram) in &snapshot.histograms {
            for (lower, _, count) in histogram.interval.buckets() {
                let line = self.line(name, &format_sample(lower), "ms", store);
                lines.extend(std::iter::repeat_n(line, count as usize));
            }
        }
        self.send(&lines);
    }
}

/// A bucket's lower bound as a statsd value: integral ones without a decimal point.
fn format_sample(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// One statsd or dog_statsd `stats_sinks` entry; `path` points at it.
pub fn build(sink: &StatsSink, path: &FieldPath) -> Result<StatsdSink, ConfigError> {
    let Some(stats_sink::ConfigType::TypedConfig(any)) = &sink.config_type else {
        return Err(path.field_error("typed_config", "a stat sink needs a typed_config"));
    };
    let any_path = path.child("typed_config");
    let type_name = any.type_url.rsplit('/').next().unwrap_or("");
    let (address, prefix, tagged, max_bytes) = match type_name {
        STATSD_TYPE => {
            let config: StatsdSinkProto = decode_any(any, &any_path)?;
            match config.statsd_specifier {
                Some(statsd_sink::StatsdSpecifier::Address(a)) => (a, config.prefix, false, 0),
                Some(statsd_sink::StatsdSpecifier::TcpClusterName(_)) => {
                    return Err(any_path.field_error("tcp_cluster_name", "TCP statsd is not supported by Courier"))
                }
                None => return Err(any_path.field_error("address", "an address is required")),
            }
        }
        DOG_STATSD_TYPE => {
            let config: DogStatsdSink = decode_any(any, &any_path)?;
            let Some(dog_statsd_sink::DogStatsdSpecifier::Address(a)) = config.dog_statsd_specifier else {
                return Err(any_path.field_error("address", "an address is required"));
            };
            let max = config.max_bytes_per_datagram.map_or(0, |v| v.value);
            if config.max_bytes_per_datagram.is_some() && max == 0 {
                return Err(any_path.field_error("max_bytes_per_datagram", "value must be greater than 0"));
            }
            let max = usize::try_from(max).unwrap_or(usize::MAX);
            (a, config.prefix, true, max)
        }
        other => return Err(any_path.error(format!("'{other}' is not a stat sink Courier supports"))),
    };
    let target = udp_target(&address, &any_path.child("address"))?;
    StatsdSink::new(target, &prefix, tagged, max_bytes)
        .map_err(|e| any_path.error(format!("cannot open a UDP socket for {target}: {e}")))
}

/// The collector's address: an IP and a port (Envoy resolves no names here).
fn udp_target(addr: &Address, path: &FieldPath) -> Result<SocketAddr, ConfigError> {
    let Some(address::Address::SocketAddress(sa)) = &addr.address else {
        return Err(path.error("only socket_address is supported by Courier"));
    };
    let ip: IpAddr = sa
        .address
        .parse()
        .map_err(|_| path.field_error("socket_address.address", format!("'{}' is not an IP address", sa.address)))?;
    let port = match &sa.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(p)) => u16::try_from(*p)
            .map_err(|_| path.field_error("socket_address.port_value", format!("port {p} is out of range")))?,
        Some(socket_address::PortSpecifier::NamedPort(_)) => {
            return Err(path.field_error("socket_address.named_port", "named ports are not supported"))
        }
        None => 0,
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver() -> (UdpSocket, SocketAddr) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_read_timeout(Some(std::time::Duration::from_secs(2))).expect("timeout");
        let addr = socket.local_addr().expect("addr");
        (socket, addr)
    }

    fn datagrams(socket: &UdpSocket, n: usize) -> Vec<String> {
        let mut buf = [0u8; 65536];
        (0..n)
            .map(|_| {
                let len = socket.recv(&mut buf).expect("datagram");
                String::from_utf8_lossy(&buf[..len]).into_owned()
            })
            .collect()
    }

    /// The line formats, as Envoy 1.40 sent them for an HTTP listener
    /// (`pre.http.ing.downstream_rq_total:3|c`,
    /// `envoy.listener.http.downstream_rq_xx:3|c|#envoy.response_code_class:2,envoy.http_conn_manager_prefix:ing,envoy.listener_address:127.0.0.1_18080`).
    #[test]
    fn statsd_and_dog_statsd_lines_are_envoy_s() {
        let store = Store::new();
        let plain = StatsdSink::new("127.0.0.1:9".parse().expect("addr"), "pre", false, 0).expect("sink");
        assert_eq!(
            plain.line("http.ing.downstream_rq_total", "3", "c", &store),
            "pre.http.ing.downstream_rq_total:3|c"
        );
        // An empty `prefix` is Envoy's default one, `envoy`.
        let dog = StatsdSink::new("127.0.0.1:9".parse().expect("addr"), "", true, 0).expect("sink");
        assert_eq!(
            dog.line("listener.127.0.0.1_18080.http.ing.downstream_rq_2xx", "3", "c", &store),
            "envoy.listener.http.downstream_rq_xx:3|c|#envoy.response_code_class:2,\
             envoy.http_conn_manager_prefix:ing,envoy.listener_address:127.0.0.1_18080"
        );
        assert_eq!(dog.line("server.live", "1", "g", &store), "envoy.server.live:1|g");
    }

    /// `stats_config.stats_tags` tags keep their `tag_name` as given (`my.tag`),
    /// where Prometheus shows `my_tag`. Envoy 1.40 with `{ tag_name: my.tag,
    /// fixed_value: x }` sent `envoy.http.downstream_cx_destroy:1|c|#my.tag:x,envoy.http_conn_manager_prefix:ing`.
    #[test]
    fn dog_statsd_names_custom_tags_as_configured() {
        use crate::stats::StatsConfig;
        use envoy_types::pb::envoy::config::metrics::v3::{
            tag_specifier::TagValue, StatsConfig as StatsConfigProto, TagSpecifier,
        };
        let spec = TagSpecifier { tag_name: "my.tag".into(), tag_value: Some(TagValue::FixedValue("x".into())) };
        let proto = StatsConfigProto { stats_tags: vec![spec], ..Default::default() };
        let config = StatsConfig::from_proto(&proto, &FieldPath::starting_at("stats_config")).expect("valid");
        let store = Store::with_config(config);
        let dog = StatsdSink::new("127.0.0.1:9".parse().expect("addr"), "", true, 0).expect("sink");
        assert_eq!(
            dog.line("cluster.app.upstream_rq_total", "1", "c", &store),
            "envoy.cluster.upstream_rq_total:1|c|#my.tag:x,envoy.cluster_name:app"
        );
    }

    /// Counters are deltas, zeros included once used; unused stats are not sent;
    /// gauges are values; histogram samples are `|ms`.
    #[test]
    fn a_flush_sends_deltas_values_and_samples() {
        let (rx, addr) = receiver();
        let store = Store::new();
        let mut sinks = StatSinks::new(vec![Box::new(StatsdSink::new(addr, "p", false, 0).expect("sink"))]);
        store.counter("unused").value();
        store.counter("a.total").add(3);
        store.gauge("a.active").set(2);
        store.histogram("a.time").record(7);
        store.flush_histograms();
        sinks.flush(&store);
        assert_eq!(datagrams(&rx, 3), ["p.a.total:3|c", "p.a.active:2|g", "p.a.time:7|ms"]);
        store.gauge("a.active").set(0);
        store.flush_histograms();
        sinks.flush(&store);
        assert_eq!(datagrams(&rx, 2), ["p.a.total:0|c", "p.a.active:0|g"]);
    }

    /// `max_bytes_per_datagram` joins lines with `\n` and never splits one. Envoy 1.40
    /// with `max_bytes_per_datagram: 300` sent at a flush, for instance, the 290-byte
    /// `envoy.listener.http.downstream_rq_xx:1|c|#envoy.response_code_class:2,envoy.http_conn_manager_prefix:ing,envoy.listener_address:127.0.0.1_18080\nenvoy.listener.downstream_cx_total:1|c|#envoy.listener_address:127.0.0.1_18080\nenvoy.http.downstream_cx_destroy:1|c|#envoy.http_conn_manager_prefix:ing`
    /// (no trailing newline).
    #[test]
    fn max_bytes_per_datagram_batches_lines() {
        let (rx, addr) = receiver();
        // max_bytes_per_datagram: 10
        let sink = StatsdSink::new(addr, "p", true, 10).expect("sink");
        sink.send(&["aaaa".into(), "bbbb".into(), "cccc".into(), "dddddddddddd".into(), "e".into()]);
        assert_eq!(datagrams(&rx, 3), ["aaaa\nbbbb", "dddddddddddd", "cccc\ne"]);
    }

    #[test]
    fn bad_sinks_are_refused_with_their_field() {
        use envoy_types::pb::google::protobuf::Any;
        use prost::Message;
        let tcp = StatsdSinkProto {
            prefix: String::new(),
            statsd_specifier: Some(statsd_sink::StatsdSpecifier::TcpClusterName("c".into())),
        };
        let any = Any { type_url: format!("type.googleapis.com/{STATSD_TYPE}"), value: tcp.encode_to_vec() };
        let sink = StatsSink {
            name: "envoy.stat_sinks.statsd".into(),
            config_type: Some(stats_sink::ConfigType::TypedConfig(any)),
        };
        let e = build(&sink, &FieldPath::starting_at("stats_sinks[0]")).expect_err("refused").to_string();
        assert!(e.contains("stats_sinks[0].typed_config.tcp_cluster_name"), "{e}");
    }
}
