//! A request as the generic matcher reads it (`matcher::MatchingData`): request
//! headers with Envoy's pseudo-headers (`:path`, `:method`, `:authority`,
//! `:scheme`), query parameters, and, as far as the stream has come, trailers and
//! the response; the connection's facts when the caller has them.
//!
//! A repeated header's values come joined with `,`, as Envoy's
//! `HttpRequestHeaderMatchInput` gives them; what the stream has not reached yet
//! (a response header while the request is decoded) is `NotAvailable`.

use std::borrow::Cow;

use http::request::Parts;
use http::HeaderMap;

use super::request;
use crate::common::percent::decode_percent;
use crate::matcher::{ConnectionFacts, InputValue, MatchingData};

/// What the matcher may read of one stream; `None` fields are not known yet.
#[derive(Clone, Copy)]
pub struct HttpMatchingData<'a> {
    pub request: &'a Parts,
    pub connection: Option<ConnectionFacts<'a>>,
    pub request_trailers: Option<&'a HeaderMap>,
    pub response_headers: Option<&'a HeaderMap>,
    pub response_trailers: Option<&'a HeaderMap>,
}

impl<'a> HttpMatchingData<'a> {
    /// The request head alone (a route table's lookup).
    pub fn request(request: &'a Parts) -> HttpMatchingData<'a> {
        HttpMatchingData {
            request,
            connection: None,
            request_trailers: None,
            response_headers: None,
            response_trailers: None,
        }
    }
}

/// A header's values joined with `,`, or `Absent`.
fn joined<'a>(headers: &'a HeaderMap, name: &str) -> InputValue<'a> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return InputValue::Absent };
    let mut out = String::from_utf8_lossy(first.as_bytes());
    for v in values {
        let s = out.to_mut();
        s.push(',');
        s.push_str(&String::from_utf8_lossy(v.as_bytes()));
    }
    InputValue::Value(out)
}

fn from<'a>(headers: Option<&'a HeaderMap>, name: &str) -> InputValue<'a> {
    headers.map_or(InputValue::NotAvailable, |h| joined(h, name))
}

impl MatchingData for HttpMatchingData<'_> {
    fn connection(&self) -> Option<ConnectionFacts<'_>> {
        self.connection
    }

    fn request_header(&self, name: &str) -> InputValue<'_> {
        let parts = self.request;
        match name {
            ":path" => InputValue::from_option(request::path_and_query(parts)),
            ":method" => InputValue::Value(Cow::Borrowed(parts.method.as_str())),
            ":authority" => InputValue::from_option(request::authority(parts)),
            ":scheme" => InputValue::Value(Cow::Borrowed(request::scheme(parts))),
            _ => joined(&parts.headers, name),
        }
    }

    fn request_trailer(&self, name: &str) -> InputValue<'_> {
        from(self.request_trailers, name)
    }

    fn response_header(&self, name: &str) -> InputValue<'_> {
        from(self.response_headers, name)
    }

    fn response_trailer(&self, name: &str) -> InputValue<'_> {
        from(self.response_trailers, name)
    }

    fn query_param(&self, name: &str) -> InputValue<'_> {
        let query = request::path_and_query(self.request).and_then(request::query_string);
        let found = query.into_iter().flat_map(|q| q.split('&')).find_map(|item| {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            (decode_percent(k) == name).then(|| decode_percent(v))
        });
        InputValue::from_option(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_headers_joined_values_and_query_parameters() {
        let (parts, ()) = http::Request::builder()
            .uri("/a/b?x=1&y=a%20b&x=2")
            .header("host", "h.com")
            .header("v", "1")
            .header("v", "2")
            .body(())
            .expect("request")
            .into_parts();
        let d = HttpMatchingData::request(&parts);
        let v = |s: &str| InputValue::Value(Cow::Owned(s.to_string()));
        assert_eq!(d.request_header(":path"), v("/a/b?x=1&y=a%20b&x=2"));
        assert_eq!(d.request_header(":authority"), v("h.com"));
        assert_eq!(d.request_header(":method"), v("GET"));
        assert_eq!(d.request_header("v"), v("1,2"));
        assert_eq!(d.request_header("w"), InputValue::Absent);
        assert_eq!(d.query_param("x"), v("1"));
        assert_eq!(d.query_param("y"), v("a b"));
        assert_eq!(d.query_param("z"), InputValue::Absent);
        assert_eq!(d.response_header("v"), InputValue::NotAvailable);
    }
}
