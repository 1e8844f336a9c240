//! The PROXY protocol version 2 header the front sends the IMAP server first, so that
//! the server sees the client's address (its logs, `rip`, login penalties), whether the
//! client spoke TLS to the front, and the server name it asked for by SNI.
//!
//! ```text
//! header  = signature %x21 family length addresses *tlv     ; version 2, PROXY
//! signature = %x0D.0A.0D.0A.00.0D.0A.51.55.49.54.0A
//! family  = %x11 (TCP over IPv4) / %x21 (TCP over IPv6)
//! length  = 2OCTET                                         ; what follows, big-endian
//! tlv     = type length value                              ; length: 2 octets
//! PP2_TYPE_AUTHORITY = %x02                                ; the SNI host name
//! PP2_TYPE_SSL = %x20: client verify *sub-tlv              ; client: 1 octet, verify: 4
//!   PP2_CLIENT_SSL = %x01; PP2_SUBTYPE_SSL_VERSION = %x21 (e.g. "TLSv1.3")
//! ```

use std::net::{IpAddr, SocketAddr};

const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const VERSION_PROXY: u8 = 0x21;
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;
const PP2_TYPE_AUTHORITY: u8 = 0x02;
const PP2_TYPE_SSL: u8 = 0x20;
const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
const PP2_CLIENT_SSL: u8 = 0x01;

/// The longest host name carried (a DNS name is at most 253 octets).
const MAX_AUTHORITY: usize = 255;

/// What the header says of the client's connection to the front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Client {
    /// The client's address.
    pub(crate) source: SocketAddr,
    /// The front's address the client connected to.
    pub(crate) destination: SocketAddr,
    /// The TLS version the client speaks to the front (`"TLSv1.3"`), if it does.
    pub(crate) tls: Option<&'static str>,
    /// The server name the client asked for by SNI.
    pub(crate) server_name: Option<String>,
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) as the IPv4 one, so that a dual-
/// stack listener's clients are told as the IPv4 clients they are.
fn canonical(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), address.port()),
            None => address,
        },
        IpAddr::V4(_) => address,
    }
}

fn tlv(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.push(kind);
    // Every value written here is far below 64 KiB (bounded by the callers).
    out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(value);
}

/// The header for `client`.
pub(crate) fn header(client: &Client) -> Vec<u8> {
    let (source, destination) = (canonical(client.source), canonical(client.destination));
    let mut body = Vec::with_capacity(64);
    let family = match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
            TCP4
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V6(v6) => v6,
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            };
            body.extend_from_slice(&v6(s).octets());
            body.extend_from_slice(&v6(d).octets());
            TCP6
        }
    };
    body.extend_from_slice(&source.port().to_be_bytes());
    body.extend_from_slice(&destination.port().to_be_bytes());
    if let Some(name) = client
        .server_name
        .as_deref()
        .filter(|n| !n.is_empty() && n.len() <= MAX_AUTHORITY)
    {
        tlv(&mut body, PP2_TYPE_AUTHORITY, name.as_bytes());
    }
    if let Some(version) = client.tls {
        let mut ssl = vec![PP2_CLIENT_SSL];
        // No client certificate was asked for: "verified" is not claimed (non-zero).
        ssl.extend_from_slice(&1_u32.to_be_bytes());
        tlv(&mut ssl, PP2_SUBTYPE_SSL_VERSION, version.as_bytes());
        tlv(&mut body, PP2_TYPE_SSL, &ssl);
    }
    let mut out = Vec::with_capacity(16 + body.len());
    out.extend_from_slice(&SIGNATURE);
    out.push(VERSION_PROXY);
    out.push(family);
    out.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_client_over_tls_with_sni() {
        let client = Client {
            source: "192.0.2.7:51234".parse().unwrap(),
            destination: "[::ffff:198.51.100.1]:993".parse().unwrap(),
            tls: Some("TLSv1.3"),
            server_name: Some("imap.example.org".into()),
        };
        let h = header(&client);
        assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(&h[12..14], &[0x21, 0x11]);
        let len = usize::from(u16::from_be_bytes([h[14], h[15]]));
        assert_eq!(h.len(), 16 + len);
        assert_eq!(
            &h[16..28],
            &[192, 0, 2, 7, 198, 51, 100, 1, 0xc8, 0x22, 0x03, 0xe1]
        );
        // AUTHORITY, then SSL with PP2_CLIENT_SSL, verify 1 and the version.
        assert_eq!(&h[28..31], &[0x02, 0, 16]);
        assert_eq!(&h[31..47], b"imap.example.org");
        assert_eq!(&h[47..50], &[0x20, 0, 15]);
        assert_eq!(&h[50..55], &[0x01, 0, 0, 0, 1]);
        assert_eq!(&h[55..58], &[0x21, 0, 7]);
        assert_eq!(&h[58..], b"TLSv1.3");
    }

    #[test]
    fn an_ipv6_client_in_plain_text() {
        let client = Client {
            source: "[2001:db8::1]:40000".parse().unwrap(),
            destination: "[2001:db8::2]:143".parse().unwrap(),
            tls: None,
            server_name: None,
        };
        let h = header(&client);
        assert_eq!(&h[12..16], &[0x21, 0x21, 0, 36]);
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(&h[48..52], &[0x9c, 0x40, 0, 143]);
    }
}
