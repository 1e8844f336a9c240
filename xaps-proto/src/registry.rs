//! The registrations a daemon keeps: who to push for which mailbox, refreshed by each
//! `XAPPLEPUSHSERVICE`, dropped when APNs says a token is gone or when a device has
//! not been seen for 30 days. Import and export use xapsd's JSON database, so an
//! installation can switch without losing a device.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::daemon::{Notify, NotifyOutcome, Register};
use crate::timestamp::Timestamp;
use crate::types::{AccountId, DeviceToken, MAX_MAILBOX_LEN, MAX_MAILBOXES};
use crate::user::UserName;

/// How long a registration lives without being refreshed: xapsd's 30 days.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The most registrations (accounts on devices) one user may have by default.
pub const DEFAULT_MAX_ACCOUNTS_PER_USER: usize = 100;

/// One device's registration for one account of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Registration {
    /// Where to push.
    pub device_token: DeviceToken,
    /// The mailboxes the device asked pushes for.
    pub mailboxes: Vec<String>,
    /// When it was last registered; `None` for entries from databases that predate
    /// the field, which never expire.
    pub registered_at: Option<Timestamp>,
}

impl Registration {
    /// Whether the device listed `mailbox`. `INBOX` matches in any case, as IMAP
    /// defines; other names match exactly.
    pub fn wants(&self, mailbox: &str) -> bool {
        self.mailboxes.iter().any(|m| same_mailbox(m, mailbox))
    }

    /// Whether it was registered before `time` (always, without a time). Compared
    /// in nanoseconds, so any `SystemTime` will do, even one RFC 3339 cannot write.
    fn older_than(&self, time: SystemTime) -> bool {
        let time = crate::timestamp::system_time_nanos(time);
        self.registered_at.is_none_or(|at| at.unix_nanos() < time)
    }
}

/// A registration lists 1 to [`MAX_MAILBOXES`] mailboxes, whether it arrives from a
/// device or from a database.
fn mailbox_count_ok(mailboxes: &[String]) -> bool {
    (1..=MAX_MAILBOXES).contains(&mailboxes.len())
}

/// What [`Registry::register`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Registered {
    /// A new registration: a new account, or a known account from another device
    /// (a restored or cloned iPhone keeps the account id), which gets pushes too.
    New,
    /// The same device registered the account again: time and mailboxes refreshed.
    Refreshed,
}

/// A refused registration; the registry is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The user already has the most registrations allowed.
    #[error("user {user:?} already has {limit} registrations (accounts on devices)")]
    TooManyAccounts {
        /// The user.
        user: UserName,
        /// The limit.
        limit: usize,
    },
    /// The registration lists no mailbox, more than allowed, or one with a name too
    /// long.
    #[error(
        "a registration must list 1 to {MAX_MAILBOXES} mailboxes of at most {MAX_MAILBOX_LEN} octets each"
    )]
    Mailboxes,
    /// The time given as now is outside years 0001 to 9999: the system clock is wrong.
    #[error("the clock reads {0:?}, outside years 0001 to 9999: set the system clock")]
    Clock(SystemTime),
}

/// Which mailboxes' events push to a device, whatever else the device listed.
///
/// ```
/// use xaps_proto::registry::PushMailboxes;
/// assert!(PushMailboxes::default().pushes("Inbox"));
/// assert!(!PushMailboxes::default().pushes("Junk"));
/// assert!(PushMailboxes::Listed.pushes("Junk"));
/// assert!(PushMailboxes::Only(vec!["INBOX".into(), "Work".into()]).pushes("Work"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushMailboxes {
    /// INBOX only, as xapsd does: a delivery to Junk or an append to Sent wakes no
    /// phone, and Mail syncs the other mailboxes when it is opened. The default.
    #[default]
    InboxOnly,
    /// Every mailbox the device listed.
    Listed,
    /// These mailboxes, where the device listed them (INBOX in any case).
    Only(Vec<String>),
}

impl PushMailboxes {
    /// Whether events in `mailbox` push at all.
    pub fn pushes(&self, mailbox: &str) -> bool {
        match self {
            PushMailboxes::InboxOnly => mailbox.eq_ignore_ascii_case("INBOX"),
            PushMailboxes::Listed => true,
            PushMailboxes::Only(names) => names.iter().any(|n| same_mailbox(n, mailbox)),
        }
    }

