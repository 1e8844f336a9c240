//! What a relay between an IMAP client and server reads of the lines it passes on:
//! which command a line begins, which response, and the capability lists it may edit.
//! Everything else passes unread. Each function reads the first text of a line, as
//! [`framing::Stream`](crate::framing::Stream) hands it out (`Piece::Text` with
//! `start`), and allocates nothing unless it writes.
//!
//! ```
//! use imap_syntax::relay::{Edit, Response, Status, edit_capabilities, response};
//!
//! let line = b"a1 OK [CAPABILITY IMAP4rev1 IDLE COMPRESS=DEFLATE] Logged in\r\n";
//! assert!(matches!(response(line), Some(Response::Tagged { status: Some(Status::Ok), .. })));
//! let mut out = Vec::new();
//! let edit = Edit { remove: &["COMPRESS="], add: &["XAPPLEPUSHSERVICE"], keep: &[] };
//! assert!(edit_capabilities(line, &edit, &mut out));
//! assert_eq!(out, b"a1 OK [CAPABILITY IMAP4rev1 IDLE XAPPLEPUSHSERVICE] Logged in\r\n");
//! ```

use std::ops::Range;

use crate::chars::is_tag_char;
use crate::types::Tag;

/// A response's status word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// `OK`.
    Ok,
    /// `NO`.
    No,
    /// `BAD`.
    Bad,
    /// `PREAUTH` (a greeting).
    Preauth,
    /// `BYE`.
    Bye,
}

/// The start of a server's response line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response<'a> {
    /// `continue-req = "+" [SP (resp-text / base64)] CRLF`.
    Continuation,
    /// `"*" SP …`: untagged data or status.
    Untagged,
    /// `response-tagged = tag SP resp-cond-state CRLF`, or a tagged line with another
    /// word (`status: None`), which no server should send.
    Tagged {
        /// The tag.
        tag: Tag<'a>,
        /// `OK`, `NO` or `BAD`; `None` for any other word.
        status: Option<Status>,
    },
}

/// The start of a server's response line: what it is, and for a tagged one whose
/// command it completes. `None` for a line that is none of them.
///
/// ```text
/// response        = continue-req / response-data / response-tagged
/// response-tagged = tag SP resp-cond-state CRLF
/// resp-cond-state = ("OK" / "NO" / "BAD") SP resp-text
/// ```
pub fn response(line: &[u8]) -> Option<Response<'_>> {
    match line.first()? {
        b'+' => Some(Response::Continuation),
        b'*' => (line.get(1) == Some(&b' ')).then_some(Response::Untagged),
        _ => {
            let (tag, rest) = tag_sp(line)?;
            let word = word(rest);
            let status = [("OK", Status::Ok), ("NO", Status::No), ("BAD", Status::Bad)]
                .into_iter()
                .find(|(name, _)| word.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, status)| status);
            Some(Response::Tagged { tag, status })
        }
    }
}

/// An untagged status response's word (`* OK`, `* PREAUTH`, `* BYE`, …), if the line
/// is one: a greeting is the first of them.
pub fn untagged_status(line: &[u8]) -> Option<Status> {
    let rest = line.strip_prefix(b"* ")?;
    let word = word(rest);
    [
        ("OK", Status::Ok),
        ("NO", Status::No),
        ("BAD", Status::Bad),
        ("PREAUTH", Status::Preauth),
        ("BYE", Status::Bye),
    ]
    .into_iter()
    .find(|(name, _)| word.eq_ignore_ascii_case(name.as_bytes()))
    .map(|(_, status)| status)
}

/// A client's command line: its tag and the command's name (as sent; compare without
/// regard to case), and what follows the name. `None` for a line that does not begin
/// `tag SP name`.
///
/// ```text
/// command = tag SP (command-any / command-auth / command-nonauth / command-select) CRLF
/// ```
pub fn command(line: &[u8]) -> Option<(Tag<'_>, &[u8], &[u8])> {
    let (tag, rest) = tag_sp(line)?;
    let (name, after) = split_word(rest);
    if name.is_empty() {
        return None;
    }
    Some((tag, name, after))
}

