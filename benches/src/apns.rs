//! APNs: building iOS Mail's push request with a cached provider token, against the
//! general `Notification` path and a plain `http::Request::builder` floor.

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use apns_proto::{
    DeviceToken, Environment, MailPush, Notification, ProviderKey, ProviderTokens, Topic,
};
use http::HeaderValue;

use crate::Op;

const P8: &[u8] = include_bytes!("../../apns-proto/tests/data/AuthKey_TEST123456.p8");
const TOKEN: &str = "73b23c63c18344d1bbbab10887fd540ba4b00741987ca28cbb7c0c607f0667ff";
const TOPIC: &str = "com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6";
const ACCOUNT: &str = "55FAD99D-748E-44DA-8A7F-91D3478CAABD";

/// A sender with its token cache warm.
#[derive(Debug)]
pub struct ApnsFixture {
    state: RefCell<(MailPush, ProviderTokens)>,
    topic: Topic,
    token: DeviceToken,
    bearer: HeaderValue,
    now: SystemTime,
}

impl Default for ApnsFixture {
    fn default() -> Self {
        let key = ProviderKey::from_p8_pem(P8, "TEST123456", "TEAM123456")
            .unwrap_or_else(|e| unreachable!("the test key loads: {e}"));
        let mut tokens = ProviderTokens::new(key);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let bearer = tokens
            .header(now)
            .cloned()
            .unwrap_or_else(|e| unreachable!("the test key signs: {e}"));
        let topic = Topic::try_from(TOPIC).unwrap_or_else(|e| unreachable!("{e}"));
        let token = DeviceToken::try_from(TOKEN).unwrap_or_else(|e| unreachable!("{e}"));
        Self {
            state: RefCell::new((MailPush::new(Environment::Production, &topic), tokens)),
            topic,
            token,
            bearer,
            now,
        }
    }
}

impl ApnsFixture {
    /// Ours, the fast path: the token from the cache, the request from `MailPush`.
    pub fn mail_push(&self) -> Vec<u8> {
        let (push, tokens) = &mut *self.state.borrow_mut();
        let Ok(bearer) = tokens.header(self.now) else {
            return Vec::new();
        };
        push.request(&self.token, ACCOUNT, self.now, Some(bearer))
            .map(http::Request::into_body)
            .unwrap_or_default()
    }

    /// Ours, the general path: `Notification::mail` then `into_request`.
    pub fn notification(&self) -> Vec<u8> {
        Notification::mail(self.token.clone(), self.topic.clone(), ACCOUNT, self.now)
            .and_then(|n| n.into_request(Environment::Production, Some(&self.bearer)))
            .map(http::Request::into_body)
            .unwrap_or_default()
    }

    /// The floor: what a server writes by hand with `http::Request::builder`.
    pub fn floor(&self) -> Vec<u8> {
        let expiration = self
            .now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            + 86_400;
        http::Request::builder()
            .method("POST")
            .uri(format!("https://api.push.apple.com/3/device/{TOKEN}"))
            .header("content-type", "application/json; charset=utf-8")
            .header("apns-topic", TOPIC)
            .header("apns-push-type", "background")
            .header("apns-priority", "5")
            .header("apns-expiration", expiration)
            .header("authorization", self.bearer.clone())
            .body(format!(r#"{{"aps":{{"account-id":"{ACCOUNT}"}}}}"#).into_bytes())
            .map(http::Request::into_body)
            .unwrap_or_default()
    }
}

/// The mail push request, three ways.
pub fn apns_ops(f: &ApnsFixture) -> Vec<Op<'_>> {
    vec![
        ("ours/MailPush", Box::new(|| f.mail_push())),
        ("ours/Notification::mail", Box::new(|| f.notification())),
        ("floor/http builder", Box::new(|| f.floor())),
    ]
}
