//! IMAP WEBPUSH forwarded by an IMAP server: it forwards each command, with the
//! authenticated user and an id for its connection, and writes back the response lines
//! the daemon answers with.
//!
//! ```text
//! POST /imap/webpush      X-Mailpush-User, X-Mailpush-Connection; body: the command
//!                         line as received, literals included, CRLF at the end
//!   200  body: the response lines to send to the client, in order, each with CRLF
//!   400  not one whole WEBPUSH command (the server should not have forwarded it)
//! POST /imap/disconnect   X-Mailpush-User, X-Mailpush-Connection; no body
//!   204  the connection's "until disconnect" silences ended
//! ```

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use imap_webpush_proto::state::ConnectionId;
use sha2::Digest as _;
use xaps_proto::UserName;

use super::{empty, text};
use crate::core::{ConnectionEnds, Core};

/// The forwarding headers: the authenticated user and the connection.
fn identity(headers: &HeaderMap) -> Option<(UserName, ConnectionId)> {
    let header = |name: &str| {
        headers
            .get(name)
            // UTF-8, not ASCII only: a user name may be either.
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
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
        "X-Mailpush-User (a user name) and X-Mailpush-Connection are required\n",
    )
}

/// The IMAP server's connection id, as the state machine's: the same text always gives
/// the same id, in every daemon sharing a store.
fn connection_id(text: &str) -> ConnectionId {
    let digest: [u8; 32] = sha2::Sha256::digest(text.as_bytes()).into();
    let mut octets = digest.iter();
    let mut word = || {
        octets
            .by_ref()
            .take(8)
            .fold(0_u64, |w, b| (w << 8) | u64::from(*b))
    };
    ConnectionId {
        instance: word(),
        serial: word(),
    }
}

/// `POST /imap/webpush`.
pub(crate) async fn command(
    core: &Core,
    headers: &HeaderMap,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let Some((user, connection)) = identity(headers) else {
        return no_identity();
    };
    match core
        .webpush_command(&user, connection, ConnectionEnds::Reported, body)
        .await
    {
        Ok(lines) => {
            let mut reply = Response::new(Full::new(Bytes::from(lines)));
            reply.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            reply
        }
        Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

/// `POST /imap/disconnect`.
pub(crate) async fn closed(core: &Core, headers: &HeaderMap) -> Response<Full<Bytes>> {
    let Some((user, connection)) = identity(headers) else {
        return no_identity();
    };
    match core.connection_ended(&user, connection).await {
        Ok(()) => empty(StatusCode::NO_CONTENT),
        Err(e) => {
            tracing::error!(error = %e, ?user, "disconnect not stored");
            text(StatusCode::INTERNAL_SERVER_ERROR, "not stored\n")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_are_stable() {
        assert_eq!(connection_id("imap-1"), connection_id("imap-1"));
        assert_ne!(connection_id("imap-1"), connection_id("imap-2"));
        let id = connection_id("imap-1");
        assert_ne!((id.instance, id.serial), (0, 0));
    }

    #[test]
    fn the_forwarded_user_may_be_any_utf_8_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-mailpush-user",
            HeaderValue::from_bytes("émile@Example.org".as_bytes()).unwrap(),
        );
        headers.insert("x-mailpush-connection", HeaderValue::from_static("c1"));
        let (user, _) = identity(&headers).unwrap();
        assert_eq!(user.as_str(), "émile@example.org");
        // A capital outside ASCII: which account it is depends on the server's rule.
        headers.insert(
            "x-mailpush-user",
            HeaderValue::from_bytes("Émile@example.org".as_bytes()).unwrap(),
        );
        assert!(identity(&headers).is_none());
        // Not UTF-8: no user.
        headers.insert(
            "x-mailpush-user",
            HeaderValue::from_bytes(b"\xc9mile").unwrap(),
        );
        assert!(identity(&headers).is_none());
    }
}
