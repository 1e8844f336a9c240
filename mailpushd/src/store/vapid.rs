//! VAPID keys: the highest id is current; rotation adds one.

use imap_webpush_proto::state::VapidKeyId;
use sqlx::{Any, AnyConnection, Row, Transaction};
use webpush_crypto::VapidKey;
use xaps_proto::Timestamp;

use super::{Lock, Store, StoreError};

impl Store {
    /// The current VAPID key and its id, if one was made.
    pub async fn vapid_key(&self) -> Result<Option<(VapidKeyId, VapidKey)>, StoreError> {
        let mut conn = self.readers.acquire().await?;
        current_vapid_key(&mut conn).await
    }

    /// The current VAPID key if there is one, else `key` made the first: two daemons
    /// starting together on a new database agree on one key.
    pub async fn first_vapid_key(
        &self,
        key: VapidKey,
    ) -> Result<(VapidKeyId, VapidKey), StoreError> {
        let mut tx = self.begin(&[Lock::Vapid]).await?;
        if let Some(current) = current_vapid_key(&mut tx).await? {
            return Ok(current);
        }
        let id = insert_vapid_key(&mut tx, &key).await?;
        tx.commit().await?;
        Ok((id, key))
    }

    /// Takes up the key of a configured key file: the current key if it is that one;
    /// if the store had it once and has a later one since (`rotate-vapid-key`, or
    /// another daemon's file), the later one stands; a key never seen is made current
    /// (a rotation). Each file is imported once, so a restart never undoes a rotation
    /// and daemons with different files do not take turns.
    pub async fn vapid_key_from_file(&self, key: VapidKey) -> Result<FileKey, StoreError> {
        let mut tx = self.begin(&[Lock::Vapid]).await?;
        let known = sqlx::query("SELECT id, private_key FROM vapid_keys ORDER BY id DESC")
            .fetch_all(&mut *tx)
            .await?;
        let mut current = None;
        for row in &known {
            let (id, stored) = read_key(row)?;
            if stored.public_key() == key.public_key() {
                return Ok(match current {
                    None => FileKey::Current(id, stored),
                    Some((current_id, current_key)) => FileKey::Superseded {
                        file: id,
                        current: (current_id, current_key),
                    },
                });
            }
            if current.is_none() {
                current = Some((id, stored));
            }
        }
        let id = insert_vapid_key(&mut tx, &key).await?;
        tx.commit().await?;
        Ok(FileKey::Imported(id, key))
    }

    /// Makes `key` the current VAPID key, with the next id.
    pub async fn add_vapid_key(&self, key: &VapidKey) -> Result<VapidKeyId, StoreError> {
        let mut tx = self.begin(&[Lock::Vapid]).await?;
        let id = insert_vapid_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(id)
    }
}

/// What the store made of a configured key file's key.
#[derive(Debug)]
#[non_exhaustive]
pub enum FileKey {
    /// It is the current key.
    Current(VapidKeyId, VapidKey),
    /// It was never stored: it is now, as the current key.
    Imported(VapidKeyId, VapidKey),
    /// It was stored as `file`, and a later key has replaced it since: that one is
    /// current.
    Superseded {
        /// The file's key's id.
        file: VapidKeyId,
        /// The current key.
        current: (VapidKeyId, VapidKey),
    },
}

/// The highest-numbered VAPID key, if any.
async fn current_vapid_key(
    conn: &mut AnyConnection,
) -> Result<Option<(VapidKeyId, VapidKey)>, StoreError> {
    let row = sqlx::query("SELECT id, private_key FROM vapid_keys ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(read_key).transpose()
}

/// A stored key and its id.
fn read_key(row: &sqlx::any::AnyRow) -> Result<(VapidKeyId, VapidKey), StoreError> {
    let id: i64 = row.try_get(0)?;
    let key: String = row.try_get(1)?;
    let key = zeroize::Zeroizing::new(key);
    let key = VapidKey::import(key.as_bytes())
        .map_err(|e| StoreError::corrupt(format!("VAPID key {id}"), e))?;
    let id = u32::try_from(id)
        .map_err(|_| StoreError::corrupt(format!("VAPID key {id}"), "id out of range"))?;
    Ok((VapidKeyId(id), key))
}

/// Stores `key` as the VAPID key with the next id.
async fn insert_vapid_key(
    tx: &mut Transaction<'static, Any>,
    key: &VapidKey,
) -> Result<VapidKeyId, StoreError> {
    let corrupt = |reason: String| StoreError::corrupt("VAPID key", reason);
    let last: Option<i64> = sqlx::query("SELECT MAX(id) FROM vapid_keys")
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    let id = last.unwrap_or(0) + 1;
    let key_id = u32::try_from(id).map_err(|_| corrupt(format!("id {id} out of range")))?;
    let pem = key.to_pkcs8_pem().map_err(|e| corrupt(e.to_string()))?;
    let now = std::time::SystemTime::now();
    let now = Timestamp::from_system_time(now).ok_or_else(|| StoreError::Clock(now))?;
    sqlx::query("INSERT INTO vapid_keys (id, private_key, created_at) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(pem.as_str())
        .bind(now.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(VapidKeyId(key_id))
}
