//! The running daemon: the store, the APNs sender, the debouncer on its timer, the HTTP
//! listener, and a graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use xaps_proto::registry::Registry;
use xaps_proto::{AccountId, Debouncer, DeviceToken, Timestamp, UserName};

use crate::apns::{Apns, ApnsError, Job};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use crate::webpush::WebPushSender;
use imap_webpush_proto::state::{Endpoints, Settings, VapidKeyId};
use webpush_crypto::{Subject, TokenCache, VapidKey, VapidSigner};

/// How often registrations not refreshed for the maximum age are removed: xapsd's 8 h.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(8 * 3600);

/// The daemon cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The store cannot be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The APNs sender cannot be set up.
    #[error("APNs: {0}")]
    Apns(#[from] ApnsError),
    /// The xapsd database to import is not one.
    #[error("importing {path}: {reason}")]
    Import {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// IMAP WEBPUSH cannot be set up.
    #[error("Web Push: {0}")]
    WebPush(String),
    /// The listening address cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

type Key = (DeviceToken, AccountId);

/// What the request handlers share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) apns: Apns,
    pub(crate) metrics: Arc<Metrics>,
    debouncer: std::sync::Mutex<Debouncer<Key>>,
    /// IMAP WEBPUSH, when a VAPID contact is configured.
    pub(crate) webpush: Option<WebPushState>,
}

/// IMAP WEBPUSH's state: the sender, the state machine's settings (the current VAPID
/// key), and the quiet periods of events other than new mail, per (user, mailbox).
pub(crate) struct WebPushState {
    pub(crate) sender: WebPushSender,
    settings: std::sync::RwLock<Settings>,
    later: std::sync::Mutex<Debouncer<(UserName, String)>>,
    subject: Subject,
}

impl WebPushState {
    /// The state machine's settings now.
    pub(crate) fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// An event other than new mail in `mailbox`: one generic push after the quiet
    /// period.
    pub(crate) fn later(&self, user: &UserName, mailbox: &str, now: Instant) {
        let _ = crate::lock(&self.later).on_event((user.clone(), mailbox.to_owned()), false, now);
    }

    fn due(&self, now: Instant) -> Vec<(UserName, String)> {
        crate::lock(&self.later).poll(now)
    }

    /// Takes up a VAPID key made current in the store (by `rotate-vapid-key`, here or
    /// on another machine): subscriptions activated under the old one re-verify.
    fn take_up(&self, id: VapidKeyId, key: VapidKey) {
        let current = self
            .settings
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .vapid_key_id;
        if current == id {
            return;
        }
        let public = key.public_key().clone();
        self.sender
            .set_tokens(TokenCache::new(VapidSigner::new(key, self.subject.clone())));
        let mut settings = self
            .settings
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        settings.vapid_key = public;
        settings.vapid_key_id = id;
        tracing::info!(key = id.0, "VAPID key rotated");
    }
}

impl Shared {
    /// An empty registry with the daemon's limits and mailbox policy.
    pub(crate) fn registry(&self) -> Registry {
        Registry::new()
            .with_max_age(self.config.push.max_age)
            .with_max_accounts_per_user(self.config.push.max_accounts_per_user)
            .with_push_mailboxes(self.config.push.mailboxes.clone())
    }

    /// A mail event for one device: new mail goes out at once, other events after the
    /// quiet period.
    pub(crate) fn event(
        &self,
        token: &DeviceToken,
        account: &AccountId,
        new_mail: bool,
        since: Instant,
    ) {
        let due = crate::lock(&self.debouncer).on_event(
            (token.clone(), account.clone()),
            new_mail,
            since,
        );
        if let Some((device_token, account_id)) = due {
            self.apns.spawn(Job {
                device_token,
                account_id,
                since,
            });
        }
    }

    /// The account moved to another device: the old one's pending push is void.
    pub(crate) fn cancel_pending(&self, token: &DeviceToken, account: &AccountId) {
        crate::lock(&self.debouncer).cancel(&(token.clone(), account.clone()));
    }

    /// Sends the delayed pushes that are due.
    fn poll(&self, now: Instant) {
        let due = crate::lock(&self.debouncer).poll(now);
        for (device_token, account_id) in due {
            self.apns.spawn(Job {
                device_token,
                account_id,
                since: now,
            });
        }
    }
}

/// A started daemon.
pub struct Daemon {
    shared: Arc<Shared>,
    address: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    timers: JoinHandle<()>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// Opens the store (importing an xapsd database into a new one), sets up the
    /// sender, and starts listening.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let store = Store::open(&config.database).await?;
        if let Some(json) = &config.import_xapsd
            && store.is_empty().await?
            && json.exists()
        {
            let bytes = std::fs::read(json).map_err(|e| StartError::Import {
                path: json.clone(),
                reason: e.to_string(),
            })?;
            let (registry, rejected) =
                Registry::from_xapsd_json(&bytes).map_err(|e| StartError::Import {
                    path: json.clone(),
                    reason: e.to_string(),
                })?;
            for r in &rejected {
                tracing::warn!(user = %r.user, account = %r.account_id, reason = r.reason, "xapsd entry not imported");
            }
            let n = store.import(&registry).await?;
            tracing::info!(imported = n, from = %json.display(), "xapsd database imported");
        }
        let metrics = Arc::new(Metrics::new());
        let apns = Apns::new(&config.apns, store.clone(), metrics.clone())?;
        if apns.topic().as_str().len() <= 50 {
            tracing::warn!(
                topic = apns.topic().as_str(),
                "the APNs topic is 50 octets or shorter: the Dovecot xaps plugin asserts on \
                 such a /register answer and its imap process aborts"
            );
        }
        if !apns.is_live() {
            tracing::warn!("no APNs credentials: pushes are printed, not sent");
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    address: config.listen,
                    source,
                })?;
        let address = listener.local_addr().map_err(|source| StartError::Listen {
            address: config.listen,
            source,
        })?;
        metrics.set_registrations(store.count().await?);
        let webpush = webpush_state(&config, &store, &metrics).await?;
        let shared = Arc::new(Shared {
            debouncer: std::sync::Mutex::new(Debouncer::new(config.push.delay)),
            config,
            store,
            apns,
            metrics,
            webpush,
        });
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(listener, shared.clone(), stopped.clone()));
        let timers = tokio::spawn(timers(shared.clone(), stopped));
        tracing::info!(%address, "listening");
        Ok(Self {
            shared,
            address,
            stop,
            server,
            timers,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The sender (for `send-test` and the demo).
    pub fn apns(&self) -> &Apns {
        &self.shared.apns
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Stops accepting, lets open requests finish, sends the pushes in flight (and
    /// those waiting for their quiet period) within `deadline`, and closes the store.
    /// Returns how many pushes were still unsent at the deadline.
    pub async fn shutdown(self, deadline: Duration) -> usize {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = self.timers.await;
        // Delayed pushes would be lost with the process: send them now.
        self.shared
            .poll(Instant::now() + self.shared.config.push.delay);
        let mut left = self.shared.apns.drain(deadline).await;
        if let Some(webpush) = &self.shared.webpush {
            left += webpush.sender.drain(deadline).await;
        }
        self.shared.store.close().await;
        left
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.http.header_timeout)
        .keep_alive(true);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = service_fn(move |request| {
            let shared = shared.clone();
            async move { Ok::<_, std::convert::Infallible>(crate::api::handle(shared, request).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
    let _ = tokio::time::timeout(shared.config.http.body_timeout, graceful.shutdown()).await;
}

async fn timers(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut check = tokio::time::interval(shared.config.push.check_interval);
    let mut expiry = tokio::time::interval(EXPIRY_INTERVAL);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = check.tick() => {
                let now = Instant::now();
                shared.poll(now);
                if let Ok(n) = shared.store.count().await {
                    shared.metrics.set_registrations(n);
                }
                if let Some(webpush) = &shared.webpush {
                    if let Ok(Some((id, key))) = shared.store.vapid_key().await {
                        webpush.take_up(id, key);
                    }
                    for (user, mailbox) in webpush.due(now) {
                        let shared = shared.clone();
                        tokio::spawn(async move {
                            if let Some(webpush) = &shared.webpush {
                                crate::api::webpush_generic(&shared, webpush, &user, &mailbox).await;
                            }
                        });
                    }
                }
            }
            _ = expiry.tick() => expire(&shared).await,
            _ = stop.changed() => return,
        }
    }
}

/// Sets up IMAP WEBPUSH when a VAPID contact is configured: the VAPID key from the
/// configured file, or the store's current one, or a new one made into the store.
async fn webpush_state(
    config: &Config,
    store: &Store,
    metrics: &Arc<Metrics>,
) -> Result<Option<WebPushState>, StartError> {
    let Some(subject) = &config.webpush.subject else {
        tracing::info!("no webpush.subject: IMAP WEBPUSH answers NO [CANNOT]");
        return Ok(None);
    };
    let subject = Subject::new(subject).map_err(|e| StartError::WebPush(e.to_string()))?;
    let (id, key) = current_vapid_key(config, store).await?;
    let public = key.public_key().clone();
    let tokens = TokenCache::new(VapidSigner::new(key, subject.clone()));
    let sender = WebPushSender::new(
        &config.webpush,
        tokens,
        config.webpush.names.clone(),
        store.clone(),
        metrics.clone(),
    )
    .map_err(|e| StartError::WebPush(e.to_string()))?;
    let mut settings = Settings::new(public.clone(), id);
    settings.max_subscriptions = config.webpush.max_subscriptions;
    if config.webpush.allow_local_push_service {
        tracing::warn!(
            "webpush.allow_local_push_service: plain-http and local endpoints accepted (tests only)"
        );
        settings.endpoints = Endpoints::LocalTestService;
    }
    tracing::info!(key = %public, "IMAP WEBPUSH on, VAPID key {}", id.0);
    Ok(Some(WebPushState {
        sender,
        settings: std::sync::RwLock::new(settings),
        later: std::sync::Mutex::new(Debouncer::new(config.push.delay)),
        subject,
    }))
}

/// The VAPID key to use, made current in the store.
pub async fn current_vapid_key(
    config: &Config,
    store: &Store,
) -> Result<(VapidKeyId, VapidKey), StartError> {
    let stored = store.vapid_key().await?;
    if let Some(file) = &config.webpush.key_file {
        let bytes = zeroize::Zeroizing::new(
            std::fs::read(file)
                .map_err(|e| StartError::WebPush(format!("{}: {e}", file.display())))?,
        );
        let key = VapidKey::import(&bytes)
            .map_err(|e| StartError::WebPush(format!("{}: {e}", file.display())))?;
        return match stored {
            Some((id, current)) if current.public_key() == key.public_key() => Ok((id, current)),
            // A new file: a rotation, which deactivates subscriptions made before it.
            _ => Ok((store.add_vapid_key(&key).await?, key)),
        };
    }
    if let Some(current) = stored {
        return Ok(current);
    }
    let key = VapidKey::generate(&mut rand_core::OsRng)
        .map_err(|e| StartError::WebPush(e.to_string()))?;
    let public = key.public_key().clone();
    // Another daemon on the same database may have made one meanwhile: theirs wins.
    let (id, key) = store.first_vapid_key(key).await?;
    if key.public_key() == &public {
        tracing::info!("made a VAPID key into the store");
    }
    Ok((id, key))
}

/// Removes registrations not refreshed within the maximum age, by the crate's rule.
async fn expire(shared: &Shared) {
    let now = SystemTime::now();
    let Some(cutoff) = now.checked_sub(shared.config.push.max_age) else {
        return;
    };
    match shared
        .store
        .update_older_than(
            Timestamp::from_system_time(cutoff),
            shared.registry(),
            |r| {
                let removed = r.expire(now);
                let changes = removed.iter().cloned().map(Into::into).collect();
                (removed, changes)
            },
        )
        .await
    {
        Ok(removed) => {
            for r in removed {
                tracing::info!(user = %r.user, account = %r.account_id, "registration expired");
                shared.cancel_pending(&r.registration.device_token, &r.account_id);
            }
        }
        Err(e) => tracing::error!(error = %e, "expiry failed"),
    }
}
