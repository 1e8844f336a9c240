//! The HTTP API the mail server talks to: the xaps plugin's `POST /register` and
//! `POST /notify` exactly as xapsd answers them, Dovecot's OX push driver (`PUT`),
//! forwarded IMAP WEBPUSH commands, and `/metrics` and `/healthz`. Each handler is a
//! thin adapter from HTTP to the service core ([`Core`]).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use xaps_proto::daemon::{Notify, Register};

use crate::core::{Core, RegisterError};

mod access;
mod legacy;
mod server;
mod timeouts;
mod webpush;
pub(crate) use access::{Access, Via};
pub use access::{AccessError, describe_access, dovecot_settings};
pub use server::SocketError;
pub(crate) use server::{Front, bind_socket, serve, serve_socket};

/// A response with a short text body.
pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub(crate) fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// The routes at paths of their own; the OX route's is `ox_path`.
const FIXED: [(&str, Route); 6] = [
    ("/register", Route::Register),
    ("/notify", Route::Notify),
    ("/metrics", Route::Metrics),
    ("/healthz", Route::Health),
    ("/imap/webpush", Route::WebPush),
    ("/imap/disconnect", Route::Disconnect),
];

/// Whether `path` is a route's own, which `ox_path` may not take.
pub(crate) fn is_fixed_path(path: &str) -> bool {
    FIXED.iter().any(|(fixed, _)| *fixed == path)
}

/// The routes, by path, with the method each takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Register,
    Notify,
    Ox,
    WebPush,
    Disconnect,
    Metrics,
    Health,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Register => "register",
            Route::Notify => "notify",
            Route::Ox => "ox",
            Route::WebPush => "imap_webpush",
            Route::Disconnect => "imap_disconnect",
            Route::Metrics => "metrics",
            Route::Health => "healthz",
        }
    }

    fn method(self) -> (Method, &'static str) {
        match self {
            Route::Register | Route::Notify | Route::WebPush | Route::Disconnect => {
                (Method::POST, "POST")
            }
            Route::Ox => (Method::PUT, "PUT"),
            Route::Metrics | Route::Health => (Method::GET, "GET"),
        }
    }

    /// Whether the route changes state or pushes, and so needs the credential (the
    /// read-only routes are for the operator's monitoring); and whether it is one of
    /// xapsd's own, which an xapsd installation uses without one.
    fn guarded(self) -> Option<bool> {
        match self {
            Route::Register | Route::Notify | Route::Ox => Some(true),
            Route::WebPush | Route::Disconnect => Some(false),
            Route::Metrics | Route::Health => None,
        }
    }
}

/// Answers one request.
pub(crate) async fn handle(
    front: Arc<Front>,
    via: Via,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let core = &front.core;
    let path = request.uri().path();
    let route = FIXED
        .iter()
        .find(|(fixed, _)| *fixed == path)
        .map(|(_, route)| *route)
        .or_else(|| (path == core.config().ox_path).then_some(Route::Ox));
    let Some(route) = route else {
        core.counters().http("unknown", 404);
        return text(StatusCode::NOT_FOUND, "no such path\n");
    };
    let response = route_request(&front, via, route, request).await;
    core.counters()
        .http(route.name(), response.status().as_u16());
    response
}

async fn route_request(
    front: &Front,
    via: Via,
    route: Route,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let core = &front.core;
    let (method, allow) = route.method();
    if request.method() != method {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
        return response;
    }
    if let Some(xapsd) = route.guarded()
        && !front
            .access
            .allows(xapsd, via, request.headers().get(AUTHORIZATION))
    {
        let mut response = text(StatusCode::UNAUTHORIZED, "credentials required\n");
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"mailpushd\""),
        );
        return response;
    }
    match route {
        Route::Health => text(StatusCode::OK, "ok\n"),
        Route::Metrics => {
            let metrics = match core.metrics().await {
                Ok(metrics) => metrics,
                Err(e) => {
                    tracing::error!(error = %e, "metrics not read from the store");
                    return text(StatusCode::INTERNAL_SERVER_ERROR, "store not read\n");
                }
            };
            let mut response = text(StatusCode::OK, metrics.encode());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        Route::Disconnect => webpush::closed(core, request.headers()).await,
        Route::Register | Route::Notify | Route::Ox | Route::WebPush => {
            let headers = request.headers().clone();
            let body = match read_body(core, request).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            match route {
                Route::Register => register(core, &body).await,
                Route::WebPush => webpush::command(core, &headers, &body).await,
                Route::Notify => match Notify::from_json(&body) {
                    Ok(notify) => notify_response(core, &notify).await,
                    Err(e) => refused(&e),
                },
                _ => ox(core, &body).await,
            }
        }
    }
}

