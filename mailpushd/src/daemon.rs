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
use xaps_proto::{AccountId, Debouncer, DeviceToken, Timestamp};

use crate::apns::{Apns, ApnsError, Job};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

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
        let due = self
            .debouncer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .on_event((token.clone(), account.clone()), new_mail, since);
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
        self.debouncer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .cancel(&(token.clone(), account.clone()));
    }

    /// Sends the delayed pushes that are due.
    fn poll(&self, now: Instant) {
        let due = self
            .debouncer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .poll(now);
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
        let shared = Arc::new(Shared {
            debouncer: std::sync::Mutex::new(Debouncer::new(config.push.delay)),
            config,
            store,
            apns,
            metrics,
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
        let left = self.shared.apns.drain(deadline).await;
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
                shared.poll(Instant::now());
                if let Ok(n) = shared.store.count().await {
                    shared.metrics.set_registrations(n);
                }
            }
            _ = expiry.tick() => expire(&shared).await,
            _ = stop.changed() => return,
        }
    }
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
            |r| r.expire(now),
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
