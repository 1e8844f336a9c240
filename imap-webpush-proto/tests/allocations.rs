//! Decoding is zero-copy: the slide commands and responses decode without a single
//! heap allocation (values borrow from the input; keys live inline).

use imap_webpush_proto::{Command, Config, Response};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const COMMANDS: [&[u8]; 5] = [
    b"a1 GETVAPID\r\n",
    b"a2 WEBPUSH a8282bf9-6102-4e1b-bb61-d26d0e532e65 https://push.example.net/push/random1 BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4 BTBZMqHH6r4Tts7J_aSIgg\r\n",
    b"a3 ACKWEBPUSH 585078c5-fb8b-4ed0-8e77-474ab08f0a30\r\n",
    b"a4 LWEBPUSH *\r\n",
    b"a7 SILWEBPUSH a8282bf9-6102-4e1b-bb61-d26d0e532e65 300\r\n",
];

const RESPONSES: [&[u8]; 3] = [
    b"* VAPID BOniQ9xHBPNY9gnQW4o-16vHqOb40pEIMifyUdFsxAgyzVkFMguxw0QrdbZcq8hRjN2zpeInRvKVPlkzABvuTnI\r\n",
    b"* WEBPUSH a8282bf9-6102-4e1b-bb61-d26d0e532e65 https://push.example.net/push/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV 0\r\n",
    b"a2 OK WEBPUSH completed\r\n",
];

fn count<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = dhat::HeapStats::get().total_blocks;
    let out = f();
    (out, dhat::HeapStats::get().total_blocks - before)
}

// One test function: dhat allows one profiler per process.
#[test]
fn decoding_allocates_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
    for line in COMMANDS {
        let (result, allocs) = count(|| Command::decode(line, &Config::SERVER).map(|_| ()));
        assert_eq!(
            (result, allocs),
            (Ok(()), 0),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
    for line in RESPONSES {
        let (result, allocs) = count(|| Response::decode(line, &Config::CLIENT).map(|_| ()));
        assert_eq!(
            (result, allocs),
            (Ok(()), 0),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}
