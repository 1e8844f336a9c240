//! Push endpoints (RFC 8030 push resources), their hosts read the way HTTP clients read
//! them, and their origins, the VAPID audience.

use core::fmt;
use core::str::FromStr;
use std::net::{Ipv4Addr, Ipv6Addr};

use http::Uri;

use crate::Error;

/// The longest endpoint accepted. Real endpoints are 100-500 octets; the bound keeps a
/// hostile subscription from filling a server's storage.
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// An endpoint's host, read as the WHATWG URL host parser (and so every browser, and
/// `getaddrinfo` behind most HTTP clients) reads it.
///
/// * A bracketed IPv6 literal is [`Host::Ipv6`].
/// * One trailing dot is ignored: `localhost.` is `localhost`.
/// * A host whose last label is a number (decimal, octal `0…` or hex `0x…`) is an
///   IPv4 address in any of the `inet_aton` forms: `2130706433`, `0x7f.1`, `127.1` and
///   `0177.0.0.1` are all [`Host::Ipv4`] `127.0.0.1`; one that is not a valid address
///   (`1.2.3.256`, `a.0x`) is refused, as browsers refuse it.
/// * Anything else is a [`Host::Domain`], in lower case.
///
/// ```
/// use std::net::Ipv4Addr;
/// use webpush_crypto::{Endpoint, Host};
/// let endpoint: Endpoint = "https://0x7f.1/p".parse()?;
/// assert_eq!(endpoint.host(), &Host::Ipv4(Ipv4Addr::LOCALHOST));
/// let endpoint: Endpoint = "https://Push.Example.NET./p".parse()?;
/// assert_eq!(endpoint.host(), &Host::Domain("push.example.net".into()));
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// A DNS name, lower case, without the trailing dot.
    Domain(String),
    /// An IPv4 address, in whichever form it was written.
    Ipv4(Ipv4Addr),
    /// An IPv6 address.
    Ipv6(Ipv6Addr),
}

impl fmt::Display for Host {
    /// The canonical form: the name, the dotted quad, or the bracketed RFC 5952 form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(name) => f.write_str(name),
            Host::Ipv4(ip) => write!(f, "{ip}"),
            Host::Ipv6(ip) => write!(f, "[{ip}]"),
        }
    }
}

impl Host {
    /// Reads a host as it appears in a URL's authority.
    ///
    /// ```text
    /// host        = "[" IPv6address "]" / ipv4-number *3("." ipv4-number) ["."] / reg-name
    /// ipv4-number = "0" ("x" / "X") *HEXDIG / "0" *DIGIT / %x31-39 *DIGIT   ; WHATWG
    /// reg-name    = 1*( ALPHA / DIGIT / "-" / "." / "_" )                    ; as http::Uri
    /// ```
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidEndpoint { reason };
        if let Some(inner) = text.strip_prefix('[') {
            let literal = inner
                .strip_suffix(']')
                .ok_or(invalid("host is not a DNS name or an IP address"))?;
            return literal
                .parse::<Ipv6Addr>()
                .map(Host::Ipv6)
                .map_err(|_| invalid("host is not a valid IPv6 address"));
        }
        if text.is_empty() {
            return Err(invalid("no host"));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            // `http::Uri` lets other octets through (`p[`), which would make an origin
            // that does not parse again.
            return Err(invalid("host is not a DNS name or an IP address"));
        }
        let name = text.strip_suffix('.').unwrap_or(text);
        if name.is_empty() {
            return Err(invalid("no host"));
        }
        // DNS has no empty labels; allowing them would let the origin (which drops the
        // one trailing dot) read differently a second time (found by fuzzing).
        if name.split('.').any(str::is_empty) {
            return Err(invalid("host has an empty label (\"..\")"));
        }
        if ends_in_number(name) {
            return parse_ipv4(name)
                .map(Host::Ipv4)
                .ok_or(invalid("host ends in a number but is not an IPv4 address"));
        }
        Ok(Host::Domain(name.to_ascii_lowercase()))
    }
}

/// WHATWG's "ends in a number": the last label is all digits, or a `0x` hex number.
fn ends_in_number(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())) || ipv4_number(last).is_some()
}

/// One part of an IPv4 address: `0x` hex (empty means 0), `0` octal, else decimal.
fn ipv4_number(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) = match part.get(..2) {
        Some("0x" | "0X") => (part.get(2..)?, 16),
        _ if part.len() > 1 && part.starts_with('0') => (part.get(1..)?, 8),
        _ => (part, 10),
    };
    if digits.is_empty() {
        return Some(0);
    }
    // More than 16 digits cannot be an address; stopping here keeps u64 from overflowing.
    if digits.len() > 16 || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// The `inet_aton` forms, as the WHATWG IPv4 parser reads them: one to four parts,
