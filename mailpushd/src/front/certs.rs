//! The front's certificates: one chain and key per set of server names, chosen by the
//! name the client asks for (SNI) as Dovecot's `local_name` blocks choose, and read
//! again when their files change, so a renewed certificate is served without a
//! restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::FrontCertificate;

/// A certificate or key that cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// A file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable certificate chain or key.
    #[error("{path}: {reason}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The TLS settings cannot be made.
    #[error("TLS settings: {0}")]
    Tls(#[from] rustls::Error),
}

/// When a pair's certificate and key files were last changed.
type Modified = (Option<Stamp>, Option<Stamp>);

/// When a file last changed: its contents (modified), or its inode (changed, as a
/// `chmod` does), so that a key refused for its mode is read again once that is mended.
type Stamp = (SystemTime, i64, i64);

/// One configured pair, as loaded, with its files' modification times.
struct Loaded {
    names: Vec<String>,
    files: FrontCertificate,
    modified: Modified,
    /// The files as they stand were refused: they are read again at each look, since
    /// what mends them may change none of their times (a `chmod` of a folder above).
    refused: bool,
    key: Arc<CertifiedKey>,
}

/// The certificates, by server name.
pub(crate) struct Certificates {
    provider: Arc<CryptoProvider>,
    loaded: RwLock<Vec<Loaded>>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates").finish_non_exhaustive()
    }
}

fn modified(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = std::fs::metadata(path).ok()?;
    Some((
        metadata.modified().ok()?,
        metadata.ctime(),
        metadata.ctime_nsec(),
    ))
}

fn load(
    provider: &CryptoProvider,
    files: &FrontCertificate,
) -> Result<Arc<CertifiedKey>, CertificateError> {
    // The key file is refused when every user may read it; the chain is public.
    let read = |path: &Path| {
        let read = if path == files.key_file {
            crate::files::read_private
        } else {
            crate::files::read_secret
        };
        read(path, crate::files::KEY_MAX).map_err(|source| CertificateError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let unusable = |path: &Path, reason: String| CertificateError::Unusable {
        path: path.to_owned(),
        reason,
    };
    let pem = read(&files.cert_file)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable(&files.cert_file, e.to_string()))?;
    if chain.is_empty() {
        return Err(unusable(&files.cert_file, "no certificate in it".into()));
    }
    let pem = read(&files.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| unusable(&files.key_file, format!("no usable private key: {e}")))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| unusable(&files.key_file, e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| unusable(&files.key_file, format!("not the certificate's key: {e}")))?;
    Ok(Arc::new(certified))
}

impl Certificates {
    /// Loads every pair; refuses to start on one that cannot be served.
    pub(crate) fn load(
        provider: Arc<CryptoProvider>,
        pairs: &[FrontCertificate],
    ) -> Result<Self, CertificateError> {
        let loaded = pairs
            .iter()
            .map(|files| {
                Ok(Loaded {
                    names: files.names.clone(),
                    modified: (modified(&files.cert_file), modified(&files.key_file)),
                    refused: false,
                    key: load(&provider, files)?,
                    files: files.clone(),
                })
            })
            .collect::<Result<Vec<_>, CertificateError>>()?;
        Ok(Self {
            provider,
            loaded: RwLock::new(loaded),
        })
    }

    /// Reads again each pair whose files changed, or were refused when last read; a
    /// pair that no longer loads is kept as it was, and said once per change. How many
    /// were replaced.
    pub(crate) fn reload_changed(&self) -> usize {
        let changed: Vec<(usize, FrontCertificate, Modified, bool)> = {
            let loaded = self
                .loaded
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            loaded
                .iter()
                .enumerate()
                .filter_map(|(i, l)| {
                    let now = (modified(&l.files.cert_file), modified(&l.files.key_file));
                    let new = now != l.modified;
                    (new || l.refused).then(|| (i, l.files.clone(), now, new))
                })
                .collect()
        };
        let mut replaced = 0;
        for (i, files, now, new) in changed {
            let key = load(&self.provider, &files);
            let mut loaded = self
                .loaded
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(entry) = loaded.get_mut(i) else {
                continue;
            };
            // The times are taken as seen either way: a failure is said once per change.
            entry.modified = now;
            entry.refused = key.is_err();
            match key {
                Ok(key) => {
                    entry.key = key;
                    replaced += 1;
                    tracing::info!(cert = %files.cert_file.display(), "IMAP front: certificate read again");
                }
                Err(e) if new => {
                    tracing::error!(error = %e, "IMAP front: a changed certificate cannot be served: the one before stays");
                }
                Err(e) => {
                    tracing::debug!(error = %e, "IMAP front: the changed certificate is still refused");
                }
            }
        }
        replaced
    }

    /// The pair for `name`: one naming it (or `*.` its parent), else the default.
    fn choose(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let loaded = self
            .loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let name = name.map(str::to_ascii_lowercase);
        let serves = |l: &&Loaded| {
            name.as_deref().is_some_and(|name| {
                l.names.iter().any(|n| {
                    n == name
                        || n.strip_prefix("*.").is_some_and(|parent| {
                            name.split_once('.').is_some_and(|(_, rest)| rest == parent)
                        })
                })
            })
        };
        loaded
            .iter()
            .find(serves)
            .or_else(|| loaded.iter().find(|l| l.names.is_empty()))
            .or_else(|| loaded.first())
            .map(|l| l.key.clone())
    }
}

/// Chooses by SNI for rustls.
#[derive(Debug)]
pub(crate) struct Resolver(pub(crate) Arc<Certificates>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.choose(hello.server_name())
    }
}

