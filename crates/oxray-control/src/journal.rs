//! The head's journal: the control service's tables on disk, in an embedded
//! database (redb), so that a head started again recovers them — without
//! an external store such as the Redis Ray needs for this.
//!
//! Kept: the key-value table (functions, user data, the job counter) and
//! the actors that are not dead. Nodes are not kept: they register again
//! when they reconnect.

use std::path::Path;

use oxray_common::ActorId;
use prost::Message;
use redb::{Database, Durability, ReadableTable, TableDefinition};

/// `namespace \0 key` → value.
const KV: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("kv");
/// Actor id → [`oxray_proto::ActorJournalEntry`].
const ACTORS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("actors");
/// Group id → [`oxray_proto::PlacementGroupJournalEntry`].
const GROUPS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("placement_groups");

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The database file could not be opened or created.
    #[error("cannot open the head's journal at {path}: {reason} (check the path and its permissions, or start the head with another --journal)")]
    Open {
        /// The file.
        path: String,
        /// What the database said.
        reason: String,
    },
    /// A read or write failed.
    #[error("the head's journal failed: {0}")]
    Io(String),
}

fn io(e: impl std::fmt::Display) -> JournalError {
    JournalError::Io(e.to_string())
}

/// What a journal held when opened.
#[derive(Default)]
pub struct Recovered {
    /// `(namespace, key, value)` of the key-value table.
    pub kv: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// The actors that were not dead.
    pub actors: Vec<(ActorId, oxray_proto::ActorJournalEntry)>,
    /// The placement groups not removed.
    pub placement_groups: Vec<(Vec<u8>, oxray_proto::PlacementGroupJournalEntry)>,
}

/// The head's journal file.
pub struct Journal {
    db: Database,
}

fn kv_key(namespace: &str, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(namespace.len() + 1 + key.len());
    k.extend_from_slice(namespace.as_bytes());
    k.push(0);
    k.extend_from_slice(key);
    k
}

impl Journal {
    /// Opens the journal at `path`, creating it if needed.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let db = Database::create(path).map_err(|e| JournalError::Open {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let txn = db.begin_write().map_err(io)?;
        txn.open_table(KV).map_err(io)?;
        txn.open_table(ACTORS).map_err(io)?;
        txn.open_table(GROUPS).map_err(io)?;
        txn.commit().map_err(io)?;
        Ok(Self { db })
    }

    /// A write handed to the OS at commit, flushed to disk soon after: it
    /// survives the head's process dying, which is what the journal is
    /// for, without an fsync on the control path.
    fn write_txn(&self) -> Result<redb::WriteTransaction, JournalError> {
        let mut txn = self.db.begin_write().map_err(io)?;
        txn.set_durability(Durability::Eventual);
        Ok(txn)
    }

    /// Everything the journal holds.
    pub fn load(&self) -> Result<Recovered, JournalError> {
        let txn = self.db.begin_read().map_err(io)?;
        let mut out = Recovered::default();
        for row in txn.open_table(KV).map_err(io)?.iter().map_err(io)? {
            let (k, v) = row.map_err(io)?;
            let k = k.value();
            let Some(split) = k.iter().position(|b| *b == 0) else {
                continue;
            };
            let namespace = String::from_utf8_lossy(&k[..split]).into_owned();
            out.kv
                .push((namespace, k[split + 1..].to_vec(), v.value().to_vec()));
        }
        for row in txn.open_table(ACTORS).map_err(io)?.iter().map_err(io)? {
            let (k, v) = row.map_err(io)?;
            let (Some(id), Ok(entry)) = (
                ActorId::from_bytes(k.value()),
                oxray_proto::ActorJournalEntry::decode(v.value()),
            ) else {
                tracing::warn!("skipping an unreadable actor in the head's journal");
                continue;
            };
            out.actors.push((id, entry));
        }
        for row in txn.open_table(GROUPS).map_err(io)?.iter().map_err(io)? {
            let (k, v) = row.map_err(io)?;
            match oxray_proto::PlacementGroupJournalEntry::decode(v.value()) {
                Ok(entry) => out.placement_groups.push((k.value().to_vec(), entry)),
                Err(_) => {
                    tracing::warn!("skipping an unreadable placement group in the head's journal")
                }
            }
        }
        Ok(out)
    }

    /// Stores `value` under `(namespace, key)`.
    pub fn put_kv(&self, namespace: &str, key: &[u8], value: &[u8]) -> Result<(), JournalError> {
        let txn = self.write_txn()?;
        txn.open_table(KV)
            .map_err(io)?
            .insert(kv_key(namespace, key).as_slice(), value)
            .map_err(io)?;
        txn.commit().map_err(io)
    }

    /// Forgets `(namespace, key)`.
    pub fn delete_kv(&self, namespace: &str, key: &[u8]) -> Result<(), JournalError> {
        let txn = self.write_txn()?;
        txn.open_table(KV)
            .map_err(io)?
            .remove(kv_key(namespace, key).as_slice())
            .map_err(io)?;
        txn.commit().map_err(io)
    }

    /// Writes changed actors and placement groups (`Some`) and forgets dead
    /// actors and removed groups (`None`), in one transaction.
    pub fn write(
        &self,
        actors: &[(ActorId, Option<oxray_proto::ActorJournalEntry>)],
        groups: &[(Vec<u8>, Option<oxray_proto::PlacementGroupJournalEntry>)],
    ) -> Result<(), JournalError> {
        let txn = self.write_txn()?;
        {
            let mut table = txn.open_table(ACTORS).map_err(io)?;
            for (id, entry) in actors {
                upsert(&mut table, id.0.as_slice(), entry.as_ref())?;
            }
            let mut table = txn.open_table(GROUPS).map_err(io)?;
            for (id, entry) in groups {
                upsert(&mut table, id, entry.as_ref())?;
            }
        }
        txn.commit().map_err(io)
    }
}