    /// Whether events in `mailbox` push to a target that lists no mailboxes of its own
    /// (a Web Push subscription): as [`PushMailboxes::pushes`], but
    /// [`PushMailboxes::Listed`], with no list to follow, pushes INBOX only.
    ///
    /// ```
    /// use xaps_proto::registry::PushMailboxes;
    /// assert!(!PushMailboxes::default().pushes_unlisted("Junk"));
    /// assert!(PushMailboxes::Listed.pushes_unlisted("inbox"));
    /// assert!(!PushMailboxes::Listed.pushes_unlisted("Work"));
    /// assert!(PushMailboxes::Only(vec!["Work".into()]).pushes_unlisted("Work"));
    /// ```
    pub fn pushes_unlisted(&self, mailbox: &str) -> bool {
        match self {
            PushMailboxes::Listed => same_mailbox("INBOX", mailbox),
            other => other.pushes(mailbox),
        }
    }
}

/// `INBOX` matches in any case, as IMAP defines; other names match exactly.
fn same_mailbox(a: &str, b: &str) -> bool {
    a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
}

/// Who to push for a `/notify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The mailbox is not one that pushes ([`PushMailboxes`]): HTTP 200, nothing to
    /// do, as xapsd answers for mailboxes other than INBOX.
    NotPushed,
    /// The user has no registration: HTTP 404.
    NoDevice,
    /// The user has registrations, none for this mailbox: HTTP 204.
    NotSubscribed,
    /// Push to these devices: HTTP 200.
    Push(Vec<Target<'a>>),
}

impl Lookup<'_> {
    /// The answer to the plugin.
    pub fn outcome(&self) -> NotifyOutcome {
        match self {
            Lookup::NoDevice => NotifyOutcome::NoDevice,
            Lookup::NotSubscribed => NotifyOutcome::NotSubscribed,
            Lookup::Push(_) | Lookup::NotPushed => NotifyOutcome::Accepted,
        }
    }
}

/// A device to push to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The account id, the push payload's `account-id`.
    pub account_id: &'a AccountId,
    /// The device token.
    pub device_token: &'a DeviceToken,
}

/// A registration that was removed, for the caller's log and debouncer, and a change
/// to store ([`Change::Remove`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Removed {
    /// The user.
    pub user: UserName,
    /// The account.
    pub account_id: AccountId,
    /// Its registration.
    pub registration: Registration,
}

/// A change an operation made to the registry: what a daemon that keeps registrations
/// in a store of its own writes there, so the registry's rules stay the only rules.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// Store this registration of `user`'s `account_id`, replacing the one stored.
    Put {
        /// The user.
        user: UserName,
        /// The account.
        account_id: AccountId,
        /// The registration now.
        registration: Registration,
    },
    /// Remove this registration.
    Remove(Removed),
}

impl From<Removed> for Change {
    fn from(removed: Removed) -> Self {
        Change::Remove(removed)
    }
}