/// the last filling the remaining octets.
fn parse_ipv4(name: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let numbers: Vec<u64> = parts
        .iter()
        .map(|p| ipv4_number(p))
        .collect::<Option<_>>()?;
    let (last, leading) = numbers.split_last()?;
    if leading.iter().any(|&n| n > 255) {
        return None;
    }
    let spare_bits = 8 * (5 - numbers.len() as u32);
    if *last >= 1u64 << spare_bits {
        return None;
    }
    let mut address = *last;
    for (i, &n) in leading.iter().enumerate() {
        address += n << (8 * (3 - i as u32));
    }
    u32::try_from(address).ok().map(Ipv4Addr::from)
}

/// Which schemes an endpoint may have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Schemes {
    Https,
    HttpsOrPlainHttp,
}

/// A push resource URL: absolute `https`, with a host, without user information or a
/// fragment, with a port (when it has one) from 1 to 65535.
///
/// The host is read once, as an HTTP client will read it ([`Host`]), and the origin
/// (`https://host[:port]`) computed from it, because every VAPID token and every cache
/// lookup needs it.
///
/// ```
/// use webpush_crypto::Endpoint;
/// let endpoint: Endpoint = "https://Push.Example.net/p/JzLQ3raZ".parse()?;
/// assert_eq!(endpoint.origin().as_str(), "https://push.example.net");
/// assert!("http://push.example.net/p/1".parse::<Endpoint>().is_err());
/// assert!("https://push.example.net:99999/p/1".parse::<Endpoint>().is_err());
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    text: String,
    uri: Uri,
    host: Host,
    port: Option<u16>,
    origin: Origin,
}

impl Endpoint {
    /// Validates an endpoint URL.
    pub fn new(text: &str) -> Result<Self, Error> {
        Self::parse(text, Schemes::Https)
    }

    /// Also accepts plain `http://`, **for tests against a local push service** (such
    /// as `web-push-testing`, which listens on http only). Never use it for endpoints
    /// from clients: a message sent over plain http is readable and forgeable on the
    /// way, and the IMAP endpoint policy refuses such endpoints whatever this says.
    ///
    /// ```
    /// use webpush_crypto::Endpoint;
    /// let local = Endpoint::new_allowing_plain_http("http://127.0.0.1:8090/notify/abc")?;
    /// assert_eq!(local.origin().as_str(), "http://127.0.0.1:8090");
    /// assert!(Endpoint::new("http://127.0.0.1:8090/notify/abc").is_err());
    /// # Ok::<(), webpush_crypto::Error>(())
    /// ```
    pub fn new_allowing_plain_http(text: &str) -> Result<Self, Error> {
        Self::parse(text, Schemes::HttpsOrPlainHttp)
    }

    fn parse(text: &str, schemes: Schemes) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidEndpoint { reason };
        if text.len() > MAX_ENDPOINT_LEN {
            return Err(invalid("longer than 2048 octets"));
        }
        // `http::Uri` drops a fragment silently; the text would keep it.
        if text.contains('#') {
            return Err(invalid("has a fragment (#...)"));
        }
        let uri: Uri = text.parse().map_err(|_| invalid("not a URL"))?;
        let (origin, host, port) = Origin::of(&uri, schemes)?;
        Ok(Self {
            text: text.to_owned(),
            uri,
            host,
            port,
            origin,
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed URL, for building requests.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The host, as an HTTP client reads it: what to resolve, and what an address
    /// policy must judge.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port to connect to: the given one, or the scheme's default (443, or 80 for
    /// a plain-http test endpoint).
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.is_https() { 443 } else { 80 })
    }

    /// Whether the scheme is `https` (always, unless made by
    /// [`new_allowing_plain_http`](Self::new_allowing_plain_http)).
    pub fn is_https(&self) -> bool {
        self.origin.0.starts_with("https:")
    }

    /// `https://host[:port]`: the VAPID `aud` claim for this endpoint.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Endpoint").field(&self.text).finish()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Endpoint {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::new(text)
    }
}

impl TryFrom<&str> for Endpoint {
    type Error = Error;
    fn try_from(text: &str) -> Result<Self, Error> {
        Self::new(text)
    }
}

/// A Web origin, `https://host[:port]`, with the host in its canonical form ([`Host`]'s
/// `Display`) and the default port omitted: the form RFC 8292 requires for `aud`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin(String);

impl Origin {
    /// Parses an origin or any `https` URL and keeps its origin.
    ///
    /// ```
    /// use webpush_crypto::Origin;
    /// let origin = Origin::new("https://PUSH.example.net:443")?;
    /// assert_eq!(origin.as_str(), "https://push.example.net");
    /// # Ok::<(), webpush_crypto::Error>(())
    /// ```
    pub fn new(text: &str) -> Result<Self, Error> {
        Endpoint::new(text).map(|e| e.origin)
    }

