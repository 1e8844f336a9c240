//! One delivery attempt, and what the push service's answer leads to.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use webpush_crypto::{MadeAhead, Outcome};

use super::pool::{Conn, ExchangeError};
use super::salt::Salts;
use super::{Delivery, WebPushSender};
use crate::metrics::PushOutcome;
use crate::report::Report;
use crate::retry::{Deadline, Retry};

/// The largest answer body read (and dropped) so a connection can be reused.
const MAX_ANSWER_BODY: usize = 64 * 1024;

/// What one attempt leads to.
pub(super) enum Step {
    /// Answered for good, or out of attempts.
    Done(PushOutcome),
    /// Left to the next round of its owed push, which waits at least as long as its
    /// service asked.
    Deferred(std::time::Duration),
    /// Another attempt after this wait.
    Later(std::time::Duration),
}

impl WebPushSender {
    /// One attempt at `delivery` (the `attempt`th) and what follows from its answer:
    /// done, or another attempt after a wait. `conn` is the worker's connection,
    /// opened if it has none; `salts` its salt generator.
    pub(super) async fn step(
        &self,
        delivery: &mut Delivery,
        attempt: u32,
        conn: &mut Option<Conn>,
        salts: &mut Salts,
    ) -> Step {
        let metrics = &self.inner.metrics;
        let origin = delivery.push.endpoint.origin().clone();
        let deadline = delivery
            .fan_out
            .as_ref()
            .map_or(Deadline::NONE, |f| f.deadline());
        let timeout = self.inner.request_timeout;
        let mut resent = 0;
        loop {
            // Waited in the queue, or sent again, until a request could not end
            // within the lease: the next round sends it.
            if !deadline.allows(Duration::ZERO, timeout) {
                tracing::warn!(attempt, %origin, user = ?delivery.user, "push's round of attempts ends with its lease: owed, tried again later");
                return Step::Done(PushOutcome::Deferred);
            }
            metrics.in_flight().inc();
            let answer = self.attempt(delivery, conn, salts).await;
            metrics.in_flight().dec();
            // How long the service asks this push to wait, and whether its origin
            // waits too.
            let (wait, hold) = match answer {
                // A service recycling its connection, or at its limit of streams: the
                // push was not processed, so it goes again now, freshly encrypted.
                Err(ExchangeError::Unprocessed(why)) if resent < crate::retry::MAX_RESENDS => {
                    resent += 1;
                    metrics.push("webpush", PushOutcome::Resent);
                    tracing::debug!(attempt, %origin, reason = %why, "the push service did not process the push: sent again at once");
                    continue;
                }
                Err(why) => {
                    tracing::warn!(attempt, %origin, reason = %why, "push not delivered");
                    (None, false)
                }
                Ok(Outcome::Delivered { .. }) => return Step::Done(PushOutcome::Delivered),
                Ok(outcome @ Outcome::RemoveSubscription { .. }) => {
                    // Its next push will not come: the agreement wanted for it goes.
                    if let Some(pool) = &self.inner.agreements {
                        pool.forget(&(delivery.user.clone(), delivery.push.sub_id.clone()));
                    }
                    let report = Report::WebPushGone {
                        user: delivery.user.clone(),
                        push: Box::new(delivery.push.clone()),
                        outcome,
                    };
                    if self.inner.reports.send(report).await.is_err() {
                        tracing::error!(user = ?delivery.user, %origin, "the push service says the subscription is gone, and the daemon is stopping: not deleted");
                    }
                    return Step::Done(PushOutcome::Gone);
                }
                Ok(Outcome::PayloadTooLarge) => match delivery.generic.take() {
                    Some(generic) => {
                        tracing::info!(%origin, "push too large for the service: sending the generic one");
                        delivery.push.plaintext = generic;
                        continue;
                    }
                    None => return Step::Done(PushOutcome::FixRequest),
                },
                Ok(Outcome::VapidRejected { status }) => {
                    tracing::error!(%status, %origin, "the push service refused the VAPID token: check webpush.subject and the VAPID key; subscriptions made under another key must subscribe again");
                    return Step::Done(PushOutcome::FixConfiguration);
                }
                Ok(Outcome::RateLimited { retry_after }) => {
                    (retry_after.map(|r| r.delay(SystemTime::now())), true)
                }
                // A failing service that says for how long holds its origin; one that
                // does not may have failed for this push alone.
                Ok(Outcome::RetryLater { retry_after, .. }) => {
                    let wait = retry_after.map(|r| r.delay(SystemTime::now()));
                    (wait, wait.is_some())
                }
                Ok(other) => {
                    tracing::error!(outcome = ?other, %origin, "the push service refused the push");
                    return Step::Done(PushOutcome::FixRequest);
                }
            };
            let jitter = crate::retry::jitter();
            // However long the service asks, a push (and its origin) waits at most
            // webpush.max_hold: a day asked must not keep a day of pushes in memory.
            let wait = wait.map(|w| w.min(self.inner.max_hold));
            if hold {
                // A 429 without a `Retry-After` asks for the back-off.
                let backoff = self.inner.retry.backoff(attempt, jitter);
                let who = delivery.user_key();
                self.told_to_wait(
                    &origin,
                    who,
                    wait.unwrap_or(backoff).min(self.inner.max_hold),
                );
            }
            return match self.inner.retry.after(attempt, wait, jitter) {
                Retry::After(next) if !deadline.allows(next, timeout) => {
                    tracing::warn!(attempts = attempt, %origin, user = ?delivery.user, "push's next attempt would end after its lease: owed, tried again later");
                    Step::Deferred(wait.unwrap_or_default())
                }
                Retry::After(wait) => {
                    metrics.push("webpush", PushOutcome::Retried);
                    metrics.retry_queue().inc();
                    Step::Later(wait)
                }
                Retry::GiveUp if delivery.fan_out.is_some() => {
                    tracing::warn!(attempts = attempt, %origin, user = ?delivery.user, "push not delivered in this round of attempts: owed, tried again later");
                    Step::Deferred(wait.unwrap_or_default())
                }
                Retry::GiveUp => {
                    tracing::warn!(attempts = attempt, %origin, user = ?delivery.user, "push given up");
                    Step::Done(PushOutcome::GaveUp)
                }
            };
        }
    }