/// The registrations, keyed by (user, account id, device token): every device an
/// account registered from gets pushes (an iPhone restored from another's backup, or
/// a clone, has the same account id and its own token), until APNs says its token is
/// gone or it is not refreshed within the lifetime. xapsd kept one token per account,
/// so such devices took turns. Users are compared in lower case ([`UserName`]), tokens
/// without regard to case.
///
/// Each operation that changes it returns its changes ([`Change`]): a daemon loads the
/// registrations a request needs into a registry, runs the operation, and stores the
/// changes.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use xaps_proto::daemon::Register;
/// use xaps_proto::UserName;
/// use xaps_proto::registry::{Change, Lookup, Registered, Registry};
///
/// let body = br#"{"ApsAccountId":"0715A26B-CA09-4730-A419-793000CA982E","ApsDeviceToken":"2918390218931890821908309283098109381029309829018310983092892829","ApsSubtopic":"com.apple.mobilemail","Username":"user","Mailboxes": ["INBOX","Notes"]}"#;
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let mut registry = Registry::new();
/// let (registered, change) = registry.register(Register::from_json(body)?, now)?;
/// assert_eq!(registered, Registered::New);
/// assert!(matches!(change, Change::Put { .. })); // what to store
///
/// let user = UserName::new("user")?;
/// let Lookup::Push(targets) = registry.lookup(&user, "INBOX") else { unreachable!() };
/// assert_eq!(targets[0].account_id.as_str(), "0715A26B-CA09-4730-A419-793000CA982E");
/// // INBOX only by default, as xapsd: spam in Junk wakes no phone.
/// assert_eq!(registry.lookup(&user, "Notes"), Lookup::NotPushed);
/// assert_eq!(registry.lookup(&UserName::new("other")?, "INBOX"), Lookup::NoDevice);
///
/// // Not refreshed for 30 days: gone.
/// let removed = registry.expire(now + Duration::from_secs(31 * 86_400));
/// assert_eq!(removed.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Registry {
    users: BTreeMap<UserName, BTreeMap<Device, Registration>>,
    max_age: Duration,
    max_accounts_per_user: usize,
    push_mailboxes: PushMailboxes,
}

