//! The line protocol xapsd spoke over a unix socket before its HTTP API (2014–2020),
//! still found on older installations: one request line, one answer line.
//!
//! ```text
//! request = verb SP pair *(sep pair) [CR] LF
//! verb    = "REGISTER" / "NOTIFY"               ; case-insensitive here
//! sep     = 1*(HTAB / SP)                       ; tabs since 2014, spaces before
//! pair    = key "=" value
//! key     = 1*(ALPHA / DIGIT / "-" / "_")
//! value   = quoted / list
//! list    = "(" [quoted *("," quoted)] ")"
//! quoted  = DQUOTE *(%x01-21 / %x23-5B / %x5D-10FFFF / "\" char) DQUOTE
//! answer  = ("OK" SP text / "ERROR" SP text) [CR] LF
//! ```
//!
//! The plugin escapes `"` and `\` with a backslash (Dovecot's `str_escape`); a
//! backslash before any other character stands for that character. Unlike the
//! original daemons, this parser undoes the escapes and does not split a quoted
//! mailbox name on its commas.

use crate::daemon::{BodyError, Notify, Register};
use crate::types::{AccountId, DeviceToken, MAIL_SUBTOPIC, MAX_MAILBOXES};
use crate::user::UserName;

/// The longest request line accepted, terminator included and counted as CRLF (so
/// that every line read can be written again).
pub const MAX_LINE_LEN: usize = 256 * 1024;
/// The most pairs in one line (the protocol has five).
const MAX_PAIRS: usize = 16;
/// The most values in one list.
const MAX_LIST: usize = MAX_MAILBOXES;

/// Why a line was refused. The texts are the ones xapsd answered with, so plugins log
/// familiar messages; [`Answer::error`] makes the `ERROR` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// No line feed yet: read more.
    #[error("incomplete line")]
    Incomplete,
    /// Not `VERB key="value"...`: bad quoting, a NUL, a duplicate key, invalid UTF-8,
    /// or a line, list or value over the limits.
    #[error("Cannot parse command")]
    Syntax,
    /// A verb other than `REGISTER` or `NOTIFY`.
    #[error("Unknown command")]
    UnknownCommand,
    /// A required argument is missing or empty.
    #[error("Missing {0} argument")]
    Missing(&'static str),
    /// `aps-subtopic` is not `com.apple.mobilemail`.
    #[error("Unknown aps-subtopic")]
    UnknownSubtopic,
    /// An argument is present but invalid (a device token that is not hex).
    #[error("Invalid {0} argument")]
    Invalid(&'static str),
    /// A value to encode contains a NUL or a line break, which the protocol cannot
    /// carry.
    #[error("a value contains a NUL or a line break")]
    Unencodable,
    /// A line to encode that would not read back as itself: no pairs, a key empty,
    /// repeated or not of letters, digits, `-` and `_`, or more pairs, list items or
    /// octets than a line carries.
    #[error("not a line the protocol carries: {0}")]
    NotALine(&'static str),
}

/// The two requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `REGISTER`: a device registered with `XAPPLEPUSHSERVICE`.
    Register,
    /// `NOTIFY`: events in a mailbox.
    Notify,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Register => "REGISTER",
            Verb::Notify => "NOTIFY",
        }
    }
}

/// How many first octets of a connection [`starts_request`] needs to tell: the longer
/// verb and the blank after it.
pub const START_LEN: usize = 9;

/// Whether a connection that begins with `start` speaks this protocol: a verb in any
/// case, then a space or a tab, as [`Line::parse`] reads a line. A socket that serves
/// HTTP as well tells the two apart by this; `start` shorter than the verb and its
/// blank is not a request.
///
/// ```
/// use xaps_proto::legacy::starts_request;
/// assert!(starts_request(b"REGISTER\taps"));
/// assert!(starts_request(b"notify do"));
/// assert!(!starts_request(b"POST /not"));
/// assert!(!starts_request(b"NOTIFY"));
/// ```
pub fn starts_request(start: &[u8]) -> bool {
    [Verb::Register, Verb::Notify].iter().any(|verb| {
        let name = verb.as_str().as_bytes();
        start
            .get(..name.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(name))
            && matches!(start.get(name.len()), Some(b' ' | b'\t'))
    })
}

/// A value: one quoted string or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `"text"`.
    Text(String),
    /// `("a","b")`.
    List(Vec<String>),
}

/// A request line as written, before its arguments are checked: what a daemon logs,
/// and what tests compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The verb.
    pub verb: Verb,
    /// The pairs in order; keys are unique.
    pub pairs: Vec<(String, Value)>,
}

