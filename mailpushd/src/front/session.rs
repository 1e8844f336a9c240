//! One client's session through the front, relayed to the IMAP server octet for octet
//! but for what the front answers itself: the push extensions' commands (once the
//! server has accepted a login the front could read), `STARTTLS` and `COMPRESS`, and
//! the capability lists, which gain the push extensions and lose what the front does
//! not carry; lines the server could read otherwise than the front are refused, and
//! literals that wait for no `+` go as ones that do, the front taking the `+`.
//!
//! Two halves run side by side, so that neither direction waits for the other: the
//! client's half reads commands and writes them to the server; the server's half reads
//! responses and writes them to the client, slipping the front's own answers in
//! between lines. They share the session's identity, and the server's half tells the
//! client's when the command it waits on was answered (`+`, or its tagged response).

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::BytesMut;
use imap_syntax::framing::{End, Piece, Stream};
use imap_syntax::relay::{self, Edit, Response, Status};
use imap_webpush_proto::state::ConnectionId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use xaps_proto::UserName;
use zeroize::Zeroizing;

use super::Context;
use super::intercept::{self, Kind, Mechanism, READABLE_MECHANISMS};
use crate::rate::Held;

/// The most of an answered command (XAPPLEPUSHSERVICE, WEBPUSH…) held, its literals
/// included: far above the longest either grammar allows.
const MAX_ANSWERED: usize = 16 * 1024;

/// The most of a `LOGIN` command or SASL response kept to read the user name from.
const MAX_GATHERED: usize = 8 * 1024;

/// How long the server may take to answer a command the client's half waits on (a
/// synchronizing literal's `+`, a login).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// How long writing one batch to either side may take: a peer that stops reading
/// holds nothing longer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(300);

/// Reads at most this much at a time.
const READ_CHUNK: usize = 64 * 1024;

/// A stream either side of the front.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionEnd {
    /// The client closed its connection.
    #[error("the client closed the connection")]
    ClientClosed,
    /// The server closed its connection.
    #[error("the IMAP server closed the connection")]
    ServerClosed,
    /// Reading or writing failed.
    #[error("{side}: {source}")]
    Io {
        /// Which side.
        side: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A peer took too long.
    #[error("{0} took too long")]
    TimedOut(&'static str),
    /// The daemon is stopping.
    #[error("the daemon is stopping")]
    Stopping,
    /// The framer classified input in a way this build of the front does not know:
    /// the session ends rather than pass on octets it has not read.
    #[error("input the relay cannot frame (imap-syntax newer than the front)")]
    Unframed,
    /// A command part of which went to the server, which either answered it before the
    /// front had sent all of it, or goes on where the front cannot read it as the server
    /// would (a login's literal out of its place, a literal that waits for the server
    /// while IDLE runs): the two would no longer agree on what the client's next octets
    /// are.
    #[error("a command the IMAP server could read differently from the front")]
    OutOfStep,
}

/// What the server said about the command the client's half waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// `+`: go on.
    GoOn,
    /// Its tagged response: the command is over.
    Done,
}

/// The command the client's half waits on.
struct Awaiting {
    /// The tag the server answers with.
    tag: String,
    /// The client's own tag, when the front sent the command under one of its own: the
    /// server's tagged answer is shown to the client with this one.
    shown_as: Option<String>,
    /// A login: its success makes the session authenticated as `candidate`.
    login: bool,
    candidate: Option<UserName>,
    /// The "+" awaited is the front's own: it asked for it in place of the client, whose
    /// literal waits for none, so it is shown to no one.
    hidden: bool,
}

/// The most of the front's own answers waiting to go between the server's lines.
const MAX_INJECTED: usize = 8;

/// The most commands relayed under the client's tags and not answered yet: past it,
/// the client's half reads no more until the server answers some.
const MAX_RUNNING: usize = 1024;

/// The longest tag relayed, in octets: tags are counted while their commands run, so
/// their length bounds what a session holds ([`MAX_RUNNING`] of them). The grammar
/// sets no limit; Dovecot's login process takes 126 octets at most (a longer tag it
/// answers untagged, and skips the line's literals), and clients use a few.
const MAX_TAG_LEN: usize = 126;

/// The tags of the commands relayed and not answered yet, with how many of each.
#[derive(Default)]
struct Running {
    tags: std::collections::HashMap<String, u32>,
    total: usize,
}

impl Running {
    /// The server answered the command tagged `tag`; whether it was one counted.
    fn answered(&mut self, tag: &str) -> bool {
        let Some(n) = self.tags.get_mut(tag) else {
            return false;
        };
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.tags.remove(tag);
        }
        self.total = self.total.saturating_sub(1);
        true
    }
}

/// What both halves know of the session.
#[derive(Default)]
struct Shared {
    /// The server accepted a login (or greeted with PREAUTH).
    authenticated: bool,
    /// Who, when the front could read it.
    user: Option<UserName>,
    awaiting: Option<Awaiting>,
    /// The server's answer to the command awaited, for the client's half.
    answer: Option<Answer>,
    /// The front's own lines, for the server's half to write between lines.
    injected: std::collections::VecDeque<Vec<u8>>,
    /// The commands on their way to the server, or in it. The front waits on a
    /// command by its tag (a synchronizing literal's "+" or refusal), so a command
    /// whose tag one of these still has is refused: the server's answer to the other
    /// could pass for its own.
    running: Running,
    /// The IDLEs relayed and not answered yet, oldest first: a client may send DONE
    /// and another IDLE before the first IDLE's "+" came. Bounded by
    /// [`MAX_RUNNING`], as each is a running command.
    idle: std::collections::VecDeque<Idle>,
    /// The session's place among its client address's sessions not logged in,
    /// given back at the login.
    unauthenticated: Option<Held<IpAddr>>,
    /// When the current minute of push commands began, and how many it answered.
    push_commands: Option<(std::time::Instant, u32)>,
    /// The client ended its side: the server's end that follows is the session's
    /// expected end, said with no goodbye of the front's.
    client_ended: bool,
}

/// Push commands (`XAPPLEPUSHSERVICE`, the WEBPUSH family) a session has answered a
/// minute at most: each writes to the store, and a client needs few (iOS registers
/// once a session). Past it, `NO [LIMIT]` until the minute ends.
const PUSH_COMMANDS_PER_MINUTE: u32 = 60;

impl Shared {
    /// Whether one more push command may be answered now, counted if so.
    fn push_command(&mut self, now: std::time::Instant) -> bool {
        let (began, count) = self.push_commands.get_or_insert((now, 0));
        if now.saturating_duration_since(*began) >= Duration::from_secs(60) {
            (*began, *count) = (now, 0);
        }
        if *count >= PUSH_COMMANDS_PER_MINUTE {
            return false;
        }
        *count += 1;
        true
    }
}

