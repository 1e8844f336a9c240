//! The endpoint policy: which push endpoints a server stores.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use webpush_crypto::Endpoint;

use crate::error::Refusal;

/// Checks an endpoint before anything is stored: an absolute `https` URL without user
/// information, at most 2048 octets, whose host is not `localhost` nor an IP literal in
/// a loopback, private, link-local, unique-local, shared or unspecified range.
///
/// A hostname that *resolves* to such an address is not caught here: resolving DNS is
/// the sending server's job, and it must apply the same ranges to the addresses it
/// connects to.
///
/// ```
/// use imap_webpush_proto::endpoint_policy;
/// assert!(endpoint_policy("https://fcm.googleapis.com/fcm/send/abc").is_ok());
/// assert!(endpoint_policy("https://127.0.0.1/p").is_err());
/// assert!(endpoint_policy("https://[fd00::1]/p").is_err());
/// assert!(endpoint_policy("http://push.example.net/p").is_err());
/// ```
pub fn endpoint_policy(text: &str) -> Result<Endpoint, Refusal> {
    let refuse = |reason: &str| Refusal::Endpoint {
        reason: reason.to_owned(),
    };
    let endpoint = Endpoint::new(text).map_err(|e| Refusal::Endpoint {
        reason: e.to_string(),
    })?;
    let host = endpoint.uri().host().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.eq_ignore_ascii_case("localhost") || bare.to_ascii_lowercase().ends_with(".localhost") {
        return Err(refuse("the host is localhost"));
    }
    if bare.parse::<IpAddr>().is_ok_and(|ip| !is_public(ip)) {
        return Err(refuse(
            "the host is a loopback, private or link-local address",
        ));
    }
    Ok(endpoint)
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, shared address space (carrier-grade NAT).
        || (a == 100 && (64..128).contains(&b)))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments().first().copied().unwrap_or_default();
    !(ip.is_loopback()
        || ip.is_unspecified()
        // fc00::/7 unique local, fe80::/10 link-local.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        for ok in [
            "https://fcm.googleapis.com/fcm/send/x",
            "https://8.8.8.8/p",
            "https://[2001:4860::8888]/p",
            "https://push.example.net:8443/p",
        ] {
            assert!(endpoint_policy(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://localhost/p",
            "https://a.localhost/p",
            "https://127.0.0.1/p",
            "https://10.1.2.3/p",
            "https://172.16.0.1/p",
            "https://192.168.1.1/p",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/p",
            "https://0.0.0.0/p",
            "https://[::1]/p",
            "https://[fe80::1]/p",
            "https://[fd12::1]/p",
            "https://[::ffff:127.0.0.1]/p",
            "http://push.example.net/p",
            "https://user@push.example.net/p",
        ] {
            assert!(
                matches!(endpoint_policy(bad), Err(Refusal::Endpoint { .. })),
                "{bad}"
            );
        }
    }
}
