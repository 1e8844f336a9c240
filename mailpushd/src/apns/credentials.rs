//! What the APNs sender authenticates with: a provider token key (`.p8`), or a client
//! certificate (PEM or PKCS#12, as xapsd takes them), and the topic that follows.

use apns_proto::{CertificateInfo, ProviderKey, ProviderTokens, Topic};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::ApnsError;
use crate::config;

/// The placeholder topic when nothing names one: long enough for the Dovecot plugin's
/// check ([`Topic::suits_xaps_plugin`]), recognisably not Apple's.
pub const PLACEHOLDER_TOPIC: &str = "com.apple.mail.XServer.00000000-0000-0000-0000-000000000000";

/// A client certificate chain and its key, for TLS.
pub(crate) type ClientAuth = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The credentials read from their files.
pub(crate) struct Loaded {
    /// Provider tokens, signed with the `.p8` key.
    pub(crate) tokens: Option<ProviderTokens>,
    /// The client certificate and key.
    pub(crate) client_auth: Option<ClientAuth>,
    /// What the certificate says.
    pub(crate) certificate: Option<CertificateInfo>,
    /// The topic pushes go out on.
    pub(crate) topic: Topic,
}

/// A credential file's octets, wiped when dropped (keys are among them).
fn read(path: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>, ApnsError> {
    crate::files::read_secret(path, crate::files::KEY_MAX).map_err(|source| ApnsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The same for a file with a private key in it: refused when every user may read it.
fn read_key(path: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>, ApnsError> {
    crate::files::read_private(path, crate::files::KEY_MAX).map_err(|source| ApnsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// A credential file that does not read as what it should be.
fn unreadable(path: &std::path::Path, reason: impl std::fmt::Display) -> ApnsError {
    ApnsError::Credentials {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reads the configured credentials; the topic from the certificate, else the
/// configuration, else (without credentials) the placeholder.
pub(crate) fn load(config: &config::Apns) -> Result<Loaded, ApnsError> {
    let mut tokens = None;
    let mut client_auth = None;
    let mut certificate = None;
    match &config.credentials {
        None => {}
        Some(config::Credentials::Token {
            key_file,
            key_id,
            team_id,
        }) => {
            let key = ProviderKey::from_p8_pem(&read_key(key_file)?, key_id, team_id)
                .map_err(|e| unreadable(key_file, e))?;
            tokens = Some(ProviderTokens::new(key));
        }
        Some(config::Credentials::Pem {
            certificate: cert_file,
            key,
        }) => {
            let pem = read(cert_file)?;
            certificate =
                Some(CertificateInfo::from_pem_or_der(&pem).map_err(|e| unreadable(cert_file, e))?);
            let chain = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| unreadable(cert_file, e))?;
            // A DER file reads as a certificate above, but TLS needs the PEM chain.
            if chain.is_empty() {
                return Err(unreadable(
                    cert_file,
                    "no PEM certificate in it (-----BEGIN CERTIFICATE-----): convert a DER one with openssl x509 -inform der",
                ));
            }
            let key =
                PrivateKeyDer::from_pem_slice(&read_key(key)?).map_err(|e| unreadable(key, e))?;
            client_auth = Some((chain, key));
        }
        Some(config::Credentials::Pkcs12 { file, password }) => {
            let store = p12_keystore::KeyStore::from_pkcs12(&read_key(file)?, password)
                .map_err(|e| unreadable(file, e))?;
            let (_, entry) = store
                .private_key_chain()
                .ok_or_else(|| unreadable(file, "no private key with its certificate"))?;
            let chain: Vec<CertificateDer<'static>> = entry
                .chain()
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect();
            let leaf = chain
                .first()
                .ok_or_else(|| unreadable(file, "no certificate"))?;
            certificate =
                Some(CertificateInfo::from_pem_or_der(leaf).map_err(|e| unreadable(file, e))?);
            let key =
                PrivateKeyDer::try_from(entry.key().to_vec()).map_err(|e| unreadable(file, e))?;
            client_auth = Some((chain, key));
        }
    }
    let topic = match (&certificate, &config.topic) {
        // Refused rather than ignored: the pushes would go out for another topic than
        // the one the administrator wrote down.
        (Some(info), Some(configured)) if configured != info.topic.as_str() => {
            return Err(ApnsError::TopicNotCertificates {
                configured: configured.clone(),
                certificate: info.topic.as_str().to_owned(),
            });
        }
        (Some(info), _) => info.topic.clone(),
        (None, Some(topic)) => {
            Topic::try_from(topic.as_str()).map_err(|source| ApnsError::Topic {
                topic: topic.clone(),
                source,
            })?
        }
        (None, None) if config.credentials.is_none() => Topic::try_from(PLACEHOLDER_TOPIC)
            .map_err(|source| ApnsError::Topic {
                topic: PLACEHOLDER_TOPIC.to_owned(),
                source,
            })?,
        (None, None) => return Err(ApnsError::NoTopic),
    };
    Ok(Loaded {
        tokens,
        client_auth,
        certificate,
        topic,
    })
}
