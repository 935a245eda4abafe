//! Path normalisation before routing: the connection manager's `normalize_path`,
//! `merge_slashes` and `path_with_escaped_slashes_action`, applied as Envoy's
//! `ConnectionManagerUtility::maybeNormalizePath` does: escaped slashes first,
//! then RFC 3986 canonicalisation (Envoy's copy of Chromium's `CanonicalizePath`),
//! then slash merging. Each step reads the path only, never the query.
//!
//! All three are off by default; with none set, nothing here runs.

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::PathWithEscapedSlashesAction as PbAction;

/// `path_with_escaped_slashes_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// Also `IMPLEMENTATION_SPECIFIC_DEFAULT`: Envoy's default without a runtime
    /// override.
    KeepUnchanged,
    RejectRequest,
    UnescapeAndRedirect,
    UnescapeAndForward,
}

impl EscapedSlashes {
    pub fn from_proto(value: i32) -> EscapedSlashes {
        match PbAction::try_from(value) {
            Ok(PbAction::RejectRequest) => EscapedSlashes::RejectRequest,
            Ok(PbAction::UnescapeAndRedirect) => EscapedSlashes::UnescapeAndRedirect,
            Ok(PbAction::UnescapeAndForward) => EscapedSlashes::UnescapeAndForward,
            _ => EscapedSlashes::KeepUnchanged,
        }
    }
}

/// The three settings together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathNormalization {
    pub normalize: bool,
    pub merge_slashes: bool,
    pub escaped_slashes: EscapedSlashes,
}

/// What becomes of the request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Routed with this path (`None`: unchanged).
    Continue(Option<String>),
    /// 400, `path_normalization_failed`.
    Reject,
    /// 307 to this path (`UNESCAPE_AND_REDIRECT` found an escaped slash).
    Redirect(String),
}

impl PathNormalization {
    /// True when no setting changes anything, so the request path is not even read.
    pub fn is_off(&self) -> bool {
        !self.normalize && !self.merge_slashes && self.escaped_slashes == EscapedSlashes::KeepUnchanged
    }

    /// `path_and_query` after the configured steps.
    pub fn apply(&self, path_and_query: &str) -> Outcome {
        let mut current: Option<String> = None;
        let mut redirect = false;
        if self.escaped_slashes != EscapedSlashes::KeepUnchanged {
            if let Some(unescaped) = unescape_slashes(path_and_query) {
                match self.escaped_slashes {
                    EscapedSlashes::RejectRequest => return Outcome::Reject,
                    EscapedSlashes::UnescapeAndRedirect => redirect = true,
                    _ => {}
                }
                current = Some(unescaped);
            }
        }
        if self.normalize {
            match canonical_path(current.as_deref().unwrap_or(path_and_query)) {
                Err(()) => return Outcome::Reject,
                Ok(Some(p)) => current = Some(p),
                Ok(None) => {}
            }
        }
        if self.merge_slashes {
            if let Some(p) = merge_slashes(current.as_deref().unwrap_or(path_and_query)) {
                current = Some(p);
            }
        }
        if redirect {
            // `current` is set: the escaped slashes were unescaped.
            return Outcome::Redirect(current.unwrap_or_else(|| path_and_query.to_string()));
        }
        Outcome::Continue(current)
    }
}

/// `(path, query)`: the query keeps its `?`.
fn split_query(path_and_query: &str) -> (&str, &str) {
    match path_and_query.find('?') {
        Some(i) => path_and_query.split_at(i),
        None => (path_and_query, ""),
    }
}

/// Envoy's `PathUtil::unescapeSlashes`: `%2F`/`%2f` become `/` and `%5C`/`%5c`
/// become `\` in the path. `None` when there were none.
fn unescape_slashes(path_and_query: &str) -> Option<String> {
    let (path, query) = split_query(path_and_query);
    let b = path.as_bytes();
    let is_slash_escape = |i: usize| {
        b.get(i) == Some(&b'%')
            && matches!((b.get(i + 1), b.get(i + 2)), (Some(b'2'), Some(b'f' | b'F')) | (Some(b'5'), Some(b'c' | b'C')))
    };
    if !(0..b.len()).any(is_slash_escape) {
        return None;
    }
    let mut out = String::with_capacity(path_and_query.len());
    let mut i = 0;
    while i < b.len() {
        if is_slash_escape(i) {
            out.push(if b[i + 1] == b'2' { '/' } else { '\\' });
            i += 3;
        } else {
            let next = path[i + 1..].find('%').map_or(b.len(), |n| i + 1 + n);
            out.push_str(&path[i..next]);
            i = next;
        }
    }
    out.push_str(query);
    Some(out)
}

