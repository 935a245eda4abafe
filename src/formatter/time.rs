//! `%START_TIME(...)%` formats: a strftime-like pattern parsed once into tokens, then
//! rendered in UTC from a `SystemTime` (the civil-date conversion is done here, so no
//! date crate is needed). Besides the strftime directives, Envoy's own `%s` (epoch
//! seconds), `%f` / `%[1-9]f` (fraction digits) and absl's `%E<n>S`, `%E*S`, `%Ez`,
//! `%E4Y` are understood. Unknown directives are copied through, as strftime does.

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::push_number;

/// Envoy's default `%START_TIME%` format (`AccessLogDateTimeFormatter`).
pub const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%E3SZ";

/// A parsed time format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFormat {
    tokens: Vec<Tok>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(Box<str>),
    /// `%Y`: the year, at least 4 digits.
    Year,
    /// `%y`: the last two digits of the year.
    Year2,
    /// `%C`: the century.
    Century,
    Month,
    Day,
    /// `%e`: the day, space padded.
    DaySpace,
    Hour,
    /// `%I`: 12-hour clock.
    Hour12,
    Minute,
    Second,
    /// `%E<n>S`: seconds with `n` fraction digits (truncated).
    SecondFrac(u8),
    /// `%E*S`: seconds with as many fraction digits as needed.
    SecondFull,
    /// `%f`, `%<n>f`: only the fraction digits.
    Frac(u8),
    /// `%s`: seconds since the epoch.
    Epoch,
    /// `%j`: day of the year, 001-366.
    YearDay,
    WeekdayShort,
    WeekdayLong,
    MonthShort,
    MonthLong,
    /// `%p`: AM / PM.
    AmPm,
    /// `%u`: weekday 1-7, Monday is 1.
    WeekdayMon1,
    /// `%w`: weekday 0-6, Sunday is 0.
    WeekdaySun0,
}

const WEEKDAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl TimeFormat {
    /// Parses a pattern. Envoy rejects `%n` (a newline could end up in a header).
    pub fn parse(pattern: &str) -> Result<TimeFormat, String> {
        let mut p = Parser { tokens: Vec::new(), lit: String::new() };
        let mut rest = pattern;
        while let Some(i) = rest.find('%') {
            p.lit.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            rest = p.directive(rest)?;
        }
        p.lit.push_str(rest);
        p.flush();
        Ok(TimeFormat { tokens: p.tokens })
    }

    /// Appends `t`, in UTC, to `out`.
    pub fn write(&self, t: SystemTime, out: &mut String) {
        let c = Civil::from_system_time(t);
        for tok in &self.tokens {
            let _ = c.write_token(tok, out);
        }
    }
}

struct Parser {
    tokens: Vec<Tok>,
    lit: String,
}

impl Parser {
    fn flush(&mut self) {
        if !self.lit.is_empty() {
            self.tokens.push(Tok::Lit(std::mem::take(&mut self.lit).into_boxed_str()));
        }
    }

    fn push(&mut self, t: Tok) {
        self.flush();
        self.tokens.push(t);
    }