/// One account on one device: a registration's key within a user.
type Device = (AccountId, DeviceToken);

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// An empty registry with the default limits.
    pub fn new() -> Self {
        Self {
            users: BTreeMap::new(),
            max_age: DEFAULT_MAX_AGE,
            max_accounts_per_user: DEFAULT_MAX_ACCOUNTS_PER_USER,
            push_mailboxes: PushMailboxes::InboxOnly,
        }
    }

    /// Sets which mailboxes' events push (INBOX only by default).
    pub fn with_push_mailboxes(mut self, policy: PushMailboxes) -> Self {
        self.push_mailboxes = policy;
        self
    }

    /// Sets how long a registration lives without a refresh.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Sets the most registrations (accounts on devices) one user may have.
    pub fn with_max_accounts_per_user(mut self, limit: usize) -> Self {
        self.max_accounts_per_user = limit;
        self
    }

    /// Adds or refreshes the registration of `register.username`'s account; what was
    /// done, and the change to store. The caller takes the user from the
    /// authenticated session (see [`Register::new`]), never from the device.
    pub fn register(
        &mut self,
        register: Register,
        now: SystemTime,
    ) -> Result<(Registered, Change), RegistryError> {
        // A device's list, whatever carried it (the legacy protocol too): each name
        // as long as the command allows, at most.
        if !mailbox_count_ok(&register.mailboxes)
            || register.mailboxes.iter().any(|m| m.len() > MAX_MAILBOX_LEN)
        {
            return Err(RegistryError::Mailboxes);
        }
        let registered_at = Timestamp::from_system_time(now).ok_or(RegistryError::Clock(now))?;
        let user = register.username;
        let device = (register.account_id, register.device_token);
        let accounts = self.users.get(&user);
        let known = accounts.is_some_and(|a| a.contains_key(&device));
        let count = accounts.map_or(0, BTreeMap::len);
        if !known && count >= self.max_accounts_per_user {
            return Err(RegistryError::TooManyAccounts {
                user,
                limit: self.max_accounts_per_user,
            });
        }
        let registration = Registration {
            // As the device sent it this time.
            device_token: device.1.clone(),
            mailboxes: register.mailboxes,
            registered_at: Some(registered_at),
        };
        let change = Change::Put {
            user: user.clone(),
            account_id: device.0.clone(),
            registration: registration.clone(),
        };
        let accounts = self.users.entry(user).or_default();
        let registered = match accounts.entry(device) {
            Entry::Vacant(slot) => {
                slot.insert(registration);
                Registered::New
            }
            Entry::Occupied(mut slot) => {
                *slot.get_mut() = registration;
                Registered::Refreshed
            }
        };
        Ok((registered, change))
    }

    /// Puts back a registration a daemon stored, as it was (its time is not refreshed,
    /// the per-user limit not applied again): for a daemon that keeps registrations in
    /// its own store and loads the ones a request needs.
    ///
    /// ```
    /// use xaps_proto::{AccountId, DeviceToken, UserName};
    /// use xaps_proto::registry::{Lookup, Registration, Registry};
    /// let mut registry = Registry::new();
    /// let alice = UserName::new("alice")?;
    /// registry.restore(alice.clone(), AccountId::new("ACC1")?, Registration {
    ///     device_token: DeviceToken::new("2918390218931890821908309283098109381029309829018310983092892829")?,
    ///     mailboxes: vec!["INBOX".into()],
    ///     registered_at: None,
    /// })?;
    /// assert!(matches!(registry.lookup(&alice, "INBOX"), Lookup::Push(_)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn restore(
        &mut self,
        user: UserName,
        account_id: AccountId,
        registration: Registration,
    ) -> Result<(), RegistryError> {
        if !mailbox_count_ok(&registration.mailboxes) {
            return Err(RegistryError::Mailboxes);
        }
        let device = (account_id, registration.device_token.clone());
        self.users
            .entry(user)
            .or_default()
            .insert(device, registration);
        Ok(())
    }

    /// The devices to push for events in `mailbox` of `user`: those that listed the
    /// mailbox, when the mailbox is one that pushes.
    pub fn lookup(&self, user: &UserName, mailbox: &str) -> Lookup<'_> {
        if !self.push_mailboxes.pushes(mailbox) {
            return Lookup::NotPushed;
        }
        let Some(accounts) = self.users.get(user) else {
            return Lookup::NoDevice;
        };
        let targets: Vec<Target<'_>> = accounts
            .iter()
            .filter(|(_, r)| r.wants(mailbox))
            .map(|((account_id, _), r)| Target {
                account_id,
                device_token: &r.device_token,
            })
            .collect();
        if targets.is_empty() {
            Lookup::NotSubscribed
        } else {
            Lookup::Push(targets)
        }
    }

    /// [`lookup`](Self::lookup) for a `/notify` body.
    pub fn lookup_notify(&self, notify: &Notify) -> Lookup<'_> {
        self.lookup(notify.username(), notify.mailbox())
    }

    /// The registrations of one account: one per device it registered from.
    pub fn devices<'a>(
        &'a self,
        user: &UserName,
        account_id: &AccountId,
    ) -> impl Iterator<Item = &'a Registration> + 'a {
        let account_id = account_id.clone();
        self.users
            .get(user)
            .into_iter()
            .flat_map(|accounts| accounts.iter())
            .filter(move |((id, _), _)| *id == account_id)
            .map(|(_, r)| r)
    }

    /// The registration of one account on one device.
    pub fn get(
        &self,
        user: &UserName,
        account_id: &AccountId,
        device_token: &DeviceToken,
    ) -> Option<&Registration> {
        self.users
            .get(user)?
            .get(&(account_id.clone(), device_token.clone()))
    }

    /// Removes every registration of one account (on each device); the changes to
    /// store.
    pub fn remove(&mut self, user: &UserName, account_id: &AccountId) -> Vec<Change> {
        self.remove_where_of(Some(user), |id, _| id == account_id)
            .into_iter()
            .map(Change::Remove)
            .collect()
    }

    /// APNs answered 410 for `device_token`, saying it stopped being valid at
    /// `invalid_since`: removes the registrations with that token made before then.
    /// One made later means the device came back, and it stays.
    pub fn unregistered(
        &mut self,
        device_token: &DeviceToken,
        invalid_since: SystemTime,
    ) -> Vec<Removed> {
        self.remove_where_of(None, |_, r| {
            &r.device_token == device_token && r.older_than(invalid_since)
        })
    }

    /// Removes the registrations not refreshed within the maximum age before `now`.
    /// Run it every few hours.
    pub fn expire(&mut self, now: SystemTime) -> Vec<Removed> {
        let Some(cutoff) = now.checked_sub(self.max_age) else {
            return Vec::new();
        };
        self.remove_where_of(None, |_, r| {
            r.registered_at.is_some() && r.older_than(cutoff)
        })
    }

    /// The number of registrations.
    pub fn len(&self) -> usize {
        self.users.values().map(BTreeMap::len).sum()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Every registration: (user, account id, registration), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&UserName, &AccountId, &Registration)> {
        self.users
            .iter()
            .flat_map(|(u, a)| a.iter().map(move |((id, _), r)| (u, id, r)))
    }

    /// Removes the registrations `doomed` picks, of `user` or of everyone.
    fn remove_where_of(
        &mut self,
        user: Option<&UserName>,
        mut doomed: impl FnMut(&AccountId, &Registration) -> bool,
    ) -> Vec<Removed> {
        let mut removed = Vec::new();
        self.users.retain(|name, accounts| {
            if user.is_some_and(|u| u != name) {
                return true;
            }
            let gone: Vec<Device> = accounts
                .iter()
                .filter(|((id, _), r)| doomed(id, r))
                .map(|(device, _)| device.clone())
                .collect();
            for device in gone {
                if let Some(registration) = accounts.remove(&device) {
                    removed.push(Removed {
                        user: name.clone(),
                        account_id: device.0,
                        registration,
                    });
                }
            }
            !accounts.is_empty()
        });
        removed
    }
}

