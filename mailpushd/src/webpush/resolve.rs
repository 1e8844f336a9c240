//! Resolving push service names at connect time, with the endpoint rule applied again
//! to every address DNS returns: a name that resolves to a private address is refused
//! (DNS rebinding).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use imap_webpush_proto::PushAddress;

use crate::config::StaticNames;

/// Resolves push service names, keeping only the addresses pushes may go to.
#[derive(Clone, Debug)]
pub struct Resolver {
    names: Option<Arc<StaticNames>>,
    allow_local: bool,
}

impl Resolver {
    /// Resolves with DNS, or `names` in its place; keeps only globally reachable
    /// addresses unless `allow_local` (tests against a local push service).
    pub fn new(names: Option<StaticNames>, allow_local: bool) -> Self {
        Self {
            names: names.map(Arc::new),
            allow_local,
        }
    }
}

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = match &resolver.names {
                Some(names) => names
                    .get(&host)
                    .map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect())
                    .unwrap_or_default(),
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| resolver.allow_local || a.ip().not_global().is_none())
                .collect();
            if allowed.is_empty() {
                let reason = found
                    .first()
                    .and_then(|a| a.ip().not_global())
                    .unwrap_or("no address");
                return Err(std::io::Error::other(format!(
                    "{host} resolves to no address pushes may go to ({reason})"
                )));
            }
            Ok(allowed.into_iter())
        })
    }
}
