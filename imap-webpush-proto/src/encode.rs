//! Encoders: commands (client side) and responses (server side), each ending in CRLF.
//!
//! Strings take their shortest valid form: atoms bare, others quoted, 8-bit or
//! multi-line text as a literal. Keys are written as base64url without padding.

use imap_syntax::{ValueError, encode};

use crate::command::{Command, CommandBody};
use crate::response::{Code, Response, Status};
use crate::types::{ListSelector, SilenceState};

impl Command<'_> {
    /// Appends the command line to `out`.
    ///
    /// A value written as a literal is a synchronizing one (`{n}` CRLF): a client sends
    /// the line up to that CRLF, waits for the server's `+`, then sends the rest (RFC
    /// 9051 §4.3), or rewrites it as `{n+}` where the server offers LITERAL+. Only an
    /// endpoint with 8-bit text, or one mostly `"` and `\`, is written so; a URL a
    /// browser serializes never is.
    ///
    /// ```
    /// use imap_syntax::Tag;
    /// use imap_webpush_proto::{Command, CommandBody, SubId};
    /// let command = Command {
    ///     tag: Tag::new("a5")?,
    ///     body: CommandBody::WebPush { sub_id: SubId::new("a8282bf9")?, subscription: None },
    /// };
    /// let mut out = Vec::new();
    /// command.encode(&mut out)?;
    /// assert_eq!(out, b"a5 WEBPUSH a8282bf9 NIL\r\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ValueError> {
        encode::tag(out, &self.tag);
        out.push(b' ');
        out.extend_from_slice(self.body.name().as_bytes());
        match &self.body {
            CommandBody::GetVapid => {}
            CommandBody::WebPush {
                sub_id,
                subscription,
            } => {
                out.push(b' ');
                encode::astring(out, sub_id.as_str().as_bytes())?;
                out.push(b' ');
                match subscription {
                    None => out.extend_from_slice(b"NIL"),
                    Some(args) => {
                        let endpoint = args.endpoint.as_str().as_bytes();
                        // `NIL` in its place deletes the subscription: an endpoint so
                        // spelled goes quoted, so that it reads back as itself.
                        if endpoint.eq_ignore_ascii_case(b"NIL") {
                            encode::string(out, endpoint)?;
                        } else {
                            encode::astring(out, endpoint)?;
                        }
                        out.push(b' ');
                        out.extend_from_slice(args.p256dh.to_base64url().as_bytes());
                        out.push(b' ');
                        out.extend_from_slice(args.auth.to_base64url().as_bytes());
                    }
                }
            }
            CommandBody::AckWebPush { token } => {
                out.push(b' ');
                encode::astring(out, token.as_str().as_bytes())?;
            }
            CommandBody::LWebPush { selector } => {
                out.push(b' ');
                match selector {
                    ListSelector::All => out.push(b'*'),
                    ListSelector::One(id) => encode::astring(out, id.as_str().as_bytes())?,
                }
            }
            CommandBody::SilWebPush { sub_id, seconds } => {
                out.push(b' ');
                encode::astring(out, sub_id.as_str().as_bytes())?;
                out.push(b' ');
                encode::number(out, u64::from(*seconds));
            }
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }
}

impl Response<'_> {
    /// Appends the response line to `out`.
    ///
    /// ```
    /// use imap_webpush_proto::Response;
    /// use webpush_crypto::PublicKey;
    /// let key = PublicKey::from_base64url(
    ///     "BOniQ9xHBPNY9gnQW4o-16vHqOb40pEIMifyUdFsxAgyzVkFMguxw0QrdbZcq8hRjN2zpeInRvKVPlkzABvuTnI",
    /// )?;
    /// let mut out = Vec::new();
    /// Response::Vapid(key).encode(&mut out)?;
    /// assert_eq!(out, b"* VAPID BOniQ9xHBPNY9gnQW4o-16vHqOb40pEIMifyUdFsxAgyzVkFMguxw0QrdbZcq8hRjN2zpeInRvKVPlkzABvuTnI\r\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ValueError> {
        match self {
            Response::Vapid(key) => {
                out.extend_from_slice(b"* VAPID ");
                out.extend_from_slice(key.to_base64url().as_bytes());
            }
            Response::WebPush {
                sub_id,
                endpoint,
                silence,
            } => {
                out.extend_from_slice(b"* WEBPUSH ");
                encode::astring(out, sub_id.as_str().as_bytes())?;
                out.push(b' ');
                encode::astring(out, endpoint.as_str().as_bytes())?;
                out.push(b' ');
                match silence {
                    SilenceState::NotSilenced => out.extend_from_slice(b"NIL"),
                    SilenceState::UntilDisconnect => out.push(b'0'),
                    SilenceState::For(n) => encode::number(out, u64::from(n.get())),
                }
            }
            Response::Status(status) => encode_status(out, status)?,
            Response::Continuation(text) => {
                out.push(b'+');
                if !text.as_str().is_empty() {
                    out.push(b' ');
                    out.extend_from_slice(text.as_str().as_bytes());
                }
            }
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }
}

/// Text that starts with `[` reads back as a response code unless a code comes first:
/// parsed text may (after a code, or in a continuation), and moved into a status
/// without a code it is refused rather than written as another response.
fn encode_status(out: &mut Vec<u8>, status: &Status<'_>) -> Result<(), ValueError> {
    if status.code.is_none() && status.text.as_str().starts_with('[') {
        return Err(ValueError::Character {
            what: "the text of a status without a response code, first,",
            byte: b'[',
        });
    }
    match &status.tag {
        Some(tag) => encode::tag(out, tag),
        None => out.push(b'*'),
    }
    out.push(b' ');
    out.extend_from_slice(status.kind.as_str().as_bytes());
    if let Some(code) = &status.code {
        out.extend_from_slice(b" [");
        match code {
            Code::Limit => out.extend_from_slice(b"LIMIT"),
            Code::Cannot => out.extend_from_slice(b"CANNOT"),
            Code::Other(other) => {
                encode::atom(out, other.name());
                if let Some(argument) = other.argument() {
                    out.push(b' ');
                    out.extend_from_slice(argument.as_bytes());
                }
            }
        }
        out.push(b']');
    }
    if !status.text.as_str().is_empty() {
        out.push(b' ');
        out.extend_from_slice(status.text.as_str().as_bytes());
    }
    Ok(())
}
