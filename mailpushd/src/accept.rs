//! Accepting connections under a bound, for every listener (the HTTP API's TCP port and
//! socket, the IMAP front's ports): at the bound, nothing more is accepted until a
//! connection ends, and the listener stops when the daemon does.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// Waits for room under `permits`, then for a connection from `accept`, unless `stop`
/// says to stop first (`None`). A failed accept (out of descriptors and the like) is
/// said, waited out briefly, and the listener goes on. The permit goes with the
/// connection: dropping it makes room for the next.
pub(crate) async fn next<S, A, F, Fut>(
    permits: &Arc<Semaphore>,
    stop: &mut watch::Receiver<bool>,
    mut accept: F,
    listener: &'static str,
) -> Option<(S, A, OwnedSemaphorePermit)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<(S, A)>>,
{
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.ok()?,
            _ = stop.changed() => return None,
        };
        let accepted = tokio::select! {
            accepted = accept() => accepted,
            _ = stop.changed() => return None,
        };
        match accepted {
            Ok((stream, address)) => return Some((stream, address, permit)),
            Err(e) => {
                tracing::warn!(error = %e, listener, "accept failed");
                drop(permit);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
