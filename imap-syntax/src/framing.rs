//! Framing: where the next IMAP line (a command or a response) ends in bytes read from
//! a socket, literals included, and how to skip a line that is too long, so a server can
//! answer `BAD` and read the next command instead of closing the connection.
//!
//! ```text
//! line    = *(text literal) text CRLF
//! literal = "{" *DIGIT ["+"] "}" CRLF *OCTET     ; the digits say how many octets
//! ```
//!
//! A CRLF ends the line unless the octets before it announce a literal (`{n}`, or the
//! non-synchronizing `{n+}` of RFC 7888); the literal's octets are then part of the line,
//! whatever they hold, and the line goes on after them. A bare LF is read as CRLF. An
//! announcement inside a quoted string (`"{5}` before the CRLF) is none: a quoted string
//! cannot hold a line end, and a server's parser ends the line there, so a relay that
//! read a literal instead would take the next line's octets for it.
//!
//! The digits are read as servers read them, not as the grammar's `number` alone:
//! leading zeros count for nothing (`{0005}` announces 5 octets), no digits announce
//! none (`{}`), and a length past 64 bits reads as `u64::MAX`, more than any limit (a
//! server refuses it too). A relay that read such an announcement as text would end a
//! line where the server reads a literal, or the other way round.

/// What is at the front of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// The first `len` octets are one whole line, its CRLF and literals included:
    /// decode them, then drop them.
    Line(usize),
    /// The line does not end within the input: read more. With `continuation`, the
    /// input ends just after a synchronizing literal announcement of that many octets:
    /// the client sends them only after the server answers `+` (or it refuses the
    /// command instead).
    Incomplete {
        /// The announced length of a synchronizing literal that waits for `+`.
        continuation: Option<u64>,
    },
    /// The line at the front is longer than the limit: answer `BAD` (it is never
    /// handed out) and drop `discard` octets. The rest of the line, as it arrives, is
    /// reported as [`Frame::Discard`].
    TooLong {
        /// The octets to drop now.
        discard: usize,
    },
    /// The first `len` octets are more of a line that was too long: drop them.
    Discard(usize),
}

/// Finds line ends in a stream, remembering how far it looked, so each octet is scanned
/// about once however the input arrives. Allocates nothing.
///
/// ```
/// use imap_syntax::framing::{Frame, Framer};
/// let mut framer = Framer::new(1024);
/// let input = b"a1 APPEND INBOX {5+}\r\nab\r\nc\r\na2 NOOP\r\n";
/// // The literal's CRLF does not end the line.
/// assert_eq!(framer.frame(input), Frame::Line(29));
/// assert_eq!(framer.frame(&input[29..]), Frame::Line(9));
/// // A synchronizing literal waits for the server's "+".
/// assert_eq!(framer.frame(b"a3 LOGIN {4}\r\n"), Frame::Incomplete { continuation: Some(4) });
/// ```
#[derive(Debug, Clone)]
pub struct Framer {
    max: usize,
    /// Octets of the line at the front already scanned.
    scanned: usize,
    /// Where the current run of text began, within what was scanned: octets before it
    /// (literal data, an announcement already acted on) are never scanned as text again.
    text_from: usize,
    /// Literal octets still to pass over before scanning resumes.
    literal_left: u64,
    /// Whether the line at the front is one being dropped.
    discarding: bool,
    /// Inside a quoted string or not at `text_from`: octets of the run before it were
    /// dropped (a line too long).
    run_quoting: Quoting,
    /// The dropped octets of the run end with the start of an announcement (`{` and
    /// digits): its length so far.
    run_open: Option<u64>,
}

/// The octets of text kept back when part of a line goes (or is dropped) before its
/// end: more than the `+}` and CR that end an announcement, so that they are read with
/// its line end; the `{` and digits before them may have gone, and are carried. As
/// many as an announcement of a 64-bit length has in all, so that one is seldom split.
const ANNOUNCEMENT_MAX: usize = 23;

