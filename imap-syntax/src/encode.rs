//! Encoders: each value in the shortest form its grammar rule allows.
//!
//! Strings are emitted conservatively: an atom when every octet is an atom character,
//! a quoted string when the content is printable ASCII, otherwise a synchronizing
//! literal (`{n}` then CRLF then the octets), which every IMAP peer reads. Between
//! quoted and literal the shorter wins. NUL cannot be carried by any form.

use std::io::Write as _;

use crate::LiteralMode;
use crate::chars::is_astring_char;
use crate::types::{
    AString, Atom, IString, Mailbox, SeqNumber, Sequence, SequenceSet, Tag, ValueError,
};

/// Octets that fit a quoted string without making it worse than a literal: printable
/// ASCII (escaping `"` and `\`) and tab.
fn quotable(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

fn nul_check(what: &'static str, value: &[u8]) -> Result<(), ValueError> {
    if value.contains(&0) {
        return Err(ValueError::Character { what, byte: 0 });
    }
    Ok(())
}

/// Writes `value` as a `quoted` string. The caller has checked it is quotable.
fn write_quoted(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'"');
    for &b in value {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// `literal`: `{n}` or `{n+}`, CRLF, the octets.
pub fn literal(out: &mut Vec<u8>, value: &[u8], mode: LiteralMode) -> Result<(), ValueError> {
    nul_check("literal", value)?;
    let plus = if mode == LiteralMode::NonSync {
        "+"
    } else {
        ""
    };
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{{{}{plus}}}\r\n", value.len());
    out.extend_from_slice(value);
    Ok(())
}

/// `string`: quoted when the content is printable ASCII and that is no longer than a
/// literal, else a literal.
pub fn string(out: &mut Vec<u8>, value: &[u8]) -> Result<(), ValueError> {
    nul_check("string", value)?;
    if quotable(value) {
        let escapes = value.iter().filter(|&&b| b == b'"' || b == b'\\').count();
        let quoted_len = value.len() + escapes + 2;
        let literal_len = value.len() + decimal_len(value.len()) + 4;
        if quoted_len <= literal_len {
            write_quoted(out, value);
            return Ok(());
        }
    }
    literal(out, value, LiteralMode::Sync)
}

/// `astring`: bare `1*ASTRING-CHAR` when possible, else as [`string`].
pub fn astring(out: &mut Vec<u8>, value: &[u8]) -> Result<(), ValueError> {
    if !value.is_empty() && value.iter().all(|&b| is_astring_char(b)) {
        out.extend_from_slice(value);
        return Ok(());
    }
    string(out, value)
}

/// `nstring`: `NIL` for `None`, else as [`string`].
pub fn nstring(out: &mut Vec<u8>, value: Option<&[u8]>) -> Result<(), ValueError> {
    match value {
        None => {
            out.extend_from_slice(b"NIL");
            Ok(())
        }
        Some(value) => string(out, value),
    }
}

/// `atom`, validated on construction.
pub fn atom(out: &mut Vec<u8>, value: &Atom<'_>) {
    out.extend_from_slice(value.as_str().as_bytes());
}

/// `tag`, validated on construction.
pub fn tag(out: &mut Vec<u8>, value: &Tag<'_>) {
    out.extend_from_slice(value.as_str().as_bytes());
}

/// `number` (or `number64`).
pub fn number(out: &mut Vec<u8>, value: u64) {
    let _ = write!(out, "{value}");
}

/// An [`IString`] in its shortest form (the form it was parsed in is not kept).
pub fn istring(out: &mut Vec<u8>, value: &IString<'_>) -> Result<(), ValueError> {
    string(out, value.as_bytes())
}

/// An [`AString`] in its shortest form.
pub fn astring_value(out: &mut Vec<u8>, value: &AString<'_>) -> Result<(), ValueError> {
    astring(out, value.as_bytes())
}

/// `mailbox`: `INBOX` for the inbox, else as [`astring`].
pub fn mailbox(out: &mut Vec<u8>, value: &Mailbox<'_>) -> Result<(), ValueError> {
    astring(out, value.as_bytes())
}

fn seq_number(out: &mut Vec<u8>, value: SeqNumber) {
    match value {
        SeqNumber::Value(n) => number(out, u64::from(n.get())),
        SeqNumber::Largest => out.push(b'*'),
    }
}

/// `sequence-set`.
pub fn sequence_set(out: &mut Vec<u8>, value: &SequenceSet) {
    for (i, member) in value.members().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match *member {
            Sequence::Single(n) => seq_number(out, n),
            Sequence::Range(a, b) => {
                seq_number(out, a);
                out.push(b':');
                seq_number(out, b);
            }
        }
    }
}

/// Decimal digits of `n`.
fn decimal_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}