    fn of(uri: &Uri, schemes: Schemes) -> Result<(Self, Host, Option<u16>), Error> {
        let invalid = |reason| Error::InvalidEndpoint { reason };
        let (scheme, default_port) = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => ("https", 443),
            Some(s) if s.eq_ignore_ascii_case("http") && schemes == Schemes::HttpsOrPlainHttp => {
                ("http", 80)
            }
            Some(_) => return Err(invalid("scheme is not https")),
            None => return Err(invalid("not an absolute URL")),
        };
        let authority = uri.authority().ok_or(invalid("no host"))?.as_str();
        if authority.contains('@') {
            return Err(invalid("contains user information"));
        }
        // The port follows the last colon outside an IPv6 literal's brackets.
        let host_end = authority.rfind(']').map_or(0, |i| i + 1);
        let (host, port) = match authority
            .get(host_end..)
            .and_then(|tail| tail.find(':'))
            .map(|i| host_end + i)
        {
            Some(colon) => authority
                .split_at_checked(colon)
                .and_then(|(host, port)| Some((host, port.strip_prefix(':')?)))
                .ok_or(invalid("no host"))?,
            None => (authority, ""),
        };
        let host = Host::parse(host)?;
        // An empty port is the default port, as in the WHATWG parser.
        let port = match port {
            "" => None,
            digits => {
                let port = digits
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or(invalid("port is not a number from 1 to 65535"))?;
                (port != default_port).then_some(port)
            }
        };
        let origin = match port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        Ok((Self(origin), host, port))
    }

    /// The origin as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Origin").field(&self.0).finish()
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Origin {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::new(text)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn origins() {
        for (url, origin) in [
            (
                "https://fcm.googleapis.com/fcm/send/abc",
                "https://fcm.googleapis.com",
            ),
            (
                "https://Push.Example.NET:8443/x",
                "https://push.example.net:8443",
            ),
            (
                "https://push.example.net:443/x?y=z",
                "https://push.example.net",
            ),
            (
                "https://push.example.net:0443/x",
                "https://push.example.net",
            ),
            ("https://push.example.net:/x", "https://push.example.net"),
            ("https://push.example.net./x", "https://push.example.net"),
            ("HTTPS://[::1]:9000/p", "https://[::1]:9000"),
            ("https://[0:0::1]/p", "https://[::1]"),
            ("https://[::FFFF:7f00:1]/p", "https://[::ffff:127.0.0.1]"),
            ("https://134744072/p", "https://8.8.8.8"),
            ("https://0x8.0x8.8.010/p", "https://8.8.8.8"),
            ("https://8.526344/p", "https://8.8.8.8"),
            ("https://8.8.2056/p", "https://8.8.8.8"),
            ("https://0x7F.1./p", "https://127.0.0.1"),
            ("https://0x.0/p", "https://0.0.0.0"),
            ("https://a-1.b_2.example/p", "https://a-1.b_2.example"),
        ] {
            assert_eq!(
                Endpoint::new(url).unwrap().origin().as_str(),
                origin,
                "{url}"
            );
        }
    }

    #[test]
    fn hosts() {
        let host = |url: &str| Endpoint::new(url).unwrap().host().clone();
        let v4 = |a, b, c, d| Host::Ipv4(Ipv4Addr::new(a, b, c, d));
        for url in [
            "https://2130706433/",
            "https://0x7f.1/",
            "https://127.1/",
            "https://0177.0.0.1/",
            "https://127.0.0.1./",
            "https://0x7f000001/",
            "https://017700000001/",
        ] {
            assert_eq!(host(url), v4(127, 0, 0, 1), "{url}");
        }
        assert_eq!(
            host("https://localhost./"),
            Host::Domain("localhost".into())
        );
        assert_eq!(host("https://169.254.169.254./"), v4(169, 254, 169, 254));
        // A number that is not the last label does not make an address.
        assert_eq!(host("https://1.example/"), Host::Domain("1.example".into()));
        assert_eq!(
            host("https://[64:ff9b::7f00:1]/"),
            Host::Ipv6("64:ff9b::7f00:1".parse().unwrap())
        );
        let endpoint = Endpoint::new("https://push.example.net:8443/p").unwrap();
        assert_eq!((endpoint.port(), endpoint.is_https()), (8443, true));
        assert_eq!(
            Endpoint::new("https://push.example.net/p").unwrap().port(),
            443
        );
    }

    #[test]
    fn refusals() {
        for (url, reason) in [
            ("http://push.example.net/p", "scheme is not https"),
            ("/p/relative", "not an absolute URL"),
            ("push.example.net", "not an absolute URL"),
            (
                "https://user:pw@push.example.net/p",
                "contains user information",
            ),
            ("https://push example/p", "not a URL"),
            // Found by fuzzing: http::Uri accepts this authority, with host "p[".
            ("https://p[:4]/x", "host is not a DNS name or an IP address"),
            ("https://[]/x", "host is not a valid IPv6 address"),
            ("https://[1.2.3.4]/x", "host is not a valid IPv6 address"),
            ("", "not a URL"),
            (
                "https://push.example.net:99999/p",
                "port is not a number from 1 to 65535",
            ),
            (
                "https://push.example.net:65536/p",
                "port is not a number from 1 to 65535",
            ),
            (
                "https://push.example.net:0/p",
                "port is not a number from 1 to 65535",
            ),
            ("https://push.example.net/p#frag", "has a fragment (#...)"),
            ("https://push.example.net/p#", "has a fragment (#...)"),
            (
                "https://1.2.3.256/p",
                "host ends in a number but is not an IPv4 address",
            ),
            (
                "https://1.2.3.4.5/p",
                "host ends in a number but is not an IPv4 address",
            ),
            (
                "https://example.0x/p",
                "host ends in a number but is not an IPv4 address",
            ),
            (
                "https://example.08/p",
                "host ends in a number but is not an IPv4 address",
            ),
            (
                "https://4294967296/p",
                "host ends in a number but is not an IPv4 address",
            ),
            ("https://./p", "no host"),
            (
                "https://4........./4;p/+8-4",
                "host has an empty label (\"..\")",
            ),
            ("https://a..b/p", "host has an empty label (\"..\")"),
            ("https://.a/p", "host has an empty label (\"..\")"),
        ] {
            assert_eq!(
                Endpoint::new(url),
                Err(Error::InvalidEndpoint { reason }),
                "{url}"
            );
        }
        let long = format!("https://e.example/{}", "a".repeat(MAX_ENDPOINT_LEN));
        assert!(Endpoint::new(&long).is_err());
    }

    #[test]
    fn plain_http_only_when_asked() {
        let local = Endpoint::new_allowing_plain_http("http://localhost:8090/notify/x").unwrap();
        assert_eq!(local.origin().as_str(), "http://localhost:8090");
        assert_eq!((local.port(), local.is_https()), (8090, false));
        let default = Endpoint::new_allowing_plain_http("http://push.test/x").unwrap();
        assert_eq!(
            (default.port(), default.origin().as_str()),
            (80, "http://push.test")
        );
        assert!(Endpoint::new_allowing_plain_http("ftp://push.test/x").is_err());
        assert!(Endpoint::new("http://localhost:8090/notify/x").is_err());
    }

    /// An address in one of the `inet_aton` forms: one to four parts, each in decimal,
    /// octal or hex, the last filling the remaining octets; maybe a trailing dot.
    fn inet_aton_form() -> impl Strategy<Value = (u32, String)> {
        (
            any::<u32>(),
            1usize..=4,
            prop::collection::vec(0u8..3, 4),
            any::<bool>(),
        )
            .prop_map(|(address, parts, bases, dot)| {
                let octets = address.to_be_bytes();
                let mut values: Vec<u64> = octets
                    .iter()
                    .take(parts - 1)
                    .map(|&o| u64::from(o))
                    .collect();
                let rest = octets
                    .iter()
                    .skip(parts - 1)
                    .fold(0u64, |acc, &o| (acc << 8) | u64::from(o));
                values.push(rest);
                let mut text = values
                    .iter()
                    .zip(&bases)
                    .map(|(&v, base)| match base {
                        0 => format!("{v}"),
                        1 => format!("0{v:o}"),
                        _ => format!("0x{v:x}"),
                    })
                    .collect::<Vec<_>>()
                    .join(".");
                if dot {
                    text.push('.');
                }
                (address, text)
            })
    }

    proptest! {
        #[test]
        fn every_inet_aton_form_reads_as_its_address((address, form) in inet_aton_form()) {
            let endpoint = Endpoint::new(&format!("https://{form}/p")).unwrap();
            prop_assert_eq!(endpoint.host(), &Host::Ipv4(Ipv4Addr::from(address)));
            prop_assert_eq!(
                endpoint.origin().as_str(),
                format!("https://{}", Ipv4Addr::from(address))
            );
        }

        #[test]
        fn origins_parse_again(host in "[a-z0-9]{1,10}(\\.[a-z0-9-]{1,10}){0,3}", port in proptest::option::of(1u16..)) {
            let url = match port {
                Some(port) => format!("https://{host}:{port}/x"),
                None => format!("https://{host}/x"),
            };
            if let Ok(endpoint) = Endpoint::new(&url) {
                let again = Origin::new(endpoint.origin().as_str()).unwrap();
                prop_assert_eq!(&again, endpoint.origin());
            }
        }
    }
}
