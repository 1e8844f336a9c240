//! The first xaps plugin's line protocol, on the API's Unix socket: one
//! `REGISTER …` or `NOTIFY …` line per connection (tab-separated `key="value"` pairs),
//! answered `OK <topic>`, `OK ` or `ERROR <reason>`, as xapsd answered it. The lines
//! are read and written by `xaps_proto::legacy`; the operations are the core's.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use xaps_proto::legacy::{Answer, LineError, MAX_LINE_LEN, Request, START_LEN};

use crate::core::{Core, RegisterError};

/// How long a line may take to arrive whole.
const LINE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the connection's first octets, enough to tell its protocol (fewer if it ends
/// sooner, a few more if they came together); the stream's clocks bound the wait.
pub(super) async fn start<S>(stream: &mut S) -> std::io::Result<Vec<u8>>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut start = Vec::with_capacity(START_LEN);
    while start.len() < START_LEN {
        // What comes after the verb is kept too, and replayed.
        let mut chunk = [0_u8; START_LEN];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        start.extend(chunk.iter().take(n));
    }
    Ok(start)
}

/// Reads the one line, carries it out, answers, and closes.
pub(super) async fn serve<S>(mut stream: S, start: Vec<u8>, core: &Arc<Core>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buffer = start;
    let line = tokio::time::timeout(LINE_TIMEOUT, async {
        loop {
            match Request::decode(&buffer) {
                Err(LineError::Incomplete) if buffer.len() <= MAX_LINE_LEN => {}
                other => return Ok(other),
            }
            // The line is read again only once a line feed has come, or too much.
            loop {
                let mut chunk = [0_u8; 4096];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(Request::decode(&buffer));
                }
                let fresh = chunk.get(..n).unwrap_or_default();
                buffer.extend_from_slice(fresh);
                if fresh.contains(&b'\n') || buffer.len() > MAX_LINE_LEN {
                    break;
                }
            }
        }
    })
    .await;
    let answer = match line {
        Err(_) | Ok(Err::<_, std::io::Error>(_)) => return,
        Ok(Ok(Err(e))) => Answer::error(&e),
        Ok(Ok(Ok((_, request)))) => carry_out(request, core).await,
    };
    let _ = stream.write_all(&answer.encode()).await;
    let _ = stream.shutdown().await;
}

async fn carry_out(request: Request, core: &Arc<Core>) -> Answer {
    match request {
        Request::Register(register) => {
            let user = register.username.clone();
            match core.register(register).await {
                Ok(_) => Answer::ok(core.apns().topic().as_str()),
                Err(RegisterError::Refused(refused)) => {
                    tracing::warn!(?user, reason = %refused, "registration refused");
                    Answer::Error(refused.to_string())
                }
                Err(e) => {
                    tracing::error!(error = %e, ?user, "registration not stored");
                    Answer::Error("Failed to register client".to_owned())
                }
            }
        }
        Request::Notify(notify) => match core.notify(&notify).await {
            Ok(_) => Answer::ok(""),
            Err(e) => {
                tracing::error!(error = %e, "mail events not stored: the plugin is told so");
                Answer::Error("Cannot lookup registrations".to_owned())
            }
        },
    }
}
