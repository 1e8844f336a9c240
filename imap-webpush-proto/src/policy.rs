//! The endpoint policy: which push endpoints a server stores, and which addresses it
//! may connect to for them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use webpush_crypto::{Endpoint, Host};

use crate::error::Refusal;

/// Checks an endpoint before anything is stored: an absolute `https` URL without user
/// information or fragment, at most 2048 octets, with a valid port, whose host (read as
/// an HTTP client reads it, see [`Host`]) is not a special-use name that never names a
/// public service ([`LOCAL_NAMES`]) nor an IP address that is not globally reachable
/// ([`PushAddress`]).
///
/// A name that *resolves* to such an address is not caught here: resolving DNS is the
/// sending server's job, and it must apply [`PushAddress`] to every address it
/// connects to (DNS rebinding otherwise gets past this check).
///
/// ```
/// use imap_webpush_proto::endpoint_policy;
/// assert!(endpoint_policy("https://fcm.googleapis.com/fcm/send/abc").is_ok());
/// assert!(endpoint_policy("https://127.0.0.1/p").is_err());
/// assert!(endpoint_policy("https://0x7f.1/p").is_err());
/// assert!(endpoint_policy("https://[fd00::1]/p").is_err());
/// assert!(endpoint_policy("http://push.example.net/p").is_err());
/// assert!(endpoint_policy("https://printer.local/p").is_err());
/// assert!(endpoint_policy("https://metadata.google.internal/p").is_err());
/// ```
pub fn endpoint_policy(text: &str) -> Result<Endpoint, Refusal> {
    let endpoint = Endpoint::new(text).map_err(|e| Refusal::Endpoint {
        reason: e.to_string(),
    })?;
    check_host(endpoint.host())?;
    Ok(endpoint)
}

/// Special-use domain names that name the machine itself or hosts on a local network,
/// never a public push service: `localhost` (RFC 6761), `local` (mDNS, RFC 6762),
/// `home.arpa` (RFC 8375) and `internal` (reserved by ICANN for private use, 2024); the
/// names and everything under them.
pub const LOCAL_NAMES: [&str; 4] = ["localhost", "local", "home.arpa", "internal"];

/// The host part of [`endpoint_policy`]: no special-use local name ([`LOCAL_NAMES`]),
/// no address that is not globally reachable. Names compare without case and without a
/// final dot.
pub fn check_host(host: &Host) -> Result<(), Refusal> {
    match host {
        Host::Domain(name) => {
            let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            let under = |local: &str| {
                name == local
                    || name
                        .strip_suffix(local)
                        .is_some_and(|head| head.ends_with('.'))
            };
            match LOCAL_NAMES.into_iter().find(|local| under(local)) {
                Some("localhost") => Err(Refusal::Endpoint {
                    reason: "the host is localhost".to_owned(),
                }),
                Some(local) => Err(Refusal::Endpoint {
                    reason: format!("the host is in .{local}, a name for local hosts"),
                }),
                None => Ok(()),
            }
        }
        Host::Ipv4(ip) => ip.check_push_address(),
        Host::Ipv6(ip) => ip.check_push_address(),
    }
}

/// The address rule, for endpoints and for the addresses DNS gives a sender at connect
/// time: pushes go only to addresses the IANA IPv4 and IPv6 Special-Purpose Address
/// Registries mark globally reachable, never to multicast or reserved space, nor to the
/// deprecated site-local `fec0::/10`. An IPv4 address embedded in IPv6
/// (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) is judged as
/// that IPv4 address.
///
/// ```
/// use std::net::IpAddr;
/// use imap_webpush_proto::PushAddress;
/// let ip: IpAddr = "8.8.8.8".parse()?;
/// assert_eq!(ip.not_global(), None);
/// let ip: IpAddr = "64:ff9b::a9fe:a9fe".parse()?;
/// assert_eq!(ip.not_global(), Some("link-local (169.254.0.0/16)"));
/// assert!(ip.check_push_address().is_err());
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
pub trait PushAddress {
    /// `None` for a globally reachable address; else the special-purpose block it is
    /// in, in words.
    fn not_global(&self) -> Option<&'static str>;

