//! A notification as an `http::Request`: `POST /3/device/<token>` with the `apns-*`
//! headers, for the caller's HTTP/2 client.

use std::time::{Duration, SystemTime};

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};

use crate::error::RequestError;
use crate::payload::Payload;
use crate::types::{
    ApnsId, CollapseId, DeviceToken, Expiration, Priority, PushType, Server, Topic,
};

/// How long a mail push is kept for an offline device: 24 hours.
pub const MAIL_TTL: Duration = Duration::from_secs(24 * 3600);

const APNS_TOPIC: HeaderName = HeaderName::from_static("apns-topic");
const APNS_PUSH_TYPE: HeaderName = HeaderName::from_static("apns-push-type");
const APNS_PRIORITY: HeaderName = HeaderName::from_static("apns-priority");
const APNS_EXPIRATION: HeaderName = HeaderName::from_static("apns-expiration");
const APNS_ID: HeaderName = HeaderName::from_static("apns-id");
const APNS_COLLAPSE_ID: HeaderName = HeaderName::from_static("apns-collapse-id");
const JSON: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");

/// One notification to one device.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use apns_proto::{DeviceToken, Environment, Notification, Topic};
///
/// let token = DeviceToken::try_from("73B23C63C18344D1BBBAB10887FD540BA4B00741987CA28CBB7C0C607F0667FF")?;
/// let topic = Topic::try_from("com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6")?;
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let request = Notification::mail(token, topic, "55FAD99D-748E-44DA-8A7F-91D3478CAABD", now)?
///     .into_request(Environment::Production, None)?;
/// assert_eq!(request.uri(), "https://api.push.apple.com/3/device/73B23C63C18344D1BBBAB10887FD540BA4B00741987CA28CBB7C0C607F0667FF");
/// assert_eq!(request.headers()["apns-push-type"], "background");
/// assert_eq!(request.headers()["apns-priority"], "5");
/// assert_eq!(request.headers()["apns-expiration"], "1700086400");
/// assert_eq!(request.body(), br#"{"aps":{"account-id":"55FAD99D-748E-44DA-8A7F-91D3478CAABD"}}"#);
/// # Ok::<(), apns_proto::RequestError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    device_token: DeviceToken,
    topic: Topic,
    push_type: PushType,
    priority: Priority,
    expiration: Option<Expiration>,
    apns_id: Option<ApnsId>,
    collapse_id: Option<CollapseId>,
    payload: Vec<u8>,
}

impl Notification {
    /// A notification with a payload, as an `alert` at priority 10 with APNs'
    /// default expiration; change them with the setters.
    pub fn new(
        device_token: DeviceToken,
        topic: Topic,
        payload: &Payload,
    ) -> Result<Self, RequestError> {
        Ok(Self::with_checked_payload(
            device_token,
            topic,
            payload.to_vec()?,
        ))
    }

    /// A notification with a payload already in JSON, which must be an object.
    pub fn with_json(
        device_token: DeviceToken,
        topic: Topic,
        json: Vec<u8>,
    ) -> Result<Self, RequestError> {
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json)
            .map_err(|_| RequestError::Payload)?;
        Ok(Self::with_checked_payload(device_token, topic, json))
    }

    /// iOS Mail's push: `{"aps":{"account-id":…}}`, push type `background`, priority
    /// 5, kept 24 hours.
    pub fn mail(
        device_token: DeviceToken,
        topic: Topic,
        account_id: &str,
        now: SystemTime,
    ) -> Result<Self, RequestError> {
        Ok(Self {
            push_type: PushType::Background,
            priority: Priority::Normal,
            expiration: Some(Expiration::after(now, MAIL_TTL)?),
            ..Self::with_checked_payload(device_token, topic, mail_payload(account_id))
        })
    }

    fn with_checked_payload(device_token: DeviceToken, topic: Topic, payload: Vec<u8>) -> Self {
        Self {
            device_token,
            topic,
            push_type: PushType::Alert,
            priority: Priority::High,
            expiration: None,
            apns_id: None,
            collapse_id: None,
            payload,
        }
    }

    /// Sets the push type.
    pub fn push_type(mut self, push_type: PushType) -> Self {
        self.push_type = push_type;
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the expiration.
    pub fn expiration(mut self, expiration: Expiration) -> Self {
        self.expiration = Some(expiration);
        self
    }

    /// Sets the `apns-id` (APNs makes one up otherwise).
    pub fn apns_id(mut self, id: ApnsId) -> Self {
        self.apns_id = Some(id);
        self
    }

    /// Sets the collapse id.
    pub fn collapse_id(mut self, id: CollapseId) -> Self {
        self.collapse_id = Some(id);
        self
    }

    /// The device.
    pub fn device_token(&self) -> &DeviceToken {
        &self.device_token
    }

    /// The payload's JSON.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Checks what APNs checks: the priority allowed for the push type, the topic
    /// suffix the push type needs, the payload size.
    pub fn validate(&self) -> Result<(), RequestError> {
        let push_type = self.push_type;
        if !push_type.allows(self.priority) {
            return Err(RequestError::Priority {
                push_type: push_type.as_str(),
                priority: self.priority.as_str(),
            });
        }
        if let Some(suffix) = push_type.topic_suffix()
            && !self.topic.as_str().ends_with(suffix)
        {
            return Err(RequestError::TopicForPushType {
                push_type: push_type.as_str(),
                suffix,
            });
        }
        let max = push_type.max_payload();
        if self.payload.len() > max {
            return Err(RequestError::PayloadTooLarge {
                len: self.payload.len(),
                max,
            });
        }
        Ok(())
    }

    /// The request for `server` (an [`Environment`](crate::Environment) or another
    /// [`Server`]). `authorization` is a provider token's header value (`bearer <jwt>`,
    /// see `ProviderTokens`); pass `None` when the connection authenticates with a
    /// certificate.
    pub fn into_request(
        self,
        server: impl Into<Server>,
        authorization: Option<&HeaderValue>,
    ) -> Result<Request<Vec<u8>>, RequestError> {
        self.validate()?;
        let expiration = self.expiration.map(|e| HeaderValue::from(e.as_secs()));
        // Room for the two optional ids.
        let mut headers = headers(
            &self.topic,
            self.push_type,
            self.priority,
            expiration,
            authorization,
            2,
        );
        if let Some(id) = &self.apns_id {
            let value = HeaderValue::from_bytes(id.as_bytes()).map_err(|_| RequestError::ApnsId)?;
            headers.insert(APNS_ID, value);
        }
        if let Some(id) = &self.collapse_id {
            headers.insert(
                APNS_COLLAPSE_ID,
                header_text(id.as_str(), RequestError::CollapseId)?,
            );
        }
        build(&server.into(), &self.device_token, headers, self.payload)
    }
}