/// Envoy's `PathUtil::mergeSlashes`: the path's segments joined by single
/// slashes, keeping a leading and a trailing one. `None` when there is no `//`.
fn merge_slashes(path_and_query: &str) -> Option<String> {
    let (path, query) = split_query(path_and_query);
    if !path.contains("//") {
        return None;
    }
    let mut out = String::with_capacity(path_and_query.len());
    if path.starts_with('/') {
        out.push('/');
    }
    for (i, segment) in path.split('/').filter(|s| !s.is_empty()).enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(segment);
    }
    // As Envoy: `//` alone stays `//` (an empty join between the two slashes).
    if path.ends_with('/') {
        out.push('/');
    }
    out.push_str(query);
    Some(out)
}

/// How Chromium's path canonicaliser treats a byte (its `kPathCharLookup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Copied as is.
    Pass,
    /// Copied as is, and decoded when it arrives percent-encoded.
    Unescape,
    /// Percent-encoded on output.
    Escape,
    /// `.`, `\`, `%`: handled one by one.
    Special,
    /// NUL: canonicalisation fails.
    Invalid,
}

fn class(b: u8) -> Class {
    match b {
        0 => Class::Invalid,
        b'.' | b'\\' | b'%' => Class::Special,
        b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' | b'-' | b'_' | b'~' => Class::Unescape,
        0x01..=0x20 | b'"' | b'#' | b'<' | b'>' | b'?' | b'^' | b'`' | b'{' | b'|' | b'}' | 0x7f..=0xff => {
            Class::Escape
        }
        _ => Class::Pass,
    }
}

/// Length of a dot at `i`: `.` (1) or `%2e`/`%2E` (3); 0 when there is none.
fn dot_len(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b'.') => 1,
        Some(b'%') if b.get(i + 1) == Some(&b'2') && matches!(b.get(i + 2), Some(b'e' | b'E')) => 3,
        _ => 0,
    }
}

fn is_url_slash(b: Option<&u8>) -> bool {
    matches!(b, Some(b'/' | b'\\'))
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The byte `%XY` at `i` stands for, when `XY` are hex digits.
fn escaped_byte(b: &[u8], i: usize) -> Option<u8> {
    Some(hex(*b.get(i + 1)?)? << 4 | hex(*b.get(i + 2)?)?)
}

/// `Ok(None)`: the path is already canonical.
fn canonical_path(path_and_query: &str) -> Result<Option<String>, ()> {
    let (path, query) = split_query(path_and_query);
    let b = path.as_bytes();
    if !b.is_empty() && b[0] == b'/' && b.iter().all(|&c| matches!(class(c), Class::Pass | Class::Unescape)) {
        return Ok(None);
    }
    let mut out = canonicalize(b)?;
    out.extend_from_slice(query.as_bytes());
    // Everything pushed is ASCII or copied from the (UTF-8) input at a char boundary.
    let out = String::from_utf8(out).map_err(|_| ())?;
    Ok((out != path_and_query).then_some(out))
}

/// Chromium's `DoPath` on a path without its query: dot segments removed
/// (`..` never above the root), `\` made `/`, encoded unreserved bytes decoded,
/// bytes that may not appear in a path encoded. `Err` for an encoded NUL.
fn canonicalize(b: &[u8]) -> Result<Vec<u8>, ()> {
    let mut out = Vec::with_capacity(b.len() + 1);
    if !is_url_slash(b.first()) {
        out.push(b'/');
    }
    let mut ok = true;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match class(c) {
            Class::Pass | Class::Unescape => out.push(c),
            Class::Invalid => {
                push_escaped(&mut out, c);
                ok = false;
            }
            Class::Escape => push_escaped(&mut out, c),
            Class::Special => {
                let dot = dot_len(b, i);
                if dot > 0 {
                    i = dot_segment(b, i, dot, &mut out);
                    continue;
                }
                if c == b'\\' {
                    out.push(b'/');
                } else if let Some(v) = escaped_byte(b, i) {
                    match class(v) {
                        Class::Unescape => out.push(v),
                        // Kept as sent, hex case included.
                        Class::Invalid => {
                            out.extend_from_slice(&b[i..i + 3]);
                            ok = false;
                        }
                        _ => out.extend_from_slice(&b[i..i + 3]),
                    }
                    i += 3;
                    continue;
                } else {
                    // A `%` that starts no escape is kept.
                    out.push(b'%');
                }
            }
        }
        i += 1;
    }
    if ok {
        Ok(out)
    } else {
        Err(())
    }
}

/// A dot of `dot` bytes at `i`: a `.` or `..` segment when it follows a slash and
/// ends at a slash or the end, else a plain `.`. Returns where to go on.
fn dot_segment(b: &[u8], i: usize, dot: usize, out: &mut Vec<u8>) -> usize {
    let after = i + dot;
    if out.last() != Some(&b'/') {
        out.push(b'.');
        return after;
    }
    if after == b.len() {
        return after;
    }
    if is_url_slash(b.get(after)) {
        return after + 1;
    }
    let second = dot_len(b, after);
    if second > 0 {
        let end = after + second;
        if end == b.len() || is_url_slash(b.get(end)) {
            back_up_to_previous_slash(out);
            return if end == b.len() { end } else { end + 1 };
        }
    }
    out.push(b'.');
    after
}