    /// The refusal for an address that is not globally reachable.
    fn check_push_address(&self) -> Result<(), Refusal> {
        match self.not_global() {
            None => Ok(()),
            Some(block) => Err(Refusal::Endpoint {
                reason: format!("the address is not globally reachable: {block}"),
            }),
        }
    }
}

impl PushAddress for IpAddr {
    fn not_global(&self) -> Option<&'static str> {
        match self {
            IpAddr::V4(ip) => ip.not_global(),
            IpAddr::V6(ip) => ip.not_global(),
        }
    }
}

/// IPv4 blocks that are not globally reachable, by the IANA registry (RFC 6890 and its
/// updates), plus multicast and the reserved 240.0.0.0/4 (with the limited broadcast).
const V4_BLOCKS: [(u32, u32, &str); 16] = [
    (0x0000_0000, 8, "this network (0.0.0.0/8)"),
    (0x0a00_0000, 8, "private (10.0.0.0/8)"),
    (0x6440_0000, 10, "shared address space (100.64.0.0/10)"),
    (0x7f00_0000, 8, "loopback (127.0.0.0/8)"),
    (0xa9fe_0000, 16, "link-local (169.254.0.0/16)"),
    (0xac10_0000, 12, "private (172.16.0.0/12)"),
    (0xc000_0000, 24, "IETF protocol assignments (192.0.0.0/24)"),
    (0xc000_0200, 24, "documentation (192.0.2.0/24)"),
    (
        0xc058_6300,
        24,
        "deprecated 6to4 relay anycast (192.88.99.0/24)",
    ),
    (0xc0a8_0000, 16, "private (192.168.0.0/16)"),
    (0xc612_0000, 15, "benchmarking (198.18.0.0/15)"),
    (0xc633_6400, 24, "documentation (198.51.100.0/24)"),
    (0xcb00_7100, 24, "documentation (203.0.113.0/24)"),
    (0xe000_0000, 4, "multicast (224.0.0.0/4)"),
    (0xffff_ffff, 32, "limited broadcast (255.255.255.255)"),
    (0xf000_0000, 4, "reserved (240.0.0.0/4)"),
];

/// Globally reachable exceptions inside the blocks above: PCP and TURN anycast.
const V4_GLOBAL: [u32; 2] = [0xc000_0009, 0xc000_000a];

fn in_v4(ip: u32, base: u32, len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    ip & mask == base & mask
}

impl PushAddress for Ipv4Addr {
    fn not_global(&self) -> Option<&'static str> {
        let ip = u32::from(*self);
        if V4_GLOBAL.contains(&ip) {
            return None;
        }
        V4_BLOCKS
            .iter()
            .find(|&&(base, len, _)| in_v4(ip, base, len))
            .map(|&(_, _, block)| block)
    }
}

/// IPv6 blocks that are not globally reachable (IANA registry), multicast, and the
/// deprecated site-local block.
const V6_BLOCKS: [(u128, u32, &str); 14] = [
    (
        0x0064_ff9b_0001 << 80,
        48,
        "local-use IPv4/IPv6 translation (64:ff9b:1::/48)",
    ),
    (0x0100 << 112, 64, "discard-only (100::/64)"),
    (
        (0x0100 << 112) | (1 << 64),
        64,
        "dummy prefix (100:0:0:1::/64)",
    ),
    (0x2001_0000 << 96, 32, "Teredo (2001::/32)"),
    (0x2001_0002 << 96, 48, "benchmarking (2001:2::/48)"),
    (0x2001_0010 << 96, 28, "deprecated ORCHID (2001:10::/28)"),
    (0x2001_0db8 << 96, 32, "documentation (2001:db8::/32)"),
    (0x3fff << 112, 20, "documentation (3fff::/20)"),
    (0x5f00 << 112, 16, "segment routing SIDs (5f00::/16)"),
    (0xfc00 << 112, 7, "unique local (fc00::/7)"),
    (0xfe80 << 112, 10, "link-local (fe80::/10)"),
    (0xfec0 << 112, 10, "deprecated site-local (fec0::/10)"),
    (0xff00 << 112, 8, "multicast (ff00::/8)"),
    (0x2001 << 112, 23, "IETF protocol assignments (2001::/23)"),
];

