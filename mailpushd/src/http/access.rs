//! Who may use the API: the credential (given in the configuration, or made on first
//! start into a file only the daemon's user reads), the routes the operator opened in
//! words, and the Unix socket, whose permissions are its credential.

use std::path::{Path, PathBuf};

use http::HeaderValue;
use subtle::ConstantTimeEq as _;

use crate::config::{Api, BasicAuth, Config, OpenRoutes};

/// The user name of a credential made on first start.
const MADE_USER: &str = "dovecot";

/// The credential cannot be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// The credential file cannot be read or made.
    #[error("API credential {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The credential file is readable by others than its owner.
    #[error(
        "API credential {path} is readable by others (mode {mode:o}): make it the owner's only (chmod 600)"
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The file does not hold `user:password` on one line.
    #[error("API credential {path} does not hold user:password on one line")]
    Format {
        /// The file.
        path: PathBuf,
    },
    /// No randomness for a new credential.
    #[error("no randomness to make an API credential: {0}")]
    Random(rand_core::Error),
    /// The HTTP API does not listen on TCP, where Dovecot's drivers would reach it.
    #[error(
        "listen = \"off\": the HTTP API does not listen on TCP, so Dovecot has no address to reach it at"
    )]
    NoTcp,
}

/// Who may use which route, resolved at start.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    /// None when every route is open and no credential was configured.
    credential: Option<BasicAuth>,
    open: OpenRoutes,
    /// Where the credential came from, for the start-up log and `check-config`.
    origin: Origin,
}

/// Where the credential came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// None: every route is open.
    None,
    /// `basic_auth` in the configuration.
    Configured,
    /// The credential file, read.
    File(PathBuf),
    /// The credential file, made now.
    Made(PathBuf),
    /// The credential file, not there yet: the first start makes it.
    ToMake(PathBuf),
}

/// How a request reached the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// TCP: the credential decides.
    Tcp,
    /// The Unix socket: whoever could open it may use every route.
    Socket,
}

impl Access {
    /// The access `config` describes; the credential file is read, or made when it
    /// does not exist.
    pub(crate) fn resolve(config: &Config) -> Result<Self, AccessError> {
        Self::resolve_making(config, true)
    }

    /// The same, the credential file made when it does not exist only with `make`.
    fn resolve_making(config: &Config, make: bool) -> Result<Self, AccessError> {
        let (credential, origin) = match (&config.basic_auth, config.api.open) {
            (Some(auth), _) => (Some(auth.clone()), Origin::Configured),
            (None, OpenRoutes::All) => (None, Origin::None),
            (None, _) => match credential_file(&config.api, make)? {
                Some((auth, origin)) => (Some(auth), origin),
                None => (None, Origin::ToMake(config.api.credential_file.clone())),
            },
        };
        Ok(Self {
            credential,
            open: config.api.open,
            origin,
        })
    }

    /// Whether a request for a route that changes state (`xapsd`: one of xapsd's own)
    /// may go on, with the `Authorization` header it carried.
    pub(crate) fn allows(&self, xapsd: bool, via: Via, header: Option<&HeaderValue>) -> bool {
        if via == Via::Socket {
            return true;
        }
        match self.open {
            OpenRoutes::All => return true,
            OpenRoutes::Xapsd if xapsd => return true,
            _ => {}
        }
        self.credential
            .as_ref()
            .is_some_and(|credential| authorized(header, credential))
    }

