//! Push endpoints (RFC 8030 push resources) and their origins, the VAPID audience.

use core::fmt;
use core::str::FromStr;

use http::Uri;

use crate::Error;

/// The longest endpoint accepted. Real endpoints are 100-500 octets; the bound keeps a
/// hostile subscription from filling a server's storage.
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// A push resource URL: absolute `https`, with a host, without user information.
///
/// The origin (`https://host[:port]`) is computed once here, because every VAPID token
/// and every cache lookup needs it.
///
/// ```
/// use webpush_crypto::Endpoint;
/// let endpoint: Endpoint = "https://Push.Example.net/p/JzLQ3raZ".parse()?;
/// assert_eq!(endpoint.origin().as_str(), "https://push.example.net");
/// assert!("http://push.example.net/p/1".parse::<Endpoint>().is_err());
/// # Ok::<(), webpush_crypto::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    text: String,
    uri: Uri,
    origin: Origin,
}

impl Endpoint {
    /// Validates an endpoint URL.
    pub fn new(text: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidEndpoint { reason };
        if text.len() > MAX_ENDPOINT_LEN {
            return Err(invalid("longer than 2048 octets"));
        }
        let uri: Uri = text.parse().map_err(|_| invalid("not a URL"))?;
        let origin = Origin::of(&uri)?;
        Ok(Self {
            text: text.to_owned(),
            uri,
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

/// A Web origin, `https://host[:port]`, with the host in lower case and the default port
/// omitted: the form RFC 8292 requires for `aud`.
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
        if text.len() > MAX_ENDPOINT_LEN {
            return Err(Error::InvalidEndpoint {
                reason: "longer than 2048 octets",
            });
        }
        let uri: Uri = text.parse().map_err(|_| Error::InvalidEndpoint {
            reason: "not a URL",
        })?;
        Self::of(&uri)
    }

    fn of(uri: &Uri) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidEndpoint { reason };
        match uri.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => {}
            Some(_) => return Err(invalid("scheme is not https")),
            None => return Err(invalid("not an absolute URL")),
        }
        let authority = uri.authority().ok_or(invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("contains user information"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        if !valid_host(host) {
            return Err(invalid("host is not a DNS name or an IP address"));
        }
        let mut origin = String::with_capacity(8 + host.len() + 6);
        origin.push_str("https://");
        origin.extend(host.chars().map(|c| c.to_ascii_lowercase()));
        if let Some(port) = authority.port_u16().filter(|&port| port != 443) {
            origin.push(':');
            origin.push_str(&port.to_string());
        }
        Ok(Self(origin))
    }

    /// The origin as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A DNS name or IPv4 address (letters, digits, `-`, `.`, `_`), or a bracketed IPv6
/// address. `http::Uri` lets other bytes through (`p[`), which would make an origin
/// that does not parse again.
fn valid_host(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ip) => {
            !ip.is_empty()
                && ip
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        None => host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')),
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
            ("HTTPS://[::1]:9000/p", "https://[::1]:9000"),
        ] {
            assert_eq!(
                Endpoint::new(url).unwrap().origin().as_str(),
                origin,
                "{url}"
            );
        }
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
            ("https://[]/x", "host is not a DNS name or an IP address"),
            ("", "not a URL"),
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
}