impl Line {
    /// Reads one line from the start of `input`: `Ok((consumed, line))`, or
    /// [`LineError::Incomplete`] until a line feed arrives. A line without its
    /// terminator (as logged) is read with [`Line::parse`].
    ///
    /// ```
    /// use xaps_proto::legacy::{Line, Value, Verb};
    /// let (used, line) = Line::decode(b"NOTIFY dovecot-username=\"stefan\"\tdovecot-mailbox=\"INBOX\"\tevents=(\"MessageNew\")\r\n")?;
    /// assert_eq!(line.verb, Verb::Notify);
    /// assert_eq!(line.pairs[2].1, Value::List(vec!["MessageNew".into()]));
    /// # Ok::<(), xaps_proto::legacy::LineError>(())
    /// ```
    pub fn decode(input: &[u8]) -> Result<(usize, Self), LineError> {
        let (used, body) = take_line(input, MAX_LINE_LEN)?;
        Ok((used, Self::parse(body)?))
    }

    /// Parses a line without its terminator.
    pub fn parse(line: &[u8]) -> Result<Self, LineError> {
        if line.len() + 2 > MAX_LINE_LEN || line.iter().any(|&b| b == 0 || b == b'\r') {
            return Err(LineError::Syntax);
        }
        let (verb, mut rest) = match line.iter().position(|&b| b == b' ' || b == b'\t') {
            Some(at) => line.split_at_checked(at).ok_or(LineError::Syntax)?,
            None => (line, &[][..]),
        };
        let verb = if verb.eq_ignore_ascii_case(b"REGISTER") {
            Verb::Register
        } else if verb.eq_ignore_ascii_case(b"NOTIFY") {
            Verb::Notify
        } else {
            return Err(LineError::UnknownCommand);
        };
        let mut pairs: Vec<(String, Value)> = Vec::new();
        loop {
            let after = skip_separators(rest);
            if after.is_empty() {
                break;
            }
            // A pair must follow a separator.
            if after.len() == rest.len() || pairs.len() == MAX_PAIRS {
                return Err(LineError::Syntax);
            }
            let (key, value, next) = pair(after)?;
            if pairs.iter().any(|(k, _)| k == key) {
                return Err(LineError::Syntax);
            }
            pairs.push((key.to_owned(), value));
            rest = next;
        }
        if pairs.is_empty() {
            return Err(LineError::Syntax);
        }
        Ok(Self { verb, pairs })
    }

    /// The line, tab-separated and terminated by CRLF as the plugin writes it; a
    /// value with a NUL or a line break cannot be sent, nor a line that
    /// [`Line::decode`] would refuse ([`LineError::NotALine`]).
    pub fn encode(&self) -> Result<Vec<u8>, LineError> {
        self.check()?;
        let mut out = String::with_capacity(64);
        out.push_str(self.verb.as_str());
        for (i, (key, value)) in self.pairs.iter().enumerate() {
            out.push(if i == 0 { ' ' } else { '\t' });
            out.push_str(key);
            out.push('=');
            match value {
                Value::Text(text) => quote(&mut out, text),
                Value::List(items) => {
                    out.push('(');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        quote(&mut out, item);
                    }
                    out.push(')');
                }
            }
        }
        if out.contains(['\0', '\r', '\n']) {
            return Err(LineError::Unencodable);
        }
        out.push_str("\r\n");
        if out.len() > MAX_LINE_LEN {
            return Err(LineError::NotALine("longer than a line may be"));
        }
        Ok(out.into_bytes())
    }

    /// What [`Line::parse`] refuses in the pairs themselves.
    fn check(&self) -> Result<(), LineError> {
        if self.pairs.is_empty() {
            return Err(LineError::NotALine("no pairs"));
        }
        if self.pairs.len() > MAX_PAIRS {
            return Err(LineError::NotALine("more pairs than a line carries"));
        }
        for (i, (key, value)) in self.pairs.iter().enumerate() {
            if key.is_empty() || !key.bytes().all(key_octet) {
                return Err(LineError::NotALine("a key not of letters, digits, - and _"));
            }
            let mut earlier = self.pairs.iter().take(i);
            if earlier.any(|(k, _)| k == key) {
                return Err(LineError::NotALine("a key twice"));
            }
            if let Value::List(items) = value
                && items.len() > MAX_LIST
            {
                return Err(LineError::NotALine("a list longer than a line carries"));
            }
        }
        Ok(())
    }

    fn text(&self, key: &'static str) -> Result<&str, LineError> {
        match self.get(key) {
            Some(Value::Text(t)) if !t.is_empty() => Ok(t),
            Some(Value::List(_)) => Err(LineError::Invalid(key)),
            _ => Err(LineError::Missing(key)),
        }
    }

    fn list(&self, key: &'static str) -> Result<Option<&[String]>, LineError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::List(items)) if !items.is_empty() => Ok(Some(items)),
            Some(Value::List(_)) => Err(LineError::Missing(key)),
            Some(Value::Text(_)) => Err(LineError::Invalid(key)),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// A checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `REGISTER`, answered with `OK <topic>`.
    Register(Register),
    /// `NOTIFY`, answered with `OK `.
    Notify(Notify),
}