    /// What the operator should know, in words: for the start-up log and
    /// `check-config`. Warnings first.
    pub(crate) fn describe(&self, api: &Api) -> Vec<(bool, String)> {
        let mut lines = Vec::new();
        match self.open {
            OpenRoutes::All => lines.push((
                true,
                "api.open: every route is open to any local process, which can act as any mail user".to_owned(),
            )),
            OpenRoutes::Xapsd => lines.push((
                true,
                "/register, /notify and the OX route are open to any local process, as xapsd had them: any local user can register devices for any mail user and push any mail user's devices; the Web Push routes need the credential".to_owned(),
            )),
            _ => {}
        }
        lines.push((
            false,
            match &self.origin {
                Origin::None => "API credential: none (every route is open)".to_owned(),
                Origin::Configured => "API credential: basic_auth from the configuration".to_owned(),
                Origin::File(path) => format!("API credential: {} (`mailpushd dovecot-settings` prints Dovecot's lines)", path.display()),
                Origin::Made(path) => format!("API credential: made into {} (`mailpushd dovecot-settings` prints Dovecot's lines)", path.display()),
                Origin::ToMake(path) => format!("API credential: none yet: the first start, or `mailpushd dovecot-settings`, makes {} (run it as the daemon's user)", path.display()),
            },
        ));
        if let Some(socket) = &api.socket {
            lines.push((
                false,
                format!(
                    "API socket: {} (mode {:o}{}): every route, no credential asked",
                    socket.path.display(),
                    socket.mode,
                    socket
                        .group
                        .as_ref()
                        .map(|g| format!(", group {g}"))
                        .unwrap_or_default()
                ),
            ));
        }
        lines
    }
}

/// What `check-config` says of the API's access (warnings first): the credential is
/// read, never made (a check run as another user would leave a file the daemon
/// cannot read).
pub fn describe_access(config: &Config) -> Result<Vec<(bool, String)>, AccessError> {
    Ok(Access::resolve_making(config, false)?.describe(&config.api))
}

/// The lines Dovecot needs to reach the daemon with its credential (made if there is
/// none yet), for 2.3 and 2.4: the xaps plugin's URL, the Lua script's settings, the
/// OX driver's URL. None for a process whose API does not listen on TCP.
pub fn dovecot_settings(config: &Config) -> Result<String, AccessError> {
    use base64::Engine as _;
    if !config.api.tcp {
        return Err(AccessError::NoTcp);
    }
    let access = Access::resolve(config)?;
    let Some(auth) = &access.credential else {
        return Ok(format!(
            "# Every route is open (api.open): Dovecot needs no credential.\n\
             mailpushd_url = http://{}/notify\n",
            config.listen
        ));
    };
    let userinfo = zeroize::Zeroizing::new(format!("{}:{}", auth.user, auth.password.as_str()));
    let basic = base64::engine::general_purpose::STANDARD.encode(userinfo.as_bytes());
    let at = config.listen;
    let ox = &config.ox_path;
    // RFC 3986's userinfo, unreserved and sub-delims and ':': anything else (`@`, `/`,
    // `#`, ...) would change where the URL points, or need an encoding the plugins may
    // not undo.
    let url_safe = userinfo
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:".contains(&b));
    if !url_safe {
        return Ok(format!(
            "{PRIVATE}\
             \n\
             # The Lua script, Dovecot 2.3 (plugin {{ }}) and 2.4 (push_notification mailpushd {{ lua_settings {{ }} }}):\n\
             mailpushd_url = http://{at}/notify\n\
             mailpushd_authorization = Basic {basic}\n\
             \n\
             # The xaps plugin and the OX driver take the credential in a URL, which this\n\
             # one cannot be written in: basic_auth has characters other than letters,\n\
             # digits and -._~!$&'()*+,;=: in it. Choose a password of those for them.\n"
        ));
    }
    let userinfo = userinfo.as_str();
    Ok(format!(
        "{PRIVATE}\
         \n\
         # The xaps plugin (Dovecot 2.3), conf.d/95-xaps.conf:\n\
         plugin {{\n  xaps_config = url=http://{userinfo}@{at}\n}}\n\
         \n\
         # The Lua script, Dovecot 2.3 (plugin {{ }}) and 2.4 (push_notification mailpushd {{ lua_settings {{ }} }}):\n\
         mailpushd_url = http://{at}/notify\n\
         mailpushd_authorization = Basic {basic}\n\
         \n\
         # The OX driver, Dovecot 2.3:\n\
         push_notification_driver = ox:url=http://{userinfo}@{at}{ox}\n\
         # and Dovecot 2.4 (push_notification ox {{ }}):\n\
         url = http://{userinfo}@{at}{ox}\n"
    ))
}