impl Shared {
    /// Whether the server answered the command tagged `tag`, which the client's half
    /// waited on: it waits on it no more, or an answer to it is there unread.
    fn answered(&self, tag: &str) -> bool {
        self.answer.is_some() || self.awaiting.as_ref().is_none_or(|a| a.tag != tag)
    }
}

/// An IDLE on its way to the server, or in it.
struct Idle {
    /// Its tag: its tagged answer ends it.
    tag: String,
    /// Its "+" came: the first "+" after an IDLE is its own, never a literal's
    /// go-ahead, however the client ran ahead of it.
    continued: bool,
    /// DONE went: the server reads commands again. Until then it reads only DONE.
    done: bool,
}

/// The halves' meeting point. Slots and wake-ups rather than channels: an idle session
/// holds a few words here, not two channels' blocks.
#[derive(Default)]
struct Meeting {
    shared: Mutex<Shared>,
    /// An answer was put in its slot.
    answered: Notify,
    /// Lines were queued for the server's half.
    queued: Notify,
    /// The server's half took the queued lines.
    taken: Notify,
    /// The server answered a command counted in [`Shared::running`].
    released: Notify,
}

/// The line the client's half is reading.
enum Line {
    /// Between lines.
    None,
    /// Relayed to the server as it comes; `gather` keeps its octets (bounded) to
    /// read a user name from.
    Relay {
        /// The tag the server sees.
        tag: Option<String>,
        /// A login's tag as the client wrote it, when the server sees one of the
        /// front's own in its place ([`front_tag`]); `rename` while the first piece,
        /// which holds it, has not gone yet.
        shown_as: Option<String>,
        rename: bool,
        gather: Option<Zeroizing<Vec<u8>>>,
        login: bool,
        /// An `AUTHENTICATE` (before a login): the exchange it starts, and the user
        /// its initial response names.
        auth: Option<(Sasl, Option<UserName>)>,
        /// A literal of it was waited on (its own "+", or the front's for one that
        /// waits for none): the server still reads it, and must not have answered it
        /// before a later one.
        waited: bool,
    },
    /// A SASL response in an `AUTHENTICATE` exchange: relayed, and read for the user
    /// name when it is the one that carries it.
    Sasl,
    /// Answered by the front: gathered whole.
    Answer {
        kind: Kind,
        tag: String,
        command: Vec<u8>,
    },
    /// The rest of a line the server has had all it will get of: dropped to its end.
    Discard,
    /// Refused: dropped to its end, then answered `reply` (status and text).
    Drop { tag: String, reply: &'static str },
}

/// An `AUTHENTICATE` exchange under way.
#[derive(Debug, Clone, Copy)]
struct Sasl {
    mechanism: Mechanism,
    /// Client responses so far.
    responses: u32,
}

/// The client's half: what it needs besides the streams.
struct ClientHalf<'a> {
    ctx: &'a Context,
    connection: ConnectionId,
    meeting: &'a Meeting,
}

/// Relays one session between `client` and `server`, whose first octets (`read_ahead`,
/// its greeting unless the client was greeted already) were read, until either side
/// ends it or the daemon stops.
pub(crate) async fn relay(
    ctx: &Context,
    client: Box<dyn Io>,
    server: Box<dyn Io>,
    read_ahead: BytesMut,
    connection: ConnectionId,
    unauthenticated: Held<IpAddr>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> SessionEnd {
    let (client_read, client_write) = tokio::io::split(client);
    let (server_read, server_write) = tokio::io::split(server);
    let meeting = Meeting::default();
    crate::lock(&meeting.shared).unauthenticated = Some(unauthenticated);
    let mut half = ClientHalf {
        ctx,
        connection,
        meeting: &meeting,
    };
    let end = tokio::select! {
        end = half.run(client_read, server_write) => end,
        end = server_half(ctx, server_read, client_write, read_ahead, &meeting) => end,
        end = logged_in_within(ctx.front.login_timeout + BYE_GRACE, &meeting) => end,
        _ = stop.changed() => SessionEnd::Stopping,
    };
    let user = crate::lock(&meeting.shared).user.take();
    if let Some(user) = user
        // Boxed: a store transaction's future is large, and every idle session would
        // otherwise carry room for it.
        && let Err(e) = Box::pin(ctx.core.connection_ended(&user, connection)).await
    {
        tracing::error!(error = %e, ?user, "IMAP front: the end of a connection not stored");
    }
    end
}

/// How long the server has to answer what a client sent before it ended its side.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// How long the server's half has past the login timeout to say goodbye: a write to a
/// client that does not read can hold it, and the session ends without one then.
const BYE_GRACE: Duration = Duration::from_secs(5);

/// Ends the session if the server has not accepted a login `timeout` after it began,
/// the server's half having not ended it with a goodbye by then. Never ends once one
/// was accepted.
async fn logged_in_within(timeout: Duration, meeting: &Meeting) -> SessionEnd {
    tokio::time::sleep(timeout).await;
    if crate::lock(&meeting.shared).authenticated {
        return std::future::pending().await;
    }
    SessionEnd::TimedOut("the client's login")
}

/// The first read's size, and the size while a peer is quiet.
const SMALL_READ: usize = 256;

/// One direction's read buffer. Small while the peer is quiet, so that thousands of
/// idle sessions hold little; doubling (to [`READ_CHUNK`]) while reads fill it, so that
/// a bulk transfer goes in large pieces.
struct Inbox {
    buffer: BytesMut,
    next: usize,
}

impl Inbox {
    fn new(read_ahead: BytesMut) -> Self {
        Self {
            buffer: read_ahead,
            next: SMALL_READ,
        }
    }

    /// Reads what `from` has into the buffer; 0 at its end.
    async fn read(
        &mut self,
        from: &mut (impl AsyncRead + Unpin),
        side: &'static str,
    ) -> Result<usize, SessionEnd> {
        if self.buffer.is_empty() && self.buffer.capacity() > self.next {
            // Nothing kept from a burst while the peer is quiet.
            self.buffer = BytesMut::new();
        }
        let asked = self.next;
        self.buffer.reserve(asked);
        let mut limited = from.take(asked as u64);
        let n = limited
            .read_buf(&mut self.buffer)
            .await
            .map_err(|source| SessionEnd::Io { side, source })?;
        self.next = if n >= asked {
            (asked * 2).min(READ_CHUNK)
        } else {
            n.next_power_of_two().clamp(SMALL_READ, READ_CHUNK)
        };
        Ok(n)
    }
}

/// Writes `octets`, then flushes.
async fn write(
    to: &mut (impl AsyncWrite + Unpin),
    octets: &[u8],
    side: &'static str,
) -> Result<(), SessionEnd> {
    write_all(to, &[octets], side).await
}

/// Writes each of `chunks`, then flushes once; a peer that stops reading fails it
/// after [`WRITE_TIMEOUT`].
async fn write_all(
    to: &mut (impl AsyncWrite + Unpin),
    chunks: &[impl AsRef<[u8]>],
    side: &'static str,
) -> Result<(), SessionEnd> {
    let written = async {
        for chunk in chunks.iter().map(AsRef::as_ref).filter(|c| !c.is_empty()) {
            to.write_all(chunk).await?;
        }
        to.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, written).await {
        Ok(result) => result.map_err(|source| SessionEnd::Io { side, source }),
        Err(_) => Err(SessionEnd::TimedOut(side)),
    }
}

/// What a command whose tag a running command has is answered.
const IN_USE: &str = "BAD The tag is in use by a command still running.";

/// For `line`, a line the front reads no command in (`a` alone, `a  NOOP`): the tag
/// to answer it `BAD` under when it begins with tag characters, as a command would
/// (its first word, or `*` when that word is more than tag characters). None for a
/// line a server could not read a tag in either, and for the `DONE` that ends an IDLE
/// (`ends_idle`), which is no command: those go to the server as they are. A `DONE`
/// with no IDLE running is answered, as a server answers a command it cannot read.
fn not_a_command(line: &[u8], ends_idle: bool) -> Option<String> {
    // The caller read it as that DONE already (`is_done`).
    if ends_idle {
        return None;
    }
    let word_len = line
        .iter()
        .take_while(|&&b| !matches!(b, b' ' | b'\r' | b'\n'))
        .count();
    let (word, _) = line.split_at_checked(word_len)?;
    if !word
        .first()
        .copied()
        .is_some_and(imap_syntax::chars::is_tag_char)
    {
        return None;
    }
    Some(shown_tag(word))
}

/// The tag a line the front refuses is answered under: `word`, when a server would
/// answer under it (tag characters, at most [`MAX_TAG_LEN`] octets), else `*`, so that
/// no answer repeats more of a line than a tag.
fn shown_tag(word: &[u8]) -> String {
    if word.len() <= MAX_TAG_LEN && word.iter().copied().all(imap_syntax::chars::is_tag_char) {
        String::from_utf8_lossy(word).into_owned()
    } else {
        "*".to_owned()
    }
}

/// Whether `line` is IDLE's `DONE`.
fn is_done(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.eq_ignore_ascii_case(b"DONE")
}

/// What a line too long to answer is answered.
const TOO_LONG: &str = "BAD Command line too long.";

/// Why a line whose run of text is `text`, ending as `end` says, is not relayed, when
/// it is not: a run too long to read whole (a server's own limit would end its line
/// where the front cannot follow), or a brace that no announcement ends
/// ([`imap_syntax::framing::stray_brace`]).
fn unrelayable(text: &[u8], end: End) -> Option<&'static str> {
    if matches!(end, End::More) {
        Some(TOO_LONG)
    } else if imap_syntax::framing::stray_brace(text, end) {
        Some("BAD Error in IMAP command: a brace that announces no literal.")
    } else {
        None
    }
}