impl Request {
    /// Reads and checks one request line, as [`Line::decode`] then
    /// [`Request::try_from`].
    ///
    /// ```
    /// use xaps_proto::legacy::{Answer, Request};
    /// let line = b"REGISTER aps-account-id=\"0A7C4DFD-3FC4-418D-B4FC-F6EE59603731\"\taps-device-token=\"3A1E4FBA6214E9DB210D15BAF10D5EE85ED217437B9BAC4AFACB8416AAD6E46D\"\taps-subtopic=\"com.apple.mobilemail\"\tdovecot-username=\"ledoktre@meanie.us\"\tdovecot-mailboxes=(\"INBOX\",\"Notes\")\r\n";
    /// let (_, request) = Request::decode(line)?;
    /// let Request::Register(register) = request else { unreachable!() };
    /// assert_eq!(register.mailboxes, ["INBOX", "Notes"]);
    /// assert_eq!(Answer::ok("com.apple.mail.XServer.x").encode(), b"OK com.apple.mail.XServer.x\n");
    /// # Ok::<(), xaps_proto::legacy::LineError>(())
    /// ```
    pub fn decode(input: &[u8]) -> Result<(usize, Self), LineError> {
        let (used, line) = Line::decode(input)?;
        Ok((used, Self::try_from(&line)?))
    }

    /// The line a plugin sends.
    pub fn encode(&self) -> Result<Vec<u8>, LineError> {
        Line::from(self).encode()
    }
}

impl TryFrom<&Line> for Request {
    type Error = LineError;

    /// Checks the arguments as xapsd did: each one present and non-empty, the subtopic
    /// `com.apple.mobilemail`; also a hex device token and a [`UserName`] (lower case,
    /// as the HTTP daemon has it). A `NOTIFY` without `events` (plugins before 2018) means new
    /// mail.
    fn try_from(line: &Line) -> Result<Self, LineError> {
        match line.verb {
            Verb::Register => {
                let account_id = AccountId::new(line.text("aps-account-id")?)
                    .map_err(|_| LineError::Invalid("aps-account-id"))?;
                let device_token = DeviceToken::new(line.text("aps-device-token")?)
                    .map_err(|_| LineError::Invalid("aps-device-token"))?;
                if line.text("aps-subtopic")? != MAIL_SUBTOPIC {
                    return Err(LineError::UnknownSubtopic);
                }
                let username = UserName::new(line.text("dovecot-username")?)
                    .map_err(|_| LineError::Invalid("dovecot-username"))?;
                let mailboxes = line
                    .list("dovecot-mailboxes")?
                    .ok_or(LineError::Missing("dovecot-mailboxes"))?
                    .to_vec();
                Ok(Request::Register(Register {
                    account_id,
                    device_token,
                    username,
                    mailboxes,
                }))
            }
            Verb::Notify => {
                let username = UserName::new(line.text("dovecot-username")?)
                    .map_err(|_| LineError::Invalid("dovecot-username"))?;
                let mailbox = line.text("dovecot-mailbox")?.to_owned();
                let events = match line.list("events")? {
                    Some(events) => events.to_vec(),
                    None => vec!["MessageNew".to_owned()],
                };
                let notify = Notify::new(username, mailbox, events, Vec::new()).map_err(|e| {
                    LineError::Invalid(match e {
                        BodyError::Field { field: "Events" } => "events",
                        _ => "dovecot-mailbox",
                    })
                })?;
                Ok(Request::Notify(notify))
            }
        }
    }
}

impl From<&Request> for Line {
    /// The pairs in the order the plugin writes them.
    fn from(request: &Request) -> Self {
        let text = |k: &str, v: &str| (k.to_owned(), Value::Text(v.to_owned()));
        let list = |k: &str, v: &[String]| (k.to_owned(), Value::List(v.to_vec()));
        match request {
            Request::Register(r) => Line {
                verb: Verb::Register,
                pairs: vec![
                    text("aps-account-id", r.account_id.as_str()),
                    text("aps-device-token", r.device_token.as_str()),
                    text("aps-subtopic", MAIL_SUBTOPIC),
                    text("dovecot-username", r.username.as_str()),
                    list("dovecot-mailboxes", &r.mailboxes),
                ],
            },
            Request::Notify(n) => Line {
                verb: Verb::Notify,
                pairs: vec![
                    text("dovecot-username", n.username().as_str()),
                    text("dovecot-mailbox", n.mailbox()),
                    list("events", n.events()),
                ],
            },
        }
    }
}

/// The daemon's answer line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `OK <text>`: the topic after `REGISTER`, empty after `NOTIFY`.
    Ok(String),
    /// `ERROR <text>`.
    Error(String),
}

