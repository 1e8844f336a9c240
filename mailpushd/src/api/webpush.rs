//! IMAP WEBPUSH through the daemon: the IMAP server forwards each command, with the
//! authenticated user and an id for its connection, and writes back the response lines
//! the daemon answers with. Mail events become Web Push content for the user's active
//! subscriptions.
//!
//! ```text
//! POST /imap/webpush      X-Mailpush-User, X-Mailpush-Connection; body: the command
//!                         line as received, literals included, CRLF at the end
//!   200  body: the response lines to send to the client, in order, each with CRLF
//!   400  not one whole WEBPUSH command (the server should not have forwarded it)
//! POST /imap/disconnect   X-Mailpush-User, X-Mailpush-Connection; no body
//!   204  the connection's "until disconnect" silences ended
//! ```

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use imap_syntax::{Limits, Mailbox};
use imap_webpush_proto::content::{ContentBuilder, Envelope, Event, HeaderValues, MailboxEvents};
use imap_webpush_proto::state::{ConnectionId, Push, disconnect, handle, receives_pushes};
use imap_webpush_proto::{Command, Config, Refusal, Response as ImapResponse};
use sha2::Digest as _;
use webpush_crypto::{Encryptor, Topic, Urgency};
use xaps_proto::UserName;
use xaps_proto::daemon::{MessageSummary, Notify};

use super::{empty, text};
use crate::daemon::{Shared, WebPushState};
use crate::webpush::Delivery;

/// Forwarded commands arrive whole, literals included: nothing waits for `+`.
const FORWARDED: Config = Config {
    syntax: Limits {
        literal_handshake: false,
        ..Config::SERVER.syntax
    },
    max_message: Config::SERVER.max_message,
};

/// The forwarding headers: the authenticated user and the connection.
fn identity(headers: &HeaderMap) -> Option<(UserName, ConnectionId)> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let user = header("x-mailpush-user")?;
    let connection = header("x-mailpush-connection")?;
    Some((UserName::new(user).ok()?, connection_id(connection)))
}

fn no_identity() -> Response<Full<Bytes>> {
    text(
        StatusCode::BAD_REQUEST,
        "X-Mailpush-User and X-Mailpush-Connection are required\n",
    )
}

/// The IMAP server's connection id, as the state machine's: the same text always gives
/// the same id, in every daemon sharing a store.
fn connection_id(text: &str) -> ConnectionId {
    let digest = sha2::Sha256::digest(text.as_bytes());
    let word = |range: std::ops::Range<usize>| {
        digest
            .get(range)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_be_bytes)
    };
    ConnectionId {
        instance: word(0..8),
        serial: word(8..16),
    }
}

fn lines(responses: &[ImapResponse<'_>]) -> Response<Full<Bytes>> {
    let mut out = Vec::new();
    for response in responses {
        // Every response the state machine makes encodes; one that would not is left
        // out rather than sent broken.
        if let Err(e) = response.encode(&mut out) {
            tracing::error!(error = %e, "response not encoded");
        }
    }
    let mut reply = Response::new(Full::new(Bytes::from(out)));
    reply.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    reply
}

/// `POST /imap/webpush`.
pub(crate) async fn command(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let Some((user, connection)) = identity(headers) else {
        return no_identity();
    };
    let command = match Command::decode(body, &FORWARDED) {
        Ok((&[], command)) => command,
        Ok(_) => return text(StatusCode::BAD_REQUEST, "one command per request\n"),
        Err(e) => {
            return match e.response() {
                // BAD, with the grammar's words: the client's error, answered.
                Some(bad) => lines(&[bad]),
                None => text(
                    StatusCode::BAD_REQUEST,
                    format!("not one whole WEBPUSH command: {e}\n"),
                ),
            };
        }
    };
    let Some(webpush) = &shared.webpush else {
        return lines(&[Refusal::Unavailable.response(command.tag.clone().into_owned())]);
    };
    let settings = webpush.settings();
    let now = SystemTime::now();
    let result = shared
        .store
        .update_webpush(&user, |account| {
            let t = handle(
                &command,
                account,
                &settings,
                now,
                connection,
                &mut rand_core::OsRng,
            );
            let changes = t.changes.clone();
            (t, changes)
        })
        .await;
    let transition = match result {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, %user, "WEBPUSH not stored");
            return lines(&[Refusal::Unavailable.response(command.tag.into_owned())]);
        }
    };
    let since = Instant::now();
    for push in transition.pushes {
        webpush.sender.spawn(Delivery {
            user: std::sync::Arc::new(user.clone()),
            push,
            // The user is waiting for the verification push.
            urgency: Urgency::High,
            topic: None,
            generic: None,
            since,
        });
    }
    let mut responses = transition.untagged;
    responses.push(transition.tagged);
    lines(&responses)
}