/// Drops the last segment of `out` (which ends in `/`), keeping its slash; at the
/// root it stays.
fn back_up_to_previous_slash(out: &mut Vec<u8>) {
    let last = out.len() - 1;
    if last == 0 {
        return;
    }
    let keep = out[..last].iter().rposition(|&c| c == b'/').unwrap_or(0);
    out.truncate(keep + 1);
}

fn push_escaped(out: &mut Vec<u8>, c: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend_from_slice(&[b'%', HEX[usize::from(c >> 4)], HEX[usize::from(c & 0xf)]]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(action: EscapedSlashes) -> PathNormalization {
        PathNormalization { normalize: true, merge_slashes: true, escaped_slashes: action }
    }

    fn continued(p: PathNormalization, path: &str) -> String {
        match p.apply(path) {
            Outcome::Continue(new) => new.unwrap_or_else(|| path.to_string()),
            other => panic!("{path}: {other:?}"),
        }
    }

    /// Each pair as the real Envoy 1.40 forwarded it (normalize_path,
    /// merge_slashes, UNESCAPE_AND_FORWARD).
    #[test]
    fn normalises_as_envoy_does() {
        let p = all(EscapedSlashes::UnescapeAndForward);
        for (input, want) in [
            ("/a/b", "/a/b"),
            ("/a/./b/../c", "/a/c"),
            ("/a/%2e%2E/c", "/c"),
            ("/a/%2F%2fb", "/a/b"),
            ("/a\\b", "/a/b"),
            ("/a/%5Cb", "/a/b"),
            ("//a///b//", "/a/b/"),
            ("/%41%7e%2d%5f%30%zz%2", "/A~-_0%zz%2"),
            ("/a/..", "/"),
            ("/../../x", "/x"),
            ("/a/b/.", "/a/b/"),
            ("/a/.%2e/b?x=/../y", "/b?x=/../y"),
            ("/%2e", "/"),
            ("/a%20b", "/a%20b"),
            ("/a/%25/b", "/a/%25/b"),
            ("/a/%3f", "/a/%3f"),
            ("/a/..%2f..%2fb", "/b"),
            ("/a{b}^`|", "/a%7Bb%7D%5E%60%7C"),
            ("/a\"b", "/a%22b"),
            ("/a'b", "/a'b"),
            ("/a[b]", "/a[b]"),
            ("/a!$&()*+,=@:", "/a!$&()*+,=@:"),
            ("/%2E%2e/", "/"),
            ("/a/%2e.", "/"),
            ("/a/..b/c", "/a/..b/c"),
            ("/a/...", "/a/..."),
            ("/a;b/../c", "/c"),
            ("/a%2fb%5c", "/a/b/"),
        ] {
            assert_eq!(continued(p, input), want, "{input}");
        }
        assert_eq!(p.apply("/a%00b"), Outcome::Reject);
    }

    #[test]
    fn each_setting_alone() {
        let off = PathNormalization {
            normalize: false,
            merge_slashes: false,
            escaped_slashes: EscapedSlashes::KeepUnchanged,
        };
        assert!(off.is_off());
        let merge = PathNormalization { merge_slashes: true, ..off };
        assert_eq!(continued(merge, "//a//b/./c/../%2Fd?x=//"), "/a/b/./c/../%2Fd?x=//");
        assert_eq!(continued(merge, "//"), "//");
        let normalize = PathNormalization { normalize: true, ..off };
        assert_eq!(continued(normalize, "/a//b/./c/../%2Fd"), "/a//b/%2Fd");
        assert_eq!(continued(normalize, "/a/%5c..%5cb"), "/a/%5c..%5cb");
        let reject = PathNormalization { escaped_slashes: EscapedSlashes::RejectRequest, ..off };
        assert_eq!(reject.apply("/a%2Fb"), Outcome::Reject);
        assert_eq!(continued(reject, "/a/../b?q=%2F"), "/a/../b?q=%2F");
        let redirect =
            PathNormalization { normalize: true, escaped_slashes: EscapedSlashes::UnescapeAndRedirect, ..off };
        assert_eq!(redirect.apply("/a/%2f%2F/b?q=%2F"), Outcome::Redirect("/a////b?q=%2F".into()));
        assert_eq!(redirect.apply("/a/%5c..%5cb"), Outcome::Redirect("/a/b".into()));
        assert_eq!(continued(redirect, "/a/../b"), "/b");
        let forward = PathNormalization { escaped_slashes: EscapedSlashes::UnescapeAndForward, ..off };
        assert_eq!(continued(forward, "/a/%5c..%5cb"), "/a/\\..\\b");
    }
}