/// The body, within the size limit and the time limit.
async fn read_body(
    core: &Core,
    request: Request<Incoming>,
) -> Result<Bytes, Response<Full<Bytes>>> {
    let max = core.config().http.max_body;
    let too_large = || {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {max} octets\n"),
        )
    };
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(request.into_body(), max).collect();
    match tokio::time::timeout(core.config().http.body_timeout, collect).await {
        Err(_) => Err(text(
            StatusCode::REQUEST_TIMEOUT,
            "body not received in time\n",
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(text(
            StatusCode::BAD_REQUEST,
            format!("body not read: {e}\n"),
        )),
        Ok(Ok(body)) => Ok(body.to_bytes()),
    }
}

/// The status a crate names. Its tables hold only valid ones; should one not be, the
/// answer is a 500 and a log line, never another status.
fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or_else(|_| {
        tracing::error!(code, "a crate named an HTTP status that is not one");
        StatusCode::INTERNAL_SERVER_ERROR
    })
}

/// A body the crate refuses, with the status and words it gives.
fn refused(e: &xaps_proto::daemon::BodyError) -> Response<Full<Bytes>> {
    text(status(e.status()), format!("{e}\n"))
}

/// `POST /register`: stored (on disk) before the 200 that carries the topic.
async fn register(core: &Core, body: &[u8]) -> Response<Full<Bytes>> {
    let register = match Register::from_json(body) {
        Ok(register) => register,
        Err(e) => return refused(&e),
    };
    let user = register.username.clone();
    match core.register(register).await {
        Err(RegisterError::Refused(refused)) => {
            tracing::warn!(?user, reason = %refused, "registration refused");
            text(StatusCode::BAD_REQUEST, format!("{refused}\n"))
        }
        Err(e) => {
            tracing::error!(error = %e, ?user, "registration not stored");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "registration not stored\n",
            )
        }
        Ok(_) => {
            // The topic alone, no newline: the plugin reads the body as it is.
            let mut response = Response::new(Full::new(Bytes::from(
                core.apns().topic().as_str().to_owned(),
            )));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response
        }
    }
}

/// `POST /notify` (and the OX driver's events): 200 / 204 / 404 as xapsd answers.
async fn notify_response(core: &Arc<Core>, notify: &Notify) -> Response<Full<Bytes>> {
    match core.notify(notify).await {
        Ok(outcome) => empty(status(outcome.status())),
        Err(e) => {
            tracing::error!(error = %e, "mail events not stored: the mail server is told so");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "registrations not read\n",
            )
        }
    }
}

/// What Dovecot's OX push driver sends for a delivery to INBOX (2.3 and 2.4 alike):
/// the user, the event, the mailbox, and the new message's UID and raw `From:` and
/// `Subject:` values.
#[derive(Deserialize)]
struct OxEvent {
    user: String,
    event: String,
    folder: String,
    #[serde(rename = "imap-uid", default)]
    uid: u32,
    #[serde(rename = "imap-uidvalidity", default)]
    uid_validity: u32,
    #[serde(default)]
    from: String,
    #[serde(default)]
    subject: String,
}

/// `PUT <ox_path>`: the OX driver's `messageNew` as a `/notify` with `MessageNew`.
/// The user is the METADATA value's `user=`; set it to the Dovecot user name.
async fn ox(core: &Arc<Core>, body: &[u8]) -> Response<Full<Bytes>> {
    let event: OxEvent = match serde_json::from_slice(body) {
        Ok(event) => event,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("body is not an OX push event: {e}\n"),
            );
        }
    };
    if !event.event.eq_ignore_ascii_case("messageNew") {
        return empty(StatusCode::NO_CONTENT);
    }
    // The message's details, for the pushes that show them (Web Push's ENVELOPE).
    let messages = if event.uid == 0 {
        Vec::new()
    } else {
        vec![xaps_proto::daemon::MessageSummary {
            uid: event.uid,
            uid_validity: event.uid_validity,
            from: event.from,
            subject: event.subject,
            ..Default::default()
        }]
    };
    let Ok(username) = xaps_proto::UserName::new(&event.user) else {
        return text(
            StatusCode::BAD_REQUEST,
            "the OX event's user is not a user name\n",
        );
    };
    let notify = match Notify::new(
        username,
        event.folder,
        vec!["MessageNew".to_owned()],
        messages,
    ) {
        Ok(notify) => notify,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("the OX event as a notify: {e}\n"),
            );
        }
    };
    let response = notify_response(core, &notify).await;
    // The driver logs anything but 2xx as an error; a user without devices is not one.
    if response.status() == StatusCode::NOT_FOUND {
        return empty(StatusCode::NO_CONTENT);
    }
    response
}