/// The tag to answer a refused line under: its own, or `*` when it has none a server
/// could read.
fn answer_tag(line: &[u8]) -> String {
    relay::command(line)
        .map(|(tag, _, _)| shown_tag(tag.as_str().as_bytes()))
        .or_else(|| not_a_command(line, false))
        .unwrap_or_else(|| "*".to_owned())
}

/// A tagged line of the front's own.
fn tagged(tag: &str, rest: &str) -> Vec<u8> {
    format!("{tag} {rest}\r\n").into_bytes()
}

impl ClientHalf<'_> {
    /// Writes `octets` to the server, counted.
    async fn to_server(
        &self,
        server: &mut (impl AsyncWrite + Unpin),
        octets: &[u8],
    ) -> Result<(), SessionEnd> {
        write(server, octets, "IMAP server").await?;
        self.ctx.metrics.front_octets("to_server", octets.len());
        Ok(())
    }

    async fn run(
        &mut self,
        mut client: impl AsyncRead + Unpin,
        mut server: impl AsyncWrite + Unpin,
    ) -> SessionEnd {
        match self.relay_commands(&mut client, &mut server).await {
            Ok(()) => {
                // The client sent all it will (a half-close, a TLS close_notify): the
                // server is told so, as a direct connection tells it, and its answers
                // to what came before still reach the client until it closes, for
                // CLOSE_GRACE at most (a close_notify to a server that reads no more
                // waits within it too).
                crate::lock(&self.meeting.shared).client_ended = true;
                let _ = tokio::time::timeout(CLOSE_GRACE, async {
                    let _ = server.shutdown().await;
                    std::future::pending::<()>().await
                })
                .await;
                SessionEnd::ClientClosed
            }
            Err(end) => end,
        }
    }

    async fn relay_commands(
        &mut self,
        client: &mut (impl AsyncRead + Unpin),
        server: &mut (impl AsyncWrite + Unpin),
    ) -> Result<(), SessionEnd> {
        let mut inbox = Inbox::new(BytesMut::new());
        let mut framer = Stream::new(self.ctx.front.max_line);
        let mut line = Line::None;
        let mut sasl: Option<Sasl> = None;
        loop {
            let buffer = &mut inbox.buffer;
            match framer.next(buffer) {
                Piece::Incomplete => {
                    if inbox.read(client, "client").await? == 0 {
                        return Ok(());
                    }
                }
                Piece::Text { len, start, end } => {
                    let text = buffer.split_to(len);
                    let unrelayable = unrelayable(&text, end);
                    if start
                        && sasl.is_none()
                        && let Some(reply) = unrelayable
                    {
                        line = Line::Drop {
                            tag: answer_tag(&text),
                            reply,
                        };
                    } else if start {
                        let ends_idle = match self.while_idle(&text) {
                            Ok(ends_idle) => ends_idle,
                            Err(refused) => {
                                line = refused;
                                self.text(&text, end, &mut line, &mut sasl, &mut framer, server)
                                    .await?;
                                continue;
                            }
                        };
                        line = self.begin(&text, sasl.as_ref());
                        match &line {
                            Line::Relay {
                                tag: Some(tag),
                                shown_as: None,
                                ..
                            } => self.count_running(tag).await?,
                            // A line the front reads no command in, but a server might
                            // read a tag in: answered here, so that no answer of the
                            // server's under a tag the front did not see can pass for
                            // another command's.
                            Line::Relay { tag: None, .. } => {
                                if let Some(tag) = not_a_command(&text, ends_idle) {
                                    line = Line::Drop {
                                        tag,
                                        reply: "BAD Error in IMAP command.",
                                    };
                                }
                            }
                            _ => {}
                        }
                    } else if unrelayable.is_some() && matches!(line, Line::Relay { .. }) {
                        // Part of the line went: the server holds its start.
                        return Err(SessionEnd::OutOfStep);
                    }
                    // A literal that waits for no "+" in a line the front reads no command
                    // in: a server that cannot read the line either ends it at its line
                    // end, and would take the literal's octets for commands. Refused
                    // (a synchronizing one is refused in `text`, before its "+").
                    if let Line::Relay { tag: None, .. } = &line
                        && matches!(
                            end,
                            End::Literal {
                                synchronizing: false,
                                ..
                            }
                        )
                    {
                        if !start {
                            return Err(SessionEnd::OutOfStep);
                        }
                        self.answer(b"* BAD Error in IMAP command.\r\n".to_vec())
                            .await?;
                        line = Line::Discard;
                    }
                    self.text(&text, end, &mut line, &mut sasl, &mut framer, server)
                        .await?;
                }
                Piece::Literal { len, .. } => {
                    let data = buffer.split_to(len);
                    match &mut line {
                        Line::Relay {
                            gather,
                            tag,
                            login,
                            auth,
                            ..
                        } => {
                            // A login the server answered already reads no literal: the
                            // server would take these octets for commands.
                            if (*login || auth.is_some())
                                && tag.as_deref().is_some_and(|t| self.answered_early(t))
                            {
                                return Err(SessionEnd::OutOfStep);
                            }
                            keep(gather, &data);
                            self.to_server(server, &data).await?;
                        }
                        Line::Answer { command, tag, .. } => {
                            if command.len() + data.len() > MAX_ANSWERED {
                                line = Line::Drop {
                                    tag: tag.clone(),
                                    reply: TOO_LONG,
                                };
                            } else {
                                command.extend_from_slice(&data);
                            }
                        }
                        Line::Drop { .. } | Line::Discard | Line::None | Line::Sasl => {}
                    }
                }
                // A piece this build does not know is not relayed unread.
                _ => return Err(SessionEnd::Unframed),
            }
        }
    }

    /// What the line that begins with `text` is.
    fn begin(&self, text: &[u8], sasl: Option<&Sasl>) -> Line {
        let relayed = |tag: Option<String>| Line::Relay {
            tag,
            shown_as: None,
            rename: false,
            waited: false,
            gather: None,
            login: false,
            auth: None,
        };
        if sasl.is_some() {
            return Line::Sasl;
        }
        let Some((tag, name, rest)) = relay::command(text) else {
            return relayed(None);
        };
        let tag = tag.as_str().to_owned();
        if tag.len() > MAX_TAG_LEN {
            return Line::Drop {
                tag: shown_tag(tag.as_bytes()),
                reply: "BAD Tag too long.",
            };
        }
        let (authenticated, in_use) = {
            let shared = crate::lock(&self.meeting.shared);
            (shared.authenticated, shared.running.tags.contains_key(&tag))
        };
        let kind = intercept::classify(name, rest);
        // A login goes under a tag of the front's own: its client tag is no matter.
        let renamed = !authenticated && matches!(kind, Kind::Login | Kind::Authenticate(_));
        if in_use && !renamed {
            return Line::Drop { tag, reply: IN_USE };
        }
        // A login goes to the server under a tag of the front's own, so that no answer
        // to another command the client sent with the same tag, still on its way, can
        // pass for the login's.
        let login_tag = match kind {
            Kind::Login | Kind::Authenticate(_) if !authenticated => match front_tag() {
                Some(front) => Some(front),
                None => {
                    return Line::Drop {
                        tag,
                        reply: "NO [UNAVAILABLE] Try again later.",
                    };
                }
            },
            _ => None,
        };
        match kind {
            Kind::Xaps | Kind::WebPush if !authenticated => relayed(Some(tag)),
            kind @ (Kind::Xaps
            | Kind::WebPush
            | Kind::StartTls
            | Kind::Compress
            | Kind::Unauthenticate) => Line::Answer {
                kind,
                tag,
                command: Vec::new(),
            },
            Kind::Login if !authenticated => Line::Relay {
                tag: login_tag,
                shown_as: Some(tag),
                rename: true,
                waited: false,
                gather: Some(Zeroizing::new(Vec::new())),
                login: true,
                auth: None,
            },
            Kind::Authenticate(mechanism) if !authenticated => {
                let map = &self.ctx.front.user_map;
                // Refused, and nothing of it sent, unless the front reads it as the
                // server will: whether it carries a response, and which.
                let Some(initial) = intercept::authenticate_line(rest) else {
                    return Line::Drop {
                        tag,
                        reply: "BAD Error in IMAP command: an AUTHENTICATE line of a form the front does not relay.",
                    };
                };
                // An empty one (`=`) is none to the LOGIN mechanism (Dovecot asks for
                // the user name next), whose user name then comes in the first response.
                let initial = initial.filter(|ir| !(mechanism == Mechanism::Login && *ir == b"="));
                let candidate = match (mechanism, initial) {
                    (Mechanism::Plain, Some(ir)) => intercept::plain_user(ir, map),
                    (Mechanism::Login, Some(ir)) => intercept::login_mechanism_user(ir, map),
                    _ => None,
                };
                let exchange = Sasl {
                    mechanism,
                    responses: u32::from(initial.is_some()),
                };
                Line::Relay {
                    tag: login_tag,
                    shown_as: Some(tag),
                    rename: true,
                    waited: false,
                    gather: None,
                    login: false,
                    auth: Some((exchange, candidate)),
                }
            }
            Kind::Idle => {
                // Said before the IDLE goes, so that its "+" cannot come first.
                crate::lock(&self.meeting.shared).idle.push_back(Idle {
                    tag: tag.clone(),
                    continued: false,
                    done: false,
                });
                relayed(Some(tag))
            }
            _ => relayed(Some(tag)),
        }
    }

    /// A piece of text of the current line, ending as `end` says.
    async fn text(
        &mut self,
        text: &[u8],
        end: End,
        line: &mut Line,
        sasl: &mut Option<Sasl>,
        framer: &mut Stream,
        server: &mut (impl AsyncWrite + Unpin),
    ) -> Result<(), SessionEnd> {
        if let Line::Answer { command, tag, .. } = line
            && command.len() + text.len() > MAX_ANSWERED
        {
            *line = Line::Drop {
                tag: tag.clone(),
                reply: TOO_LONG,
            };
        }
        match line {
            Line::None => Ok(()),
            Line::Discard => match end {
                End::Line => {
                    *line = Line::None;
                    Ok(())
                }
                // The client waits for a "+" that is not coming: told so.
                End::Literal {
                    synchronizing: true,
                    ..
                } => {
                    framer.refuse_literal();
                    *line = Line::None;
                    self.answer(b"* BAD Error in IMAP command.\r\n".to_vec())
                        .await
                }
                _ => Ok(()),
            },
            Line::Drop { tag, reply } => {
                let answer = tagged(tag, reply);
                match end {
                    End::Line => {
                        *line = Line::None;
                        self.answer(answer).await
                    }
                    End::Literal {
                        synchronizing: true,
                        ..
                    } => {
                        framer.refuse_literal();
                        *line = Line::None;
                        self.answer(answer).await
                    }
                    _ => Ok(()),
                }
            }
            Line::Answer { command, tag, kind } => {
                command.extend_from_slice(text);
                match end {
                    End::Line => {
                        let (kind, tag, command) = (*kind, tag.clone(), std::mem::take(command));
                        *line = Line::None;
                        // Boxed: answering goes through the store, whose futures are
                        // large; idle sessions then carry no room for them.
                        let reply = Box::pin(self.answered(kind, &tag, &command)).await;
                        self.answer(reply).await
                    }
                    // Refused before "+" when the literal cannot fit: the client then
                    // sends none of it.
                    End::Literal {
                        synchronizing: true,
                        len,
                    } if usize::try_from(len)
                        .ok()
                        .and_then(|len| len.checked_add(command.len()))
                        .is_none_or(|whole| whole > MAX_ANSWERED) =>
                    {
                        let answer = tagged(tag, TOO_LONG);
                        framer.refuse_literal();
                        *line = Line::None;
                        self.answer(answer).await
                    }
                    End::Literal {
                        synchronizing: true,
                        ..
                    } => self.answer(b"+ Ready for literal data\r\n".to_vec()).await,
                    _ => Ok(()),
                }
            }
            Line::Sasl => {
                let Some(exchange) = sasl.as_mut() else {
                    return Ok(());
                };
                if let End::Literal { synchronizing, .. } = end {
                    // A SASL response is base64 or "*", never a literal. The server
                    // would take the line as the response and what follows it as
                    // commands the front never read: the exchange is cancelled instead
                    // (a "*" after a piece that went, a response the server refuses),
                    // and the rest of the line dropped.
                    if synchronizing {
                        framer.refuse_literal();
                        *line = Line::None;
                    } else {
                        *line = Line::Discard;
                    }
                    self.to_server(server, b"*\r\n").await?;
                    if self.wait().await? == Answer::Done {
                        *sasl = None;
                    }
                    return Ok(());
                }
                exchange.responses = exchange.responses.saturating_add(1);
                // The user name is in the first response of PLAIN (without an initial
                // response) and of LOGIN.
                if exchange.responses == 1 && end == End::Line {
                    let map = &self.ctx.front.user_map;
                    let candidate = match exchange.mechanism {
                        Mechanism::Plain => intercept::plain_user(text, map),
                        Mechanism::Login => intercept::login_mechanism_user(text, map),
                        Mechanism::Unreadable => None,
                    };
                    if let Some(awaiting) = crate::lock(&self.meeting.shared).awaiting.as_mut()
                        && awaiting.candidate.is_none()
                    {
                        awaiting.candidate = candidate;
                    }
                }
                self.to_server(server, text).await?;
                if end == End::Line {
                    *line = Line::None;
                    if self.wait().await? == Answer::Done {
                        *sasl = None;
                    }
                }
                Ok(())
            }
            Line::Relay {
                tag,
                shown_as,
                rename,
                gather,
                login,
                auth,
                waited,
            } => {
                keep(gather, text);
                let synchronizing = matches!(
                    end,
                    End::Literal {
                        synchronizing: true,
                        ..
                    }
                );
                // A literal that waits for no "+" goes as one that does: the front asks
                // the server's "+" in the client's place, so that a server that never
                // reads it (it refused the command early, or the command reads no
                // arguments, and it skips to the line's end) does not take its octets
                // for commands.
                let converted = matches!(
                    end,
                    End::Literal {
                        synchronizing: false,
                        ..
                    }
                );
                let Some(tag) = tag.clone() else {
                    if synchronizing {
                        // Not a command the front can read: the server's answer to it
                        // cannot be told from others, so it is refused here instead.
                        framer.refuse_literal();
                        *line = Line::None;
                        return self
                            .answer(b"* BAD Error in IMAP command.\r\n".to_vec())
                            .await;
                    }
                    self.to_server(server, text).await?;
                    if end == End::Line {
                        *line = Line::None;
                    }
                    return Ok(());
                };
                let logging_in = *login || auth.is_some();
                // `rename` is set until the line's first piece goes. A piece of a login
                // after the first, and one after a literal that was waited on, must find
                // the command still unanswered: a server that ended it reads what
                // follows as commands of their own.
                let continuing = (logging_in && !*rename) || *waited;
                if logging_in {
                    // A login goes on only where the front reads it as the server
                    // will: a literal where the grammar takes one (a server may read
                    // a line's end where the front would read an announcement), never
                    // in an AUTHENTICATE line, and no line too long to read whole.
                    let readable = match end {
                        End::Line => true,
                        End::Literal { .. } => {
                            *login
                                && gather
                                    .as_deref()
                                    .is_some_and(|g| intercept::login_literal_allowed(g))
                        }
                        _ => false,
                    };
                    if !readable {
                        // Part of it went (`continuing`): the server holds the rest.
                        if continuing {
                            return Err(SessionEnd::OutOfStep);
                        }
                        // Nothing of it went: refused here, as a server would.
                        let tag = shown_as.clone().unwrap_or_default();
                        let reply = "BAD Error in IMAP command: a literal where none may be.";
                        if synchronizing {
                            framer.refuse_literal();
                            *line = Line::None;
                            return self.answer(tagged(&tag, reply)).await;
                        }
                        *line = Line::Drop { tag, reply };
                        return Ok(());
                    }
                }
                // Said before the octets go, so the answer cannot come first.
                let waits = if *login && end == End::Line {
                    let candidate = gather
                        .as_deref()
                        .and_then(|g| intercept::login_user(g, &self.ctx.front.user_map));
                    self.expect(&tag, shown_as.clone(), true, candidate, continuing, false)?;
                    true
                } else if let Some((_, candidate)) = auth.as_mut().filter(|_| end == End::Line) {
                    self.expect(
                        &tag,
                        shown_as.clone(),
                        true,
                        candidate.take(),
                        continuing,
                        false,
                    )?;
                    true
                } else if synchronizing || converted {
                    self.expect(&tag, shown_as.clone(), *login, None, continuing, converted)?;
                    *waited = true;
                    true
                } else {
                    if end == End::Line {
                        // A command the front does not wait on: nothing of its answer is
                        // to be said.
                        self.forget(&tag);
                    }
                    false
                };
                let text = match converted {
                    true => std::borrow::Cow::Owned(
                        imap_syntax::framing::synchronizing(text).ok_or(SessionEnd::Unframed)?,
                    ),
                    false => std::borrow::Cow::Borrowed(text),
                };
                match shown_as.as_deref().filter(|_| std::mem::take(rename)) {
                    Some(theirs) => {
                        let after = text.get(theirs.len()..).unwrap_or_default();
                        self.to_server(server, &[tag.as_bytes(), after].concat())
                            .await?;
                    }
                    None => self.to_server(server, &text).await?,
                }
                if !waits {
                    if end == End::Line {
                        *line = Line::None;
                    }
                    return Ok(());
                }
                let answer = self.wait().await?;
                if synchronizing || converted {
                    if answer == Answer::Done {
                        if converted {
                            // Refused instead of "+": the client sends its literal all
                            // the same, and the rest of its line; the server has had
                            // all of the command it will read.
                            *line = Line::Discard;
                        } else {
                            // The client sends no literal.
                            framer.refuse_literal();
                            *line = Line::None;
                        }
                    }
                    return Ok(());
                }
                // A login's or an exchange's whole command line went: nothing more is
                // read until the server has said whether it worked, since the next
                // command may be a push command.
                let exchange = auth.take().map(|(exchange, _)| exchange);
                *line = Line::None;
                if answer == Answer::GoOn {
                    match exchange {
                        Some(exchange) => *sasl = Some(exchange),
                        None => while self.wait().await? != Answer::Done {},
                    }
                }
                Ok(())
            }
        }
    }

    /// Counts the command tagged `tag` as running, once fewer than [`MAX_RUNNING`] are.
    async fn count_running(&self, tag: &str) -> Result<(), SessionEnd> {
        let counted = async {
            loop {
                {
                    let mut shared = crate::lock(&self.meeting.shared);
                    let running = &mut shared.running;
                    if running.total < MAX_RUNNING {
                        *running.tags.entry(tag.to_owned()).or_default() += 1;
                        running.total += 1;
                        return;
                    }
                }
                // A wake-up given before this waits is kept for it: none is lost.
                self.meeting.released.notified().await;
            }
        };
        tokio::time::timeout(ANSWER_TIMEOUT, counted)
            .await
            .map_err(|_| SessionEnd::TimedOut("the IMAP server"))
    }

    /// The client's half will wait on the command tagged `tag`.
    /// With `continuing`, the command is a login part of which went already: the server
    /// must not have answered it yet (checked under the same lock as the waiting is
    /// said, so that an answer cannot slip between), or the session is out of step.
    /// With `hidden`, the "+" awaited is the front's own (see [`Awaiting::hidden`]).
    fn expect(
        &mut self,
        tag: &str,
        shown_as: Option<String>,
        login: bool,
        candidate: Option<UserName>,
        continuing: bool,
        hidden: bool,
    ) -> Result<(), SessionEnd> {
        let mut shared = crate::lock(&self.meeting.shared);
        if continuing {
            if shared.answered(tag) {
                return Err(SessionEnd::OutOfStep);
            }
        } else {
            // Nothing said before belongs to this command.
            shared.answer = None;
        }
        match shared.awaiting.as_mut() {
            Some(awaiting) if awaiting.tag == tag => {
                if candidate.is_some() {
                    awaiting.candidate = candidate;
                }
                awaiting.hidden = hidden;
            }
            _ => {
                shared.awaiting = Some(Awaiting {
                    tag: tag.to_owned(),
                    shown_as,
                    login,
                    candidate,
                    hidden,
                });
            }
        }
        Ok(())
    }

    /// Whether the server answered the command tagged `tag`, which the client's half
    /// waits on, before its end went: it no longer waits on it, or an answer to it is
    /// there unread.
    fn answered_early(&self, tag: &str) -> bool {
        crate::lock(&self.meeting.shared).answered(tag)
    }

    /// While an IDLE runs and DONE has not gone, the server reads only DONE: a line
    /// beginning with `text` is answered `BAD` by the front and never sent (a server
    /// would end the IDLE, never answer the line, and read any literal of it as
    /// commands): the refusal is the error. DONE goes, and ends that: `Ok(true)`.
    /// `Ok(false)` when no IDLE waits for DONE.
    fn while_idle(&self, text: &[u8]) -> Result<bool, Line> {
        let mut shared = crate::lock(&self.meeting.shared);
        // Only the latest IDLE can wait for DONE: an earlier one had it before the
        // next IDLE could go.
        let Some(idle) = shared.idle.back_mut().filter(|i| !i.done) else {
            return Ok(false);
        };
        if is_done(text) {
            idle.done = true;
            return Ok(true);
        }
        let tag = relay::command(text).map_or_else(
            || "*".to_owned(),
            |(t, _, _)| shown_tag(t.as_str().as_bytes()),
        );
        Err(Line::Drop {
            tag,
            reply: "BAD Expected DONE.",
        })
    }

    /// The command tagged `tag` is not waited on (any more).
    fn forget(&self, tag: &str) {
        let mut shared = crate::lock(&self.meeting.shared);
        if shared.awaiting.as_ref().is_some_and(|a| a.tag == tag) {
            shared.awaiting = None;
        }
    }

    /// Waits for the server's answer to the command awaited.
    async fn wait(&mut self) -> Result<Answer, SessionEnd> {
        let waited = async {
            loop {
                if let Some(answer) = crate::lock(&self.meeting.shared).answer.take() {
                    return answer;
                }
                // A wake-up given before this waits is kept for it: none is lost.
                self.meeting.answered.notified().await;
            }
        };
        tokio::time::timeout(ANSWER_TIMEOUT, waited)
            .await
            .map_err(|_| SessionEnd::TimedOut("the IMAP server"))
    }

    /// Hands the front's own lines to the server's half, to go between its lines;
    /// waits while [`MAX_INJECTED`] are queued.
    async fn answer(&self, lines: Vec<u8>) -> Result<(), SessionEnd> {
        let mut lines = Some(lines);
        loop {
            {
                let mut shared = crate::lock(&self.meeting.shared);
                if shared.injected.len() < MAX_INJECTED {
                    shared.injected.extend(lines.take());
                }
            }
            if lines.is_none() {
                self.meeting.queued.notify_one();
                return Ok(());
            }
            self.meeting.taken.notified().await;
        }
    }

    /// The front's answer to a whole command it answers.
    async fn answered(&self, kind: Kind, tag: &str, command: &[u8]) -> Vec<u8> {
        let (user, allowed) = {
            let mut shared = crate::lock(&self.meeting.shared);
            let allowed = !matches!(kind, Kind::Xaps | Kind::WebPush)
                || shared.push_command(std::time::Instant::now());
            (shared.user.clone(), allowed)
        };
        if !allowed {
            let name = if kind == Kind::Xaps {
                "xapplepushservice"
            } else {
                "webpush"
            };
            self.ctx.metrics.front_command(name, "rate_limited");
            return tagged(
                tag,
                "NO [LIMIT] Too many push commands in this session: try again in a minute.",
            );
        }
        let core = &self.ctx.core;
        match kind {
            Kind::StartTls => tagged(tag, "BAD TLS is already active."),
            Kind::Compress => tagged(tag, "NO COMPRESS is not available here."),
            Kind::Unauthenticate => tagged(tag, "NO UNAUTHENTICATE is not available here."),
            Kind::Xaps => {
                let Some(user) = user.filter(|_| core.apns().is_live()) else {
                    self.ctx
                        .metrics
                        .front_command("xapplepushservice", "unavailable");
                    return tagged(tag, "NO [CANNOT] Push is not available on this connection.");
                };
                super::answer::xaps(&self.ctx.core, &self.ctx.metrics, &user, tag, command).await
            }
            Kind::WebPush => {
                let Some(user) = user else {
                    self.ctx.metrics.front_command("webpush", "unavailable");
                    return tagged(tag, "NO [CANNOT] Push is not available on this connection.");
                };
                super::answer::webpush(
                    &self.ctx.core,
                    &self.ctx.metrics,
                    &user,
                    self.connection,
                    tag,
                    command,
                )
                .await
            }
            Kind::Login | Kind::Authenticate(_) | Kind::Idle | Kind::Other => {
                tagged(tag, "BAD Error in IMAP command.")
            }
        }
    }
}

