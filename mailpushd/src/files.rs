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
/// `PermissionDenied`) when every user of the machine may read or change it (see
/// [`exposure`]): a key anyone can read is anyone's, and one anyone can change,
/// anyone's to replace.
pub fn read_private(path: &Path, limit: u64) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    let exposure = exposure(path, &file.metadata()?)?;
    if exposure.read || exposure.write {
        return Err(exposure.error("it holds a secret"));
    }
    secret_from(file, limit)
}

/// What every user of the machine may do to a file, beyond its owner and its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exposure {
    /// Every user may read it: its mode lets others read it, and every folder above it
    /// lets them through.
    pub read: bool,
    /// Every user may change it: its mode lets others write it, or a folder on its way
    /// lets them replace what it holds (others may write to it, and it has no sticky
    /// bit), the folders above that letting them through.
    pub write: bool,
    /// The file's mode.
    pub mode: u32,
}

impl Exposure {
    /// The error that refuses the file, `why` it must be private said.
    pub fn error(&self, why: &str) -> std::io::Error {
        let what = match (self.read, self.write) {
            (true, true) => "read and change",
            (true, false) => "read",
            _ => "change",
        };
        std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "every user of this machine may {what} it (mode {:03o}, and the folders above it), and {why}: chmod o-rwx it, and o-w any folder above it every user may write to",
                self.mode
            ),
        )
    }
}

/// What every user of the machine may do to the file at `path`, whose `metadata`
/// these are. A file in a folder only its owner may enter is as private as that
/// folder.
///
/// ```
/// use std::os::unix::fs::PermissionsExt;
/// // The system's temporary folder lets everyone through (and has the sticky bit).
/// let dir = std::path::Path::new("/tmp").join(format!("mailpushd-exposure-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let key = dir.join("key.pem");
/// std::fs::write(&key, b"secret")?;
/// let mode = |p: &std::path::Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
/// let exposure = |p| mailpushd::files::exposure(p, &std::fs::metadata(p)?);
/// mode(&key, 0o644)?;
/// mode(&dir, 0o755)?;
/// assert!(exposure(&key)?.read && !exposure(&key)?.write);
/// mode(&dir, 0o700)?;
/// assert!(!exposure(&key)?.read);
/// mode(&dir, 0o755)?;
/// mode(&key, 0o640)?;
/// assert!(!exposure(&key)?.read);
/// // A folder every user may write to, without the sticky bit: the key is anyone's
/// // to replace.
/// mode(&dir, 0o777)?;
/// assert!(exposure(&key)?.write);
/// # mode(&dir, 0o700)?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn exposure(path: &Path, metadata: &std::fs::Metadata) -> std::io::Result<Exposure> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = metadata.permissions().mode() & 0o7777;
    // A pipe or a device (a configuration on standard input) keeps nothing on disk
    // for anyone to read later.
    if !metadata.is_file() {
        return Ok(Exposure {
            read: false,
            write: false,
            mode,
        });
    }
    let full = std::fs::canonicalize(path)?;
    let (reached, replaceable) = walk(&full)?;
    // The folders of the path as given too: one that holds a link on the way, which
    // anyone who may write to it may point elsewhere.
    let given = std::path::absolute(path)?;
    let (_, replaceable_link) = walk(&given)?;
    Ok(Exposure {
        read: reached && mode & 0o004 != 0,
        write: replaceable || replaceable_link || (reached && mode & 0o002 != 0),
        mode,
    })
}

/// From the root down to the folder holding `path`: whether every user reaches that
/// folder, and whether they may replace something on the way (a folder they may
/// write to that has no sticky bit, which they reach).
fn walk(path: &Path) -> std::io::Result<(bool, bool)> {
    use std::os::unix::fs::PermissionsExt as _;
    let folders: Vec<&Path> = path.ancestors().skip(1).collect();
    let (mut reached, mut replaceable) = (true, false);
    for folder in folders.iter().rev().filter(|f| !f.as_os_str().is_empty()) {
        let folder_mode = std::fs::metadata(folder)?.permissions().mode();
        replaceable |= reached && folder_mode & 0o003 == 0o003 && folder_mode & 0o1000 == 0;
        reached &= folder_mode & 0o001 != 0;
    }
    Ok((reached, replaceable))
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

/// Writes `contents` to the file at `path`, readable by its owner only: for a key
/// made here. Whole or not at all, following no link at `path`, and nobody who had
/// the file before open reads the new one: see [`create_private`], which this is but
/// for replacing what is there.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    place_private(path, contents, Place::Replace)
}

/// Writes a new file readable by its owner only; a file (or a link) already at
/// `path` is an error (kind `AlreadyExists`), never overwritten or followed. Whole or
/// not at all: written beside it under a name of its own, synced, then linked into
/// place, so that a crash leaves no partial file the next start would refuse, and no
/// copy of it beside it.
pub fn create_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    place_private(path, contents, Place::New)
}

/// How a file written beside its place goes there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Renamed over what is there.
    Replace,
    /// Linked where nothing is: a link is never made over an existing name.
    New,
}

fn place_private(path: &Path, contents: &[u8], place: Place) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut random = [0_u8; 8];
    rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut random)
        .map_err(std::io::Error::other)?;
    let mut staging = path.as_os_str().to_owned();
    staging.push(format!(".new-{:016x}", u64::from_be_bytes(random)));
    let staging = std::path::PathBuf::from(staging);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staging)?;
        file.write_all(contents)?;
        file.sync_all()?;
        match place {
            Place::Replace => std::fs::rename(&staging, path),
            Place::New => std::fs::hard_link(&staging, path),
        }
    })();
    // Gone once renamed; a link's other name, or what a failure left, goes here.
    let _ = std::fs::remove_file(&staging);
    written?;
    sync_folder_of(path)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A private file reached through a link in a folder every user may write to is
    /// anyone's to replace: they may point the link elsewhere.
    #[test]
    fn a_link_in_a_folder_every_user_may_write_to_exposes_what_it_names() {
        let dir = tempfile::tempdir_in("/tmp").unwrap();
        mode(dir.path(), 0o755);
        let private = dir.path().join("private");
        std::fs::create_dir(&private).unwrap();
        mode(&private, 0o700);
        let key = private.join("key.pem");
        write_private(&key, b"secret").unwrap();
        let exposure = |p: &Path| exposure(p, &std::fs::metadata(p).unwrap()).unwrap();
        assert_eq!(
            exposure(&key),
            Exposure {
                read: false,
                write: false,
                mode: 0o600
            }
        );
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        mode(&open, 0o777);
        let link = open.join("key.pem");
        std::os::unix::fs::symlink(&key, &link).unwrap();
        assert!(exposure(&link).write);
        // With the sticky bit, a link there is its owner's alone to change.
        mode(&open, 0o1777);
        assert!(!exposure(&link).write);
        // No stray copy of the key is left beside it.
        let names: Vec<_> = std::fs::read_dir(&private).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    /// A pipe or a device keeps nothing on disk: no exposure, whatever its mode.
    #[test]
    fn a_device_is_no_file_on_disk() {
        let null = Path::new("/dev/null");
        let exposure = exposure(null, &std::fs::metadata(null).unwrap()).unwrap();
        assert!(!exposure.read && !exposure.write);
    }
}