/// The front's TLS settings, choosing certificates from `certificates`.
pub(crate) fn server_config(
    provider: Arc<CryptoProvider>,
    certificates: Arc<Certificates>,
) -> Result<Arc<rustls::ServerConfig>, CertificateError> {
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver(certificates)));
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed pair for `names`, written as `stem.pem` and `stem.key` in `dir`.
    fn pair(dir: &Path, stem: &str, names: &[&str]) -> FrontCertificate {
        let sans: Vec<String> = if names.is_empty() {
            vec!["default.test".into()]
        } else {
            names.iter().map(|n| n.to_string()).collect()
        };
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(sans)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = FrontCertificate {
            names: names.iter().map(|n| n.to_string()).collect(),
            cert_file: dir.join(format!("{stem}.pem")),
            key_file: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert_file, cert.pem()).unwrap();
        crate::files::write_private(&files.key_file, key.serialize_pem().as_bytes()).unwrap();
        files
    }

    fn served(certificates: &Certificates, name: Option<&str>) -> Vec<u8> {
        certificates.choose(name).unwrap().cert[0].to_vec()
    }

    fn first_cert(files: &FrontCertificate) -> Vec<u8> {
        let pem = std::fs::read(&files.cert_file).unwrap();
        CertificateDer::pem_slice_iter(&pem)
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    #[test]
    fn chosen_by_the_name_asked_for_else_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let named = pair(dir.path(), "named", &["imap.example.org"]);
        let wildcard = pair(dir.path(), "wildcard", &["*.example.net"]);
        let default = pair(dir.path(), "default", &[]);
        let certificates = Certificates::load(
            provider(),
            &[named.clone(), wildcard.clone(), default.clone()],
        )
        .unwrap();
        assert_eq!(
            served(&certificates, Some("IMAP.example.org")),
            first_cert(&named)
        );
        assert_eq!(
            served(&certificates, Some("mail.example.net")),
            first_cert(&wildcard)
        );
        assert_eq!(
            served(&certificates, Some("a.b.example.net")),
            first_cert(&default)
        );
        assert_eq!(
            served(&certificates, Some("example.net")),
            first_cert(&default)
        );
        assert_eq!(served(&certificates, None), first_cert(&default));
    }

    #[test]
    fn a_renewed_pair_is_served_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let files = pair(dir.path(), "imap", &["imap.example.org"]);
        let certificates = Certificates::load(provider(), std::slice::from_ref(&files)).unwrap();
        let before = served(&certificates, Some("imap.example.org"));
        assert_eq!(certificates.reload_changed(), 0, "nothing changed");
        // Renewed: the same files, new contents (and times).
        std::thread::sleep(std::time::Duration::from_millis(20));
        let renewed = pair(dir.path(), "imap", &["imap.example.org"]);
        assert_eq!(certificates.reload_changed(), 1);
        let after = served(&certificates, Some("imap.example.org"));
        assert_ne!(after, before);
        assert_eq!(after, first_cert(&renewed));
        // A key that is not the certificate's: refused, the renewed pair stays.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let other = rcgen::KeyPair::generate().unwrap();
        crate::files::write_private(&files.key_file, other.serialize_pem().as_bytes()).unwrap();
        assert_eq!(certificates.reload_changed(), 0);
        assert_eq!(served(&certificates, Some("imap.example.org")), after);
        // And at start, such a pair is refused with the file named.
        let refused = Certificates::load(provider(), std::slice::from_ref(&files));
        let said = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            said.contains("imap.key") && said.contains("not the certificate's key"),
            "{said}"
        );
    }

    /// A renewal that leaves the key readable by all, mended by a chmod a moment later
    /// (a renewal hook's order): refused, then read again, though the chmod changes
    /// no modification time; the same when the chmod is of the key's folder.
    #[test]
    fn a_key_refused_for_its_mode_is_read_again_once_mended() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        };
        // In the system's temporary folder, which lets everyone through.
        let dir = tempfile::tempdir_in("/tmp").unwrap();
        mode(dir.path(), 0o755);
        let files = pair(dir.path(), "imap", &["imap.example.org"]);
        let certificates = Certificates::load(provider(), std::slice::from_ref(&files)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let renewed = pair(dir.path(), "imap", &["imap.example.org"]);
        mode(&renewed.key_file, 0o644);
        assert_eq!(certificates.reload_changed(), 0, "a key readable by all");
        std::thread::sleep(std::time::Duration::from_millis(20));
        mode(&renewed.key_file, 0o600);
        assert_eq!(certificates.reload_changed(), 1);
        assert_eq!(
            served(&certificates, Some("imap.example.org")),
            first_cert(&renewed)
        );
        // Renewed into a folder every user may enter and read, mended by a chmod of the
        // folder, which changes none of the key's times.
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        mode(&open, 0o755);
        let files = pair(&open, "imap", &["imap.example.org"]);
        mode(&files.key_file, 0o644);
        mode(&open, 0o700);
        let certificates = Certificates::load(provider(), std::slice::from_ref(&files)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        mode(&open, 0o755);
        let renewed = pair(&open, "imap", &["imap.example.org"]);
        mode(&renewed.key_file, 0o644);
        assert_eq!(certificates.reload_changed(), 0, "a key in an open folder");
        assert_eq!(certificates.reload_changed(), 0, "still refused");
        mode(&open, 0o700);
        assert_eq!(certificates.reload_changed(), 1);
        assert_eq!(
            served(&certificates, Some("imap.example.org")),
            first_cert(&renewed)
        );
        assert_eq!(certificates.reload_changed(), 0, "read once");
    }
}
