//! One delivery attempt, and what the push service's answer leads to.

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use webpush_crypto::Outcome;

use super::pool::{Conn, ExchangeError};
use super::{Delivery, WebPushSender};
use crate::metrics::PushOutcome;
use crate::report::Report;
use crate::retry::Retry;

/// The largest answer body read (and dropped) so a connection can be reused.
const MAX_ANSWER_BODY: usize = 64 * 1024;

/// Which subscription a delivery goes to, as the origin's count of "wait" answers
/// tells them apart.
fn subscription_key(delivery: &Delivery) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    delivery.user.hash(&mut hasher);
    delivery.push.sub_id.as_str().hash(&mut hasher);
    hasher.finish()
}

/// What one attempt leads to.
pub(super) enum Step {
    /// Answered for good, or out of attempts.
    Done(PushOutcome),
    /// Another attempt after this wait.
    Later(std::time::Duration),
}

impl WebPushSender {
    /// One attempt at `delivery` (the `attempt`th) and what follows from its answer:
    /// done, or another attempt after a wait. `conn` is the worker's connection,
    /// opened if it has none.
    pub(super) async fn step(
        &self,
        delivery: &mut Delivery,
        attempt: u32,
        conn: &mut Option<Conn>,
    ) -> Step {
        let metrics = &self.inner.metrics;
        let origin = delivery.push.endpoint.origin().clone();
        loop {
            metrics.in_flight().inc();
            let answer = self.attempt(delivery, conn).await;
            metrics.in_flight().dec();
            // How long the service asks this push to wait, and whether its origin
            // waits too.
            let (wait, hold) = match answer {
                Err(why) => {
                    tracing::warn!(attempt, %origin, reason = %why, "push not delivered");
                    (None, false)
                }
                Ok(Outcome::Delivered { .. }) => return Step::Done(PushOutcome::Delivered),
                Ok(outcome @ Outcome::RemoveSubscription { .. }) => {
                    let report = Report::WebPushGone {
                        user: delivery.user.clone(),
                        push: Box::new(delivery.push.clone()),
                        outcome,
                    };
                    if self.inner.reports.send(report).await.is_err() {
                        tracing::error!(user = %delivery.user, %origin, "the push service says the subscription is gone, and the daemon is stopping: not deleted");
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
                let who = subscription_key(delivery);
                self.told_to_wait(
                    &origin,
                    who,
                    wait.unwrap_or(backoff).min(self.inner.max_hold),
                );
            }
            return match self.inner.retry.after(attempt, wait, jitter) {
                Retry::After(wait) => {
                    metrics.push("webpush", PushOutcome::Retried);
                    metrics.retry_queue().inc();
                    Step::Later(wait)
                }
                Retry::GiveUp if delivery.fan_out.is_some() => {
                    tracing::warn!(attempts = attempt, %origin, user = %delivery.user, "push not delivered in this round of attempts: owed, tried again later");
                    Step::Done(PushOutcome::Deferred)
                }
                Retry::GiveUp => {
                    tracing::warn!(attempts = attempt, %origin, user = %delivery.user, "push given up");
                    Step::Done(PushOutcome::GaveUp)
                }
            };
        }
    }

    async fn attempt(
        &self,
        delivery: &Delivery,
        conn: &mut Option<Conn>,
    ) -> Result<Outcome, ExchangeError> {
        let push = &delivery.push;
        let token =
            crate::lock(&self.inner.tokens).token(push.endpoint.origin(), SystemTime::now())?;
        let started = Instant::now();
        let key = self.inner.keys.as_ref().and_then(|pool| pool.take());
        let request = push.to_request_with_key(
            token,
            self.inner.ttl,
            delivery.urgency,
            delivery.topic.as_ref(),
            &self.inner.encryptor,
            key,
            &mut rand_core::OsRng,
        );
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
                // Not reused: it may still be busy with the request that failed. One
                // shared with other workers that did not answer in time takes no new
                // requests either.
                if let (Some(Conn::Http2(shared)), ExchangeError::Timeout(_)) = (conn.take(), &e) {
                    shared.close();
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
}
