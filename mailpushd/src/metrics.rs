//! Prometheus metrics, served on `/metrics` in the text exposition format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// What happened to a push.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum PushOutcome {
    /// APNs accepted it.
    Delivered,
    /// The service said the device token or subscription is gone (APNs 410, Web Push
    /// 404 and 410); what the core did about it is counted apart
    /// ([`Metrics::gone`]).
    Gone,
    /// APNs refused the token for this topic or environment (400): counted, kept.
    TokenRejected,
    /// A retry was scheduled (429, 5xx, a transport error).
    Retried,
    /// Sent again at once, not counted as an attempt: the push service had ended its
    /// HTTP/2 stream unprocessed (REFUSED_STREAM, or a graceful GOAWAY before it), or
    /// the stream could not be opened on a connection gone away gracefully.
    Resent,
    /// A round of attempts failed: the push stays owed, retried in a later round.
    Deferred,
    /// Owed longer than `push.give_up_after`: given up.
    GaveUp,
    /// Replaced, while it waited, by a newer push for the same subscription and
    /// mailbox.
    Coalesced,
    /// Held back: the user's pushes are over `webpush.max_pushes_per_user_per_minute`;
    /// owed for a later round.
    RateLimited,
    /// The credentials or topic are wrong (403 and the like).
    FixConfiguration,
    /// APNs called the request itself wrong.
    FixRequest,
    /// No credentials: the request was printed, not sent.
    Printed,
}

