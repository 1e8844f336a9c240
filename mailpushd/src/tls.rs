//! The certificates the senders trust: the platform's roots, and for a stand-in an
//! extra CA from a file.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The trusted certificates cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    /// The CA file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CA file holds something that is not a usable certificate.
    #[error("{path}: not a usable CA certificate: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The platform's root certificates, plus every certificate in the PEM file `extra`.
/// A CA file without any certificate (a DER file, say, or the wrong file) is refused;
/// a platform store that cannot be read is logged.
pub fn roots(extra: Option<&Path>) -> Result<RootCertStore, RootsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A platform certificate rustls cannot use is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    for error in &native.errors {
        tracing::warn!(%error, "a platform certificate store could not be read");
    }
    if let Some(path) = extra {
        let refused = |reason: String| RootsError::Certificate {
            path: path.to_owned(),
            reason,
        };
        let pem =
            crate::files::read_at_most(path, crate::files::CERTIFICATES_MAX).map_err(|source| {
                RootsError::Read {
                    path: path.to_owned(),
                    source,
                }
            })?;
        let mut added = 0_usize;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| refused(e.to_string()))?;
            roots.add(cert).map_err(|e| refused(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(refused(
                "no PEM certificate in it (-----BEGIN CERTIFICATE-----)".into(),
            ));
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = roots(Some(&empty)).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate in it"), "{e}");
        let der = dir.path().join("ca.der");
        std::fs::write(&der, [0x30, 0x82, 0x01, 0x00]).unwrap();
        assert!(roots(Some(&der)).is_err());
    }
}
