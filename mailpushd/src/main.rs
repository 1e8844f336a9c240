//! `mailpushd`: push e-mail for self-hosted mail servers, in place of xapsd.

// Code that serves never panics on its input: a failed unwrap or index is for tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use mailpushd::apns::Apns;
use mailpushd::config::{Config, Database};
use mailpushd::core::Core;
use mailpushd::daemon::Daemon;
use mailpushd::logs::LogFormat;
use mailpushd::metrics::{Metrics, PushOutcome};
use mailpushd::store::{Store, StoreError};
use xaps_proto::registry::Registry;

/// Push e-mail for self-hosted mail servers: a drop-in for xapsd (iOS Mail over APNs).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The configuration: mailpushd TOML, or an xapsd YAML file (`.yaml`, `.yml`).
    /// Without one, the embedded default: [::1]:11619, ./mailpushd.sqlite, no APNs
    /// credentials (pushes are printed).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon until SIGTERM or Ctrl-C.
    Serve,
    /// Show the whole path against a local APNs stand-in, then exit.
    Demo,
    /// Check the configuration: keys parse, a token signs, the certificate's topic and
    /// expiry, the topic's length, and APNs takes the credentials (asked to push a
    /// made-up device, which it refuses once it took them).
    CheckConfig {
        /// Do not contact APNs.
        #[arg(long)]
        offline: bool,
    },
    /// Import an xapsd JSON database into the store.
    ImportXapsd {
        /// The xapsd database file.
        file: PathBuf,
    },
    /// Write the store as an xapsd JSON database.
    ExportXapsd {
        /// Where to write it; standard output without.
        file: Option<PathBuf>,
    },
    /// Make a new VAPID key current (from FILE, in any format, or generated):
    /// subscriptions activated under the old one must be acknowledged again. Running
    /// daemons take it up at their next WEBPUSH command or push.
    RotateVapidKey {
        /// A key file to use instead of a new key.
        file: Option<PathBuf>,
    },
    /// Show USER's registrations (account, device, mailboxes, when first registered
    /// and last refreshed) and the last pushes to each (time, event, outcome, APNs's
    /// status and apns-id).
    Status {
        /// The user, as the mail server names them.
        user: String,
    },
    /// Push USER's devices now.
    SendTest {
        /// The user, as the mail server names them.
        user: String,
    },
    /// Print the lines Dovecot needs to reach this daemon with its credential (made
    /// now if there is none yet): the xaps plugin's URL, the Lua script's and the OX
    /// driver's settings.
    DovecotSettings,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = mailpushd::logs::init(cli.log_format) {
        eprintln!("mailpushd: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mailpushd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mailpushd: {e}");
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

fn config(path: Option<&Path>) -> Result<Config, Error> {
    Ok(match path {
        Some(path) => Config::load(path)?,
        None => Config::with_database(PathBuf::from("mailpushd.sqlite")),
    })
}

async fn store(config: &Config) -> Result<Store, Error> {
    Ok(Store::open(&config.database).await?)
}

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let path = cli.config.as_deref();
    match cli.command {
        Command::Demo => mailpushd::demo::run().await.map(|()| ExitCode::SUCCESS),
        Command::Serve => serve(config(path)?).await,
        Command::CheckConfig { offline } => check_config(&config(path)?, offline).await,
        Command::ImportXapsd { file } => {
            let config = config(path)?;
            let bytes =
                mailpushd::files::read_at_most(&file, mailpushd::files::XAPSD_DATABASE_MAX)?;
            let (registry, rejected) = Registry::from_xapsd_json(&bytes)?;
            for r in &rejected {
                // As written in the file, escaped: text a device once sent.
                println!(
                    "not imported: {} / {}: {}",
                    r.user.escape_debug(),
                    r.account_id.escape_debug(),
                    r.reason
                );
            }
            let n = store(&config).await?.import(&registry).await?;
            println!("imported {n} registrations from {}", file.display());
            Ok(if rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::ExportXapsd { file } => {
            let config = config(path)?;
            let registry = Store::open_existing(&config.database)
                .await?
                .all(Registry::new())
                .await?;
            let json = registry.to_xapsd_json()?;
            match file {
                None => println!("{json}"),
                Some(file) => write_owner_only(&file, json.as_bytes())?,
            }
            let left_out = registry.one_per_account();
            if left_out > 0 {
                // Standard output may be the database itself.
                eprintln!(
                    "{left_out} registrations not exported: xapsd keeps one device per account, \
                     and these accounts were registered from several (the most recent is written)"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::SendTest { user } => send_test(&config(path)?, &user).await,
        Command::Status { user } => status(&config(path)?, &user).await,
        Command::DovecotSettings => {
            let config = config(path)?;
            print!("{}", mailpushd::http::dovecot_settings(&config)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::RotateVapidKey { file } => {
            let config = config(path)?;
            let key = match file {
                Some(file) => {
                    let bytes = mailpushd::files::read_private(&file, mailpushd::files::KEY_MAX)
                        .map_err(|e| format!("{}: {e}", file.display()))?;
                    webpush_crypto::VapidKey::import(&bytes)?
                }
                None => webpush_crypto::VapidKey::generate(&mut rand_core::OsRng)?,
            };
            // The store `serve` made and migrated: a mistyped --config is said, not
            // answered with a new store holding this key.
            let id = Store::open_existing(&config.database)
                .await?
                .add_vapid_key(&key)
                .await?;
            println!("VAPID key {} is current: {}", id.0, key.public_key());
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(config: Config) -> Result<ExitCode, Error> {
    let daemon = Daemon::start(config).await?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
    }
    let left = daemon.shutdown(Duration::from_secs(10)).await;
    if left > 0 {
        tracing::warn!(
            unsent = left,
            "pushes still unsent at the shutdown deadline"
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn check_config(config: &Config, offline: bool) -> Result<ExitCode, Error> {
    let mut problems = 0;
    for note in &config.notes {
        println!("note: {note}");
    }
    if config.api.tcp {
        println!("listen: {}", config.listen);
    } else {
        println!("listen: off (the HTTP API does not listen on TCP)");
    }
    match mailpushd::http::describe_access(config) {
        Ok(lines) => {
            for (warning, line) in lines {
                if warning {
                    println!("API: WARNING {line}");
                } else {
                    println!("{line}");
                }
            }
        }
        Err(e) => {
            println!("API: ERROR {e}");
            problems += 1;
        }
    }
    match &config.database {
        Database::Sqlite(path) => println!("store: SQLite {}", path.display()),
        Database::Postgres(url) => println!(
            "store: PostgreSQL {} (up to {} connections)",
            url.redacted(),
            url.max_connections()
        ),
    }
    println!("APNs server: {}", config.apns.server.authority());
    // As it is: a check neither makes the store nor migrates it.
    match Store::open_existing(&config.database).await {
        Ok(store) => {
            println!("registrations: {}", store.count().await?);
            store.close().await;
        }
        Err(StoreError::Missing(_)) => {
            println!("registrations: none yet (the store is made at the first start)");
        }
        Err(StoreError::Schema { found, expected }) if found < expected => {
            println!("store schema: version {found}, brought to {expected} at the next start");
        }
        Err(e) => return Err(e.into()),
    }
    // Nothing is sent here: what a sender would report goes nowhere.
    let (reports, _) = mailpushd::report::channel();
    let apns = match Apns::new(&config.apns, reports, std::sync::Arc::new(Metrics::new())) {
        Ok(apns) => apns,
        Err(e) => {
            println!("APNs credentials: ERROR {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    match apns.sign_test_token() {
        Some(Ok(())) => println!("provider token: signs"),
        Some(Err(e)) => {
            println!("provider token: ERROR {e}");
            problems += 1;
        }
        None => {}
    }
    if let Some(info) = apns.certificate() {
        let expiry = humantime(info.not_after);
        let left = info
            .not_after
            .duration_since(SystemTime::now())
            .map(|d| d.as_secs() / 86_400);
        println!(
            "certificate: topic {}, production {}, sandbox {}, valid until {expiry}",
            info.topic.as_str(),
            info.production,
            info.sandbox
        );
        match left {
            Err(_) => {
                println!("certificate: ERROR expired");
                problems += 1;
            }
            Ok(days) if days < 30 => println!("certificate: WARNING expires in {days} days"),
            Ok(_) => {}
        }
    }
    let topic = apns.topic().as_str();
    println!("topic: {topic} ({} octets)", topic.len());
    if !apns.topic().suits_xaps_plugin() {
        println!("topic: WARNING 50 octets or shorter: the Dovecot xaps plugin aborts on it");
    }
    if !apns.topic().is_mail() {
        println!("topic: WARNING does not begin com.apple.mail: iOS Mail ignores such pushes");
    }
    if !apns.is_live() {
        println!("APNs credentials: none; pushes are printed, not sent");
    }
    if offline {
        println!("APNs: not contacted (--offline)");
    } else if let Some(checked) = apns.check_connection().await {
        let server = config.apns.server.authority();
        match checked {
            Ok(answer) => {
                let said = format!(
                    "{} {}",
                    answer.status,
                    // The server's words, escaped: they reach a terminal.
                    answer
                        .reason
                        .as_ref()
                        .map_or(String::new(), |r| r.as_str().escape_debug().to_string())
                );
                let said = said.trim_end();
                match answer.action() {
                    apns_proto::Action::Delivered
                    | apns_proto::Action::DropToken { .. }
                    | apns_proto::Action::TokenRejected => println!(
                        "APNs: {server} answers (TCP, TLS with the certificate trusted, HTTP/2) and takes the credentials: a push for a made-up device was answered {said}"
                    ),
                    apns_proto::Action::Retry => println!(
                        "APNs: WARNING {server} answers (TCP, TLS, HTTP/2) but did not say whether it takes the credentials: a push for a made-up device was answered {said}; try again later"
                    ),
                    _ => {
                        println!(
                            "APNs: ERROR {server} refuses the credentials or topic: a push for a made-up device was answered {said} (look at the configuration)"
                        );
                        problems += 1;
                    }
                }
            }
            Err(e) => {
                let kind = if e.is_configuration() {
                    "the configuration"
                } else {
                    "the network, or the server"
                };
                println!("APNs: ERROR {e} (look at {kind})");
                problems += 1;
            }
        }
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Writes `contents` to `file` whole, readable by its owner only: written to `file.new`
/// (made new, so neither a file nor a symbolic link already there is followed or
/// overwritten) and renamed, as xapsd writes its database: never half a file.
fn write_owner_only(file: &Path, contents: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut partial = file.as_os_str().to_owned();
    partial.push(".new");
    let partial = PathBuf::from(partial);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| {
            format!(
                "cannot make {} ({e}); if an earlier export left it, remove it",
                partial.display()
            )
        })?;
    let written = out
        .write_all(contents)
        .and_then(|()| out.sync_all())
        .and_then(|()| std::fs::rename(&partial, file));
    if let Err(e) = written {
        // Nothing half-written is left for the next export to trip on.
        let _ = std::fs::remove_file(&partial);
        return Err(e.into());
    }
    // The rename itself reaches the disk.
    mailpushd::files::sync_folder_of(file)?;
    Ok(())
}

/// A time as RFC 3339, or as Rust shows it if RFC 3339 cannot write it.
fn humantime(time: SystemTime) -> String {
    xaps_proto::Timestamp::from_system_time(time)
        .map_or_else(|| format!("{time:?}"), |t| t.to_string())
}

/// What APNs answered, as the command line shows it.
fn answer_text(answer: Option<&mailpushd::apns::Answer>) -> String {
    let Some(answer) = answer else {
        return String::new();
    };
    let mut text = String::new();
    if let Some(status) = answer.status {
        text.push_str(&format!(", APNs {status}"));
    }
    if let Some(id) = &answer.apns_id {
        text.push_str(&format!(", apns-id {id}"));
    }
    if let Some(reason) = &answer.reason {
        text.push_str(&format!(", {}", reason.escape_debug()));
    }
    text
}

/// `user`'s registrations and their last pushes.
async fn status(config: &Config, user: &str) -> Result<ExitCode, Error> {
    let user = xaps_proto::UserName::new(user)?;
    let store = Store::open_existing(&config.database).await?;
    let devices = store.devices_of(&user).await?;
    let pushes = store.pushes_of(&user).await?;
    store.close().await;
    if devices.is_empty() {
        println!("{user}: no registered device");
        return Ok(ExitCode::FAILURE);
    }
    println!("{user}: {} registrations", devices.len());
    for d in &devices {
        let token = &d.registration.device_token;
        println!("  account {} on device {}", d.account, token.as_str());
        println!(
            "    mailboxes: {}",
            d.registration.mailboxes.join(", ").escape_debug()
        );
        let time = |t: Option<xaps_proto::Timestamp>| {
            t.map_or_else(|| "unknown".to_owned(), |t| t.to_string())
        };
        println!(
            "    first registered {}, last refreshed {}",
            time(d.first_registered),
            time(d.registration.registered_at)
        );
        let key = token.to_lowercase();
        let own: Vec<_> = pushes
            .iter()
            .filter(|p| p.account == d.account.as_str() && p.token_key == key)
            .collect();
        if own.is_empty() {
            println!("    no push logged");
            continue;
        }
        println!(
            "    last pushes (at most {}):",
            mailpushd::store::PUSHES_KEPT
        );
        for p in own {
            let at = SystemTime::UNIX_EPOCH + Duration::from_millis(p.at_ms);
            let answer = mailpushd::apns::Answer {
                status: p.status,
                apns_id: p.apns_id.clone(),
                reason: p.reason.clone(),
            };
            println!(
                "      {} {}: {}{}",
                humantime(at),
                p.event,
                p.outcome,
                answer_text(Some(&answer))
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn send_test(config: &Config, user: &str) -> Result<ExitCode, Error> {
    let user = xaps_proto::UserName::new(user)?;
    // The store `serve` made: a mistyped --config is said, not a new empty store.
    let store = Store::open_existing(&config.database).await?;
    let metrics = std::sync::Arc::new(Metrics::new());
    let (reports, mut reported) = mailpushd::report::channel();
    let apns = Apns::new(&config.apns, reports.clone(), metrics.clone())?;
    let core = Core::apns_only(config.clone(), store, apns, metrics, reports);
    // The reports (a 410's removal) are taken while the pushes go: the channel is
    // bounded, and a sender waits for room in it. At most one per device.
    let mut pending = Vec::new();
    let sending = core.send_test(&user);
    tokio::pin!(sending);
    let outcomes = loop {
        tokio::select! {
            outcomes = &mut sending => break outcomes?,
            Some(report) = reported.recv() => pending.push(report),
        }
    };
    if outcomes.is_empty() {
        println!("{user} has no registered device");
        return Ok(ExitCode::FAILURE);
    }
    let mut failed = 0;
    for (job, attempted) in &outcomes {
        println!(
            "{user} / {} ({:?}): {}{}",
            job.account_id,
            job.device_token,
            attempted.outcome.as_str(),
            answer_text(attempted.last.as_ref())
        );
        if !matches!(
            attempted.outcome,
            PushOutcome::Delivered | PushOutcome::Printed
        ) {
            failed += 1;
        }
    }
    // A 410 removes the registration here as it would in the daemon.
    while let Some(report) = reported.last().await {
        pending.push(report);
    }
    for report in pending {
        core.apply(report).await;
    }
    core.store().close().await;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        println!("{failed} of {} pushes not delivered", outcomes.len());
        ExitCode::FAILURE
    })
}
