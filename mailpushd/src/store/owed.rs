//! Pushes owed: what was acknowledged to the mail server and not delivered yet, one mark
//! per target (a device's account; a user's mailbox for all their Web Push
//! subscriptions, or one subscription's), merged by `xaps_proto::owed`'s rule. Marks
//! are leased to the daemon sending them, so daemons sharing a database do not send
//! one twice, and one a dead daemon held is taken up when its lease ends.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use sqlx::{Any, Row, Transaction};
use xaps_proto::owed::{Owed, Rounds};
use xaps_proto::{AccountId, DeviceToken, UserName};

use super::{Kind, Lock, PushRecord, Store, StoreError};

/// What an owed push is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum OwedTarget {
    /// An APNs push to a device, for one of its accounts.
    Device {
        /// The device.
        token: DeviceToken,
        /// The account, the payload's `account-id`.
        account: AccountId,
    },
    /// A Web Push to every subscription of the user that receives pushes.
    Subscriptions,
    /// A Web Push to one subscription (one that failed in a fan-out).
    Subscription(String),
}

/// Which mark: whose, for what, about which mailbox (none for APNs, whose push names
/// no mailbox).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwedKey {
    /// Whose.
    pub user: UserName,
    /// For what.
    pub target: OwedTarget,
    /// About which mailbox (empty for APNs).
    pub mailbox: String,
}

/// An owed push as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwedPush {
    /// Which.
    pub key: OwedKey,
    /// Its mark.
    pub owed: Owed,
}

impl OwedPush {
    /// The send of this push, leased until `lease_ms`.
    pub fn sent(&self, lease_ms: u64) -> Sent {
        Sent {
            key: self.key.clone(),
            touched_ms: self.owed.touched_ms,
            lease_ms,
        }
    }
}

/// One send of an owed push, as its end is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Which mark.
    pub key: OwedKey,
    /// Its newest event when the send began: a newer one is not settled by it.
    pub touched_ms: u64,
    /// The end of the lease it was sent under: tells it from another send of the same
    /// mark.
    pub lease_ms: u64,
}

impl Sent {
    /// What is left of its lease at `now`: the send must end by then, or another may
    /// take the push up.
    pub fn lease_left(&self, now: SystemTime) -> Duration {
        Duration::from_millis(self.lease_ms.saturating_sub(now_ms(now)))
    }
}

/// `time` in milliseconds since 1970, as the store keeps times (0 for a clock before
/// it).
pub fn now_ms(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What became of a mark after a failed round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rescheduled {
    /// Due again then (milliseconds since 1970).
    Later(u64),
    /// Owed longer than the rounds allow: removed, given up.
    GivenUp,
    /// A newer event came meanwhile: left due then, as that event made it.
    Newer(u64),
    /// Newer mail came meanwhile, and its push is being sent: left to that send.
    Sending,
    /// Settled or given up elsewhere meanwhile.
    Gone,
}

/// A lease: the daemon that sends a mark, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease<'a> {
    /// The daemon (an id drawn at its start).
    pub owner: &'a str,
    /// Until when, milliseconds since 1970.
    pub until_ms: u64,
}

const APNS: &str = "apns";
const WEBPUSH: &str = "webpush";
const ALL: &str = "*";

impl OwedKey {
    /// The stored form: kind, target, mailbox.
    fn columns(&self) -> (&'static str, String, &str) {
        match &self.target {
            OwedTarget::Device { token, account } => {
                (APNS, format!("{} {}", token.as_str(), account.as_str()), "")
            }
            OwedTarget::Subscriptions => (WEBPUSH, ALL.to_owned(), &self.mailbox),
            OwedTarget::Subscription(id) => (WEBPUSH, id.clone(), &self.mailbox),
        }
    }