/// A database that is not xapsd's JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an xapsd database: {0}")]
pub struct DatabaseError(String);

/// An entry of an imported database that could not be kept, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The user, as written.
    pub user: String,
    /// The account id, as written.
    pub account_id: String,
    /// Why.
    pub reason: &'static str,
}

/// Whether `a` was registered after `b` (a time beats none).
fn newer(a: &Registration, b: &Registration) -> bool {
    a.registered_at.map(Timestamp::unix_nanos) > b.registered_at.map(Timestamp::unix_nanos)
}

#[derive(Serialize, Deserialize)]
struct DatabaseWire {
    #[serde(rename = "Users", default)]
    users: Option<BTreeMap<String, UserWire>>,
}

#[derive(Serialize, Deserialize)]
struct UserWire {
    #[serde(rename = "Accounts", default)]
    accounts: Option<BTreeMap<String, AccountWire>>,
}

#[derive(Serialize, Deserialize)]
struct AccountWire {
    #[serde(rename = "DeviceToken", default)]
    device_token: String,
    #[serde(
        rename = "RegistrationTime",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    registration_time: Option<String>,
    #[serde(rename = "Mailboxes", default)]
    mailboxes: Option<Vec<String>>,
}

impl Registry {
    /// Reads xapsd's database (`{"Users": {user: {"Accounts": {account id:
    /// {"DeviceToken", "RegistrationTime", "Mailboxes"}}}}}`). Entries that cannot be
    /// pushed to (a token that is not hex, no mailbox, a time that is not RFC 3339)
    /// are returned as rejected instead of failing the whole import; unknown fields
    /// are ignored, as xapsd ignores them. Go's zero time means "no time".
    ///
    /// ```
    /// use xaps_proto::registry::Registry;
    /// let db = br#"{"Users":{"alice":{"Accounts":{"ACC1":{"DeviceToken":"2918390218931890821908309283098109381029309829018310983092892829","RegistrationTime":"2022-03-02T09:47:54.855456616+01:00","Mailboxes":["INBOX"]}}}}}"#;
    /// let (registry, rejected) = Registry::from_xapsd_json(db)?;
    /// assert_eq!((registry.len(), rejected.len()), (1, 0));
    /// assert!(registry.to_xapsd_json().unwrap().contains("\"2022-03-02T09:47:54.855456616+01:00\""));
    /// # Ok::<(), xaps_proto::registry::DatabaseError>(())
    /// ```
    pub fn from_xapsd_json(bytes: &[u8]) -> Result<(Self, Vec<Rejected>), DatabaseError> {
        // serde would also read a struct from an array; a database is an object.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(DatabaseError("not a JSON object".into()));
        }
        let wire: DatabaseWire =
            serde_json::from_slice(bytes).map_err(|e| DatabaseError(e.to_string()))?;
        let mut registry = Registry::new();
        let mut rejected = Vec::new();
        for (user, accounts) in wire.users.unwrap_or_default() {
            for (account_id, account) in accounts.accounts.unwrap_or_default() {
                let reject = |reason| Rejected {
                    user: user.clone(),
                    account_id: account_id.clone(),
                    reason,
                };
                match Self::import_entry(&user, &account_id, account) {
                    Err(reason) => rejected.push(reject(reason)),
                    Ok((name, id, registration)) => {
                        if let Some(reason) = registry.insert_imported(name, id, registration) {
                            rejected.push(reject(reason));
                        }
                    }
                }
            }
        }
        Ok((registry, rejected))
    }

    fn import_entry(
        user: &str,
        account_id: &str,
        account: AccountWire,
    ) -> Result<(UserName, AccountId, Registration), &'static str> {
        let user = UserName::new(user).map_err(|e| match e {
            crate::user::UserNameError::Empty => "empty user name",
            crate::user::UserNameError::TooLong => "user name too long",
            crate::user::UserNameError::CaseOutsideAscii => {
                "user name holds a capital letter outside ASCII"
            }
            _ => "user name holds a control character",
        })?;
        let id = AccountId::new(account_id).map_err(|_| "account id is empty or not printable")?;
        let device_token =
            DeviceToken::new(&account.device_token).map_err(|_| "device token is not hex")?;
        let mailboxes = account.mailboxes.unwrap_or_default();
        if !mailbox_count_ok(&mailboxes) {
            return Err("no mailboxes, or too many");
        }
        let registered_at = match account.registration_time {
            None => None,
            Some(text) => {
                let t: Timestamp = text
                    .parse()
                    .map_err(|_| "registration time is not RFC 3339")?;
                (!t.is_go_zero()).then_some(t)
            }
        };
        Ok((
            user,
            id,
            Registration {
                device_token,
                mailboxes,
                registered_at,
            },
        ))
    }

    /// Inserts an imported entry; users differing only in case merge, the most
    /// recently registered entry winning. Returns why an entry was dropped.
    fn insert_imported(
        &mut self,
        user: UserName,
        id: AccountId,
        registration: Registration,
    ) -> Option<&'static str> {
        let accounts = self.users.entry(user).or_default();
        let Some(existing) = accounts.keys().find(|(account, _)| *account == id).cloned() else {
            accounts.insert((id, registration.device_token.clone()), registration);
            return None;
        };
        if accounts
            .get(&existing)
            .is_some_and(|e| newer(&registration, e))
        {
            accounts.remove(&existing);
            accounts.insert((id, registration.device_token.clone()), registration);
        }
        Some(
            "also registered under a user name differing only in case; the most recent entry was kept",
        )
    }

    /// Writes xapsd's database format, indented as xapsd writes it, users and
    /// accounts in order. Registrations without a time have no `RegistrationTime`.
    /// xapsd keeps one device per account: of an account registered from several,
    /// the most recently registered is written ([`Registry::one_per_account`] counts
    /// the others).
    pub fn to_xapsd_json(&self) -> Result<String, serde_json::Error> {
        let users = self
            .users
            .iter()
            .map(|(user, accounts)| {
                let mut newest: BTreeMap<&AccountId, &Registration> = BTreeMap::new();
                for ((id, _), r) in accounts {
                    let slot = newest.entry(id).or_insert(r);
                    if newer(r, slot) {
                        *slot = r;
                    }
                }
                let accounts = newest
                    .into_iter()
                    .map(|(id, r)| {
                        (
                            id.as_str().to_owned(),
                            AccountWire {
                                device_token: r.device_token.as_str().to_owned(),
                                registration_time: r.registered_at.map(|t| t.to_string()),
                                mailboxes: Some(r.mailboxes.clone()),
                            },
                        )
                    })
                    .collect();
                (
                    user.as_str().to_owned(),
                    UserWire {
                        accounts: Some(accounts),
                    },
                )
            })
            .collect();
        let wire = DatabaseWire { users: Some(users) };
        serde_json::to_string_pretty(&wire)
    }

    /// How many registrations [`Registry::to_xapsd_json`] leaves out: those of accounts
    /// registered from several devices, beyond the most recent one each.
    pub fn one_per_account(&self) -> usize {
        self.users
            .values()
            .map(|accounts| {
                let distinct: std::collections::BTreeSet<&AccountId> =
                    accounts.keys().map(|(id, _)| id).collect();
                accounts.len().saturating_sub(distinct.len())
            })
            .sum()
    }
}