/// Keeps `octets` in `gather` while it stays within [`MAX_GATHERED`]; past it, gives
/// up (the user name is then unknown).
fn keep(gather: &mut Option<Zeroizing<Vec<u8>>>, octets: &[u8]) {
    if let Some(kept) = gather {
        if kept.len() + octets.len() > MAX_GATHERED {
            *gather = None;
        } else {
            kept.extend_from_slice(octets);
        }
    }
}

/// The capability lists as the client should see them now.
fn edit(ctx: &Context, shared: &Shared) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut remove = vec![
        xaps_proto::CAPABILITY,
        imap_webpush_proto::CAPABILITY,
        "COMPRESS=",
        "STARTTLS",
        "UNAUTHENTICATE",
    ];
    if ctx.front.hide_unreadable_mechanisms {
        remove.push("AUTH=");
    }
    let mut add = Vec::new();
    // A server sends the logged-in list just before its OK to the login (Dovecot
    // does, after a client asked CAPABILITY first), and only when the login worked.
    let logging_in = shared
        .awaiting
        .as_ref()
        .is_some_and(|a| a.login && a.candidate.is_some());
    if (shared.authenticated && shared.user.is_some()) || logging_in {
        if ctx.core.webpush_enabled() {
            add.push(imap_webpush_proto::CAPABILITY);
        }
        // Last, where the xaps plugin puts it.
        if ctx.core.apns().is_live() {
            add.push(xaps_proto::CAPABILITY);
        }
    }
    (remove, add)
}