impl Framer {
    /// A framer for lines of at most `max` octets, literals included.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            scanned: 0,
            text_from: 0,
            literal_left: 0,
            discarding: false,
            run_quoting: Quoting::Outside,
            run_open: None,
        }
    }

    /// What is at the front of `input`: the input the caller holds, starting where the
    /// last frame it was told to drop ended. The caller must not drop octets it was
    /// not told to, nor pass a different start after [`Frame::Incomplete`].
    pub fn frame(&mut self, input: &[u8]) -> Frame {
        let mut at = self.scanned.min(input.len());
        let mut text_from = self.text_from.min(at);
        let mut run_quoting = self.run_quoting;
        let mut run_open = self.run_open;
        loop {
            if self.literal_left > 0 {
                let available = input.len() - at;
                let take = usize::try_from(self.literal_left)
                    .unwrap_or(usize::MAX)
                    .min(available);
                at += take;
                self.literal_left -= take as u64;
                if self.literal_left > 0 {
                    return self.incomplete(input, at, at, Quoting::Outside, None);
                }
                text_from = at;
                run_quoting = Quoting::Outside;
                run_open = None;
            }
            let Some(lf) = input
                .get(at..)
                .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
                .map(|i| at + i)
            else {
                return self.incomplete(input, input.len(), text_from, run_quoting, run_open);
            };
            at = lf + 1;
            // Only text can announce a literal: not the octets of the literal before.
            // The text began where the search for the LF did, or before it.
            let Some(before) = input.get(text_from..lf) else {
                // Were it not so, the line is refused rather than read without its text.
                return self.refuse(at);
            };
            let Some((length, synchronizing)) = announcement(run_open, before)
                .filter(|_| quoting(run_quoting, before) == Quoting::Outside)
            else {
                return self.complete(at);
            };
            if synchronizing && self.discarding {
                // The line was refused already: its client waits for a "+" that never
                // comes, and sends no literal.
                return self.complete(at);
            }
            let too_long =
                usize::try_from(length).map_or(true, |n| at.saturating_add(n) > self.max);
            if !self.discarding && too_long {
                // Refused before any literal octet is read: a client that waits for
                // "+" sends none; one that does not, sends them, and they are dropped.
                self.scanned = 0;
                self.text_from = 0;
                self.run_quoting = Quoting::Outside;
                self.run_open = None;
                if !synchronizing {
                    self.literal_left = length;
                    self.discarding = true;
                }
                return Frame::TooLong { discard: at };
            }
            if synchronizing && at == input.len() && !self.discarding {
                self.scanned = at;
                self.text_from = at;
                self.run_quoting = Quoting::Outside;
                self.run_open = None;
                self.literal_left = length;
                return Frame::Incomplete {
                    continuation: Some(length),
                };
            }
            self.literal_left = length;
            text_from = at;
            run_quoting = Quoting::Outside;
            run_open = None;
        }
    }

    /// The server refuses the command whose synchronizing literal waits (after
    /// [`Frame::Incomplete`] with a continuation) instead of answering `+`: the client
    /// sends no literal, and the line so far is to be dropped. Returns how many octets.
    pub fn refuse_literal(&mut self) -> usize {
        let line = self.scanned;
        self.scanned = 0;
        self.text_from = 0;
        self.literal_left = 0;
        self.run_quoting = Quoting::Outside;
        self.run_open = None;
        line
    }

    fn complete(&mut self, at: usize) -> Frame {
        self.scanned = 0;
        self.text_from = 0;
        self.run_quoting = Quoting::Outside;
        self.run_open = None;
        if self.discarding {
            self.discarding = false;
            return Frame::Discard(at);
        }
        if at > self.max {
            return Frame::TooLong { discard: at };
        }
        Frame::Line(at)
    }

    /// Drops the line that ends at `at` unread, as one too long.
    fn refuse(&mut self, at: usize) -> Frame {
        self.scanned = 0;
        self.text_from = 0;
        self.literal_left = 0;
        self.run_quoting = Quoting::Outside;
        self.run_open = None;
        if self.discarding {
            self.discarding = false;
            return Frame::Discard(at);
        }
        Frame::TooLong { discard: at }
    }

    fn incomplete(
        &mut self,
        input: &[u8],
        at: usize,
        text_from: usize,
        run_quoting: Quoting,
        run_open: Option<u64>,
    ) -> Frame {
        let newly_too_long = !self.discarding && at > self.max;
        if newly_too_long {
            self.discarding = true;
        }
        if !self.discarding {
            self.scanned = at;
            self.text_from = text_from;
            self.run_quoting = run_quoting;
            self.run_open = run_open;
            return Frame::Incomplete { continuation: None };
        }
        // Keep back what could be the start of an announcement: text only, never
        // literal octets, which must not be read again as text.
        let keep = (at - text_from.min(at)).min(ANNOUNCEMENT_MAX);
        self.scanned = 0;
        self.text_from = 0;
        let discard = at - keep;
        // Whether the text kept back begins inside a quoted string.
        let dropped = input
            .get(text_from.min(discard)..discard)
            .unwrap_or_default();
        self.run_quoting = quoting(run_quoting, dropped);
        self.run_open =
            left_open(run_open, dropped).filter(|_| self.run_quoting == Quoting::Outside);
        if newly_too_long {
            Frame::TooLong { discard }
        } else {
            Frame::Discard(discard)
        }
    }
}

