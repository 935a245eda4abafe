//! Splits a format string into literal text and command operators, with Envoy's
//! grammar: `%NAME%`, `%NAME(ARGS)%`, `%NAME(ARGS):LEN%` where NAME is `[A-Z0-9_]+`,
//! ARGS contains no `)`, and `%%` is a literal `%`.

use super::operator::Operator;

/// A piece of a parsed format string.
#[derive(Debug, Clone)]
pub(crate) enum Part {
    Literal(Box<str>),
    Op(Operator),
}

pub(crate) fn parse(format: &str) -> Result<Vec<Part>, String> {
    let bytes = format.as_bytes();
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(off) = format[pos..].find('%') else {
            literal.push_str(&format[pos..]);
            break;
        };
        literal.push_str(&format[pos..pos + off]);
        pos += off;
        if bytes.get(pos + 1) == Some(&b'%') {
            literal.push('%');
            pos += 2;
            continue;
        }
        let Some((command, end)) = command_at(format, pos) else {
            return Err(format!("Incorrect configuration: {format}. Couldn't find valid command at position {pos}"));
        };
        let op = Operator::parse(command.name, command.args, command.len?)?;
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal).into_boxed_str()));
        }
        parts.push(Part::Op(op));
        pos = end;
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal.into_boxed_str()));
    }
    Ok(parts)
}

struct Command<'a> {
    name: &'a str,
    args: &'a str,
    /// `Err` when the length does not fit a `usize` (Envoy's wording).
    len: Result<Option<usize>, String>,
}

/// Matches a command at `start` (a `%`); returns it and the position after its
/// closing `%`.
fn command_at(format: &str, start: usize) -> Option<(Command<'_>, usize)> {
    let bytes = format.as_bytes();
    let mut i = start + 1;
    let name_start = i;
    while i < bytes.len() && (bytes[i].is_ascii_uppercase() || bytes[i].is_ascii_digit() || bytes[i] == b'_') {
        i += 1;
    }
    if i == name_start {
        return None;
    }
    let name = &format[name_start..i];
    let mut args = "";
    if bytes.get(i) == Some(&b'(') {
        let close = i + 1 + format[i + 1..].find(')')?;
        args = &format[i + 1..close];
        i = close + 1;
    }
    let mut len = Ok(None);
    if bytes.get(i) == Some(&b':') {
        let digits = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let text = &format[i + 1..i + 1 + digits];
        len = text.parse::<usize>().map(Some).map_err(|_| format!("Length must be an integer, given: {text}"));
        i += 1 + digits;
    }
    if bytes.get(i) != Some(&b'%') {
        return None;
    }
    Some((Command { name, args, len }, i + 1))
}
