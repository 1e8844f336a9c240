//! Nothing acknowledged is lost: SIGKILL the daemon while 1,000 registrations are being
//! posted concurrently, restart it, and every registration that got a 200 is there.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod support;
use support::{free_port, spawn_daemon as spawn, wait_healthy};

use mailpushd::demo::http;
use mailpushd::store::Store;
use xaps_proto::AccountId;
use xaps_proto::registry::Registry;

fn register_body(i: usize) -> String {
    format!(
        r#"{{"ApsAccountId":"ACCOUNT-{i:04}","ApsDeviceToken":"{:064x}","ApsSubtopic":"com.apple.mobilemail","Username":"user{}","Mailboxes": ["INBOX"]}}"#,
        i + 1,
        i % 50
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_registrations_loses_no_acknowledged_one() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = dir.path().join("mailpushd.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"{address}\"\ndatabase = \"sqlite:store.sqlite\"\n{}[apns]\ntopic = \"com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6\"\n", support::OPEN_API_TOML
        ),
    )
    .unwrap();
    let mut daemon = spawn(&config);
    wait_healthy(address).await;

    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // 1,000 registrations from 40 concurrent clients.
    for worker in 0..40 {
        let (acknowledged, sent) = (acknowledged.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            for i in (worker..1000).step_by(40) {
                sent.fetch_add(1, Ordering::SeqCst);
                let json = [("content-type", "application/json; charset=utf-8")];
                let body = register_body(i);
                let answer = http(address, "POST", "/register", &json, body.as_bytes()).await;
                // Refused, reset or never answered: not acknowledged, and may be lost.
                if let Ok((200, _)) = answer {
                    acknowledged.lock().unwrap().push(i);
                }
            }
        }));
    }
    // Kill it in the middle of the stream.
    while acknowledged.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 300 && acknowledged.len() < 1000,
        "{} acknowledged",
        acknowledged.len()
    );

    // Restarted, it serves, and every acknowledged registration is in the store.
    let mut daemon = spawn(&config);
    wait_healthy(address).await;
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let store = Store::open_sqlite(&dir.path().join("store.sqlite"))
        .await
        .unwrap();
    let registry = store.all(Registry::new()).await.unwrap();
    let mut missing = Vec::new();
    for &i in &acknowledged {
        let account = AccountId::new(&format!("ACCOUNT-{i:04}")).unwrap();
        let token = xaps_proto::DeviceToken::new(&format!("{:064x}", i + 1)).unwrap();
        let user = support::user_name(&format!("user{}", i % 50));
        if registry.get(&user, &account, &token).is_none() {
            missing.push(i);
        }
    }
    assert!(missing.is_empty(), "lost after a 200: {missing:?}");
    println!(
        "{} of {} registrations acknowledged before SIGKILL; all {} in the store ({} stored)",
        acknowledged.len(),
        sent.load(Ordering::SeqCst),
        acknowledged.len(),
        registry.len()
    );
}