/// The length of the first whole line of `input` (its CRLF and literals included), or
/// `None` if it does not end within `input`: for reading a complete text, such as a
/// push, line by line.
///
/// ```
/// use imap_syntax::framing::line_len;
/// assert_eq!(line_len(b"* X {3}\r\na\r\n\r\n* Y\r\n"), Some(14));
/// assert_eq!(line_len(b"* X"), None);
/// ```
pub fn line_len(input: &[u8]) -> Option<usize> {
    match Framer::new(usize::MAX).frame(input) {
        Frame::Line(len) => Some(len),
        _ => None,
    }
}

/// Where a run of text leaves the reader: outside a quoted string, inside one, or just
/// after its backslash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    Outside,
    Inside,
    Escaped,
}

/// Where `text` leaves a reader that began it at `state`.
///
/// ```text
/// quoted          = DQUOTE *QUOTED-CHAR DQUOTE
/// QUOTED-CHAR     = <any TEXT-CHAR except quoted-specials> / "\\" quoted-specials
/// ```
fn quoting(state: Quoting, text: &[u8]) -> Quoting {
    text.iter().fold(state, step)
}

/// Where the octet `b` leaves a reader at `state`.
fn step(state: Quoting, &b: &u8) -> Quoting {
    match (state, b) {
        (Quoting::Outside, b'"') | (Quoting::Escaped, _) => Quoting::Inside,
        (Quoting::Outside, _) | (Quoting::Inside, b'"') => Quoting::Outside,
        (Quoting::Inside, b'\\') => Quoting::Escaped,
        (Quoting::Inside, _) => Quoting::Inside,
    }
}

/// Whether `text`, one whole run of a client's line as a [`Stream`] hands it out
/// (from the line's start or a literal's end to its line end or to the announcement
/// that ends it, as `end` says), holds a `{` outside a quoted string other than that
/// announcement's. A relay refuses such a line rather than pass it on: a server's
/// parser reads the brace as a literal's start where an argument may begin, and
/// Dovecot answers `+` as soon as it reads `{5}`, before it finds that no line end
/// follows (`{5}x`, `{5} `, `{}` mid-line). A relay that saw no announcement there
/// would take that `+` for a later command's go-ahead and pass on octets the server
/// reads as commands.
///
/// ```
/// use imap_syntax::framing::{End, stray_brace};
/// let literal = End::Literal { len: 5, synchronizing: true };
/// assert!(!stray_brace(b"a SELECT {5}\r\n", literal));
/// assert!(!stray_brace(b"a SELECT \"x{5}y\"\r\n", End::Line));
/// assert!(stray_brace(b"a SELECT {0}x\r\n", End::Line));
/// assert!(stray_brace(b"a X {0}x {5}\r\n", literal));
/// ```
pub fn stray_brace(text: &[u8], end: End) -> bool {
    let body = match end {
        End::Literal { .. } => text
            .iter()
            .rposition(|&b| b == b'{')
            .map_or(text, |at| text.split_at(at).0),
        End::Line | End::More => text,
    };
    let mut state = Quoting::Outside;
    body.iter().any(|b| {
        let stray = *b == b'{' && state == Quoting::Outside;
        state = step(state, b);
        stray
    })
}

/// `text`, a run of text that ends with a non-synchronizing announcement (`{n+}` and
/// its line end), with that announcement made synchronizing (`{n}`): for a relay that
/// asks the server for its `+` before it passes on a literal the client sends
/// unasked, so that a server that never reads the literal (a command it refuses early,
/// or one that reads no arguments) does not take its octets for commands. `None` when
/// `text` does not end so.
///
/// ```
/// use imap_syntax::framing::synchronizing;
/// assert_eq!(synchronizing(b"a APPEND INBOX {5+}\r\n").as_deref(), Some(&b"a APPEND INBOX {5}\r\n"[..]));
/// assert_eq!(synchronizing(b"a APPEND INBOX {5}\r\n"), None);
/// ```
pub fn synchronizing(text: &[u8]) -> Option<Vec<u8>> {
    let (body, line_end) = match text.strip_suffix(b"\r\n") {
        Some(body) => (body, &b"\r\n"[..]),
        None => (text.strip_suffix(b"\n")?, &b"\n"[..]),
    };
    let (_, false) = announcement(None, body)? else {
        return None;
    };
    let before = body.strip_suffix(b"+}")?;
    Some([before, b"}", line_end].concat())
}

