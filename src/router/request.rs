//! What routing reads from a request, in Envoy's terms: `:authority` (the URI's
//! authority, else `Host`), `:path` (path and query as received), `:method`,
//! `:scheme`, and the path without its query string or fragment.

use http::request::Parts;

/// `:authority`: the request URI's authority (absolute-form, HTTP/2), else `Host`.
pub(crate) fn authority(parts: &Parts) -> Option<&str> {
    if let Some(a) = parts.uri.authority() {
        return Some(a.as_str());
    }
    parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok())
}

/// `:path`: path and query; `None` for a request without a path (CONNECT).
pub(crate) fn path_and_query(parts: &Parts) -> Option<&str> {
    match parts.uri.path_and_query() {
        Some(pq) => Some(pq.as_str()),
        // `http://host` with no path is `/`; only authority-form targets are pathless.
        None if parts.uri.scheme().is_some() => Some("/"),
        None => None,
    }
}

/// `:scheme`: the URI's scheme when the request carried one, else `http`.
pub(crate) fn scheme(parts: &Parts) -> &str {
    parts.uri.scheme_str().unwrap_or("http")
}

/// The path without `?query` and `#fragment` (Envoy's `removeQueryAndFragment`).
pub(crate) fn strip_query_and_fragment(path: &str) -> &str {
    match path.find(['?', '#']) {
        Some(i) => &path[..i],
        None => path,
    }
}

/// The query string (after `?`, before any `#`), if there is one.
pub(crate) fn query_string(path: &str) -> Option<&str> {
    let rest = &path[path.find('?')? + 1..];
    Some(match rest.find('#') {
        Some(i) => &rest[..i],
        None => rest,
    })
}

/// The byte offset of `:port` in `host[:port]` (IPv6-literal aware), if present.
pub(crate) fn port_start(host: &str) -> Option<usize> {
    if host.starts_with('[') {
        host.rfind("]:").map(|i| i + 1)
    } else {
        host.rfind(':')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, host: Option<&str>) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn authority_prefers_the_uri() {
        assert_eq!(authority(&parts("/a", Some("h.com"))), Some("h.com"));
        assert_eq!(authority(&parts("http://u.com:8/a", Some("h.com"))), Some("u.com:8"));
        assert_eq!(authority(&parts("/a", None)), None);
    }

    #[test]
    fn paths() {
        assert_eq!(path_and_query(&parts("/a?b=1", None)), Some("/a?b=1"));
        assert_eq!(path_and_query(&parts("http://h/x?y", None)), Some("/x?y"));
        assert_eq!(path_and_query(&parts("http://h", None)), Some("/"));
        assert_eq!(strip_query_and_fragment("/a?b#c"), "/a");
        assert_eq!(strip_query_and_fragment("/a#c?d"), "/a");
        assert_eq!(query_string("/a?b=1&c#f"), Some("b=1&c"));
        assert_eq!(query_string("/a"), None);
    }

    #[test]
    fn ports() {
        assert_eq!(port_start("a.com:80"), Some(5));
        assert_eq!(port_start("a.com"), None);
        assert_eq!(port_start("[::1]:80"), Some(5));
        assert_eq!(port_start("[::1]"), None);
    }
}
