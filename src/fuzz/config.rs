//! Targets that read config text: the bootstrap decoder and validator, access-log
//! format strings, and route tables with regexes matched against requests.

use std::net::{Ipv4Addr, SocketAddr};

use crate::config::bootstrap::BootstrapSource;
use crate::formatter::{FormatContext, FormatString};
use crate::stream_info::StreamInfo;

/// Any text as `--config-yaml`: decoded with Envoy's schema, validated and checked
/// against what Courier supports. Errors are fine; a panic is not. (Nothing is
/// built from it: building opens the files a config names.)
pub fn bootstrap(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let source = BootstrapSource { config_path: None, config_yaml: Some(text.to_string()) };
    if let Err(e) = crate::extensions::supported::load_bootstrap(&source) {
        // Locating the error's lines parses the text again and walks each field
        // path down it, as a failed start-up does.
        let e = crate::config::bootstrap::locate_lines(e, &source);
        let _ = e.to_string();
    }
}

/// Any text as an access-log format, then formatted for a request.
pub fn access_log_format(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(format) = FormatString::parse(text) else { return };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 10000));
    let info = StreamInfo::new(addr, addr, "HTTP/1.1");
    let request = http::Request::builder()
        .uri("/path?q=1")
        .header("host", "example.com")
        .header("x-forwarded-for", "10.0.0.1")
        .body(());
    let Ok(request) = request else { return };
    let (parts, ()) = request.into_parts();
    let out = format.format(&FormatContext::for_request(&parts, &info));
    assert!(!format.is_literal() || out.len() <= text.len(), "a literal format grew: {out:?}");
}

/// Lines of the input fill a route table and a request: a path regex, a prefix,
/// a header name and a regex for its value, then the request's host, path and
/// that header's value. The table is built as a config would be (regexes under
/// Envoy's size limit) and the request is routed through it.
pub fn route_match(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut fields = text.split('\n');
    let mut next = || fields.next().unwrap_or("");
    let (regex, prefix, header, header_regex) = (next(), next(), next(), next());
    let (host, path, value) = (next(), next(), next());
    let config = serde_json::json!({
        "virtual_hosts": [{
            "name": "fuzz",
            "domains": ["*"],
            "routes": [
                { "match": { "safe_regex": { "regex": regex } }, "route": { "cluster": "a" } },
                {
                    "match": {
                        "prefix": prefix,
                        "headers": [{ "name": header, "string_match": { "safe_regex": { "regex": header_regex } } }]
                    },
                    "route": { "cluster": "b", "regex_rewrite": { "pattern": { "regex": regex }, "substitution": "\\1" } }
                },
                { "match": { "prefix": "/" }, "direct_response": { "status": 200 } }
            ]
        }]
    });
    let Ok(table) = crate::router::test_util::try_table(&config.to_string()) else { return };
    let Ok(request) = http::Request::builder().uri(path).header("host", host).header(header, value).body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let _ = table.find(&parts);
}