    /// Reads the stored form back.
    fn from_columns(
        kind: &str,
        user: &str,
        target: &str,
        mailbox: String,
    ) -> Result<Self, StoreError> {
        // Escaped: the text is as stored, unchecked, and the error reaches a terminal.
        let what = || format!("owed push {kind:?} {user:?} {target:?} {mailbox:?}");
        let user = UserName::new(user).map_err(|e| StoreError::corrupt(what(), e))?;
        let target = match kind {
            APNS => {
                let (token, account) = target
                    .split_once(' ')
                    .ok_or_else(|| StoreError::corrupt(what(), "no account after the token"))?;
                OwedTarget::Device {
                    token: DeviceToken::new(token).map_err(|e| StoreError::corrupt(what(), e))?,
                    account: AccountId::new(account).map_err(|e| StoreError::corrupt(what(), e))?,
                }
            }
            WEBPUSH if target == ALL => OwedTarget::Subscriptions,
            WEBPUSH => OwedTarget::Subscription(target.to_owned()),
            other => return Err(StoreError::corrupt(what(), format!("kind {other:?}"))),
        };
        Ok(Self {
            user,
            target,
            mailbox,
        })
    }
}

/// A stored time, in milliseconds.
pub(super) fn stored(what: &str, ms: u64) -> Result<i64, StoreError> {
    i64::try_from(ms).map_err(|_| StoreError::corrupt(what, "a time past 2262"))
}

/// A time read back.
pub(super) fn read_ms(what: &str, ms: i64) -> Result<u64, StoreError> {
    u64::try_from(ms).map_err(|_| StoreError::corrupt(what, "a time before 1970"))
}

const COLUMNS: &str = "kind, username, target, mailbox, due_ms, since_ms, touched_ms, failures";

fn read_row(row: &sqlx::any::AnyRow) -> Result<OwedPush, StoreError> {
    let kind: String = row.try_get(0)?;
    let user: String = row.try_get(1)?;
    let target: String = row.try_get(2)?;
    let mailbox: String = row.try_get(3)?;
    let key = OwedKey::from_columns(&kind, &user, &target, mailbox)?;
    let what = "an owed push";
    let failures: i64 = row.try_get(7)?;
    Ok(OwedPush {
        key,
        owed: Owed {
            due_ms: read_ms(what, row.try_get(4)?)?,
            since_ms: read_ms(what, row.try_get(5)?)?,
            touched_ms: read_ms(what, row.try_get(6)?)?,
            failures: u32::try_from(failures)
                .map_err(|_| StoreError::corrupt(what, "a failure count out of range"))?,
        },
    })
}

/// `sent` ended and a newer event came meanwhile (`found`): the mark stays, due as that
/// event made it. When another send of it is under way (new mail's), that send settles
/// it; otherwise the mark is free for whoever takes it when it is due (returned).
async fn newer(
    tx: &mut Transaction<'static, Any>,
    sent: &Sent,
    found: &Found,
) -> Result<Option<u64>, StoreError> {
    if found.sending && found.lease_ms != Some(sent.lease_ms) {
        return Ok(None);
    }
    write(tx, &sent.key, &found.owed, LeaseWrite::Clear).await?;
    Ok(Some(found.owed.due_ms))
}

/// A mark as found in a transaction.
struct Found {
    owed: Owed,
    /// Its push is being sent: leased, and the lease has not ended at the time asked.
    sending: bool,
    /// The end of its lease, if it has one.
    lease_ms: Option<u64>,
}

/// The mark of `key` in `tx`, if there is one, and whether its push is being sent at
/// `now_ms`.
async fn find(
    tx: &mut Transaction<'static, Any>,
    key: &OwedKey,
    now_ms: u64,
) -> Result<Option<Found>, StoreError> {
    let (kind, target, mailbox) = key.columns();
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS}, lease_ms FROM owed_pushes WHERE kind = $1 AND username = $2 AND target = $3 AND mailbox = $4"
    ))
    .bind(kind)
    .bind(key.user.as_str())
    .bind(target)
    .bind(mailbox)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let lease: Option<i64> = row.try_get(8)?;
    let lease = lease.map(|ms| read_ms("a lease", ms)).transpose()?;
    Ok(Some(Found {
        owed: read_row(&row)?.owed,
        sending: lease.is_some_and(|until| until > now_ms),
        lease_ms: lease,
    }))
}

/// What a write does to a mark's lease.
#[derive(Clone, Copy)]
enum LeaseWrite<'a> {
    /// Leased to this daemon, which sends it now.
    Set(Lease<'a>),
    /// As it was: a send under way goes on (a new mark has none).
    Keep,
    /// Free for whoever takes it when it is due.
    Clear,
}