/// The server's half: responses to the client, the front's own lines between them.
async fn server_half(
    ctx: &Context,
    mut server: impl AsyncRead + Unpin,
    mut client: impl AsyncWrite + Unpin,
    read_ahead: BytesMut,
    meeting: &Meeting,
) -> SessionEnd {
    let shared = &meeting.shared;
    let mut inbox = Inbox::new(read_ahead);
    let mut framer = Stream::new(ctx.front.max_line);
    let mut first = true;
    let mut said_bye = false;
    // A client that never logs in holds a session for no longer, whatever the
    // server's own limit; once a login was accepted, the clock is off.
    let login_timeout = tokio::time::sleep(ctx.front.login_timeout);
    tokio::pin!(login_timeout);
    let mut timing_login = true;
    loop {
        // Everything whole in the buffer goes out as it came, but for the lines the
        // front edits: the octets passed on are never copied.
        let mut out: Vec<BytesMut> = Vec::new();
        let mut passed = BytesMut::new();
        let buffer = &mut inbox.buffer;
        loop {
            match framer.next(buffer) {
                Piece::Text { len, start, end } => {
                    let text = buffer.split_to(len);
                    if start {
                        said_bye |= relay::untagged_status(&text) == Some(Status::Bye);
                        let (answer, edited, released) =
                            read_response(ctx, &text, shared, first, end);
                        first = false;
                        if released {
                            meeting.released.notify_one();
                        }
                        if let Some(answer) = answer {
                            let before = crate::lock(shared).answer.replace(answer);
                            // The client's half waits on one answer at a time: more
                            // is a server answering what it was not asked.
                            if before.is_some() {
                                tracing::warn!(
                                    "IMAP front: the server answered more than was asked"
                                );
                            }
                            meeting.answered.notify_one();
                        }
                        if let Some(edited) = edited {
                            out.push(std::mem::take(&mut passed));
                            out.push(BytesMut::from(&edited[..]));
                            continue;
                        }
                    }
                    // Adjacent in the buffer: joined without a copy.
                    passed.unsplit(text);
                }
                Piece::Literal { len, .. } => passed.unsplit(buffer.split_to(len)),
                Piece::Incomplete => break,
                // A piece this build does not know is not relayed unread.
                _ => return SessionEnd::Unframed,
            }
        }
        out.push(passed);
        let octets: usize = out.iter().map(BytesMut::len).sum();
        if octets > 0 {
            if let Err(end) = write_all(&mut client, &out, "client").await {
                return end;
            }
            ctx.metrics.front_octets("to_client", octets);
        }
        // The octets passed on are views of the read buffer: let go of them before the
        // next read, so that it can reuse the buffer, and a quiet server's session
        // holds no burst's block.
        drop(out);
        // The front's own lines, between the server's.
        if framer.between_lines() {
            let queued: Vec<Vec<u8>> = crate::lock(shared).injected.drain(..).collect();
            if !queued.is_empty() {
                meeting.taken.notify_one();
                if let Err(end) = write_all(&mut client, &queued, "client").await {
                    return end;
                }
                continue;
            }
        }
        tokio::select! {
            () = meeting.queued.notified(), if framer.between_lines() => {}
            read = inbox.read(&mut server, "IMAP server") => match read {
                Ok(0) => {
                    // What it said last was written; its end is the session's. After
                    // the client ended its side, it is the end the client asked for.
                    let asked = crate::lock(shared).client_ended;
                    goodbye(&mut client, &framer, said_bye || asked, SERVER_CLOSED).await;
                    return if asked {
                        SessionEnd::ClientClosed
                    } else {
                        SessionEnd::ServerClosed
                    };
                }
                Ok(_) => {}
                Err(end) => {
                    goodbye(&mut client, &framer, said_bye, SERVER_CLOSED).await;
                    return end;
                }
            },
            () = &mut login_timeout, if timing_login => {
                if crate::lock(shared).authenticated {
                    timing_login = false;
                } else {
                    goodbye(&mut client, &framer, said_bye, NO_LOGIN).await;
                    return SessionEnd::TimedOut("the client's login");
                }
            }
        }
    }
}

