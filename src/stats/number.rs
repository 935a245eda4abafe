//! How Envoy prints the floating-point numbers of histograms, so that Courier's
//! output is byte-for-byte Envoy's: `{}` of the fmt library for quantiles (shortest
//! round-trip digits: `24.5`, `1.0333333333333334`, `0`, `nan`) and `{:.32g}` for
//! Prometheus sums (`24.489795918367345706201376742683`).

/// fmt's `{}` for a double: the shortest digits that read back as `x`, in fixed
/// notation unless the decimal exponent is below -4 or at least 16 (`1e+16`).
pub(super) fn shortest(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return special(x);
    }
    let sci = format!("{x:e}"); // shortest digits, e.g. `2.45e1`
    match split_exponent(&sci) {
        Some((mantissa, exp)) if !(-4..16).contains(&exp) => exponent_form(mantissa, exp),
        _ => format!("{x}"),
    }
}

/// C++'s `std::to_chars(x)`: the shortest round-trip digits, in fixed or exponent
/// notation, whichever is shorter (fixed on a tie): `300000` → `3e+05`,
/// `1800000` stays. Envoy prints histogram bucket bounds in JSON this way.
pub(super) fn to_chars(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return special(x);
    }
    let fixed = format!("{x}");
    let Some((mantissa, exp)) = split_exponent(&format!("{x:e}")).map(|(m, e)| (m.to_string(), e)) else {
        return fixed;
    };
    let sci = exponent_form(&mantissa, exp);
    if sci.len() < fixed.len() {
        sci
    } else {
        fixed
    }
}

/// C's `%.{precision}g`: `precision` significant digits, trailing zeros removed,
/// fixed notation unless the exponent is below -4 or at least `precision`.
pub(super) fn general(x: f64, precision: usize) -> String {
    if !x.is_finite() || x == 0.0 {
        return special(x);
    }
    let p = precision.max(1);
    let sci = format!("{:.*e}", p - 1, x);
    let Some((mantissa, exp)) = split_exponent(&sci) else {
        return format!("{x}");
    };
    if exp < -4 || exp >= p as i32 {
        exponent_form(trim_zeros(mantissa), exp)
    } else {
        // exp is in -4..p here, so the precision is non-negative.
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn special(x: f64) -> String {
    match x {
        _ if x.is_nan() => "nan".into(),
        _ if x == f64::INFINITY => "inf".into(),
        _ if x == f64::NEG_INFINITY => "-inf".into(),
        _ => "0".into(),
    }
}

/// `"2.45e1"` → `("2.45", 1)`.
fn split_exponent(sci: &str) -> Option<(&str, i32)> {
    let (mantissa, exp) = sci.split_once('e')?;
    Some((mantissa, exp.parse().ok()?))
}

/// C's exponent notation: a sign and at least two digits (`1.5e+16`, `2e-05`).
fn exponent_form(mantissa: &str, exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_like_fmt() {
        assert_eq!(shortest(0.0), "0");
        assert_eq!(shortest(24.5), "24.5");
        assert_eq!(shortest(24.0), "24");
        assert_eq!(shortest(1.0 + 0.1 / 3.0), "1.0333333333333334");
        assert_eq!(shortest(1.8e6), "1800000");
        assert_eq!(shortest(1.8e19), "1.8e+19");
        assert_eq!(shortest(1e16), "1e+16");
        assert_eq!(shortest(0.0001), "0.0001");
        assert_eq!(shortest(0.00001), "1e-05");
        assert_eq!(shortest(f64::NAN), "nan");
    }

    #[test]
    fn to_chars_picks_the_shorter_form() {
        assert_eq!(to_chars(0.5), "0.5");
        assert_eq!(to_chars(10000.0), "10000");
        assert_eq!(to_chars(300000.0), "3e+05");
        assert_eq!(to_chars(600000.0), "6e+05");
        assert_eq!(to_chars(1800000.0), "1800000");
        assert_eq!(to_chars(3600000.0), "3600000");
    }

    #[test]
    fn general_like_printf() {
        assert_eq!(general(0.0, 32), "0");
        assert_eq!(general(1200.0 / 49.0, 32), "24.489795918367345706201376742683");
        assert_eq!(general(6.2857142857142865, 32), "6.2857142857142864755815026001073");
        assert_eq!(general(3.0, 32), "3");
        assert_eq!(general(1.8e40, 32), "1.7999999999999999821459359399829e+40");
        assert_eq!(general(1e-5, 3), "1e-05");
        assert_eq!(general(123456.0, 3), "1.23e+05");
        assert_eq!(general(0.5, 32), "0.5");
    }
}
