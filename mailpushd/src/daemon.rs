//! The running daemon: the store, the senders, the service core, the HTTP listener,
//! the timer that runs the core's schedule, and a graceful shutdown. It wires the
//! layers together and owns the tasks; what happens is the core's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use xaps_proto::registry::Registry;

use crate::apns::{Apns, ApnsError};
use crate::config::Config;
use crate::core::{Core, FRONT_HEARTBEAT, WebPushSetupError};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// How often registrations not refreshed for the maximum age are removed: xapsd's 8 h.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(8 * 3600);

/// How many of the senders' reports are applied together at most.
const REPORT_BATCH: usize = 256;

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
    /// The xapsd database to import cannot be read.
    #[error("importing {path}: {source}")]
    ImportRead {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The xapsd database to import is not one.
    #[error("importing {path}: {source}")]
    Import {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: xaps_proto::registry::DatabaseError,
    },
    /// IMAP WEBPUSH cannot be set up.
    #[error("Web Push: {0}")]
    WebPush(#[from] WebPushSetupError),
    /// The API's credential cannot be had.
    #[error(transparent)]
    Access(#[from] crate::http::AccessError),
    /// The API's Unix socket cannot be set up.
    #[error(transparent)]
    Socket(#[from] crate::http::SocketError),
    /// The IMAP front cannot start.
    #[error(transparent)]
    Front(#[from] crate::front::FrontError),
    /// The listening address cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A started daemon.
pub struct Daemon {
    core: Arc<Core>,
    address: Option<SocketAddr>,
    /// The IMAP front's listeners, when it runs.
    front: Vec<SocketAddr>,
    /// Stops the listener and the timers.
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    /// Ends the reports task once the senders are drained.
    reports_done: watch::Sender<bool>,
    reports: JoinHandle<()>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Imports xapsd's JSON database into a new, empty store.
async fn import(config: &Config, store: &Store) -> Result<(), StartError> {
    let Some(json) = &config.import_xapsd else {
        return Ok(());
    };
    if !store.is_empty().await? || !json.exists() {
        return Ok(());
    }
    let bytes =
        crate::files::read_at_most(json, crate::files::XAPSD_DATABASE_MAX).map_err(|source| {
            StartError::ImportRead {
                path: json.clone(),
                source,
            }
        })?;
    let (registry, rejected) =
        Registry::from_xapsd_json(&bytes).map_err(|source| StartError::Import {
            path: json.clone(),
            source,
        })?;
    for r in &rejected {
        tracing::warn!(user = ?r.user, account = ?r.account_id, reason = r.reason, "xapsd entry not imported");
    }
    let n = store.import(&registry).await?;
    tracing::info!(imported = n, from = %json.display(), "xapsd database imported");
    Ok(())
}

impl Daemon {
    /// Opens the store (importing an xapsd database into a new one), sets up the
    /// senders and the core, and starts listening.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        for note in &config.notes {
            tracing::info!("{note}");
        }
        let access = crate::http::Access::resolve(&config)?;
        for (warning, line) in access.describe(&config.api) {
            if warning {
                tracing::warn!("{line}");
            } else {
                tracing::info!("{line}");
            }
        }
        let socket = config
            .api
            .socket
            .as_ref()
            .map(crate::http::bind_socket)
            .transpose()?;
        let store = Store::open(&config.database).await?;
        import(&config, &store).await?;
        let metrics = Arc::new(Metrics::new());
        let (reports, mut reported) = crate::report::channel();
        let apns = Apns::new(&config.apns, reports.clone(), metrics.clone())?;
        if !apns.topic().suits_xaps_plugin() {
            tracing::warn!(
                topic = apns.topic().as_str(),
                "the APNs topic is 50 octets or shorter: the Dovecot xaps plugin asserts on \
                 such a /register answer and its imap process aborts"
            );
        }
        if !apns.is_live() {
            tracing::warn!("no APNs credentials: pushes are printed, not sent");
        }
        let listener = if config.api.tcp {
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
            Some((listener, address))
        } else {
            None
        };
        let address = listener.as_ref().map(|(_, address)| *address);
        let core = Arc::new(Core::new(config, store, apns, metrics.clone(), reports).await?);
        let front = match &core.config().front {
            Some(front) => Some(crate::front::Front::bind(core.clone(), front, metrics).await?),
            None => None,
        };
        // What fell due while the daemon was down, and the next deadlines: the pushes
        // it owed when it stopped go now.
        core.sweep_subscriptions(SystemTime::now()).await;
        core.end_dead_fronts(SystemTime::now()).await;
        core.take_up_owed().await?;
        let (stop, stopped) = watch::channel(false);
        let (reports_done, mut done) = watch::channel(false);
        let reports_core = core.clone();
        let reports = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(REPORT_BATCH);
            loop {
                tokio::select! {
                    n = reported.recv_many(&mut batch, REPORT_BATCH) => {
                        if n == 0 {
                            return;
                        }
                        // What came in meanwhile is applied together: one write for
                        // many delivered pushes.
                        reports_core.apply_all(std::mem::take(&mut batch)).await;
                    }
                    _ = done.changed() => {
                        // The senders are drained: what they reported is here, or
                        // on its way as the queue has room.
                        loop {
                            while batch.len() < REPORT_BATCH {
                                let Some(report) = reported.try_recv() else { break };
                                batch.push(report);
                            }
                            if batch.is_empty() {
                                match reported.last().await {
                                    Some(report) => batch.push(report),
                                    None => return,
                                }
                            }
                            reports_core.apply_all(std::mem::take(&mut batch)).await;
                        }
                    }
                }
            }
        });
        let api = Arc::new(crate::http::Front {
            core: core.clone(),
            access,
        });
        let mut tasks = vec![("timer", tokio::spawn(timer(core.clone(), stopped.clone())))];
        if let Some((listener, _)) = listener {
            tasks.push((
                "HTTP listener",
                tokio::spawn(crate::http::serve(listener, api.clone(), stopped.clone())),
            ));
        }
        tasks.push((
            "expiry",
            tokio::spawn(expiry(core.clone(), stopped.clone())),
        ));
        tasks.push((
            "dead IMAP fronts",
            tokio::spawn(dead_fronts(core.clone(), stopped.clone())),
        ));
        let front_addresses = front.as_ref().map(|f| f.addresses()).unwrap_or_default();
        if let Some(front) = front {
            tasks.extend(front.spawn(stopped.clone()));
        }
        if let Some(socket) = socket {
            tasks.push((
                "API socket",
                tokio::spawn(crate::http::serve_socket(socket, api, stopped)),
            ));
        }
        match address {
            Some(address) => tracing::info!(%address, "listening"),
            None => tracing::info!("the HTTP API does not listen on TCP (listen = \"off\")"),
        }
        Ok(Self {
            core,
            address,
            front: front_addresses,
            stop,
            tasks,
            reports_done,
            reports,
        })
    }

    /// Where the HTTP API listens on TCP; `None` with `listen = "off"`.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.address
    }

    /// Where the IMAP front listens (implicit TLS first), when it runs.
    pub fn front_addresses(&self) -> &[SocketAddr] {
        &self.front
    }

    /// The APNs sender (for `send-test` and the demo).
    pub fn apns(&self) -> &Apns {
        self.core.apns()
    }

    /// Removes the expired registrations now, as the daemon does every eight hours;
    /// how many went.
    pub async fn expire_now(&self) -> Result<usize, StoreError> {
        self.core.expire(SystemTime::now()).await
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.core.store()
    }

    /// Stops accepting, lets open requests finish, ends the IMAP front's sessions
    /// (waiting up to 10 s, beside `deadline`, for them to store their ends), sends the
    /// pushes in flight within `deadline`, and closes the store. Pushes waiting for their quiet period, or for
    /// a later round, stay owed in the store, as do those still unsent at the deadline
    /// (their number is returned): the next start sends them, or, on a shared store,
    /// another daemon at once.
    pub async fn shutdown(self, deadline: Duration) -> usize {
        let _ = self.stop.send(true);
        for (name, task) in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(task = name, error = %e, "a task of the daemon failed");
            }
        }
        let left = self.core.drain(deadline).await;
        // What the senders reported (a 410, a gone subscription) is stored before the
        // store closes.
        let _ = self.reports_done.send(true);
        if let Err(e) = self.reports.await {
            tracing::error!(task = "reports", error = %e, "a task of the daemon failed");
        }
        self.core.release_owed().await;
        self.core.store().close().await;
        left
    }
}

/// Runs the core's schedule: sleeps until its next deadline (or until an event may have
/// made one earlier), then sends what is due. No fixed tick.
async fn timer(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    loop {
        let wake = core.next_deadline();
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => core.run_due(Instant::now()).await,
            () = core.schedule_changed() => {}
            _ = stop.changed() => return,
        }
    }
}

/// Ends the silences of IMAP fronts that died, this process's earlier self or another
/// daemon's, every [`FRONT_HEARTBEAT`].
async fn dead_fronts(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(FRONT_HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once, and the start looked already.
    every.tick().await;
    loop {
        tokio::select! {
            _ = every.tick() => core.end_dead_fronts(SystemTime::now()).await,
            _ = stop.changed() => return,
        }
    }
}

/// Removes expired registrations every [`EXPIRY_INTERVAL`].
async fn expiry(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(EXPIRY_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Err(e) = core.expire(SystemTime::now()).await {
                    tracing::error!(error = %e, "expiry failed: retried at the next interval");
                }
            }
            _ = stop.changed() => return,
        }
    }
}