/// Said when the server's connection ended.
const SERVER_CLOSED: &[u8] = b"* BYE [UNAVAILABLE] The IMAP server closed the connection.\r\n";

/// Said when the client did not log in in time.
const NO_LOGIN: &[u8] = b"* BYE Disconnected: no login in time.\r\n";

/// The session ends: the client is told so (`bye`), as a server would tell it, unless
/// the server said goodbye itself or the end came within a line (a literal cut short
/// cannot be followed by anything the client would read as a line); then its
/// connection is closed cleanly.
async fn goodbye(
    client: &mut (impl AsyncWrite + Unpin),
    framer: &Stream,
    said_bye: bool,
    bye: &[u8],
) {
    let closing = async {
        if !said_bye && framer.between_lines() {
            client.write_all(bye).await?;
        }
        client.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), closing).await;
}

/// Reads the start of a response line: tells the client's half what it waits on, and
/// records a login's outcome and the end of a running command. What to tell the
/// client's half, the line as the client should see it when its tag or capability
/// list was edited, and whether a running command ended.
fn read_response(
    ctx: &Context,
    text: &[u8],
    shared: &Mutex<Shared>,
    greeting: bool,
    end: End,
) -> (Option<Answer>, Option<Vec<u8>>, bool) {
    let mut state = crate::lock(shared);
    let mut answer = None;
    let mut renamed = None;
    let response = relay::response(text);
    let released = match &response {
        Some(Response::Tagged { tag, .. }) => state.running.answered(tag.as_str()),
        _ => false,
    };
    // An IDLE's tagged answer ends it, whether its "+" came or not (a server may
    // refuse it instead).
    if let Some(Response::Tagged { tag, .. }) = &response
        && let Some(at) = state.idle.iter().position(|i| i.tag == tag.as_str())
    {
        state.idle.remove(at);
    }
    match response {
        Some(Response::Continuation) => {
            // A server answers in order: the first "+" owed to an IDLE is the oldest's,
            // never a literal's go-ahead.
            if let Some(idle) = state.idle.iter_mut().find(|i| !i.continued) {
                idle.continued = true;
            } else if let Some(awaiting) = state.awaiting.as_mut() {
                answer = Some(Answer::GoOn);
                // Asked for by the front alone: said to no one.
                if std::mem::take(&mut awaiting.hidden) && end == End::Line {
                    renamed = Some(Vec::new());
                }
            }
        }
        Some(Response::Tagged { tag, status })
            if state
                .awaiting
                .as_ref()
                .is_some_and(|a| a.tag == tag.as_str()) =>
        {
            let awaiting = state.awaiting.take();
            if let Some(theirs) = awaiting.as_ref().and_then(|a| a.shown_as.as_deref()) {
                let after = text.get(tag.as_str().len()..).unwrap_or_default();
                renamed = Some([theirs.as_bytes(), after].concat());
            }
            if let Some(awaiting) = awaiting
                && awaiting.login
                && status == Some(Status::Ok)
            {
                state.authenticated = true;
                state.unauthenticated = None;
                state.user = awaiting.candidate;
                match &state.user {
                    Some(user) => tracing::debug!(?user, "IMAP front: logged in"),
                    None => tracing::debug!(
                        "IMAP front: logged in by a mechanism whose user name cannot be read: no push extensions"
                    ),
                }
            }
            answer = Some(Answer::Done);
        }
        Some(Response::Untagged)
            if greeting && relay::untagged_status(text) == Some(Status::Preauth) =>
        {
            state.authenticated = true;
            state.unauthenticated = None;
        }
        _ => {}
    }
    if end == End::Line {
        let (remove, add) = edit(ctx, &state);
        let keep: &[&str] = if ctx.front.hide_unreadable_mechanisms {
            &READABLE_MECHANISMS
        } else {
            &[]
        };
        let edit = Edit {
            remove: &remove,
            add: &add,
            keep,
        };
        let mut out = Vec::new();
        if relay::edit_capabilities(renamed.as_deref().unwrap_or(text), &edit, &mut out) {
            return (answer, Some(out), released);
        }
    }
    (answer, renamed, released)
}

