//! Envoy's choice of a response encoding from the request's `accept-encoding`
//! (the compressor filter's `chooseEncoding`): entries `coding[;q=value]`,
//! matched case-sensitively as Envoy does; `q=0` excludes a coding even where a
//! `*` would allow it; the highest q-value wins among this filter's coding,
//! `identity` and `*`, the first listed on a tie.

/// What the header asked for, as Envoy's stats name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// This filter's coding: compress (`header_compressor_used`).
    Compressor,
    /// `*`: any coding, so this one (`header_wildcard`).
    Wildcard,
    /// `identity` won: do not compress (`header_identity`).
    Identity,
    /// Nothing this filter can give is acceptable (`header_not_valid`).
    NotValid,
}

/// Chooses for `accept_encoding` (the header's values joined by `,`), where this
/// filter offers `coding` when `offered` (the response's type is one it compresses).
pub fn choose(accept_encoding: &str, coding: &str, offered: bool) -> Choice {
    let mut entries: Vec<(&str, f64)> = Vec::new();
    let mut allowed = offered;
    for token in accept_encoding.split(',').filter(|t| !t.trim().is_empty()) {
        let (name, params) = match token.split_once(';') {
            Some((name, params)) => (name.trim(), Some(params)),
            None => (token.trim(), None),
        };
        let mut q = 1.0;
        if let Some((key, value)) = params.and_then(|p| p.split_once('=')) {
            if key.trim().eq_ignore_ascii_case("q") {
                match value.trim().parse::<f64>() {
                    Ok(v) if v.is_finite() => q = v,
                    // An unreadable q-value drops the entry, as Envoy does.
                    _ => continue,
                }
            }
        }
        if q == 0.0 && name == coding {
            allowed = false;
        }
        entries.push((name, q));
    }
    if entries.is_empty() || !allowed {
        return Choice::NotValid;
    }
    let mut best: Option<(&str, f64)> = None;
    for (name, q) in entries {
        let candidate = name == coding || name == "identity" || name == "*";
        if candidate && q > best.map_or(0.0, |(_, bq)| bq) {
            best = Some((name, q));
        }
    }
    match best {
        None => Choice::NotValid,
        Some(("*", _)) => Choice::Wildcard,
        Some(("identity", _)) => Choice::Identity,
        Some(_) => Choice::Compressor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case as Envoy 1.40 counted it (`header_*` stats) for a gzip
    /// compressor and a compressible response.
    #[test]
    fn chooses_as_envoy() {
        for (header, want) in [
            ("gzip", Choice::Compressor),
            ("*", Choice::Wildcard),
            ("identity", Choice::Identity),
            ("br", Choice::NotValid),
            ("gzip;q=0", Choice::NotValid),
            ("gzip;q=0, *", Choice::NotValid),
            ("identity;q=1, gzip;q=0.5", Choice::Identity),
            ("gzip;q=0.5, identity;q=0.4", Choice::Compressor),
            ("GZIP", Choice::NotValid),
            ("br, gzip", Choice::Compressor),
            ("gzip;q=abc", Choice::NotValid),
            ("", Choice::NotValid),
        ] {
            assert_eq!(choose(header, "gzip", true), want, "{header:?}");
        }
        assert_eq!(choose("gzip", "gzip", false), Choice::NotValid, "a type it does not compress");
    }
}