/// `"{" *DIGIT ["+"] "}" [CR]` at the end of `line`, whose text began after `open`
/// (see [`left_open`]): the announced length and whether it is synchronizing. Read as
/// a server reads it (see the module's documentation).
fn announcement(open: Option<u64>, line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let (inner, synchronizing) = match inner.strip_suffix(b"+") {
        Some(inner) => (inner, false),
        None => (inner, true),
    };
    Some((left_open(open, inner)?, synchronizing))
}

/// Whether `text`, whose run began after `open`, ends with the start of an
/// announcement, `{` and digits (or digits alone, going on with `open`): the length
/// they say so far. Leading zeros count for nothing; past 64 bits, `u64::MAX`.
fn left_open(open: Option<u64>, text: &[u8]) -> Option<u64> {
    let digits_from = text
        .iter()
        .rposition(|b| !b.is_ascii_digit())
        .map_or(0, |i| i + 1);
    let (head, digits) = text.split_at(digits_from);
    let before = match head.last() {
        None => open?,
        Some(b'{') => 0,
        Some(_) => return None,
    };
    Some(digits.iter().fold(before, |length, &digit| {
        length
            .saturating_mul(10)
            .saturating_add(u64::from(digit.wrapping_sub(b'0')))
    }))
}

/// The literal `text` announces when it is the announcement alone with its line end, as
/// a framer reads one (a bare LF for CRLF): the length, and whether the literal is
/// synchronizing. For checking that an argument is a literal where the grammar takes
/// one.
///
/// ```text
/// announcement = "{" *DIGIT ["+"] "}" CRLF
/// ```
///
/// ```
/// use imap_syntax::framing::announced;
/// assert_eq!(announced(b"{5+}\r\n"), Some((5, false)));
/// assert_eq!(announced(b"{5}\n"), Some((5, true)));
/// assert_eq!(announced(b"x{5}\r\n"), None);
/// assert_eq!(announced(b"{5}"), None);
/// ```
pub fn announced(text: &[u8]) -> Option<(u64, bool)> {
    let line = text.strip_suffix(b"\n")?;
    announcement(None, line).filter(|_| line.iter().rposition(|&b| b == b'{') == Some(0))
}

/// What is at the front of a relay's input: see [`Stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Piece {
    /// The first `len` octets are text: pass them on, or read them. `start` says
    /// whether they begin a line (a command or a response) rather than go on with one
    /// after a literal or a [`End::More`] piece; `end` says how they end.
    Text {
        /// How many octets.
        len: usize,
        /// They begin a line.
        start: bool,
        /// How the text ends.
        end: End,
    },
    /// The first `len` octets (as many as the input holds, up to the literal's end)
    /// are a literal's data, which is never read as text; `last` when the literal
    /// ends with them.
    Literal {
        /// How many octets.
        len: usize,
        /// The literal ends with them.
        last: bool,
    },
    /// Nothing whole at the front: read more.
    Incomplete,
}

/// How a [`Piece::Text`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum End {
    /// With a CRLF (or a bare LF) that ends the line.
    Line,
    /// With a literal announcement and its CRLF: `len` octets of literal data follow
    /// (a synchronizing literal's only once the server answered `+`; see
    /// [`Stream::refuse_literal`]).
    Literal {
        /// The announced length.
        len: u64,
        /// `{n}` (or `~{n}`) rather than `{n+}`.
        synchronizing: bool,
    },
    /// Without an end: the text was longer than the limit, and this much of it was
    /// handed out so that a relay need not hold it whole. The text goes on.
    More,
}

/// Cuts a stream of IMAP lines into text and literal data as it arrives, for a relay
/// that passes literals on without holding them: a `FETCH BODY[]` of 50 MB costs a
/// buffer, not 50 MB. Text is handed out a line (or up to a literal announcement) at
/// a time, or in pieces of about `max` octets when a line's text is longer; each octet
/// is scanned about once. Allocates nothing.
///
/// Literals are recognised in both directions alike: `{n}`, `{n+}` (RFC 7888) and
/// `~{n}` (RFC 3516's literal8) at the end of a line's text.
///
/// ```
/// use imap_syntax::framing::{End, Piece, Stream};
/// let mut stream = Stream::new(1024);
/// let input = b"* 1 FETCH (BODY[] {5}\r\nHello)\r\n";
/// assert_eq!(
///     stream.next(input),
///     Piece::Text { len: 23, start: true, end: End::Literal { len: 5, synchronizing: true } }
/// );
/// assert_eq!(stream.next(&input[23..]), Piece::Literal { len: 5, last: true });
/// assert_eq!(stream.next(&input[28..]), Piece::Text { len: 3, start: false, end: End::Line });
/// assert_eq!(stream.next(&input[31..]), Piece::Incomplete);
/// ```
#[derive(Debug, Clone)]
pub struct Stream {
    max: usize,
    /// Octets of text at the front already scanned for a line end.
    scanned: usize,
    /// Literal octets still to hand out.
    literal_left: u64,
    /// The next text begins a line.
    start: bool,
    /// Inside a quoted string or not after the text of the current run handed out so
    /// far (a long line's pieces).
    quoting: Quoting,
    /// The text of the current run handed out so far ends with the start of an
    /// announcement (`{` and digits): its length so far.
    open: Option<u64>,
}

