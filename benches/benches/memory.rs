//! Heap bytes per registration: the xapsd registry and the debouncer, each holding
//! 100,000 registrations, measured by a counting allocator (a separate binary, so the
//! timing benches run on the system allocator).
//!
//! ```text
//! cargo bench -p mailpush-benches --bench memory
//! ```

use std::time::{Duration, Instant, SystemTime};

use xaps_proto::daemon::Register;
use xaps_proto::registry::Registry;
use xaps_proto::{AccountId, Debouncer, DeviceToken};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const N: u32 = 100_000;

fn live_bytes() -> usize {
    dhat::HeapStats::get().curr_bytes
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);

    // Most users have one or two devices: 50,000 users with two each, three mailboxes
    // listed.
    let before = live_bytes();
    let mut registry = Registry::new();
    for i in 0..N {
        let register = Register {
            account_id: AccountId::new(&format!("{:08X}-3FC4-418D-B4FC-F6EE59603731", i))
                .unwrap_or_else(|e| unreachable!("{e}")),
            device_token: DeviceToken::new(&format!("{i:064x}"))
                .unwrap_or_else(|e| unreachable!("{e}")),
            username: xaps_proto::UserName::new(&format!("user{}@example.org", i / 2))
                .unwrap_or_else(|e| unreachable!("{e}")),
            mailboxes: vec!["INBOX".into(), "Notes".into(), "Sent Messages".into()],
        };
        if let Err(e) = registry.register(register, now) {
            unreachable!("{e}");
        }
    }
    let registry_bytes = live_bytes() - before;

    // The debouncer keyed as xapsd keys it, (token, account), every key pending.
    let keys: Vec<(DeviceToken, AccountId)> = registry
        .iter()
        .map(|(_, id, r)| (r.device_token.clone(), id.clone()))
        .collect();
    let before = live_bytes();
    let mut debouncer = Debouncer::new(Duration::from_secs(30)).unwrap();
    let t0 = Instant::now();
    for key in keys.iter().cloned() {
        debouncer.on_event(key, false, t0);
    }
    let debouncer_bytes = live_bytes() - before;

    // Keyed by a u32 index into the caller's table, as the debouncer's docs suggest.
    let before = live_bytes();
    let mut indexed = Debouncer::new(Duration::from_secs(30)).unwrap();
    for key in 0..N {
        indexed.on_event(key, false, t0);
    }
    let indexed_bytes = live_bytes() - before;

    let per = |bytes: usize| bytes as f64 / f64::from(N);
    println!("heap bytes per registration, {N} registrations:");
    println!(
        "  registry (user, account id, token, 3 mailboxes): {:>7.1}",
        per(registry_bytes)
    );
    println!(
        "  debouncer keyed by (token, account id):           {:>7.1}",
        per(debouncer_bytes)
    );
    println!(
        "  debouncer keyed by u32:                           {:>7.1}",
        per(indexed_bytes)
    );
    assert_eq!(registry.len(), N as usize);
    assert_eq!((debouncer.len(), indexed.len()), (N as usize, N as usize));
}