    /// Handles the directive after a `%`; returns what follows it.
    fn directive<'a>(&mut self, rest: &'a str) -> Result<&'a str, String> {
        let bytes = rest.as_bytes();
        let Some(&c) = bytes.first() else {
            self.lit.push('%');
            return Ok(rest);
        };
        let simple = match c {
            b'Y' => Some(Tok::Year),
            b'y' => Some(Tok::Year2),
            b'C' => Some(Tok::Century),
            b'm' => Some(Tok::Month),
            b'd' => Some(Tok::Day),
            b'e' => Some(Tok::DaySpace),
            b'H' => Some(Tok::Hour),
            b'I' => Some(Tok::Hour12),
            b'M' => Some(Tok::Minute),
            b'S' => Some(Tok::Second),
            b'f' => Some(Tok::Frac(9)),
            b's' => Some(Tok::Epoch),
            b'j' => Some(Tok::YearDay),
            b'a' => Some(Tok::WeekdayShort),
            b'A' => Some(Tok::WeekdayLong),
            b'b' | b'h' => Some(Tok::MonthShort),
            b'B' => Some(Tok::MonthLong),
            b'p' => Some(Tok::AmPm),
            b'u' => Some(Tok::WeekdayMon1),
            b'w' => Some(Tok::WeekdaySun0),
            _ => None,
        };
        if let Some(t) = simple {
            self.push(t);
            return Ok(&rest[1..]);
        }
        match c {
            b'%' => self.lit.push('%'),
            b't' => self.lit.push('\t'),
            b'z' => self.lit.push_str("+0000"),
            b'Z' => self.lit.push_str("UTC"),
            b'n' => return Err(NEWLINE_ERROR.to_string()),
            b'T' => self.composite(&[Tok::Hour, Tok::Minute, Tok::Second], ':'),
            b'R' => self.composite(&[Tok::Hour, Tok::Minute], ':'),
            b'F' => self.composite(&[Tok::Year, Tok::Month, Tok::Day], '-'),
            b'D' => self.composite(&[Tok::Month, Tok::Day, Tok::Year2], '/'),
            b'r' => {
                self.composite(&[Tok::Hour12, Tok::Minute, Tok::Second], ':');
                self.lit.push(' ');
                self.push(Tok::AmPm);
            }
            b'1'..=b'9' if bytes.get(1) == Some(&b'f') => {
                self.push(Tok::Frac(c - b'0'));
                return Ok(&rest[2..]);
            }
            b'E' => return Ok(self.extended(rest)),
            _ => {
                // Unknown: copied through as strftime does (`%` plus the character).
                self.lit.push('%');
                return Ok(rest);
            }
        }
        Ok(&rest[1..])
    }

    fn composite(&mut self, parts: &[Tok], sep: char) {
        for (i, t) in parts.iter().enumerate() {
            if i > 0 {
                self.lit.push(sep);
            }
            self.push(t.clone());
        }
    }

    /// absl's `%E...` directives; `rest` starts at the `E`.
    fn extended<'a>(&mut self, rest: &'a str) -> &'a str {
        let after = &rest[1..];
        if let Some(r) = after.strip_prefix("*S") {
            self.push(Tok::SecondFull);
            return r;
        }
        if let Some(r) = after.strip_prefix('z') {
            self.lit.push_str("+00:00");
            return r;
        }
        if let Some(r) = after.strip_prefix("*z") {
            self.lit.push_str("+00:00:00");
            return r;
        }
        if let Some(r) = after.strip_prefix("4Y") {
            self.push(Tok::Year);
            return r;
        }
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after.as_bytes().get(digits) == Some(&b'S') {
            // absl caps the precision at 15 digits; nanoseconds give 9 real ones.
            let n = after[..digits].parse::<u32>().unwrap_or(15).min(15) as u8;
            self.push(Tok::SecondFrac(n));
            return &after[digits + 1..];
        }
        self.lit.push('%');
        rest
    }
}

const NEWLINE_ERROR: &str = "Invalid header configuration. Format string contains newline.";

/// A UTC instant broken down into calendar fields.
struct Civil {
    epoch: i64,
    nanos: u32,
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 0 = Sunday.
    weekday: u32,
    /// 1-366.
    yday: u32,
}

impl Civil {
    fn from_system_time(t: SystemTime) -> Civil {
        let (epoch, nanos) = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                let (s, n) = (d.as_secs() as i64, d.subsec_nanos());
                if n == 0 {
                    (-s, 0)
                } else {
                    (-s - 1, 1_000_000_000 - n)
                }
            }
        };
        Civil::from_epoch(epoch, nanos)
    }

    fn from_epoch(epoch: i64, nanos: u32) -> Civil {
        let days = epoch.div_euclid(86_400);
        let secs = epoch.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            epoch,
            nanos,
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            weekday: (days + 4).rem_euclid(7) as u32,
            yday: day_of_year(year, month, day),
        }
    }

    /// Appends one token (writing into a `String` cannot fail).
    fn write_token(&self, tok: &Tok, out: &mut String) -> std::fmt::Result {
        match tok {
            Tok::Lit(s) => out.push_str(s),
            Tok::Year if self.year >= 0 => push_number(out, self.year as u64, 4),
            Tok::Year => write!(out, "{:04}", self.year)?,
            Tok::Year2 => push_number(out, self.year.rem_euclid(100) as u64, 2),
            Tok::Century => write!(out, "{:02}", self.year.div_euclid(100))?,
            Tok::Month => push_number(out, u64::from(self.month), 2),
            Tok::Day => push_number(out, u64::from(self.day), 2),
            Tok::DaySpace => write!(out, "{:2}", self.day)?,
            Tok::Hour => push_number(out, u64::from(self.hour), 2),
            Tok::Hour12 => push_number(out, u64::from((self.hour + 11) % 12 + 1), 2),
            Tok::Minute => push_number(out, u64::from(self.minute), 2),
            Tok::Second => push_number(out, u64::from(self.second), 2),
            Tok::SecondFrac(n) => {
                push_number(out, u64::from(self.second), 2);
                if *n > 0 {
                    out.push('.');
                    write_fraction(self.nanos, *n, out)?;
                }
            }
            Tok::SecondFull => {
                write!(out, "{:02}", self.second)?;
                if self.nanos > 0 {
                    // As many digits as needed: trailing zeros dropped.
                    let mut digits = 9;
                    let mut n = self.nanos;
                    while n % 10 == 0 {
                        n /= 10;
                        digits -= 1;
                    }
                    write!(out, ".{n:0digits$}")?;
                }
            }
            Tok::Frac(n) => write_fraction(self.nanos, *n, out)?,
            Tok::Epoch => write!(out, "{}", self.epoch)?,
            Tok::YearDay => push_number(out, u64::from(self.yday), 3),
            Tok::WeekdayShort => out.push_str(&WEEKDAYS[self.weekday as usize][..3]),
            Tok::WeekdayLong => out.push_str(WEEKDAYS[self.weekday as usize]),
            Tok::MonthShort => out.push_str(&MONTHS[self.month as usize - 1][..3]),
            Tok::MonthLong => out.push_str(MONTHS[self.month as usize - 1]),
            Tok::AmPm => out.push_str(if self.hour < 12 { "AM" } else { "PM" }),
            Tok::WeekdayMon1 => write!(out, "{}", if self.weekday == 0 { 7 } else { self.weekday })?,
            Tok::WeekdaySun0 => write!(out, "{}", self.weekday)?,
        }
        Ok(())
    }
}