/// Writes `entry` under `key`, or removes the key when there is none.
fn upsert(
    table: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    key: &[u8],
    entry: Option<&impl Message>,
) -> Result<(), JournalError> {
    match entry {
        Some(e) => table.insert(key, e.encode_to_vec().as_slice()).map(drop),
        None => table.remove(key).map(drop),
    }
    .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.redb");
        let (a, b) = (ActorId::random(), ActorId::random());
        {
            let j = Journal::open(&path).unwrap();
            j.put_kv("fn", b"f1", b"pickled").unwrap();
            j.put_kv("", b"k", b"v").unwrap();
            let entry = |name: &str| oxray_proto::ActorJournalEntry {
                info: Some(oxray_proto::ActorInfo {
                    name: name.into(),
                    ..Default::default()
                }),
                detached: true,
                ..Default::default()
            };
            let group = oxray_proto::PlacementGroupJournalEntry {
                owner: "me".into(),
                ..Default::default()
            };
            j.write(
                &[(a, Some(entry("kept"))), (b, Some(entry("gone")))],
                &[
                    (b"g1".to_vec(), Some(group.clone())),
                    (b"g2".to_vec(), Some(group)),
                ],
            )
            .unwrap();
            j.write(&[(b, None)], &[(b"g2".to_vec(), None)]).unwrap();
        }
        let j = Journal::open(&path).unwrap();
        let got = j.load().unwrap();
        let mut kv = got.kv.clone();
        kv.sort();
        assert_eq!(
            kv,
            vec![
                (String::new(), b"k".to_vec(), b"v".to_vec()),
                ("fn".into(), b"f1".to_vec(), b"pickled".to_vec()),
            ]
        );
        assert_eq!(got.actors.len(), 1);
        assert_eq!(got.actors[0].0, a);
        assert_eq!(got.actors[0].1.info.as_ref().unwrap().name, "kept");
        assert_eq!(got.placement_groups.len(), 1);
        assert_eq!(got.placement_groups[0].0, b"g1");
    }

    #[test]
    fn an_unusable_path_is_a_clear_error() {
        let err = Journal::open(Path::new("/nonexistent-dir/x.redb"))
            .err()
            .expect("fails");
        assert!(err.to_string().contains("/nonexistent-dir/x.redb"), "{err}");
    }
}