/// What [`dovecot_settings`] says first: where the lines it prints may go.
const PRIVATE: &str = "# mailpushd's credential for Dovecot: whoever reads it can push, register and\n\
     # subscribe as any mail user. Put each line that holds it in a file of its own that\n\
     # only root reads (chmod 600), pulled in where the line goes with\n\
     #   !include_try /etc/dovecot/mailpushd-credential.conf.ext\n\
     # (Dovecot's config process reads it as root), never in conf.d's files, which stay\n\
     # readable by all, as dovecot-lda needs.\n";

/// Reads `api.credential_file`, or with `make` makes it (`None` without): a random
/// password for [`MADE_USER`], written readable by its owner only, never over a file
/// already there.
fn credential_file(api: &Api, make: bool) -> Result<Option<(BasicAuth, Origin)>, AccessError> {
    let path = &api.credential_file;
    match read(path) {
        Ok(credential) => return Ok(Some((credential, Origin::File(path.clone())))),
        Err(AccessError::File { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if !make {
        return Ok(None);
    }
    let mut random = zeroize::Zeroizing::new([0_u8; 24]);
    rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, random.as_mut())
        .map_err(AccessError::Random)?;
    let password = webpush_crypto::base64url::encode(random.as_ref());
    let text = zeroize::Zeroizing::new(format!("{MADE_USER}:{password}\n"));
    write_new(path, text.as_bytes())?;
    tracing::info!(file = %path.display(), "made an API credential");
    let credential = BasicAuth {
        user: MADE_USER.to_owned(),
        password: zeroize::Zeroizing::new(password),
    };
    Ok(Some((credential, Origin::Made(path.clone()))))
}

/// A credential file: `user:password`, one line, the owner's only.
fn read(path: &Path) -> Result<BasicAuth, AccessError> {
    use std::os::unix::fs::PermissionsExt;
    let file_error = |source| AccessError::File {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(file_error)?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AccessError::Open {
            path: path.to_owned(),
            mode,
        });
    }
    let text = crate::files::read_secret_text(path, crate::files::KEY_MAX).map_err(file_error)?;
    let line = text.trim_end_matches(['\r', '\n']);
    let format = || AccessError::Format {
        path: path.to_owned(),
    };
    if line.contains('\n') {
        return Err(format());
    }
    let (user, password) = line.split_once(':').ok_or_else(format)?;
    if user.is_empty() || password.is_empty() {
        return Err(format());
    }
    Ok(BasicAuth {
        user: user.to_owned(),
        password: zeroize::Zeroizing::new(password.to_owned()),
    })
}

/// [`crate::files::create_private`], its error naming the file.
fn write_new(path: &Path, contents: &[u8]) -> Result<(), AccessError> {
    crate::files::create_private(path, contents).map_err(|source| AccessError::File {
        path: path.to_owned(),
        source,
    })
}

/// Basic credentials, compared in constant time whatever their lengths: the digests of
/// what was sent and what is expected are compared, so neither a wrong length nor a
/// wrong prefix answers sooner.
fn authorized(header: Option<&HeaderValue>, auth: &BasicAuth) -> bool {
    use base64::Engine as _;
    use sha2::Digest as _;
    let Some(encoded) = header.and_then(|h| h.to_str().ok()).and_then(|h| {
        h.strip_prefix("Basic ")
            .or_else(|| h.strip_prefix("basic "))
    }) else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let decoded = zeroize::Zeroizing::new(decoded);
    let expected = zeroize::Zeroizing::new(format!("{}:{}", auth.user, auth.password.as_str()));
    let sent: [u8; 32] = sha2::Sha256::digest(decoded.as_slice()).into();
    let wanted: [u8; 32] = sha2::Sha256::digest(expected.as_bytes()).into();
    bool::from(sent.ct_eq(&wanted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn auth() -> BasicAuth {
        BasicAuth::new("dovecot", "s3cret".to_owned()).unwrap()
    }

    #[test]
    fn a_process_without_the_api_on_tcp_gives_dovecot_no_address() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_database(dir.path().join("m.sqlite"));
        config.api.tcp = false;
        assert!(matches!(dovecot_settings(&config), Err(AccessError::NoTcp)));
    }

    #[test]
    fn a_password_a_url_cannot_carry_is_not_put_in_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_database(dir.path().join("m.sqlite"));
        config.basic_auth = Some(auth());
        let settings = dovecot_settings(&config).unwrap();
        assert!(
            settings.contains("url=http://dovecot:s3cret@"),
            "{settings}"
        );
        config.basic_auth = Some(BasicAuth::new("dovecot", "p@evil:80/x".to_owned()).unwrap());
        let settings = dovecot_settings(&config).unwrap();
        assert!(!settings.contains("evil"), "{settings}");
        assert!(
            settings.contains("mailpushd_authorization = Basic "),
            "{settings}"
        );
        assert!(settings.contains("cannot be written in"), "{settings}");
        // Both forms say first where the lines may go.
        assert!(settings.starts_with(PRIVATE) && settings.contains("!include_try"));
        config.basic_auth = Some(auth());
        assert!(dovecot_settings(&config).unwrap().starts_with(PRIVATE));
    }

    fn header(text: &str) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(text)
        ))
        .unwrap()
    }

    #[test]
    fn credentials_of_any_length_are_compared_whole() {
        assert!(authorized(Some(&header("dovecot:s3cret")), &auth()));
        for wrong in [
            "",
            "d",
            "dovecot:s3cre",
            "dovecot:s3cret!",
            "dovecot:s3creT",
        ] {
            assert!(!authorized(Some(&header(wrong)), &auth()), "{wrong}");
        }
        assert!(!authorized(None, &auth()));
        assert!(!authorized(
            Some(&HeaderValue::from_static("Bearer x")),
            &auth()
        ));
    }

    #[test]
    fn a_credential_is_made_once_for_its_owner_only_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_database(dir.path().join("s.sqlite"));
        let made = Access::resolve(&config).unwrap();
        let path = dir.path().join("api-credential");
        assert_eq!(made.origin, Origin::Made(path.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Staged beside it, linked into place: nothing else is left in the folder.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["api-credential"]);
        let again = Access::resolve(&config).unwrap();
        assert_eq!(again.origin, Origin::File(path.clone()));
        let password = |a: &Access| a.credential.as_ref().unwrap().password.clone();
        assert_eq!(password(&again), password(&made));
        assert!(password(&made).len() >= 32);
        // Readable by others: refused, not used.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Access::resolve(&config),
            Err(AccessError::Open { .. })
        ));
        // A symbolic link where a new file would go is not followed.
        config.api.credential_file = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &config.api.credential_file)
            .unwrap();
        assert!(Access::resolve(&config).is_err());
        assert!(!dir.path().join("elsewhere").exists());
    }

    #[test]
    fn open_routes_are_as_the_operator_said() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::with_database(dir.path().join("s.sqlite"));
        let none = Access::resolve(&config).unwrap();
        assert!(!none.allows(true, Via::Tcp, None));
        assert!(none.allows(true, Via::Socket, None));
        config.api.open = OpenRoutes::Xapsd;
        let xapsd = Access::resolve(&config).unwrap();
        assert!(xapsd.allows(true, Via::Tcp, None));
        assert!(!xapsd.allows(false, Via::Tcp, None));
        config.api.open = OpenRoutes::All;
        assert!(
            Access::resolve(&config)
                .unwrap()
                .allows(false, Via::Tcp, None)
        );
    }
}