/// `POST /imap/disconnect`.
pub(crate) async fn closed(shared: &Shared, headers: &HeaderMap) -> Response<Full<Bytes>> {
    let Some((user, connection)) = identity(headers) else {
        return no_identity();
    };
    match shared
        .store
        .update_webpush(&user, |account| ((), disconnect(account, connection)))
        .await
    {
        Ok(()) => empty(StatusCode::NO_CONTENT),
        Err(e) => {
            tracing::error!(error = %e, %user, "disconnect not stored");
            text(StatusCode::INTERNAL_SERVER_ERROR, "not stored\n")
        }
    }
}

/// A `Topic` per mailbox, so a push service keeps only the newest unsent push of each.
fn topic(mailbox: &str) -> Option<Topic> {
    let digest = sha2::Sha256::digest(mailbox.as_bytes());
    let text = webpush_crypto::base64url::encode(&digest);
    Topic::new(text.get(..webpush_crypto::MAX_TOPIC_LEN)?).ok()
}

/// The events of a notify, as push content: new messages with what the event source
/// told of them; otherwise none, which is the generic `* SELECT` push.
fn events(notify: &Notify) -> Vec<Event<'_>> {
    notify
        .messages
        .iter()
        .filter_map(|m: &MessageSummary| {
            let uid = std::num::NonZeroU32::new(m.uid)?;
            Some(Event::NewMessage {
                uid,
                envelope: Box::new(Envelope::from_header_values(&HeaderValues {
                    date: &m.date,
                    subject: &m.subject,
                    from: &m.from,
                    message_id: &m.message_id,
                })),
                flags: None,
            })
        })
        .collect()
}

/// Pushes a notify to `user`'s active subscriptions: new mail at once, with its
/// envelopes where the source gave them; other events after the quiet period, as the
/// generic push.
pub(crate) async fn notify(shared: &Shared, webpush: &WebPushState, notify: &Notify) {
    if !notify.is_message_new() {
        webpush.later(&notify.username, &notify.mailbox, Instant::now());
        return;
    }
    let groups = [MailboxEvents {
        mailbox: Mailbox::new(&notify.mailbox),
        events: events(notify),
    }];
    deliver(
        shared,
        webpush,
        &notify.username,
        &notify.mailbox,
        &groups,
        Urgency::High,
    )
    .await;
}

/// The generic push (`* SELECT <mailbox>`) for `user`, after a quiet period.
pub(crate) async fn generic(
    shared: &Shared,
    webpush: &WebPushState,
    user: &UserName,
    mailbox: &str,
) {
    let groups = [MailboxEvents {
        mailbox: Mailbox::new(mailbox),
        events: Vec::new(),
    }];
    deliver(shared, webpush, user, mailbox, &groups, Urgency::Normal).await;
}

async fn deliver(
    shared: &Shared,
    webpush: &WebPushState,
    user: &UserName,
    mailbox: &str,
    groups: &[MailboxEvents<'_>],
    urgency: Urgency,
) {
    // Read in one query, then decoded one by one as they are taken: the first pushes
    // are on their way while the rest are decoded.
    let records = match shared.store.webpush_records(user).await {
        Ok(records) => records,
        Err(e) => {
            tracing::error!(error = %e, %user, "subscriptions not read");
            return;
        }
    };
    let settings = webpush.settings();
    let now = SystemTime::now();
    let builder = ContentBuilder::for_encryptor(&Encryptor::new());
    let content = builder.build_content(groups);
    let generic = builder
        .build(&[MailboxEvents {
            mailbox: Mailbox::new(mailbox),
            events: Vec::new(),
        }])
        .into_iter()
        .next();
    // What to send instead of each push if the service finds it too large.
    let instead: Vec<Option<Vec<u8>>> = content
        .pushes
        .iter()
        .map(|plaintext| generic.clone().filter(|g| g != plaintext))
        .collect();
    let topic = topic(mailbox);
    let shared_user: std::sync::Arc<UserName> = std::sync::Arc::new(user.clone());
    let since = Instant::now();
    let mut targets = 0_usize;
    for record in records {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                tracing::error!(error = %e, %user, "a subscription not read: no push for it");
                continue;
            }
        };
        // "Until this connection ends" holds until the IMAP server reports the end.
        if !receives_pushes(&record, &settings, now, |_| true) {
            continue;
        }
        targets += 1;
        for (plaintext, generic) in content.pushes.iter().zip(&instead) {
            webpush.sender.spawn(Delivery {
                user: shared_user.clone(),
                push: Push::new(&record, plaintext.clone()),
                urgency,
                topic: topic.clone(),
                generic: generic.clone(),
                since,
            });
        }
    }
    if targets > 0 {
        for left in &content.left_out {
            tracing::info!(%user, %mailbox, ?left, "left out of a push to stay within its size");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_per_mailbox_and_valid() {
        let inbox = topic("INBOX").unwrap();
        assert_eq!(inbox.as_str().len(), 32);
        assert_ne!(topic("Work"), Some(inbox));
    }

    #[test]
    fn connection_ids_are_stable() {
        assert_eq!(connection_id("imap-1"), connection_id("imap-1"));
        assert_ne!(connection_id("imap-1"), connection_id("imap-2"));
    }
}