/// The first `digits` digits of the fraction of a second (truncated; past 9 digits,
/// zeros).
fn write_fraction(nanos: u32, digits: u8, out: &mut String) -> std::fmt::Result {
    let digits = digits as usize;
    if digits <= 9 {
        let v = nanos / 10u32.pow(9 - digits as u32);
        push_number(out, u64::from(v), digits);
        Ok(())
    } else {
        write!(out, "{nanos:09}")?;
        out.extend(std::iter::repeat_n('0', digits - 9));
        Ok(())
    }
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) in the proleptic Gregorian
/// calendar. Works in 400-year eras (146097 days each) starting on March 1st, so the
/// leap day is the last day of an era-year and month lengths follow a fixed pattern.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March: 0 = March ... 11 = February.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn day_of_year(year: i64, month: u32, day: u32) -> u32 {
    const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let leap = u32::from(month > 2 && is_leap(year));
    BEFORE[month as usize - 1] + day + leap
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn fmt(pattern: &str, t: SystemTime) -> String {
        let mut s = String::new();
        TimeFormat::parse(pattern).unwrap().write(t, &mut s);
        s
    }

    #[test]
    fn default_format_is_envoys() {
        assert_eq!(fmt(DEFAULT_TIME_FORMAT, at(1_460_751_420, 310_123_456)), "2016-04-15T20:17:00.310Z");
        assert_eq!(fmt(DEFAULT_TIME_FORMAT, at(0, 0)), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn civil_dates_across_leap_years_and_centuries() {
        // 2000-02-29 (a leap day in a year divisible by 400).
        assert_eq!(fmt("%F %j", at(951_782_400, 0)), "2000-02-29 060");
        // 2024-12-31, day 366.
        assert_eq!(fmt("%F %j %a %A", at(1_735_603_200, 0)), "2024-12-31 366 Tue Tuesday");
        // 2100-03-01 (2100 is not a leap year).
        assert_eq!(fmt("%F %j", at(4_107_542_400, 0)), "2100-03-01 060");
        // Before the epoch: 1969-12-31T23:59:59.5.
        let t = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(fmt("%F %T %3f %s", t), "1969-12-31 23:59:59 500 -1");
    }

    #[test]
    fn envoy_and_absl_extensions() {
        let t = at(1_527_590_590, 528_123_400);
        assert_eq!(fmt("%s.%3f", t), "1527590590.528");
        assert_eq!(fmt("%s.%6f", t), "1527590590.528123");
        assert_eq!(fmt("%s.%9f|%f", t), "1527590590.528123400|528123400");
        assert_eq!(fmt("%E6S|%E*S|%E0S", t), "10.528123|10.5281234|10");
        assert_eq!(fmt("%Y/%m/%dT%H:%M:%S%z %Ez %Z", t), "2018/05/29T10:43:10+0000 +00:00 UTC");
        assert_eq!(fmt("%E*S", at(5, 0)), "05");
    }

    #[test]
    fn strftime_directives() {
        let t = at(1_460_751_420, 0); // Friday 2016-04-15 20:17:00
        assert_eq!(fmt("%y %C %e %I %p %r %R %D", t), "16 20 15 08 PM 08:17:00 PM 20:17 04/15/16");
        assert_eq!(fmt("%b %h %B %u %w %%", t), "Apr Apr April 5 5 %");
        assert_eq!(fmt("%e", at(0, 0)), " 1");
        assert_eq!(fmt("x%qy%", t), "x%qy%");
        assert_eq!(fmt("%t", t), "\t");
    }

    #[test]
    fn newline_is_rejected() {
        assert!(TimeFormat::parse("%Y%n").unwrap_err().contains("newline"));
    }
}
