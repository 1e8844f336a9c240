//! The topic and environments of an APNs certificate: the topic is the subject's UID
//! attribute; Apple's extensions say which services the certificate may use.

use std::time::SystemTime;

use x509_cert::Certificate;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Tag, Tagged};

use crate::types::Topic;

/// `userId` (0.9.2342.19200300.100.1.1): the subject attribute holding the topic.
const UID: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.9.2342.19200300.100.1.1");
/// Apple's "development" (sandbox) push extension.
const SANDBOX: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113635.100.6.3.1");
/// Apple's production push extension.
const PRODUCTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113635.100.6.3.2");

/// Why a certificate gives no topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// Not an X.509 certificate in PEM or DER.
    #[error("not an X.509 certificate in PEM or DER: {0}")]
    Parse(String),
    /// The subject has no UID attribute, so it is not an APNs certificate.
    #[error(
        "the certificate subject has no UID (0.9.2342.19200300.100.1.1), so it names no APNs topic"
    )]
    NoUid,
    /// The UID is not a string that is a valid topic.
    #[error("the certificate's UID is not a valid APNs topic")]
    BadUid,
}

/// What an APNs certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The topic: the subject's UID.
    pub topic: Topic,
    /// Whether it carries Apple's production extension (1.2.840.113635.100.6.3.2).
    pub production: bool,
    /// Whether it carries Apple's sandbox extension (1.2.840.113635.100.6.3.1).
    pub sandbox: bool,
    /// When it stops being valid (`notAfter`): APNs refuses the connection after it,
    /// so a daemon warns ahead of it.
    pub not_after: SystemTime,
    /// When it starts being valid (`notBefore`).
    pub not_before: SystemTime,
}

impl CertificateInfo {
    /// Reads a certificate in DER, or the first certificate of a PEM text.
    ///
    /// ```
    /// # let pem = include_bytes!("../tests/data/mail-push.pem");
    /// use apns_proto::CertificateInfo;
    /// let info = CertificateInfo::from_pem_or_der(pem)?;
    /// assert_eq!(info.topic.as_str(), "com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6");
    /// assert!(info.production);
    /// # Ok::<(), apns_proto::CertificateError>(())
    /// ```
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, CertificateError> {
        // DER is a SEQUENCE (0x30); anything else is read as PEM text.
        let cert = if bytes.first() == Some(&0x30) {
            Certificate::from_der(bytes)
        } else {
            let der = crate::pem::decode(bytes, "CERTIFICATE")
                .map_err(|reason| CertificateError::Parse(reason.into()))?;
            Certificate::from_der(&der)
        }
        .map_err(|e| CertificateError::Parse(e.to_string()))?;
        Self::from_certificate(&cert)
    }

    /// Reads a parsed certificate.
    pub fn from_certificate(cert: &Certificate) -> Result<Self, CertificateError> {
        let uid = cert
            .tbs_certificate
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .find(|attribute| attribute.oid == UID)
            .ok_or(CertificateError::NoUid)?;
        let text = match uid.value.tag() {
            Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
                std::str::from_utf8(uid.value.value()).map_err(|_| CertificateError::BadUid)?
            }
            _ => return Err(CertificateError::BadUid),
        };
        let topic = Topic::try_from(text).map_err(|_| CertificateError::BadUid)?;
        let extensions = cert
            .tbs_certificate
            .extensions
            .as_deref()
            .unwrap_or_default();
        let has = |oid: ObjectIdentifier| extensions.iter().any(|e| e.extn_id == oid);
        let validity = &cert.tbs_certificate.validity;
        Ok(Self {
            topic,
            production: has(PRODUCTION),
            sandbox: has(SANDBOX),
            not_after: validity.not_after.to_system_time(),
            not_before: validity.not_before.to_system_time(),
        })
    }
}