impl Stream {
    /// A stream whose text is handed out in pieces once it is longer than `max`
    /// octets without an end (at least 92, and 23 are kept back, so that an
    /// announcement split across reads is still recognised).
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(4 * ANNOUNCEMENT_MAX),
            scanned: 0,
            literal_left: 0,
            start: true,
            quoting: Quoting::Outside,
            open: None,
        }
    }

    /// What is at the front of `input`: the input the caller holds, starting where the
    /// last piece it was given ended. The caller drops exactly the octets of each
    /// piece before asking again, and never passes a different start after
    /// [`Piece::Incomplete`].
    pub fn next(&mut self, input: &[u8]) -> Piece {
        if self.literal_left > 0 {
            if input.is_empty() {
                return Piece::Incomplete;
            }
            let len = usize::try_from(self.literal_left)
                .unwrap_or(usize::MAX)
                .min(input.len());
            self.literal_left -= len as u64;
            return Piece::Literal {
                len,
                last: self.literal_left == 0,
            };
        }
        // What was scanned before holds no LF: the search goes on after it.
        let (scanned, unscanned) = input.split_at(self.scanned.min(input.len()));
        let lf = unscanned
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| scanned.len() + i);
        // A run longer than `max` goes in pieces whether its LF came in the same read
        // or a later one: the limit does not depend on how the octets arrive.
        let (lf, past_max) = match lf {
            Some(lf) if lf >= self.max => (None, Some(lf)),
            lf => (lf, None),
        };
        let Some(lf) = lf else {
            if input.len() < self.max {
                self.scanned = input.len();
                return Piece::Incomplete;
            }
            // Keep back what could be the start of an announcement.
            let keep = ANNOUNCEMENT_MAX;
            let start = std::mem::replace(&mut self.start, false);
            let len = if let Some(lf) = past_max {
                // The LF is among what is left, the octets before it known to hold
                // none: the search goes on from it.
                let len = self.max - keep;
                self.scanned = lf - len;
                len
            } else {
                self.scanned = keep;
                input.len() - keep
            };
            let handed = input.split_at(len).0;
            self.quoting = quoting(self.quoting, handed);
            self.open = left_open(self.open, handed).filter(|_| self.quoting == Quoting::Outside);
            return Piece::Text {
                len,
                start,
                end: End::More,
            };
        };
        self.scanned = 0;
        let start = self.start;
        // The LF was found in `input`: the text before it is within it.
        let (before, _) = input.split_at(lf);
        // Scanned for quotes only when it ends like an announcement.
        let announced = announcement(self.open, before)
            .filter(|_| quoting(self.quoting, before) == Quoting::Outside);
        self.quoting = Quoting::Outside;
        self.open = None;
        let end = match announced {
            Some((len, synchronizing)) => {
                self.literal_left = len;
                self.start = false;
                End::Literal { len, synchronizing }
            }
            None => {
                self.start = true;
                End::Line
            }
        };
        Piece::Text {
            len: lf + 1,
            start,
            end,
        }
    }

    /// The literal a [`Piece::Text`] announced does not come: the server refused its
    /// synchronizing literal (a tagged answer instead of `+`), so the command ended
    /// there and the next text begins a line.
    pub fn refuse_literal(&mut self) {
        self.literal_left = 0;
        self.scanned = 0;
        self.start = true;
        self.quoting = Quoting::Outside;
        self.open = None;
    }

    /// Whether the pieces handed out so far end with a whole line, as opposed to within
    /// one (in a literal, or after a piece of a long text). A relay that passes on
    /// every piece it is given slips its own lines into the stream only then.
    pub fn between_lines(&self) -> bool {
        self.start && self.literal_left == 0
    }
}