/// Mail pushes for one topic, built as fast as possible: the topic's header is made
/// once and the expiration's once a second, so a request costs four allocations
/// (path, the two halves of the header map, the body), and two more for the first
/// request of each second.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use apns_proto::{DeviceToken, Environment, MailPush, Topic};
///
/// let topic = Topic::try_from("com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6")?;
/// let mut push = MailPush::new(Environment::Production, &topic);
/// let token = DeviceToken::try_from("73b23c63c18344d1bbbab10887fd540ba4b00741987ca28cbb7c0c607f0667ff")?;
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let request = push.request(&token, "55FAD99D-748E-44DA-8A7F-91D3478CAABD", now, None)?;
/// assert_eq!(request.headers()["apns-topic"], topic.as_str());
/// # Ok::<(), apns_proto::RequestError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MailPush {
    server: Server,
    topic: Topic,
    expiration: Option<(u64, HeaderValue)>,
}

impl MailPush {
    /// Mail pushes on `topic` (the certificate's UID) to `server` (an
    /// [`Environment`](crate::Environment), or another [`Server`]).
    pub fn new(server: impl Into<Server>, topic: &Topic) -> Self {
        Self {
            server: server.into(),
            topic: topic.clone(),
            expiration: None,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// The same request as [`Notification::mail`] builds. Fails for a clock before
    /// 1970, and for an account id whose payload is longer than APNs takes
    /// ([`RequestError::PayloadTooLarge`]), as [`Notification::validate`] does.
    pub fn request(
        &mut self,
        device_token: &DeviceToken,
        account_id: &str,
        now: SystemTime,
        authorization: Option<&HeaderValue>,
    ) -> Result<Request<Vec<u8>>, RequestError> {
        let expires = Expiration::after(now, MAIL_TTL)?.as_secs();
        let expiration = match &self.expiration {
            Some((secs, value)) if *secs == expires => value.clone(),
            _ => {
                let value = HeaderValue::from(expires);
                self.expiration = Some((expires, value.clone()));
                value
            }
        };
        let headers = headers(
            &self.topic,
            PushType::Background,
            Priority::Normal,
            Some(expiration),
            authorization,
            0,
        );
        let payload = mail_payload(account_id);
        let max = PushType::Background.max_payload();
        if payload.len() > max {
            return Err(RequestError::PayloadTooLarge {
                len: payload.len(),
                max,
            });
        }
        build(&self.server, device_token, headers, payload)
    }
}

/// `{"aps":{"account-id":"…"}}`, with the id escaped as JSON.
fn mail_payload(account_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(28 + account_id.len());
    out.extend_from_slice(br#"{"aps":{"account-id":"#);
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, account_id);
    out.extend_from_slice(b"}}");
    out
}

/// The headers every request has, with `extra` room for optional ones: content type,
/// topic, push type, priority, expiration and authorization when given.
fn headers(
    topic: &Topic,
    push_type: PushType,
    priority: Priority,
    expiration: Option<HeaderValue>,
    authorization: Option<&HeaderValue>,
    extra: usize,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(6 + extra);
    headers.insert(CONTENT_TYPE, JSON);
    headers.insert(APNS_TOPIC, topic.header().clone());
    headers.insert(APNS_PUSH_TYPE, HeaderValue::from_static(push_type.as_str()));
    headers.insert(APNS_PRIORITY, HeaderValue::from_static(priority.as_str()));
    if let Some(value) = expiration {
        headers.insert(APNS_EXPIRATION, value);
    }
    if let Some(value) = authorization {
        headers.insert(AUTHORIZATION, value.clone());
    }
    headers
}

fn header_text(text: &str, error: RequestError) -> Result<HeaderValue, RequestError> {
    HeaderValue::from_str(text).map_err(|_| error)
}

fn build(
    server: &Server,
    device_token: &DeviceToken,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<Request<Vec<u8>>, RequestError> {
    // Sized exactly: `format!` would grow the string once on the way.
    let mut path = String::with_capacity(10 + device_token.as_str().len());
    path.push_str("/3/device/");
    path.push_str(device_token.as_str());
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTPS);
    parts.authority = Some(server.authority().clone());
    // A hex token always makes a valid path, and scheme, authority and path always
    // make a URI; the errors are mapped rather than assumed away.
    parts.path_and_query =
        Some(PathAndQuery::try_from(path).map_err(|_| RequestError::DeviceToken)?);
    let uri = Uri::from_parts(parts).map_err(|_| RequestError::DeviceToken)?;
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}
