//! Loggers built from config, writing to temp files.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::accesslog::v3::{access_log::ConfigType, AccessLog, AccessLogFilter};
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::config::core::v3::substitution_format_string::Format;
use envoy_types::pb::envoy::config::core::v3::{DataSource, SubstitutionFormatString};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{file_access_log, FileAccessLog};
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::{stdout_access_log, StdoutAccessLog};
use envoy_types::pb::google::protobuf::{value::Kind, Any, Struct, Value};
use prost::{Message, Name};

use super::*;
use crate::formatter::DEFAULT_FORMAT;
use crate::stream_info::StreamInfo;

fn temp_path(name: &str) -> PathBuf {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    std::env::temp_dir().join(format!("courier-access-log-{}-{nanos}-{name}.log", std::process::id()))
}

fn any<M: Message + Name>(m: &M) -> Any {
    Any { type_url: M::type_url(), value: m.encode_to_vec() }
}

fn entry<M: Message + Name>(m: &M) -> AccessLog {
    AccessLog { name: "log".to_string(), config_type: Some(ConfigType::TypedConfig(any(m))), ..Default::default() }
}

fn inline(text: &str) -> SubstitutionFormatString {
    SubstitutionFormatString {
        format: Some(Format::TextFormatSource(DataSource {
            specifier: Some(Specifier::InlineString(text.to_string())),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn file_log(path: &std::path::Path, format: Option<file_access_log::AccessLogFormat>) -> AccessLog {
    entry(&FileAccessLog { path: path.to_string_lossy().into_owned(), access_log_format: format })
}

fn list_path() -> FieldPath {
    FieldPath::starting_at("hcm.access_log")
}

fn info(code: u16) -> StreamInfo {
    let mut info = StreamInfo::new("127.0.0.1:5000".parse().unwrap(), "127.0.0.1:10000".parse().unwrap(), "HTTP/1.1");
    info.response_code = Some(code);
    info
}

/// Reads `path` until it has `lines` lines (the writer flushes when drained).
fn wait_for_lines(path: &std::path::Path, lines: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= lines || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn file_logger_writes_lines_without_an_explicit_flush() {
    let path = temp_path("lines");
    let store = Store::new();
    let fmt = file_access_log::AccessLogFormat::LogFormat(inline("%RESPONSE_CODE% %PROTOCOL%\n"));
    let logs = build_access_logs(&[file_log(&path, Some(fmt))], &list_path(), &store).unwrap();
    assert_eq!(logs.len(), 1);
    for code in [200, 404, 503] {
        let info = info(code);
        logs[0].log(&FormatContext::new(&info));
    }
    let text = wait_for_lines(&path, 3);
    assert_eq!(text, "200 HTTP/1.1\n404 HTTP/1.1\n503 HTTP/1.1\n");
    assert_eq!(store.counter_value("filesystem.write_buffered"), Some(3));
    assert!(store.counter_value("filesystem.write_completed").unwrap() >= 1);
    assert_eq!(store.counter_value("filesystem.write_failed"), Some(0));
    assert_eq!(store.counter_value("filesystem.write_dropped"), Some(0));
    drop(logs);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn loggers_of_one_path_share_a_writer_and_append() {
    let path = temp_path("shared");
    std::fs::write(&path, "old line\n").unwrap();
    let store = Store::new();
    let mut fields = std::collections::HashMap::new();
    fields.insert("code".to_string(), Value { kind: Some(Kind::StringValue("%RESPONSE_CODE%".to_string())) });
    fields.insert("route".to_string(), Value { kind: Some(Kind::StringValue("%ROUTE_NAME%".to_string())) });
    #[allow(deprecated)]
    let entries = [
        file_log(&path, Some(file_access_log::AccessLogFormat::Format("text %RESPONSE_CODE%\n".to_string()))),
        file_log(&path, Some(file_access_log::AccessLogFormat::TypedJsonFormat(Struct { fields: fields.clone() }))),
        file_log(&path, Some(file_access_log::AccessLogFormat::JsonFormat(Struct { fields }))),
    ];
    let logs = build_access_logs(&entries, &list_path(), &store).unwrap();
    let info = info(201);
    for l in &logs {
        l.log(&FormatContext::new(&info));
    }
    assert!(flush_all(Duration::from_secs(5)));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, "old line\ntext 201\n{\"code\":201,\"route\":null}\n{\"code\":201,\"route\":null}\n");
    // One writer: one set of stats saw all three lines.
    assert_eq!(store.counter_value("filesystem.write_buffered"), Some(3));
    let a = writer::open(&Sink::File(path.clone()), &store).unwrap();
    let b = writer::open(&Sink::File(path.clone()), &store).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    drop((logs, a, b));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn reopen_after_rotation_writes_to_a_new_file() {
    let path = temp_path("rotate");
    let store = Store::new();
    let fmt = file_access_log::AccessLogFormat::LogFormat(inline("%RESPONSE_CODE%\n"));
    let logs = build_access_logs(&[file_log(&path, Some(fmt))], &list_path(), &store).unwrap();
    let (first, second) = (info(200), info(500));
    logs[0].log(&FormatContext::new(&first));
    assert!(flush_all(Duration::from_secs(5)));
    let rotated = path.with_extension("log.1");
    std::fs::rename(&path, &rotated).unwrap();
    reopen_all();
    logs[0].log(&FormatContext::new(&second));
    assert!(flush_all(Duration::from_secs(5)));
    assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "200\n");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "500\n");
    assert_eq!(store.counter_value("filesystem.reopen_failed"), Some(0));
    drop(logs);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&rotated);
}

#[test]
fn default_format_when_none_is_given() {
    let path = temp_path("default");
    let cfg = AccessLogConfig::from_proto(&file_log(&path, None), &list_path()).unwrap();
    assert_eq!(cfg.sink, Sink::File(path.clone()));
    let mut info = info(200);
    info.last_downstream_tx = Some(Duration::from_millis(3));
    let cx = FormatContext::new(&info);
    let want = crate::formatter::FormatString::parse(DEFAULT_FORMAT).unwrap().format(&cx);
    assert_eq!(cfg.format.format(&cx), want);

    #[allow(deprecated)]
    let empty = file_log(&path, Some(file_access_log::AccessLogFormat::Format(String::new())));
    assert_eq!(AccessLogConfig::from_proto(&empty, &list_path()).unwrap().format.format(&cx), want);
}

#[test]
fn stdout_logger() {
    let store = Store::new();
    let cfg = AccessLogConfig::from_proto(&entry(&StdoutAccessLog::default()), &list_path()).unwrap();
    assert_eq!(cfg.sink, Sink::Stdout);
    let with_format = StdoutAccessLog {
        access_log_format: Some(stdout_access_log::AccessLogFormat::LogFormat(inline("%RESPONSE_CODE%\n"))),
    };
    let logs = build_access_logs(&[entry(&with_format)], &list_path(), &store).unwrap();
    assert!(format!("{:?}", logs[0]).contains("/dev/stdout"));
    // `/dev/stdout` as a file path is the same destination.
    let cfg = AccessLogConfig::from_proto(&file_log(std::path::Path::new("/dev/stdout"), None), &list_path()).unwrap();
    assert_eq!(cfg.sink, Sink::Stdout);
}

#[test]
fn config_errors_name_the_field() {
    let store = Store::new();
    let path = temp_path("errors");
    let err = |log: AccessLog| build_access_logs(&[log], &list_path(), &store).unwrap_err();

    let mut filtered = file_log(&path, None);
    filtered.filter = Some(AccessLogFilter::default());
    assert_eq!(err(filtered).path, "hcm.access_log[0].filter");

    let unknown = AccessLog {
        config_type: Some(ConfigType::TypedConfig(Any {
            type_url: "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig".into(),
            value: vec![],
        })),
        ..Default::default()
    };
    let e = err(unknown);
    assert_eq!(e.path, "hcm.access_log[0].typed_config.@type");
    assert!(e.reason.contains("HttpGrpcAccessLogConfig"));

    assert_eq!(err(AccessLog::default()).path, "hcm.access_log[0].typed_config");
    assert_eq!(err(file_log(std::path::Path::new(""), None)).path, "hcm.access_log[0].typed_config.path");

    let e = err(file_log(std::path::Path::new("/nonexistent-courier-dir/x.log"), None));
    assert_eq!(e.path, "hcm.access_log[0].typed_config.path");
    assert!(e.reason.contains("/nonexistent-courier-dir/x.log"), "{}", e.reason);

    let bad = file_log(&path, Some(file_access_log::AccessLogFormat::LogFormat(inline("%BOGUS%"))));
    let e = err(bad);
    assert_eq!(e.path, "hcm.access_log[0].typed_config.log_format.text_format_source.inline_string");
    assert!(e.reason.contains("BOGUS"), "{}", e.reason);

    #[allow(deprecated)]
    let bad = file_log(&path, Some(file_access_log::AccessLogFormat::Format("%REQ()%".to_string())));
    assert_eq!(err(bad).path, "hcm.access_log[0].typed_config.format");

    let empty = file_log(&path, Some(file_access_log::AccessLogFormat::LogFormat(SubstitutionFormatString::default())));
    assert_eq!(err(empty).path, "hcm.access_log[0].typed_config.log_format");

    // The second entry's error carries its index.
    let logs = [file_log(&path, None), AccessLog::default()];
    assert_eq!(build_access_logs(&logs, &list_path(), &store).unwrap_err().path, "hcm.access_log[1].typed_config");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn registered_type_names() {
    let names: Vec<&str> = ACCESS_LOGGERS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["envoy.access_loggers.file", "envoy.access_loggers.stdout", "envoy.access_loggers.stderr"]);
    assert_eq!(ACCESS_LOGGERS[0].1, FileAccessLog::full_name());
    assert_eq!(ACCESS_LOGGERS[1].1, StdoutAccessLog::full_name());
}

/// A listener's line is the connection's StreamInfo: what the terminal filter
/// recorded (upstream, flags), the bytes and protocol the connection reported,
/// and `-`/0 for a request's own values, in Envoy's default format.
#[test]
fn a_listener_line_formats_what_the_connection_reported() {
    use crate::network::{ConnectionLogCause, ConnectionLogEvent, ConnectionReport};
    use crate::stream_info::{DynamicMetadata, ResponseFlag};

    let path = temp_path("listener");
    let store = Store::new();
    let logs = build_listener_access_logs(&[file_log(&path, None)], &list_path(), &store).unwrap();
    let report = ConnectionReport::default();
    report.bytes_received.set(5);
    report.bytes_sent.set(7);
    let mut recorded = StreamInfo::new("127.0.0.1:5000".parse().unwrap(), "127.0.0.1:10000".parse().unwrap(), "");
    recorded.upstream_host = Some("127.0.0.1:8080".parse().unwrap());
    recorded.response_flags.set(ResponseFlag::UpstreamConnectionFailure);
    report.set_filter_info(Box::new(recorded));
    let metadata = DynamicMetadata::default();
    let event = ConnectionLogEvent {
        cause: ConnectionLogCause::Closed,
        remote: "127.0.0.1:5000".parse().unwrap(),
        direct_remote: "127.0.0.1:5000".parse().unwrap(),
        local: "127.0.0.1:10000".parse().unwrap(),
        accepted: Instant::now(),
        accepted_at: UNIX_EPOCH,
        tls: None,
        hello: None,
        dynamic_metadata: &metadata,
        report: &report,
    };
    logs[0].log(&event);
    let (no_chain, nothing) = (ConnectionReport::default(), ConnectionLogCause::NoFilterChain);
    logs[0].log(&ConnectionLogEvent { cause: nothing, report: &no_chain, ..event });
    let text = wait_for_lines(&path, 2);
    let lines: Vec<&str> = text.lines().map(|l| l.split_once("] ").map_or(l, |(_, rest)| rest)).collect();
    assert_eq!(
        lines,
        [
            "\"- - -\" 0 UF 5 7 0 - \"-\" \"-\" \"-\" \"-\" \"127.0.0.1:8080\"",
            "\"- - -\" 0 NR 0 0 0 - \"-\" \"-\" \"-\" \"-\" \"-\"",
        ]
    );
    drop(logs);
    let _ = std::fs::remove_file(&path);
}
