//! The files an administrator names, read with a bound: a path that names a device
//! (`/dev/zero`) or a file far larger than its kind ever is gives an error, not all of
//! the machine's memory.

use std::io::Read as _;
use std::path::Path;

use zeroize::Zeroizing;

/// A configuration file's most.
pub const CONFIG_MAX: u64 = 1 << 20;

/// A key's, credential's or certificate chain's file (PEM, PKCS#8, PKCS#12,
/// `user:password`): theirs are a few KiB.
pub const KEY_MAX: u64 = 256 << 10;

/// A certificate chain or a CA bundle (the system's is about 200 KiB).
pub const CERTIFICATES_MAX: u64 = 16 << 20;

/// An xapsd JSON database: a registration takes a few hundred octets in it.
pub const XAPSD_DATABASE_MAX: u64 = 1 << 30;

/// Up to `limit` octets of the file at `path`; a larger one is an error of kind
/// `InvalidData`.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("mailpushd-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("f");
/// std::fs::write(&path, b"12345")?;
/// assert_eq!(mailpushd::files::read_at_most(&path, 5)?, b"12345");
/// assert!(mailpushd::files::read_at_most(&path, 4).is_err());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    read_into(path, limit, &mut bytes)?;
    Ok(bytes)
}

/// The same for a file that holds a secret: its room is taken once, up to `limit`, so
/// that no growing leaves a copy behind, and wiped when dropped.
pub fn read_secret(path: &Path, limit: u64) -> std::io::Result<Zeroizing<Vec<u8>>> {
    secret_from(std::fs::File::open(path)?, limit)
}

/// The same for a file that holds a private key, which is refused (kind
/// `PermissionDenied`) when every user of the machine may read or write it (see
/// [`exposed`]): a key anyone can read is anyone's, and one anyone can write, anyone's
/// to replace.
pub fn read_private(path: &Path, limit: u64) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    if let Some(mode) = exposed(path, &file.metadata()?)? {
        return Err(exposed_error(mode));
    }
    secret_from(file, limit)
}

/// The error [`read_private`] gives for a file whose `mode` lets every user at it.
pub fn exposed_error(mode: u32) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "every user of this machine may read or write it (mode {mode:03o}), and it holds a secret: chmod o-rwx it"
        ),
    )
}

/// The mode of the file at `path` (whose `metadata` these are) when every user of the
/// machine may read or write it: its mode lets others do so, and every folder above it
/// lets them through. `None` when not; a file in a folder only its owner may enter is
/// as private as that folder.
///
/// ```
/// use std::os::unix::fs::PermissionsExt;
/// let dir = std::env::temp_dir().join(format!("mailpushd-exposed-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let key = dir.join("key.pem");
/// std::fs::write(&key, b"secret")?;
/// std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644))?;
/// std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
/// let exposed = |p| mailpushd::files::exposed(p, &std::fs::metadata(p)?);
/// // The system's temporary folder lets everyone through.
/// assert_eq!(exposed(&key)?, Some(0o644));
/// std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
/// assert_eq!(exposed(&key)?, None);
/// std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
/// std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640))?;
/// assert_eq!(exposed(&key)?, None);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn exposed(path: &Path, metadata: &std::fs::Metadata) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o006 == 0 {
        return Ok(None);
    }
    let full = std::fs::canonicalize(path)?;
    for folder in full.ancestors().skip(1) {
        if std::fs::metadata(folder)?.permissions().mode() & 0o001 == 0 {
            return Ok(None);
        }
    }
    Ok(Some(mode))
}

/// A text file that holds secrets (a configuration), as [`read_secret`].
pub fn read_secret_text(path: &Path, limit: u64) -> std::io::Result<Zeroizing<String>> {
    let mut bytes = read_secret(path, limit)?;
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(e) => {
            // Its octets are wiped too.
            drop(Zeroizing::new(e.into_bytes()));
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not UTF-8 text",
            ))
        }
    }
}

/// Writes `contents` to the file at `path`, made (or left) readable by its owner only:
/// for a key made here.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // A file that was there keeps its mode through the open: set it first.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Syncs the folder that holds `path`, so that a name just made or renamed in it
/// reaches the disk too.
pub fn sync_folder_of(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(folder) => std::fs::File::open(folder)?.sync_all(),
        None => std::fs::File::open(".")?.sync_all(),
    }
}

fn read_into(path: &Path, limit: u64, bytes: &mut Vec<u8>) -> std::io::Result<()> {
    read_from(std::fs::File::open(path)?, limit, bytes)
}

fn secret_from(file: std::fs::File, limit: u64) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let room = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let mut bytes = Zeroizing::new(Vec::with_capacity(room));
    read_from(file, limit, &mut bytes)?;
    Ok(bytes)
}

fn read_from(file: std::fs::File, limit: u64, bytes: &mut Vec<u8>) -> std::io::Result<()> {
    file.take(limit.saturating_add(1)).read_to_end(bytes)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} octets, more than such a file ever holds"),
        ));
    }
    Ok(())
}
