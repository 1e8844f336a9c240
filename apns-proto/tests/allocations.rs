//! Heap allocations per mail push request, counted by a global allocator: the path,
//! the header map's two tables and the body, with a cached provider token.

use std::time::{Duration, SystemTime};

use apns_proto::{DeviceToken, Environment, MailPush, ProviderKey, ProviderTokens, Topic};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn count<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = dhat::HeapStats::get().total_blocks;
    let out = f();
    (out, dhat::HeapStats::get().total_blocks - before)
}

// One test function: dhat allows one profiler per process.
#[test]
fn at_most_four_allocations_per_mail_push() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let key = ProviderKey::from_p8_pem(
        include_bytes!("data/AuthKey_TEST123456.p8"),
        "TEST123456",
        "TEAM123456",
    )
    .unwrap();
    let mut tokens = ProviderTokens::new(key);
    let topic =
        Topic::try_from("com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6").unwrap();
    let mut push = MailPush::new(Environment::Production, &topic);
    let token =
        DeviceToken::try_from("73b23c63c18344d1bbbab10887fd540ba4b00741987ca28cbb7c0c607f0667ff")
            .unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    // Warm the caches: the token, the expiration of this second, the shared header
    // buffers.
    let bearer = tokens.header(t0).unwrap().clone();
    push.request(
        &token,
        "55FAD99D-748E-44DA-8A7F-91D3478CAABD",
        t0,
        Some(&bearer),
    )
    .unwrap();
    for i in 0..100u64 {
        // A new second every ten requests: the expiration header is made again, and
        // its buffer becomes shared with the cache (two more).
        let now = t0 + Duration::from_millis(i * 100);
        let (request, allocs) = count(|| {
            let bearer = tokens.header(now).unwrap();
            push.request(
                &token,
                "55FAD99D-748E-44DA-8A7F-91D3478CAABD",
                now,
                Some(bearer),
            )
            .unwrap()
        });
        let new_second = i % 10 == 0 && i > 0;
        let limit = if new_second { 6 } else { 4 };
        assert!(allocs <= limit, "request {i}: {allocs} allocations");
        assert_eq!(request.headers().len(), 6);
    }
}