impl Answer {
    /// `OK <text>`.
    pub fn ok(text: &str) -> Self {
        Answer::Ok(text.to_owned())
    }

    /// The `ERROR` answer to a refused line.
    pub fn error(error: &LineError) -> Self {
        Answer::Error(error.to_string())
    }

    /// The answer as the Go daemon wrote it, ending in a line feed alone (the plugin
    /// accepts LF and CRLF). Line breaks in the text become spaces, since they would
    /// end the answer early.
    pub fn encode(&self) -> Vec<u8> {
        let (word, text) = match self {
            Answer::Ok(text) => ("OK ", text),
            Answer::Error(text) => ("ERROR ", text),
        };
        let mut out = Vec::with_capacity(word.len() + text.len() + 1);
        out.extend_from_slice(word.as_bytes());
        out.extend_from_slice(one_line(text).as_bytes());
        out.push(b'\n');
        out
    }

    /// Reads an answer (plugin side): `OK`/`ERROR`, a space, the text (without CR),
    /// LF or CRLF.
    /// The plugin reads at most 1023 octets, so longer answers are refused.
    pub fn decode(input: &[u8]) -> Result<(usize, Self), LineError> {
        let (used, line) = take_line(input, 1023)?;
        let text = |rest: &[u8]| {
            if rest.contains(&b'\r') {
                return Err(LineError::Syntax);
            }
            std::str::from_utf8(rest)
                .map(str::to_owned)
                .map_err(|_| LineError::Syntax)
        };
        let answer = if let Some(rest) = line.strip_prefix(b"OK ") {
            Answer::Ok(text(rest)?)
        } else if let Some(rest) = line.strip_prefix(b"ERROR ") {
            Answer::Error(text(rest)?)
        } else {
            return Err(LineError::Syntax);
        };
        Ok((used, answer))
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// The line before the first LF (without a CR before it) and the octets used.
fn take_line(input: &[u8], max: usize) -> Result<(usize, &[u8]), LineError> {
    let window = match input.split_at_checked(max) {
        Some((window, _)) => window,
        // Shorter than `max`: all of it.
        None => input,
    };
    let Some((line, _lf)) = window
        .iter()
        .position(|&b| b == b'\n')
        .and_then(|lf| window.split_at_checked(lf))
    else {
        return if input.len() >= max {
            Err(LineError::Syntax)
        } else {
            Err(LineError::Incomplete)
        };
    };
    let used = line.len() + 1;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok((used, line))
}

fn skip_separators(input: &[u8]) -> &[u8] {
    let mut rest = input;
    while let [b' ' | b'\t', after @ ..] = rest {
        rest = after;
    }
    rest
}

/// What a key is made of.
fn key_octet(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// `pair = key "=" value`
fn pair(input: &[u8]) -> Result<(&str, Value, &[u8]), LineError> {
    let n = input.iter().take_while(|&&b| key_octet(b)).count();
    let (key, rest) = input.split_at_checked(n).ok_or(LineError::Syntax)?;
    let rest = rest.strip_prefix(b"=").ok_or(LineError::Syntax)?;
    if key.is_empty() {
        return Err(LineError::Syntax);
    }
    // Keys are ASCII by construction.
    let key = std::str::from_utf8(key).map_err(|_| LineError::Syntax)?;
    let (value, rest) = if let Some(mut rest) = rest.strip_prefix(b"(") {
        let mut items = Vec::new();
        if let Some(after) = rest.strip_prefix(b")") {
            rest = after;
        } else {
            loop {
                if items.len() == MAX_LIST {
                    return Err(LineError::Syntax);
                }
                let (item, after) = quoted(rest)?;
                items.push(item);
                if let Some(after) = after.strip_prefix(b",") {
                    rest = after;
                } else {
                    rest = after.strip_prefix(b")").ok_or(LineError::Syntax)?;
                    break;
                }
            }
        }
        (Value::List(items), rest)
    } else {
        let (text, rest) = quoted(rest)?;
        (Value::Text(text), rest)
    };
    Ok((key, value, rest))
}

/// `quoted = DQUOTE *(qchar / "\" char) DQUOTE`
fn quoted(input: &[u8]) -> Result<(String, &[u8]), LineError> {
    let body = input.strip_prefix(b"\"").ok_or(LineError::Syntax)?;
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        match rest {
            [b'"', after @ ..] => {
                let text = String::from_utf8(out).map_err(|_| LineError::Syntax)?;
                return Ok((text, after));
            }
            // Unterminated, or ending in a lone backslash.
            [] | [b'\\'] => return Err(LineError::Syntax),
            [b'\\', b, after @ ..] | [b, after @ ..] => {
                out.push(*b);
                rest = after;
            }
        }
    }
}

/// `str_escape`: a backslash before `"` and `\`.
fn quote(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}
