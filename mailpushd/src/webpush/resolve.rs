//! Resolving push service names at connect time, with the endpoint rule applied again
//! to every address DNS returns: a name that resolves to a private address is refused
//! (DNS rebinding), and so is one of this machine's own addresses, public ones too
//! (services bound to them answer this machine as they may not answer the world).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use imap_webpush_proto::PushAddress;

use crate::config::StaticNames;

/// How many DNS lookups run at once. Each takes a blocking thread for as long as the
/// system's resolver takes (seconds per server that does not answer, whatever the
/// request's timeout), so a user's endpoints on names whose servers never answer
/// must not take all of the runtime's blocking threads.
const MAX_LOOKUPS: usize = 32;

/// Resolves push service names, keeping only the addresses pushes may go to.
#[derive(Clone, Debug)]
pub struct Resolver {
    names: Option<Arc<StaticNames>>,
    allow_local: bool,
    /// Held by each lookup until the system's resolver returns, not only until the
    /// request that asked gives up.
    lookups: Arc<tokio::sync::Semaphore>,
}

impl Resolver {
    /// Resolves with DNS, or `names` in its place; keeps only globally reachable
    /// addresses unless `allow_local` (tests against a local push service).
    pub fn new(names: Option<StaticNames>, allow_local: bool) -> Self {
        Self {
            names: names.map(Arc::new),
            allow_local,
            lookups: Arc::new(tokio::sync::Semaphore::new(MAX_LOOKUPS)),
        }
    }

    /// `host`'s addresses from the system's resolver, on a blocking thread that holds
    /// one of [`MAX_LOOKUPS`] permits until it returns.
    async fn lookup(&self, host: String) -> std::io::Result<Vec<SocketAddr>> {
        let permit = self
            .lookups
            .clone()
            .acquire_owned()
            .await
            .map_err(std::io::Error::other)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), 0))
                .map(Iterator::collect::<Vec<_>>)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

impl Resolver {
    /// Why pushes may not go to `ip`, if they may not: the address rule, then this
    /// machine's own addresses; nothing unless the service may be local.
    pub(super) fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allow_local {
            return None;
        }
        if let Some(block) = ip.not_global() {
            return Some(block);
        }
        match this_host(ip) {
            Ok(false) => None,
            Ok(true) => Some("an address of this machine"),
            // No silent pass: the push waits for its next attempt.
            Err(_) => Some("this machine's addresses could not be checked"),
        }
    }
}

/// Whether `ip` is assigned to one of this machine's interfaces. The kernel sends to
/// those from the address itself (their routes are local), so a datagram socket
/// connected to it says: a route lookup, no packet sent. An address of a family the
/// kernel does not have (IPv6 turned off), or one it has no route to, is not this
/// machine's: a connection to it fails anyway. Any other failure (no file descriptor
/// left) is an error. A public address a NAT in front of the machine forwards to it is
/// not seen here.
pub(super) fn this_host(ip: IpAddr) -> std::io::Result<bool> {
    use std::io::ErrorKind;
    /// Linux's EAFNOSUPPORT, which the standard library has no kind for.
    const NO_SUCH_FAMILY: i32 = 97;
    let any = match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let connected = UdpSocket::bind(SocketAddr::new(any, 0)).and_then(|socket| {
        socket.connect(SocketAddr::new(ip, 443))?;
        socket.local_addr()
    });
    match connected {
        Ok(own) => Ok(own.ip() == ip),
        Err(e)
            if e.raw_os_error() == Some(NO_SUCH_FAMILY)
                || matches!(
                    e.kind(),
                    ErrorKind::NetworkUnreachable
                        | ErrorKind::HostUnreachable
                        | ErrorKind::AddrNotAvailable
                ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
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
                None => resolver.lookup(host.clone()).await?,
            };
            let mut allowed = Vec::with_capacity(found.len());
            let mut reason = "no address";
            for address in &found {
                match resolver.refusal(address.ip()) {
                    None => allowed.push(*address),
                    Some(why) if allowed.is_empty() => reason = why,
                    Some(_) => {}
                }
            }
            if allowed.is_empty() {
                return Err(std::io::Error::other(format!(
                    "{host} resolves to no address pushes may go to ({reason})"
                )));
            }
            Ok(allowed.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn this_machines_own_addresses_are_told_from_others() {
        assert!(this_host("127.0.0.1".parse().unwrap()).unwrap());
        assert!(this_host("::1".parse().unwrap()).unwrap());
        // The address this machine sends from to the world is its own; the world's
        // are not.
        let outward = UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.connect("192.0.2.1:443").and_then(|()| s.local_addr()));
        if let Ok(outward) = outward {
            assert!(this_host(outward.ip()).unwrap(), "{outward}");
            assert!(!this_host("192.0.2.1".parse().unwrap()).unwrap());
        }
    }

    fn call(
        resolver: &mut Resolver,
        host: &str,
    ) -> <Resolver as tower_service::Service<Name>>::Future {
        tower_service::Service::call(resolver, Name::from_str(host).unwrap())
    }

    #[tokio::test]
    async fn a_loopback_name_is_refused_unless_local_is_allowed() {
        let found = call(&mut Resolver::new(None, true), "localhost")
            .await
            .unwrap();
        assert!(found.into_iter().all(|a| a.ip().is_loopback()));
        let refused = call(&mut Resolver::new(None, false), "localhost")
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("resolves to no address"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn lookups_wait_for_a_permit() {
        let mut resolver = Resolver::new(None, true);
        let all = resolver
            .lookups
            .clone()
            .acquire_many_owned(u32::try_from(MAX_LOOKUPS).unwrap())
            .await
            .unwrap();
        let mut waiting = call(&mut resolver, "localhost");
        let early = tokio::time::timeout(std::time::Duration::from_millis(100), &mut waiting).await;
        assert!(early.is_err(), "looked up without a permit");
        drop(all);
        assert!(waiting.await.is_ok());
    }
}
