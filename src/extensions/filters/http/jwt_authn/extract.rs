//! Where a request carries its tokens, and taking them out.
//!
//! A provider names its places (`from_headers` with an optional `value_prefix`,
//! `from_params`, `from_cookies`), or gets Envoy's defaults: `Authorization:
//! Bearer <token>` and `?access_token=<token>`. An extractor for several
//! providers (a requirement that allows missing or failed tokens) looks in all
//! their places, and a place remembers which issuers named it: a token found there
//! from another issuer is `JwtUnknownIssuer`. Tokens come out in Envoy's order
//! (headers by name and prefix, then parameters, then cookies, each sorted) and are
//! verified last first, as Envoy pops them. After a prefix the token is the run
//! of base64url characters and dots that follows, as Envoy's extractor reads it.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::header::HeaderName;
use http::HeaderMap;

use super::provider::Provider;

/// The issuers that named one place (an empty one allows any).
#[derive(Debug, Default, Clone)]
pub struct Issuers(Vec<String>);

impl Issuers {
    fn add(&mut self, issuer: &str) {
        self.0.push(issuer.to_string());
    }

    pub fn allows(&self, iss: &str) -> bool {
        self.0.iter().any(|i| i.is_empty() || i == iss)
    }
}

/// A token found in a request.
#[derive(Debug, Clone)]
pub struct Token {
    pub value: String,
    pub issuers: Arc<Issuers>,
    /// The header or query parameter it came in: removed once verified, unless
    /// the provider forwards it.
    pub header: Option<HeaderName>,
    pub param: Option<String>,
}

/// The places to look, for one provider or several.
#[derive(Debug, Default)]
pub struct Extractor {
    /// By `name + prefix`, as Envoy orders them.
    headers: BTreeMap<String, (HeaderName, String, Arc<Issuers>)>,
    params: BTreeMap<String, Arc<Issuers>>,
    cookies: BTreeMap<String, Arc<Issuers>>,
}

fn issuers<'a>(map: &'a mut BTreeMap<String, Arc<Issuers>>, key: &str) -> &'a mut Issuers {
    Arc::make_mut(map.entry(key.to_string()).or_default())
}

/// The JWT characters (RFC 4648 §5 plus the dot).
fn jwt_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

impl Extractor {
    pub fn new<'a>(providers: impl IntoIterator<Item = &'a Provider>) -> Extractor {
        let mut e = Extractor::default();
        for p in providers {
            for (name, prefix) in &p.from_headers {
                let key = format!("{}{prefix}", name.as_str());
                let entry = e.headers.entry(key).or_insert_with(|| (name.clone(), prefix.clone(), Arc::default()));
                Arc::make_mut(&mut entry.2).add(&p.issuer);
            }
            for param in &p.from_params {
                issuers(&mut e.params, param).add(&p.issuer);
            }
            for cookie in &p.from_cookies {
                issuers(&mut e.cookies, cookie).add(&p.issuer);
            }
        }
        e
    }

    /// Every token the request carries in these places.
    pub fn extract(&self, headers: &HeaderMap, uri: &http::Uri) -> Vec<Token> {
        let mut tokens = Vec::new();
        for (name, prefix, issuers) in self.headers.values() {
            let Some(value) = joined(headers, name) else { continue };
            let value = if prefix.is_empty() {
                value
            } else {
                let Some(at) = value.find(prefix.as_str()) else { continue };
                after_prefix(&value, at + prefix.len()).to_string()
            };
            tokens.push(Token { value, issuers: issuers.clone(), header: Some(name.clone()), param: None });
        }
        if !self.params.is_empty() {
            let query = uri.query().unwrap_or("");
            for (param, issuers) in &self.params {
                let found = query.split('&').find_map(|item| {
                    let (key, value) = item.split_once('=').unwrap_or((item, ""));
                    (key == param).then_some(value)
                });
                if let Some(value) = found {
                    tokens.push(Token {
                        value: value.to_string(),
                        issuers: issuers.clone(),
                        header: None,
                        param: Some(param.clone()),
                    });
                }
            }
        }
        if !self.cookies.is_empty() {
            for (cookie, issuers) in &self.cookies {
                if let Some(value) = crate::http::headers::cookie_value(headers, cookie) {
                    tokens.push(Token { value, issuers: issuers.clone(), header: None, param: None });
                }
            }
        }
        tokens
    }
}

/// `uri` without the query parameter `name` (the `?` goes when nothing is left).
pub fn without_param(uri: &http::Uri, name: &str) -> Option<http::Uri> {
    let query = uri.query()?;
    let kept: Vec<&str> =
        query.split('&').filter(|item| item.split_once('=').map_or(*item, |(k, _)| k) != name).collect();
    let path_and_query =
        if kept.is_empty() { uri.path().to_string() } else { format!("{}?{}", uri.path(), kept.join("&")) };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

/// A header's values joined with `,`, as Envoy reads a repeated header.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let first = values.next()?;
    Some(values.fold(first, |mut acc, v| {
        acc.push(',');
        acc.push_str(&v);
        acc
    }))
}

/// The token after a prefix: the first run of JWT characters from `from` (the
/// whole value when there is none, as Envoy).
fn after_prefix(value: &str, from: usize) -> &str {
    let rest = value.get(from..).unwrap_or("");
    let Some(start) = rest.find(jwt_char) else { return value };
    let token = &rest[start..];
    token.find(|c| !jwt_char(c)).map_or(token, |end| &token[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_follows_the_prefix() {
        assert_eq!(after_prefix("Bearer a.b.c", 7), "a.b.c");
        assert_eq!(after_prefix("Bearer   a.b-c_d, more", 7), "a.b-c_d");
        assert_eq!(after_prefix("Bearer ", 7), "Bearer ");
        assert_eq!(after_prefix("x", 7), "x");
    }

    #[test]
    fn a_verified_param_leaves_the_query() {
        let strip = |uri: &str| without_param(&uri.parse().expect("uri"), "access_token").map(|u| u.to_string());
        assert_eq!(strip("/x?a=1&access_token=t&b").as_deref(), Some("/x?a=1&b"));
        assert_eq!(strip("/x?access_token=t").as_deref(), Some("/x"));
        assert_eq!(strip("/x").as_deref(), None);
    }

    #[test]
    fn cookies_and_repeated_headers() {
        let mut h = HeaderMap::new();
        h.append(http::header::COOKIE, "a=1; jwt=\"t.o.k\"".parse().expect("value"));
        h.append(http::header::COOKIE, "jwt=later".parse().expect("value"));
        assert_eq!(crate::http::headers::cookie_value(&h, "jwt").as_deref(), Some("t.o.k"));
        assert_eq!(crate::http::headers::cookie_value(&h, "b"), None);
        h.append("x-t", "a".parse().expect("value"));
        h.append("x-t", "b".parse().expect("value"));
        assert_eq!(joined(&h, &HeaderName::from_static("x-t")).as_deref(), Some("a,b"));
    }
}
