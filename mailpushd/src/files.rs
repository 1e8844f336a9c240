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
    let room = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let mut bytes = Zeroizing::new(Vec::with_capacity(room));
    read_into(path, limit, &mut bytes)?;
    Ok(bytes)
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

/// Syncs the folder that holds `path`, so that a name just made or renamed in it
/// reaches the disk too.
pub fn sync_folder_of(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(folder) => std::fs::File::open(folder)?.sync_all(),
        None => std::fs::File::open(".")?.sync_all(),
    }
}

fn read_into(path: &Path, limit: u64, bytes: &mut Vec<u8>) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    file.take(limit.saturating_add(1)).read_to_end(bytes)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} octets, more than such a file ever holds"),
        ));
    }
    Ok(())
}
