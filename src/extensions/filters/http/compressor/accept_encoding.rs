//! Envoy's choice of a response encoding from the request's `accept-encoding`
//! (the compressor filter's `chooseEncoding`): entries `coding[;q=value]`,
//! matched case-sensitively as Envoy does; `q=0` excludes a coding even where a
//! `*` would allow it; the highest q-value wins among this filter's coding,
//! `identity` and `*`, the first listed on a tie.

/// The choice made for a response, as Envoy's `EncodingDecision`; each filter
/// counts it in its `header_*` stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// This coding, one of the chain's (`header_compressor_used` in its filter,
    /// `header_compressor_overshadowed` in the others).
    Compressor(&'static str),
    /// `*`: any coding, so the first registered of those offered
    /// (`header_wildcard`).
    Wildcard(&'static str),
    /// `identity` won: do not compress (`header_identity`).
    Identity,
    /// Nothing the chain can give is acceptable (`header_not_valid`).
    NotValid,
}

/// Chooses for `accept_encoding` (the header's values joined by `,`) among the
/// codings `offered` (the chain's filters that compress this response's type,
/// in registration order).
pub fn choose(accept_encoding: &str, offered: &[&'static str]) -> Choice {
    let mut allowed: Vec<&'static str> = offered.to_vec();
    let mut entries: Vec<(&str, f64)> = Vec::new();
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
        if q == 0.0 {
            allowed.retain(|c| *c != name);
        }
        entries.push((name, q));
    }
    if entries.is_empty() || allowed.is_empty() {
        return Choice::NotValid;
    }
    let mut best: Option<(&str, f64)> = None;
    for (name, q) in entries {
        let candidate = allowed.contains(&name) || name == "identity" || name == "*";
        if candidate && q > best.map_or(0.0, |(_, bq)| bq) {
            best = Some((name, q));
        }
    }
    match best {
        None => Choice::NotValid,
        Some(("identity", _)) => Choice::Identity,
        Some(("*", _)) => allowed.first().map_or(Choice::NotValid, |c| Choice::Wildcard(c)),
        Some((name, _)) => allowed.iter().find(|c| **c == name).map_or(Choice::NotValid, |c| Choice::Compressor(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case as Envoy 1.40 counted it (`header_*` stats) for a gzip
    /// compressor and a compressible response.
    #[test]
    fn chooses_as_envoy() {
        let gzip = Choice::Compressor("gzip");
        for (header, want) in [
            ("gzip", gzip),
            ("*", Choice::Wildcard("gzip")),
            ("identity", Choice::Identity),
            ("br", Choice::NotValid),
            ("gzip;q=0", Choice::NotValid),
            ("gzip;q=0, *", Choice::NotValid),
            ("identity;q=1, gzip;q=0.5", Choice::Identity),
            ("gzip;q=0.5, identity;q=0.4", gzip),
            ("GZIP", Choice::NotValid),
            ("br, gzip", gzip),
            ("gzip;q=abc", Choice::NotValid),
            ("", Choice::NotValid),
        ] {
            assert_eq!(choose(header, &["gzip"]), want, "{header:?}");
        }
        assert_eq!(choose("gzip", &[]), Choice::NotValid, "a type it does not compress");
    }

    /// Several compressor filters in one chain (Envoy's compat case
    /// `filter_compressor_chain`): the highest q-value among all their codings,
    /// the first listed on a tie, `*` for the first registered.
    #[test]
    fn chooses_among_the_chain_s_codings() {
        let chain = ["br", "gzip", "zstd"];
        assert_eq!(choose("gzip, br", &chain), Choice::Compressor("gzip"));
        assert_eq!(choose("gzip;q=0.5, br", &chain), Choice::Compressor("br"));
        assert_eq!(choose("*", &chain), Choice::Wildcard("br"));
        assert_eq!(choose("br;q=0, *", &chain), Choice::Wildcard("gzip"));
        assert_eq!(choose("deflate, zstd;q=0.1", &chain), Choice::Compressor("zstd"));
        assert_eq!(choose("identity;q=0.9, zstd;q=0.8", &chain), Choice::Identity);
    }
}