impl PushOutcome {
    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            PushOutcome::Delivered => "delivered",
            PushOutcome::Gone => "gone",
            PushOutcome::TokenRejected => "token_rejected",
            PushOutcome::Retried => "retried",
            PushOutcome::Resent => "resent",
            PushOutcome::Deferred => "deferred",
            PushOutcome::GaveUp => "gave_up",
            PushOutcome::Coalesced => "coalesced",
            PushOutcome::RateLimited => "rate_limited",
            PushOutcome::FixConfiguration => "fix_configuration",
            PushOutcome::FixRequest => "fix_request",
            PushOutcome::Printed => "printed",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PushLabels {
    service: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GoneLabels {
    service: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    made: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FoundLabels {
    found: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    listener: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    command: &'static str,
    outcome: &'static str,
}

/// Every metric the daemon keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pushes: Family<PushLabels, Counter>,
    gone: Family<GoneLabels, Counter>,
    latency: Histogram,
    registrations: Gauge,
    owed: Gauge,
    sending: Gauge,
    in_flight: Gauge,
    retry_queue: Gauge,
    http: Family<HttpLabels, Counter>,
    encrypting: Counter<f64, std::sync::atomic::AtomicU64>,
    key_pool: Gauge,
    /// `webpush_keys_made_total{made="ahead"}` and `{made="inline"}`, looked up once.
    keys_ahead: Counter,
    keys_inline: Counter,
    agreement_pool: Gauge,
    agreements_made: Counter,
    /// `webpush_agreements_taken_total{found="true"}` and `{found="false"}`.
    agreements_found: Counter,
    agreements_missed: Counter,
    front_sessions: Family<SessionLabels, Counter>,
    front_open: Gauge,
    front_octets: Family<DirectionLabels, Counter>,
    front_commands: Family<CommandLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The metrics, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mailpushd");
        let pushes = Family::<PushLabels, Counter>::default();
        registry.register("pushes", "Pushes by service and outcome", pushes.clone());
        let gone = Family::<GoneLabels, Counter>::default();
        registry.register(
            "gone",
            "What a 'gone' answer did: the registrations or subscription removed, or kept (registered after APNs's timestamp; replaced since the push)",
            gone.clone(),
        );
        // From the event that caused a push to the push service's answer: 1 ms to ~30 s.
        let latency = Histogram::new([
            0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
        ]);
        registry.register(
            "push_latency_seconds",
            "From the mail event to the push service's answer",
            latency.clone(),
        );
        let registrations = Gauge::default();
        registry.register(
            "registrations",
            "Devices registered for iOS Mail pushes",
            registrations.clone(),
        );
        let owed = Gauge::default();
        registry.register(
            "owed_pushes",
            "Pushes acknowledged to the mail server and not delivered yet (kept in the store)",
            owed.clone(),
        );
        let sending = Gauge::default();
        registry.register(
            "owed_sending",
            "Owed pushes this daemon has taken up and is sending (at most 2,000)",
            sending.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight",
            "Push requests sent and not yet answered",
            in_flight.clone(),
        );
        let retry_queue = Gauge::default();
        registry.register(
            "retry_queue",
            "Pushes waiting to be retried",
            retry_queue.clone(),
        );
        let http = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Requests from the mail server, by route and status",
            http.clone(),
        );
        let encrypting = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "webpush_encrypt_seconds",
            "Time spent encrypting and signing Web Push requests (beside the process's CPU time, the share that goes to the crypto)",
            encrypting.clone(),
        );
        let key_pool = Gauge::default();
        registry.register(
            "webpush_key_pool",
            "Ephemeral keys made ahead, ready for the next pushes",
            key_pool.clone(),
        );
        let keys_made = Family::<KeyLabels, Counter>::default();
        registry.register(
            "webpush_keys_made",
            "Ephemeral keys made: ahead (by the pool's filler) or in line (the pool was empty)",
            keys_made.clone(),
        );
        let keys_ahead = keys_made
            .get_or_create(&KeyLabels { made: "ahead" })
            .clone();
        let keys_inline = keys_made
            .get_or_create(&KeyLabels { made: "inline" })
            .clone();
        let agreement_pool = Gauge::default();
        registry.register(
            "webpush_agreement_pool",
            "Ephemeral keys agreed ahead with subscriptions pushed to before, ready for their next pushes",
            agreement_pool.clone(),
        );
        let agreements_made = Counter::default();
        registry.register(
            "webpush_agreements_made",
            "Ephemeral keys agreed ahead with a subscription by the agreement pool's filler",
            agreements_made.clone(),
        );
        let agreements_taken = Family::<FoundLabels, Counter>::default();
        registry.register(
            "webpush_agreements_taken",
            "Pushes that looked for a key agreed ahead with their subscription: found or not",
            agreements_taken.clone(),
        );
        let agreements_found = agreements_taken
            .get_or_create(&FoundLabels { found: "true" })
            .clone();
        let agreements_missed = agreements_taken
            .get_or_create(&FoundLabels { found: "false" })
            .clone();
        let front_sessions = Family::<SessionLabels, Counter>::default();
        registry.register(
            "front_sessions",
            "IMAP front: connections by listener and what became of them (relayed, rate_limited, too_many_unauthenticated, handshake_failed, server_unavailable)",
            front_sessions.clone(),
        );
        let front_open = Gauge::default();
        registry.register(
            "front_open_sessions",
            "IMAP front: sessions open now",
            front_open.clone(),
        );
        let front_octets = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "front_relayed_octets",
            "IMAP front: octets relayed, to the IMAP server and to clients",
            front_octets.clone(),
        );
        let front_commands = Family::<CommandLabels, Counter>::default();
        registry.register(
            "front_push_commands",
            "IMAP front: push commands answered, by command and outcome",
            front_commands.clone(),
        );
        Self {
            registry,
            pushes,
            gone,
            latency,
            registrations,
            owed,
            sending,
            in_flight,
            retry_queue,
            http,
            encrypting,
            key_pool,
            keys_ahead,
            keys_inline,
            agreement_pool,
            agreements_made,
            agreements_found,
            agreements_missed,
            front_sessions,
            front_open,
            front_octets,
            front_commands,
        }
    }

    /// Sets how many ephemeral keys made ahead are ready.
    pub fn set_key_pool(&self, n: usize) {
        self.key_pool.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets how many keys agreed ahead with a subscription are ready.
    pub fn set_agreement_pool(&self, n: usize) {
        self.agreement_pool
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts `n` keys agreed ahead with a subscription.
    pub fn agreements_made(&self, n: usize) {
        self.agreements_made
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Counts a push that found a key agreed ahead with its subscription, or did not.
    pub fn agreement_taken(&self, found: bool) {
        if found {
            self.agreements_found.inc();
        } else {
            self.agreements_missed.inc();
        }
    }

    /// Counts `n` ephemeral keys made ahead (`true`) or in line.
    pub fn keys_made(&self, ahead: bool, n: usize) {
        let counter = if ahead {
            &self.keys_ahead
        } else {
            &self.keys_inline
        };
        counter.inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Counts an IMAP front connection on `listener` and what became of it.
    pub fn front_session(&self, listener: &'static str, outcome: &'static str) {
        self.front_sessions
            .get_or_create(&SessionLabels { listener, outcome })
            .inc();
    }

    /// The gauge of open IMAP front sessions.
    pub fn front_open(&self) -> &Gauge {
        &self.front_open
    }

    /// Counts `n` octets relayed by the IMAP front in `direction`.
    pub fn front_octets(&self, direction: &'static str, n: usize) {
        self.front_octets
            .get_or_create(&DirectionLabels { direction })
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Counts a push command the IMAP front answered.
    pub fn front_command(&self, command: &'static str, outcome: &'static str) {
        self.front_commands
            .get_or_create(&CommandLabels { command, outcome })
            .inc();
    }

    /// Counts a push's outcome.
    pub fn push(&self, service: &'static str, outcome: PushOutcome) {
        self.pushes
            .get_or_create(&PushLabels {
                service,
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Counts what a "gone" answer did: something `removed`, or all kept.
    pub fn gone(&self, service: &'static str, removed: bool) {
        let result = if removed { "removed" } else { "kept" };
        self.gone
            .get_or_create(&GoneLabels { service, result })
            .inc();
    }

    /// Records how long a push took, from its event.
    pub fn latency(&self, seconds: f64) {
        self.latency.observe(seconds);
    }

    /// Adds the time one Web Push request took to encrypt and sign.
    pub fn encrypted(&self, took: std::time::Duration) {
        self.encrypting.inc_by(took.as_secs_f64());
    }

    /// Sets the number of registrations.
    pub fn set_registrations(&self, n: u64) {
        self.registrations.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets the owed-pushes gauge.
    pub fn set_owed(&self, n: u64) {
        self.owed.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets the gauge of owed pushes being sent.
    pub fn set_sending(&self, n: usize) {
        self.sending.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The in-flight gauge.
    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// The retry queue gauge.
    pub fn retry_queue(&self) -> &Gauge {
        &self.retry_queue
    }

    /// Counts an HTTP request.
    pub fn http(&self, route: &'static str, status: u16) {
        self.http.get_or_create(&HttpLabels { route, status }).inc();
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