    async fn attempt(
        &self,
        delivery: &Delivery,
        conn: &mut Option<Conn>,
        salts: &mut Salts,
    ) -> Result<Outcome, ExchangeError> {
        let push = &delivery.push;
        let token =
            crate::lock(&self.inner.tokens).token(push.endpoint.origin(), SystemTime::now())?;
        let started = Instant::now();
        let request = self.build(delivery, token, salts);
        self.inner.metrics.encrypted(started.elapsed());
        let request = request?.map(Bytes::from);
        let timeout = self.inner.request_timeout;
        let sent = Instant::now();
        let answer = match tokio::time::timeout(
            timeout,
            self.inner.pool.send(push.endpoint.origin(), request, conn),
        )
        .await
        {
            Ok(answer) => answer,
            Err(_) => Err(ExchangeError::Timeout(timeout)),
        };
        let response = match answer {
            Ok(response) => response,
            Err(e) => {
                match (conn.take(), &e) {
                    // Its stream ended unprocessed, the connection is fine (closed
                    // already if the service goes away): the worker keeps it.
                    (kept, ExchangeError::Unprocessed(_)) => *conn = kept,
                    // One shared with other workers that did not answer in time takes
                    // no new requests either.
                    (Some(Conn::Http2(shared)), ExchangeError::Timeout(_)) => shared.close(),
                    // Otherwise not reused: it may still be busy with the request that
                    // failed.
                    _ => {}
                }
                return Err(e);
            }
        };
        let outcome = Outcome::from_response(&response);
        // The body is read (and dropped) only so that the connection can carry the
        // next request: one that does not end in what is left of the time costs its
        // connection, not the answer.
        let left = timeout.saturating_sub(sent.elapsed());
        response
            .into_body()
            .discard(MAX_ANSWER_BODY, left, conn)
            .await;
        Ok(outcome)
    }