/// Globally reachable blocks inside 2001::/23: PCP, TURN and DNS-SD SRP anycast, AMT,
/// AS112, ORCHIDv2, DRIP.
const V6_GLOBAL: [(u128, u32); 7] = [
    ((0x2001_0001 << 96) | 1, 128),
    ((0x2001_0001 << 96) | 2, 128),
    ((0x2001_0001 << 96) | 3, 128),
    (0x2001_0003 << 96, 32),
    (0x2001_0004_0112 << 80, 48),
    (0x2001_0020 << 96, 28),
    (0x2001_0030 << 96, 28),
];

fn in_v6(ip: u128, base: u128, len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    ip & mask == base & mask
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it.
fn embedded_v4(ip: u128) -> Option<Ipv4Addr> {
    let low = Ipv4Addr::from(ip as u32);
    if in_v6(ip, 0xffff << 32, 96) || in_v6(ip, 0x0064_ff9b << 96, 96) || in_v6(ip, 0, 96) {
        // IPv4-mapped, NAT64 well-known prefix, IPv4-compatible (deprecated).
        return Some(low);
    }
    if in_v6(ip, 0x2002 << 112, 16) {
        // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
        return Some(Ipv4Addr::from((ip >> 80) as u32));
    }
    None
}

impl PushAddress for Ipv6Addr {
    fn not_global(&self) -> Option<&'static str> {
        let ip = u128::from(*self);
        if ip == 0 {
            return Some("unspecified (::/128)");
        }
        if ip == 1 {
            return Some("loopback (::1/128)");
        }
        if let Some(v4) = embedded_v4(ip) {
            return v4.not_global();
        }
        if V6_GLOBAL.iter().any(|&(base, len)| in_v6(ip, base, len)) {
            return None;
        }
        if let Some(&(_, _, block)) = V6_BLOCKS
            .iter()
            .find(|&&(base, len, _)| in_v6(ip, base, len))
        {
            return Some(block);
        }
        // Global unicast is 2000::/3; the rest is reserved by the IETF.
        (!in_v6(ip, 0x2000 << 112, 3)).then_some("reserved (outside 2000::/3)")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "https://fcm.googleapis.com/fcm/send/x",
            "https://8.8.8.8/p",
            "https://134744072/p",
            "https://[2001:4860::8888]/p",
            "https://[::ffff:8.8.8.8]/p",
            "https://[64:ff9b::808:808]/p",
            "https://[2002:808:808::1]/p",
            "https://[2001:1::1]/p",
            "https://[2001:20::1]/p",
            "https://192.0.0.9/p",
            "https://192.52.193.1/p",
            "https://push.example.net:8443/p",
            "https://1.example/p",
        ] {
            assert!(
                endpoint_policy(ok).is_ok(),
                "{ok}: {:?}",
                endpoint_policy(ok)
            );
        }
        for bad in [
            // Every form the outside review found accepted.
            "https://2130706433/",
            "https://0x7f.1/",
            "https://127.1/",
            "https://0177.0.0.1/",
            "https://localhost./",
            "https://169.254.169.254./",
            "https://[64:ff9b::7f00:1]/",
            "https://224.0.0.1/",
            "https://push.example.net:99999/",
            // And more.
            "https://localhost/p",
            "https://LOCALHOST/p",
            "https://a.localhost/p",
            "https://a.localhost./p",
            // Special-use names for local hosts.
            "https://printer.local/p",
            "https://PRINTER.LOCAL./p",
            "https://metadata.google.internal/p",
            "https://internal/p",
            "https://router.home.arpa/p",
            "https://127.0.0.1/p",
            "https://10.1.2.3/p",
            "https://012.1.2.3/p",
            "https://172.16.0.1/p",
            "https://172.31.255.255/p",
            "https://192.168.1.1/p",
            "https://0xc0a80101/p",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/p",
            "https://0.0.0.0/p",
            "https://0/p",
            "https://192.0.0.1/p",
            "https://192.0.0.170/p",
            "https://192.0.2.1/p",
            "https://192.88.99.1/p",
            "https://198.18.0.1/p",
            "https://198.51.100.1/p",
            "https://203.0.113.1/p",
            "https://239.255.255.250/p",
            "https://240.0.0.1/p",
            "https://255.255.255.255/p",
            "https://[::]/p",
            "https://[::1]/p",
            "https://[::127.0.0.1]/p",
            "https://[::ffff:127.0.0.1]/p",
            "https://[::ffff:7f00:1]/p",
            "https://[::ffff:10.0.0.1]/p",
            "https://[64:ff9b::a9fe:a9fe]/p",
            "https://[64:ff9b:1::1]/p",
            "https://[2002:7f00:1::1]/p",
            "https://[2002:c0a8:101::]/p",
            "https://[100::1]/p",
            "https://[2001::1]/p",
            "https://[2001:2::1]/p",
            "https://[2001:10::1]/p",
            "https://[2001:db8::1]/p",
            "https://[3fff::1]/p",
            "https://[5f00::1]/p",
            "https://[fe80::1]/p",
            "https://[fd12::1]/p",
            "https://[fec0::1]/p",
            "https://[ff02::1]/p",
            "https://[4000::1]/p",
            "https://[1::1]/p",
            "http://push.example.net/p",
            "https://user@push.example.net/p",
            "https://push.example.net/p#x",
        ] {
            assert!(
                matches!(endpoint_policy(bad), Err(Refusal::Endpoint { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_refusal_names_the_block() {
        let reason = |url| match endpoint_policy(url) {
            Err(Refusal::Endpoint { reason }) => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason("https://0x7f.1/"),
            "the address is not globally reachable: loopback (127.0.0.0/8)"
        );
        assert_eq!(
            reason("https://[fec0::1]/"),
            "the address is not globally reachable: deprecated site-local (fec0::/10)"
        );
        assert_eq!(reason("https://localhost./"), "the host is localhost");
        assert_eq!(
            reason("https://router.home.arpa/p"),
            "the host is in .home.arpa, a name for local hosts"
        );
        // Names that only end like one are not under it.
        for ok in [
            "https://local.example/p",
            "https://mylocal/p",
            "https://notinternal/p",
            "https://home.arpa.example/p",
        ] {
            assert!(endpoint_policy(ok).is_ok(), "{ok}");
        }
    }

    fn v4_from(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(n)
    }

    proptest! {
        /// Any address written in any `inet_aton` form gets its dotted quad's verdict.
        #[test]
        fn inet_aton_forms_get_the_dotted_quads_verdict(
            address in prop_oneof![
                any::<u32>(),
                // Near the block edges, where a wrong mask shows.
                prop::sample::select(V4_BLOCKS.iter().map(|b| b.0).collect::<Vec<_>>())
                    .prop_flat_map(|base| (base.saturating_sub(2))..=base.saturating_add(2)),
            ],
            parts in 1usize..=4,
            hex in any::<bool>(),
            octal in any::<bool>(),
            dot in any::<bool>(),
        ) {
            let octets = address.to_be_bytes();
            let mut values: Vec<u64> = octets.iter().take(parts - 1).map(|&o| u64::from(o)).collect();
            values.push(octets.iter().skip(parts - 1).fold(0u64, |acc, &o| (acc << 8) | u64::from(o)));
            let mut form = values
                .iter()
                .enumerate()
                .map(|(i, v)| match (hex && i % 2 == 0, octal) {
                    (true, _) => format!("0x{v:X}"),
                    (false, true) => format!("0{v:o}"),
                    (false, false) => format!("{v}"),
                })
                .collect::<Vec<_>>()
                .join(".");
            if dot {
                form.push('.');
            }
            let quad = v4_from(address);
            let verdict = |url: String| endpoint_policy(&url).map(|e| e.origin().clone());
            prop_assert_eq!(
                verdict(format!("https://{form}/p")),
                verdict(format!("https://{quad}/p")),
                "{} and {}", form, quad
            );
        }

        /// An IPv4 address embedded in IPv6 gets the IPv4 address's verdict.
        #[test]
        fn embedded_addresses_get_the_ipv4_verdict(address in any::<u32>(), form in 0usize..4) {
            let v4 = v4_from(address);
            let n = u128::from(address);
            let v6 = match form {
                0 => (0xffff << 32) | n,
                1 => (0x0064_ff9b << 96) | n,
                2 => (0x2002 << 112) | (n << 80),
                _ => n,
            };
            let v6 = Ipv6Addr::from(v6);
            // :: and ::1 are their own IPv6 blocks.
            prop_assume!(!(form == 3 && address <= 1));
            prop_assert_eq!(v6.not_global(), v4.not_global(), "{}", v6);
        }
    }
}
