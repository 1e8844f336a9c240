//! The HTTP API the mail server talks to: the xaps plugin's `POST /register` and
//! `POST /notify` exactly as xapsd answers them, Dovecot's OX push driver (`PUT`), and
//! `/metrics` and `/healthz`. Each handler is a thin adapter from HTTP to the crates.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use xaps_proto::daemon::{Notify, Register};
use xaps_proto::registry::{Lookup, Registered};

use crate::daemon::Shared;

mod webpush;
pub(crate) use webpush::generic as webpush_generic;

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

    /// Whether the plugin's credentials are needed (the read-only routes are for the
    /// operator's monitoring, on the same private address).
    fn needs_auth(self) -> bool {
        matches!(
            self,
            Route::Register | Route::Notify | Route::Ox | Route::WebPush | Route::Disconnect
        )
    }
}

/// Answers one request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let route = match path {
        "/register" => Some(Route::Register),
        "/notify" => Some(Route::Notify),
        "/metrics" => Some(Route::Metrics),
        "/healthz" => Some(Route::Health),
        "/imap/webpush" => Some(Route::WebPush),
        "/imap/disconnect" => Some(Route::Disconnect),
        p if p == shared.config.ox_path => Some(Route::Ox),
        _ => None,
    };
    let Some(route) = route else {
        shared.metrics.http("unknown", 404);
        return text(StatusCode::NOT_FOUND, "no such path\n");
    };
    let response = route_request(&shared, route, request).await;
    shared
        .metrics
        .http(route.name(), response.status().as_u16());
    response
}

async fn route_request(
    shared: &Shared,
    route: Route,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (method, allow) = route.method();
    if request.method() != method {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
        return response;
    }
    if route.needs_auth()
        && let Some(auth) = &shared.config.basic_auth
        && !authorized(request.headers().get(AUTHORIZATION), auth)
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
            let mut response = text(StatusCode::OK, shared.metrics.encode());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        Route::Disconnect => webpush::closed(shared, request.headers()).await,
        Route::Register | Route::Notify | Route::Ox | Route::WebPush => {
            let headers = request.headers().clone();
            let body = match read_body(shared, request).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            match route {
                Route::Register => register(shared, &body).await,
                Route::WebPush => webpush::command(shared, &headers, &body).await,
                Route::Notify => match Notify::from_json(&body) {
                    Ok(notify) => notify_response(shared, &notify).await,
                    Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
                },
                _ => ox(shared, &body).await,
            }
        }
    }
}

/// Basic credentials, compared in constant time.
fn authorized(header: Option<&HeaderValue>, auth: &crate::config::BasicAuth) -> bool {
    use base64::Engine as _;
    let Some(encoded) = header.and_then(|h| h.to_str().ok()).and_then(|h| {
        h.strip_prefix("Basic ")
            .or_else(|| h.strip_prefix("basic "))
    }) else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let decoded = zeroize::Zeroizing::new(decoded);
    let expected = zeroize::Zeroizing::new(format!("{}:{}", auth.user, auth.password.as_str()));
    bool::from(decoded.as_slice().ct_eq(expected.as_bytes()))
}

/// The body, within the size limit and the time limit.
async fn read_body(
    shared: &Shared,
    request: Request<Incoming>,
) -> Result<Bytes, Response<Full<Bytes>>> {
    let max = shared.config.http.max_body;
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
    match tokio::time::timeout(shared.config.http.body_timeout, collect).await {
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

/// `POST /register`: stored (on disk) before the 200 that carries the topic.
async fn register(shared: &Shared, body: &[u8]) -> Response<Full<Bytes>> {
    let register = match Register::from_json(body) {
        Ok(register) => register,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let user = register.username.clone();
    let account = register.account_id.clone();
    let now = SystemTime::now();
    let result = shared
        .store
        .update_user(&user, shared.registry(), move |registry| {
            match registry.register(register, now) {
                Ok((registered, change)) => (Ok(registered), vec![change]),
                Err(refused) => (Err(refused), Vec::new()),
            }
        })
        .await;
    match result {
        Err(e) => {
            tracing::error!(error = %e, %user, "registration not stored");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "registration not stored\n",
            )
        }
        Ok(Err(refused)) => {
            tracing::warn!(%user, reason = %refused, "registration refused");
            text(StatusCode::BAD_REQUEST, format!("{refused}\n"))
        }
        Ok(Ok(registered)) => {
            if let Registered::Replaced { previous } = &registered {
                shared.cancel_pending(previous, &account);
            }
            tracing::info!(%user, %account, outcome = ?registered, "device registered");
            // The topic alone, no newline: the plugin reads the body as it is.
            let mut response = Response::new(Full::new(Bytes::from(
                shared.apns.topic().as_str().to_owned(),
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
async fn notify_response(shared: &Shared, notify: &Notify) -> Response<Full<Bytes>> {
    let since = Instant::now();
    let registry = match shared.store.user(&notify.username, shared.registry()).await {
        Ok(registry) => registry,
        Err(e) => {
            tracing::error!(error = %e, "registrations not read");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "registrations not read\n",
            );
        }
    };
    if let Some(state) = &shared.webpush {
        webpush::notify(shared, state, notify).await;
    }
    let lookup = registry.lookup_notify(notify);
    if let Lookup::Push(targets) = &lookup {
        let new_mail = notify.is_message_new();
        for target in targets {
            shared.event(target.device_token, target.account_id, new_mail, since);
        }
    }
    empty(StatusCode::from_u16(lookup.outcome().status()).unwrap_or(StatusCode::OK))
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
async fn ox(shared: &Shared, body: &[u8]) -> Response<Full<Bytes>> {
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
    let notify = Notify {
        username,
        mailbox: event.folder,
        events: vec!["MessageNew".to_owned()],
        messages,
    };
    let response = notify_response(shared, &notify).await;
    // The driver logs anything but 2xx as an error; a user without devices is not one.
    if response.status() == StatusCode::NOT_FOUND {
        return empty(StatusCode::NO_CONTENT);
    }
    response
}