/// Writes the mark of `key`, with its lease as `lease` says.
async fn write(
    tx: &mut Transaction<'static, Any>,
    key: &OwedKey,
    owed: &Owed,
    lease: LeaseWrite<'_>,
) -> Result<(), StoreError> {
    let (kind, target, mailbox) = key.columns();
    let what = "an owed push";
    let (set, on_conflict) = match lease {
        LeaseWrite::Set(lease) => (
            Some(lease),
            ", lease_owner = excluded.lease_owner, lease_ms = excluded.lease_ms",
        ),
        LeaseWrite::Clear => (None, ", lease_owner = NULL, lease_ms = NULL"),
        LeaseWrite::Keep => (None, ""),
    };
    sqlx::query(&format!(
        "INSERT INTO owed_pushes (kind, username, target, mailbox, due_ms, since_ms, touched_ms, failures, lease_owner, lease_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (kind, username, target, mailbox) DO UPDATE SET
           due_ms = excluded.due_ms, since_ms = excluded.since_ms, touched_ms = excluded.touched_ms,
           failures = excluded.failures{on_conflict}"
    ))
    .bind(kind)
    .bind(key.user.as_str())
    .bind(target)
    .bind(mailbox)
    .bind(stored(what, owed.due_ms)?)
    .bind(stored(what, owed.since_ms)?)
    .bind(stored(what, owed.touched_ms)?)
    .bind(i64::from(owed.failures))
    .bind(set.map(|l| l.owner.to_owned()))
    .bind(set.map(|l| stored(what, l.until_ms)).transpose()?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn delete(tx: &mut Transaction<'static, Any>, key: &OwedKey) -> Result<(), StoreError> {
    let (kind, target, mailbox) = key.columns();
    sqlx::query(
        "DELETE FROM owed_pushes WHERE kind = $1 AND username = $2 AND target = $3 AND mailbox = $4",
    )
    .bind(kind)
    .bind(key.user.as_str())
    .bind(target)
    .bind(mailbox)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Merges events acknowledged at `now_ms` into their marks (`true`: new mail) and
    /// stores them, in one transaction: when this returns, they are on disk. New mail's
    /// marks are leased to `lease` (the daemon sends them at once); other events leave
    /// a mark's lease as it was. The marks as stored.
    pub async fn owe(
        &self,
        events: &[(OwedKey, bool)],
        now_ms: u64,
        delay: std::time::Duration,
        lease: Lease<'_>,
    ) -> Result<Vec<OwedPush>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let users: BTreeSet<&str> = events.iter().map(|(k, _)| k.user.as_str()).collect();
        let locks: Vec<Lock<'_>> = users.into_iter().map(Lock::User).collect();
        let mut tx = self.begin(&locks).await?;
        let mut out = Vec::with_capacity(events.len());
        for (key, new_mail) in events {
            let owed = match find(&mut tx, key, now_ms).await? {
                Some(Found {
                    owed,
                    sending: true,
                    ..
                }) => owed.on_event_while_sending(*new_mail, now_ms, delay),
                found => Owed::on_event(found.map(|f| f.owed), *new_mail, now_ms, delay),
            };
            let lease = if *new_mail {
                LeaseWrite::Set(lease)
            } else {
                LeaseWrite::Keep
            };
            write(&mut tx, key, &owed, lease).await?;
            out.push(OwedPush {
                key: key.clone(),
                owed,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Up to `limit` marks due at `now_ms` whose lease (if any) has ended, leased to
    /// `lease` so that no other daemon sends them meanwhile.
    pub async fn take_due(
        &self,
        now_ms: u64,
        lease: Lease<'_>,
        limit: u32,
    ) -> Result<Vec<OwedPush>, StoreError> {
        let now = stored("the clock", now_ms)?;
        let mut tx = self.writer.begin().await?;
        // Rows another daemon is taking right now are skipped, not waited for.
        let skip = match self.kind {
            Kind::Postgres => " FOR UPDATE SKIP LOCKED",
            Kind::Sqlite => "",
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM owed_pushes WHERE due_ms <= $1 AND (lease_ms IS NULL OR lease_ms <= $1) ORDER BY due_ms LIMIT $2{skip}"
        ))
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            // Leased as it reads: a row this daemon cannot read (a hand edit, a kind of
            // a newer version's) is leased too, and left out, so that it is looked at
            // again only when the lease ends, and holds back no other owed push.
            let (kind, user, target, mailbox): (String, String, String, String) = (
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            );
            sqlx::query(
                "UPDATE owed_pushes SET lease_owner = $1, lease_ms = $2
                 WHERE kind = $3 AND username = $4 AND target = $5 AND mailbox = $6",
            )
            .bind(lease.owner)
            .bind(stored("a lease", lease.until_ms)?)
            .bind(&kind)
            .bind(&user)
            .bind(&target)
            .bind(&mailbox)
            .execute(&mut *tx)
            .await?;
            match read_row(row) {
                Ok(push) => out.push(push),
                Err(error) => {
                    tracing::warn!(%error, "an owed push this version cannot read is left as it is stored");
                }
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// `sent` went out (or was refused for good): its mark goes, unless a newer event
    /// came meanwhile or the mark is no longer the one `sent` took (its lease is
    /// another's). When the mark is due, if it stays for this daemon's timer.
    pub async fn settle(&self, sent: &Sent, now_ms: u64) -> Result<Option<u64>, StoreError> {
        Ok(self
            .settle_all(std::slice::from_ref(sent), &[], now_ms)
            .await?
            .into_iter()
            .flatten()
            .next())
    }

    /// [`Store::settle`] for each of `sents`, and `log` into the push log, in one
    /// transaction (one write to disk for many pushes). For each sent, when its mark
    /// is due, if it stays.
    pub async fn settle_all(
        &self,
        sents: &[Sent],
        log: &[PushRecord],
        now_ms: u64,
    ) -> Result<Vec<Option<u64>>, StoreError> {
        if sents.is_empty() && log.is_empty() {
            return Ok(Vec::new());
        }
        let users: BTreeSet<&str> = sents
            .iter()
            .map(|s| s.key.user.as_str())
            .chain(log.iter().map(|r| r.user.as_str()))
            .collect();
        let locks: Vec<Lock<'_>> = users.into_iter().map(Lock::User).collect();
        let mut tx = self.begin(&locks).await?;
        let mut left = Vec::with_capacity(sents.len());
        for sent in sents {
            left.push(match find(&mut tx, &sent.key, now_ms).await? {
                // Only the mark this send took: one taken up again since (its lease
                // ran out), or made anew after another send settled it, may owe an
                // event this send never carried, whatever the clock says.
                Some(found)
                    if found.owed.settled_by(sent.touched_ms)
                        && found.lease_ms == Some(sent.lease_ms) =>
                {
                    delete(&mut tx, &sent.key).await?;
                    None
                }
                Some(found) => newer(&mut tx, sent, &found).await?,
                None => None,
            });
        }
        super::pushlog::write(&mut tx, log).await?;
        tx.commit().await?;
        Ok(left)
    }

    /// A round of attempts for `sent` failed at `now_ms`: due again after the round's
    /// wait or the one its peer `asked` for, whichever ends later, or given up.
    pub async fn reschedule(
        &self,
        sent: &Sent,
        now_ms: u64,
        rounds: &Rounds,
        asked: std::time::Duration,
    ) -> Result<Rescheduled, StoreError> {
        let key = &sent.key;
        let mut tx = self.begin(&[Lock::User(key.user.as_str())]).await?;
        let result = match find(&mut tx, key, now_ms).await? {
            None => Rescheduled::Gone,
            // Its lease ended and another send took the mark up: that send's end
            // decides, and its lease stays.
            Some(found) if found.sending && found.lease_ms != Some(sent.lease_ms) => {
                Rescheduled::Sending
            }
            Some(found) if !found.owed.settled_by(sent.touched_ms) => {
                match newer(&mut tx, sent, &found).await? {
                    Some(due) => Rescheduled::Newer(due),
                    None => Rescheduled::Sending,
                }
            }
            Some(found) => match found.owed.after_failure_asked(now_ms, rounds, asked) {
                Some(next) => {
                    write(&mut tx, key, &next, LeaseWrite::Clear).await?;
                    Rescheduled::Later(next.due_ms)
                }
                None => {
                    delete(&mut tx, key).await?;
                    Rescheduled::GivenUp
                }
            },
        };
        tx.commit().await?;
        Ok(result)
    }

    /// Owes `keys` for a round that failed at `now_ms`, owed since `since_ms` (the
    /// subscriptions a fan-out could not reach, each with the wait its service asked
    /// for): each due after the first round's wait or that one, or given up.
    pub async fn owe_failed(
        &self,
        keys: &[(OwedKey, std::time::Duration)],
        since_ms: u64,
        now_ms: u64,
        rounds: &Rounds,
    ) -> Result<Option<u64>, StoreError> {
        let users: BTreeSet<&str> = keys.iter().map(|(k, _)| k.user.as_str()).collect();
        let locks: Vec<Lock<'_>> = users.into_iter().map(Lock::User).collect();
        let mut tx = self.begin(&locks).await?;
        let mut earliest = None;
        for (key, asked) in keys {
            let failed = Owed {
                due_ms: now_ms,
                since_ms,
                touched_ms: now_ms,
                failures: 0,
            };
            let merged = match find(&mut tx, key, now_ms).await? {
                // A mark of its own already: it keeps its own schedule, held back to
                // the wait the service asked for, and this event is its newest, so a
                // send of it under way does not settle it.
                Some(found) if asked.is_zero() => found.owed.touched(now_ms),
                Some(found) => {
                    let asked_ms = u64::try_from(asked.as_millis()).unwrap_or(u64::MAX);
                    let touched = found.owed.touched(now_ms);
                    Owed {
                        due_ms: touched.due_ms.max(now_ms.saturating_add(asked_ms)),
                        ..touched
                    }
                }
                None => match failed.after_failure_asked(now_ms, rounds, *asked) {
                    Some(next) => next,
                    None => continue,
                },
            };
            write(&mut tx, key, &merged, LeaseWrite::Keep).await?;
            earliest = Some(earliest.map_or(merged.due_ms, |e: u64| e.min(merged.due_ms)));
        }
        tx.commit().await?;
        Ok(earliest)
    }

    /// Removes the marks of `keys`: what they were owed to is gone (a device no longer
    /// registered for the account).
    pub async fn forget(&self, keys: &[OwedKey]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let users: BTreeSet<&str> = keys.iter().map(|k| k.user.as_str()).collect();
        let locks: Vec<Lock<'_>> = users.into_iter().map(Lock::User).collect();
        let mut tx = self.begin(&locks).await?;
        for key in keys {
            delete(&mut tx, key).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// When the next mark may be taken: the earliest due time, or lease end, of all.
    pub async fn next_owed(&self) -> Result<Option<u64>, StoreError> {
        let next: Option<i64> = sqlx::query(
            "SELECT MIN(CASE WHEN lease_ms IS NOT NULL AND lease_ms > due_ms THEN lease_ms ELSE due_ms END) FROM owed_pushes",
        )
        .fetch_one(&self.readers)
        .await?
        .try_get(0)?;
        next.map(|t| read_ms("an owed push", t)).transpose()
    }

    /// How many pushes are owed.
    pub async fn owed_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM owed_pushes")
            .fetch_one(&self.readers)
            .await?
            .try_get(0)?;
        u64::try_from(n).map_err(|_| StoreError::corrupt("owed pushes", "a negative count"))
    }

    /// Ends the leases `owner` holds, or every lease (`None`: at the start of a daemon
    /// that is the store's only user), so that what was being sent when a daemon
    /// stopped is taken up at once.
    pub async fn end_leases(&self, owner: Option<&str>) -> Result<(), StoreError> {
        let query = match owner {
            Some(owner) => sqlx::query(
                "UPDATE owed_pushes SET lease_owner = NULL, lease_ms = NULL WHERE lease_owner = $1",
            )
            .bind(owner.to_owned()),
            None => sqlx::query("UPDATE owed_pushes SET lease_owner = NULL, lease_ms = NULL"),
        };
        query.execute(&self.writer).await?;
        Ok(())
    }

    /// Whether the store is shared by several daemons (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.kind == Kind::Postgres
    }
}