/// `tag SP`, and what follows.
fn tag_sp(line: &[u8]) -> Option<(Tag<'_>, &[u8])> {
    let len = line.iter().position(|&b| !is_tag_char(b))?;
    if len == 0 || line.get(len) != Some(&b' ') {
        return None;
    }
    let text = std::str::from_utf8(line.get(..len)?).ok()?;
    Some((Tag::unchecked(text), line.get(len + 1..)?))
}

/// The letters, digits and `-` at the front of `rest` (a command or status word), and
/// what follows them.
fn split_word(rest: &[u8]) -> (&[u8], &[u8]) {
    let len = rest
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || b == b'-')
        .count();
    // A count of the slice's own octets: within it.
    rest.split_at(len)
}

/// The word at the front of `rest`.
fn word(rest: &[u8]) -> &[u8] {
    split_word(rest).0
}

/// Where a response line lists capabilities, as a range of `line`: the tokens after
/// `CAPABILITY`, separated by single spaces. `None` for a line without a list.
///
/// ```text
/// capability-data = "CAPABILITY" *(SP capability) SP "IMAP4rev2" *(SP capability)
/// response-data   = "*" SP (… / capability-data / …) CRLF
/// resp-text       = ["[" resp-text-code "]" SP] [text]   ; resp-text-code: capability-data
/// ```
///
/// So `* CAPABILITY …` (to the line's end), and `[CAPABILITY …]` after the status word
/// of a greeting, an untagged status or a tagged one.
pub fn capabilities(line: &[u8]) -> Option<Range<usize>> {
    let (body, untagged) = match response(line)? {
        Response::Continuation => return None,
        Response::Untagged => (line.get(2..)?, true),
        Response::Tagged { tag, .. } => (line.get(tag.as_str().len() + 1..)?, false),
    };
    let offset = line.len() - body.len();
    let first = word(body);
    const CAPABILITY: &[u8] = b"CAPABILITY";
    if untagged && first.eq_ignore_ascii_case(CAPABILITY) {
        // `* CAPABILITY a b c` runs to the end of the line.
        let from = offset + first.len();
        let end = line_end(line);
        return match line.get(from..end)? {
            [] => Some(end..end),
            [b' ', ..] => Some(from + 1..end),
            _ => None,
        };
    }
    let after_word = body.get(first.len()..)?;
    let code = after_word.strip_prefix(b" [")?;
    let name = word(code);
    if !name.eq_ignore_ascii_case(CAPABILITY) {
        return None;
    }
    let list = code.get(name.len()..)?.strip_prefix(b" ")?;
    let close = list.iter().position(|&b| b == b']')?;
    let from = line.len() - list.len();
    Some(from..from + close)
}

/// Where the line's text ends: before its CRLF (or bare LF).
fn line_end(line: &[u8]) -> usize {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line).len()
}

/// A change to a capability list.
#[derive(Debug, Clone, Copy, Default)]
pub struct Edit<'a> {
    /// Capabilities taken out, compared without regard to case; one ending in `=`
    /// takes out every capability it begins (`"AUTH="`, `"COMPRESS="`).
    pub remove: &'a [&'a str],
    /// Capabilities added at the end, unless the list has them already.
    pub add: &'a [&'a str],
    /// Capabilities kept whatever `remove` says (`"AUTH=PLAIN"` beside `"AUTH="`),
    /// compared without regard to case.
    pub keep: &'a [&'a str],
}

impl Edit<'_> {
    fn removes(&self, capability: &[u8]) -> bool {
        if self
            .keep
            .iter()
            .any(|k| capability.eq_ignore_ascii_case(k.as_bytes()))
        {
            return false;
        }
        self.remove.iter().any(|r| {
            let r = r.as_bytes();
            match r.strip_suffix(b"=") {
                Some(_) => capability
                    .get(..r.len())
                    .is_some_and(|prefix| prefix.eq_ignore_ascii_case(r)),
                None => capability.eq_ignore_ascii_case(r),
            }
        })
    }
}