    /// `delivery`'s request. With a key agreed ahead with the subscription, or else one
    /// made ahead, only its salt is drawn, from the worker's `salts`; a key made in line
    /// comes from the operating system's generator with its salt, so nothing secret is
    /// ever drawn from `salts`.
    fn build(
        &self,
        delivery: &Delivery,
        token: webpush_crypto::VapidToken,
        salts: &mut Salts,
    ) -> Result<http::Request<Vec<u8>>, webpush_crypto::Error> {
        let (push, ttl, urgency, topic) = (
            &delivery.push,
            self.inner.ttl,
            delivery.urgency,
            delivery.topic.as_ref(),
        );
        let encryptor = &self.inner.encryptor;
        let agreed = (self.inner.agreements.as_ref())
            .and_then(|pool| pool.take(&(delivery.user.clone(), push.sub_id.clone()), &push.keys))
            .map(MadeAhead::from);
        let ahead = agreed.or_else(|| (self.inner.keys.as_ref()?.take()).map(MadeAhead::from));
        match ahead {
            Some(ahead) => {
                let salts = salts.rng()?;
                push.to_request_with_key(token, ttl, urgency, topic, encryptor, Some(ahead), salts)
            }
            None => push.to_request(token, ttl, urgency, topic, encryptor, &mut rand_core::OsRng),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use imap_webpush_proto::SubId;
    use imap_webpush_proto::state::Push;
    use webpush_crypto::{Endpoint, Subject, TokenCache, UaKeys, Urgency, VapidKey, VapidSigner};
    use xaps_proto::UserName;

    use super::super::pool::tests::refusing_first_stream;
    use super::super::{Delivery, WebPushSender};
    use crate::metrics::Metrics;

    /// A push service whose first stream is refused unprocessed (REFUSED_STREAM): the
    /// push goes again at once, on the same connection, and is delivered; nothing is
    /// counted as a retry, and nothing waits for the back-off.
    #[tokio::test]
    async fn a_push_refused_unprocessed_goes_again_at_once_on_the_same_connection() {
        let (only, mut opened) = refusing_first_stream().await;
        let mut config = crate::config::Config::with_database("unused".into()).webpush;
        // One worker for the origin, whichever protocol it is taken to speak: a
        // second, finding no job, would stop and leave the shared connection in the
        // pool, where the resend would find it even if the worker had dropped it.
        config.max_per_origin = 1;
        config.max_per_origin_http1 = 1;
        let key = VapidKey::generate(&mut rand_core::OsRng).unwrap();
        let subject = Subject::new("mailto:postmaster@mail.example").unwrap();
        let tokens = TokenCache::new(VapidSigner::new(key, subject));
        let (reports, _reports) = crate::report::channel();
        let metrics = Arc::new(Metrics::new());
        let sender = WebPushSender::new(&config, tokens, reports, metrics.clone()).unwrap();
        // The only connection the sender has to the service, opened in this burst and
        // shared by the origin's workers (not kept in the pool): a second one would be
        // opened to a name that does not resolve.
        let endpoint = Endpoint::new("https://push.example/p/1").unwrap();
        crate::lock(&sender.inner.origins)
            .entry(endpoint.origin().clone())
            .or_default()
            .shared = Some(only);
        let ua = UaKeys::generate(&mut rand_core::OsRng).unwrap();
        sender.spawn(Delivery {
            user: Arc::new(UserName::new("alice").unwrap()),
            push: Push {
                sub_id: SubId::new("s1").unwrap(),
                endpoint,
                keys: ua.subscription_keys(),
                plaintext: b"new mail".to_vec(),
            },
            urgency: Urgency::Normal,
            topic: None,
            generic: None,
            since: Instant::now(),
            fan_out: None,
        });
        assert_eq!(sender.drain(Duration::from_secs(10)).await, 0);

        let mut streams = 0;
        while opened.try_recv().is_ok() {
            streams += 1;
        }
        assert_eq!(streams, 2, "the refused stream and the one sent again");
        let counted = metrics.encode();
        let count = |outcome: &str| {
            counted
                .lines()
                .find(|l| {
                    l.contains("service=\"webpush\"")
                        && l.contains(&format!("outcome=\"{outcome}\""))
                })
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(count("resent").as_deref(), Some("1"), "{counted}");
        assert_eq!(count("delivered").as_deref(), Some("1"), "{counted}");
        assert_eq!(count("retried"), None, "{counted}");
    }
}
