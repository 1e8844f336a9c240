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
pub fn roots(extra: Option<&Path>) -> Result<RootCertStore, RootsError> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A platform certificate rustls cannot use is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    if let Some(path) = extra {
        let refused = |reason: String| RootsError::Certificate {
            path: path.to_owned(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|source| RootsError::Read {
            path: path.to_owned(),
            source,
        })?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| refused(e.to_string()))?;
            roots.add(cert).map_err(|e| refused(e.to_string()))?;
        }
    }
    Ok(roots)
}