/// Writes `line` to `out` with its capability list edited, and says `true`; leaves
/// `out` as it was and says `false` for a line without a list. The rest of the line
/// is written as it came.
pub fn edit_capabilities(line: &[u8], edit: &Edit<'_>, out: &mut Vec<u8>) -> bool {
    let Some(range) = capabilities(line) else {
        return false;
    };
    let (Some(before), Some(list), Some(after)) = (
        line.get(..range.start),
        line.get(range.clone()),
        line.get(range.end..),
    ) else {
        return false;
    };
    out.extend_from_slice(before);
    let mut first = true;
    let mut put = |out: &mut Vec<u8>, capability: &[u8]| {
        if !std::mem::take(&mut first) {
            out.push(b' ');
        }
        out.extend_from_slice(capability);
    };
    let kept = list
        .split(|&b| b == b' ')
        .filter(|c| !c.is_empty() && !edit.removes(c));
    for capability in kept.clone() {
        put(out, capability);
    }
    for add in edit.add {
        if !kept.clone().any(|c| c.eq_ignore_ascii_case(add.as_bytes())) {
            put(out, add.as_bytes());
        }
    }
    if first && before.last() == Some(&b' ') && after.first() != Some(&b']') {
        // `* CAPABILITY ` with nothing left: no trailing space.
        out.pop();
    }
    out.extend_from_slice(after);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edited(line: &str, edit: &Edit<'_>) -> Option<String> {
        let mut out = Vec::new();
        edit_capabilities(line.as_bytes(), edit, &mut out).then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn every_form_of_the_list() {
        let edit = Edit {
            remove: &["COMPRESS=", "xapplepushservice", "AUTH="],
            add: &["XAPPLEPUSHSERVICE", "WEBPUSH"],
            keep: &["auth=plain"],
        };
        for (line, expected) in [
            (
                "* OK [CAPABILITY IMAP4rev1 SASL-IR COMPRESS=DEFLATE AUTH=PLAIN AUTH=GSSAPI] Dovecot ready.\r\n",
                "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN XAPPLEPUSHSERVICE WEBPUSH] Dovecot ready.\r\n",
            ),
            (
                "* CAPABILITY IMAP4rev1 IDLE XAPPLEPUSHSERVICE\r\n",
                "* CAPABILITY IMAP4rev1 IDLE XAPPLEPUSHSERVICE WEBPUSH\r\n",
            ),
            (
                "a2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n",
                "a2 OK [CAPABILITY IMAP4rev1 IDLE XAPPLEPUSHSERVICE WEBPUSH] Logged in\r\n",
            ),
            (
                "* preauth [capability IMAP4rev2] hi\n",
                "* preauth [capability IMAP4rev2 XAPPLEPUSHSERVICE WEBPUSH] hi\n",
            ),
        ] {
            assert_eq!(edited(line, &edit).as_deref(), Some(expected), "{line}");
        }
        for line in [
            "* OK Dovecot ready.\r\n",
            "a1 OK [READ-WRITE] Select completed\r\n",
            "+ idling\r\n",
            "* 1 FETCH (FLAGS ())\r\n",
            "* CAPABILITYX A\r\n",
        ] {
            assert_eq!(edited(line, &edit), None, "{line}");
        }
    }

    #[test]
    fn nothing_left_leaves_no_stray_space() {
        let edit = Edit {
            remove: &["A", "B"],
            add: &[],
            keep: &[],
        };
        assert_eq!(
            edited("* CAPABILITY A B\r\n", &edit).unwrap(),
            "* CAPABILITY\r\n"
        );
        assert_eq!(
            edited("* OK [CAPABILITY A] x\r\n", &edit).unwrap(),
            "* OK [CAPABILITY ] x\r\n"
        );
    }

    #[test]
    fn commands_and_responses() {
        let (tag, name, rest) = command(b"a1 xapplepushservice aps-version 2\r\n").unwrap();
        assert_eq!(
            (tag.as_str(), name, rest),
            ("a1", &b"xapplepushservice"[..], &b" aps-version 2\r\n"[..])
        );
        assert_eq!(command(b"a1 \r\n"), None);
        assert_eq!(command(b"+ x\r\n"), None);
        assert_eq!(response(b"+ idling\r\n"), Some(Response::Continuation));
        assert_eq!(response(b"* 3 EXISTS\r\n"), Some(Response::Untagged));
        assert_eq!(
            response(b"A7 no [AUTHENTICATIONFAILED] x\r\n"),
            Some(Response::Tagged {
                tag: Tag::new("A7").unwrap(),
                status: Some(Status::No)
            })
        );
        assert_eq!(untagged_status(b"* BYE going\r\n"), Some(Status::Bye));
        assert_eq!(untagged_status(b"* 1 EXISTS\r\n"), None);
    }
}