/// A tag for the front's own use: random, so that no client can send one like it.
fn front_tag() -> Option<String> {
    let mut random = [0u8; 16];
    let (bits, _) = random.split_at_mut(12);
    rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, bits).ok()?;
    // 96 random bits, 24 hex digits.
    Some(format!("mpf{:024x}", u128::from_be_bytes(random) >> 32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fronts_login_tags_are_24_random_hex_digits() {
        let (a, b) = (front_tag().unwrap(), front_tag().unwrap());
        assert_ne!(a, b);
        for tag in [a, b] {
            let digits = tag.strip_prefix("mpf").unwrap();
            assert_eq!(digits.len(), 24, "{tag}");
            assert!(
                digits
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
    }

    #[test]
    fn lines_without_a_command_are_answered_under_what_a_server_reads_as_their_tag() {
        let not_a_command = |line: &[u8]| not_a_command(line, false);
        assert_eq!(not_a_command(b"a\r\n").as_deref(), Some("a"));
        assert_eq!(not_a_command(b"a  NOOP\r\n").as_deref(), Some("a"));
        assert_eq!(not_a_command(b"a]b\r\n").as_deref(), Some("a]b"));
        assert_eq!(not_a_command(b"DONE x\r\n").as_deref(), Some("DONE"));
        // With no IDLE running, DONE is answered too.
        assert_eq!(not_a_command(b"DONE\r\n").as_deref(), Some("DONE"));
        // Its first word more than tag characters: answered untagged.
        assert_eq!(not_a_command(b"a%b NOOP\r\n").as_deref(), Some("*"));
        assert_eq!(not_a_command(b"a+1\r\n").as_deref(), Some("*"));
        // Longer than a tag the front relays: untagged too.
        let long = [vec![b'a'; MAX_TAG_LEN + 1], b"\r\n".to_vec()].concat();
        assert_eq!(not_a_command(&long).as_deref(), Some("*"));
        let longest = [vec![b'a'; MAX_TAG_LEN], b"\r\n".to_vec()].concat();
        assert_eq!(not_a_command(&longest).map(|t| t.len()), Some(MAX_TAG_LEN));
        // What begins with no tag character goes to the server, and so does the DONE
        // that ends an IDLE.
        for none in [
            &b"* x\r\n"[..],
            b"(x\r\n",
            b"+ x\r\n",
            b"\r\n",
            b" a NOOP\r\n",
        ] {
            assert_eq!(not_a_command(none), None, "{}", none.escape_ascii());
        }
        for done in [&b"DONE\r\n"[..], b"done \n"] {
            assert_eq!(super::not_a_command(done, true), None);
        }
    }
}
