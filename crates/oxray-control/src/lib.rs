//! The control service: cluster-wide tables that every node and driver
//! consults rarely (never per task). On the head it lives in the same
//! process as the node daemon, reached through [`ControlService`]'s methods;
//! its state sits behind the [`ControlStore`] trait so that a persistent
//! store can replace the in-memory one.

pub mod actors;
pub mod journal;
pub mod store;

use std::sync::atomic::{AtomicU32, Ordering};

use oxray_common::{NodeId, ResourceSet};
use parking_lot::Mutex;

pub use actors::{ActorDirectory, ActorRecord, RegisterError};
pub use journal::{Journal, JournalError, Recovered};
pub use store::{ControlStore, JournaledStore, MemoryStore};

/// The key-value namespace of the control service's own counters.
const META: &str = "__oxray_meta";
const NEXT_JOB: &[u8] = b"next_job";
const HEAD_NODE: &[u8] = b"head_node_id";

/// A node as the control service records it.
#[derive(Clone, Debug)]
pub struct NodeEntry {
    /// The node's id (random, new at every start).
    pub node_id: NodeId,
    /// Address of the node daemon.
    pub address: String,
    /// The host's name, for listings.
    pub hostname: String,
    /// Whether it serves the control service.
    pub is_head: bool,
    /// False once it died; dead nodes stay listed, as in Ray's `nodes()`.
    pub alive: bool,
    /// Everything it has.
    pub total: ResourceSet,
    /// The node's IP (empty on a single-node cluster).
    pub ip: String,
    /// The port of its Prometheus endpoint (0: none).
    pub metrics_port: u16,
}

/// Cluster-wide state: nodes, jobs, the key-value table (functions are
/// registered there by content hash).
pub struct ControlService {
    store: Box<dyn ControlStore>,
    nodes: Mutex<Vec<NodeEntry>>,
    next_job: AtomicU32,
}

impl ControlService {
    /// A control service over `store` (which may hold the tables of an
    /// earlier run: job ids go on from where it stopped).
    pub fn new(store: Box<dyn ControlStore>) -> Self {
        let next_job = store
            .get(META, NEXT_JOB)
            .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
            .map_or(1, u32::from_le_bytes);
        Self {
            store,
            nodes: Mutex::new(Vec::new()),
            next_job: AtomicU32::new(next_job),
        }
    }

    /// A control service keeping everything in memory.
    pub fn in_memory() -> Self {
        Self::new(Box::new(MemoryStore::default()))
    }

    /// Allocates the id of a new job (one per driver).
    pub fn next_job_id(&self) -> u32 {
        let id = self.next_job.fetch_add(1, Ordering::Relaxed);
        self.store
            .put(META, NEXT_JOB, (id + 1).to_le_bytes().to_vec());
        id
    }

    /// Records `id` as the head's node, returning the head recorded before
    /// (by an earlier run of a head over the same journal).
    pub fn record_head(&self, id: NodeId) -> Option<NodeId> {
        let before = self
            .store
            .get(META, HEAD_NODE)
            .and_then(|b| NodeId::from_bytes(&b));
        self.store.put(META, HEAD_NODE, id.0.to_vec());
        before
    }

    /// Adds or replaces a node.
    pub fn register_node(&self, entry: NodeEntry) {
        let mut nodes = self.nodes.lock();
        nodes.retain(|n| n.node_id != entry.node_id);
        nodes.push(entry);
    }

    /// Marks a node dead; it stays listed, as in Ray's `nodes()`.
    pub fn mark_node_dead(&self, node_id: &NodeId) {
        for n in self
            .nodes
            .lock()
            .iter_mut()
            .filter(|n| &n.node_id == node_id)
        {
            n.alive = false;
        }
    }

    /// Every node ever registered.
    pub fn nodes(&self) -> Vec<NodeEntry> {
        self.nodes.lock().clone()
    }

    /// The node `id`.
    pub fn node(&self, id: &NodeId) -> Option<NodeEntry> {
        self.nodes.lock().iter().find(|n| &n.node_id == id).cloned()
    }

    /// Stores `value` under `(namespace, key)`.
    pub fn kv_put(&self, namespace: &str, key: &[u8], value: Vec<u8>) {
        self.store.put(namespace, key, value);
    }

    /// Reads `(namespace, key)`.
    pub fn kv_get(&self, namespace: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.store.get(namespace, key)
    }

    /// Removes `(namespace, key)`; returns the value it held.
    pub fn kv_delete(&self, namespace: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.store.delete(namespace, key)
    }

    /// The keys of `namespace` starting with `prefix`.
    pub fn kv_keys(&self, namespace: &str, prefix: &[u8]) -> Vec<Vec<u8>> {
        self.store.keys(namespace, prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_and_nodes() {
        let c = ControlService::in_memory();
        assert_eq!(c.kv_get("fn", b"a"), None);
        c.kv_put("fn", b"a", b"1".to_vec());
        assert_eq!(c.kv_get("fn", b"a"), Some(b"1".to_vec()));
        assert_eq!(c.kv_get("other", b"a"), None);
        c.kv_put("fn", b"ab", b"2".to_vec());
        c.kv_put("fn", b"b", b"3".to_vec());
        let mut keys = c.kv_keys("fn", b"a");
        keys.sort();
        assert_eq!(keys, vec![b"a".to_vec(), b"ab".to_vec()]);
        assert_eq!(c.kv_delete("fn", b"a"), Some(b"1".to_vec()));
        assert_eq!(c.kv_get("fn", b"a"), None);
        assert_eq!(c.kv_delete("fn", b"a"), None);
        let id = NodeId::random();
        c.register_node(NodeEntry {
            node_id: id,
            address: "unix:/x".into(),
            hostname: "h".into(),
            is_head: true,
            alive: true,
            total: ResourceSet::new(),
            ip: String::new(),
            metrics_port: 0,
        });
        c.mark_node_dead(&id);
        assert!(!c.nodes()[0].alive);
        assert_ne!(c.next_job_id(), c.next_job_id());
        assert_eq!(c.record_head(id), None);
        assert_eq!(c.record_head(NodeId::random()), Some(id));
    }
}
