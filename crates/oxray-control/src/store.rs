//! Where the control service keeps its key-value table.

use std::collections::HashMap;

use parking_lot::Mutex;

/// Storage for the control service's key-value table. In memory by default;
/// a head that must survive restarts plugs in an on-disk implementation.
pub trait ControlStore: Send + Sync {
    /// Stores `value` under `(namespace, key)`, replacing any old value.
    fn put(&self, namespace: &str, key: &[u8], value: Vec<u8>);
    /// Reads the value under `(namespace, key)`.
    fn get(&self, namespace: &str, key: &[u8]) -> Option<Vec<u8>>;
    /// Removes `(namespace, key)`; returns the value it held.
    fn delete(&self, namespace: &str, key: &[u8]) -> Option<Vec<u8>>;
    /// The keys of `namespace` that start with `prefix`.
    fn keys(&self, namespace: &str, prefix: &[u8]) -> Vec<Vec<u8>>;
}

/// A key of the table: (namespace, key).
type TableKey = (String, Vec<u8>);

/// A [`ControlStore`] in a hash map.
#[derive(Default)]
pub struct MemoryStore {
    table: Mutex<HashMap<TableKey, Vec<u8>>>,
}

impl ControlStore for MemoryStore {
    fn put(&self, namespace: &str, key: &[u8], value: Vec<u8>) {
        self.table
            .lock()
            .insert((namespace.to_string(), key.to_vec()), value);
    }

    fn get(&self, namespace: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.table
            .lock()
            .get(&(namespace.to_string(), key.to_vec()))
            .cloned()
    }

    fn delete(&self, namespace: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.table
            .lock()
            .remove(&(namespace.to_string(), key.to_vec()))
    }

    fn keys(&self, namespace: &str, prefix: &[u8]) -> Vec<Vec<u8>> {
        self.table
            .lock()
            .keys()
            .filter(|(ns, key)| ns == namespace && key.starts_with(prefix))
            .map(|(_, key)| key.clone())
            .collect()
    }
}

/// A [`ControlStore`] in memory, written through to the head's journal so
/// that a restarted head finds it again.
pub struct JournaledStore {
    memory: MemoryStore,
    journal: std::sync::Arc<crate::Journal>,
}

impl JournaledStore {
    /// A store over `journal`, holding `recovered` (what it held before).
    pub fn new(
        journal: std::sync::Arc<crate::Journal>,
        recovered: Vec<(String, Vec<u8>, Vec<u8>)>,
    ) -> Self {
        let memory = MemoryStore::default();
        for (namespace, key, value) in recovered {
            memory.put(&namespace, &key, value);
        }
        Self { memory, journal }
    }
}

/// Namespaces starting with this are kept in memory only, never journaled:
/// what processes report about themselves (metrics), rewritten every few
/// seconds and worthless after a restart.
pub const EPHEMERAL_PREFIX: char = '~';

impl ControlStore for JournaledStore {
    fn put(&self, namespace: &str, key: &[u8], value: Vec<u8>) {
        if namespace.starts_with(EPHEMERAL_PREFIX) {
            self.memory.put(namespace, key, value);
            return;
        }
        if let Err(e) = self.journal.put_kv(namespace, key, &value) {
            // The value still serves this run; only a restart would miss it.
            tracing::error!("{e}");
        }
        self.memory.put(namespace, key, value);
    }

    fn get(&self, namespace: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.memory.get(namespace, key)
    }

    fn delete(&self, namespace: &str, key: &[u8]) -> Option<Vec<u8>> {
        if namespace.starts_with(EPHEMERAL_PREFIX) {
            return self.memory.delete(namespace, key);
        }
        if let Err(e) = self.journal.delete_kv(namespace, key) {
            // Gone for this run; a restarted head would find it again.
            tracing::error!("{e}");
        }
        self.memory.delete(namespace, key)
    }

    fn keys(&self, namespace: &str, prefix: &[u8]) -> Vec<Vec<u8>> {
        self.memory.keys(namespace, prefix)
    }
}
