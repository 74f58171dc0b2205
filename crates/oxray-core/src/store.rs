//! The in-process object store: values this process owns or has fetched,
//! and the callbacks waiting for values that do not exist yet.

use std::collections::HashMap;
use std::sync::Arc;

use oxray_common::ObjectId;
use oxray_proto::Object;
use parking_lot::Mutex;

/// Called once with the value when it becomes available.
pub type ReadyCallback = Box<dyn FnOnce(&Arc<Object>) + Send>;

enum Entry {
    Pending(Vec<ReadyCallback>),
    Ready(Arc<Object>),
}

/// Values by object id. An id is *pending* from the moment a task that
/// returns it is submitted until its value arrives.
#[derive(Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<ObjectId, Entry>>,
}

/// The state of one id in the store.
pub enum Lookup {
    /// The value is here.
    Ready(Arc<Object>),
    /// The value is expected (a task will produce it).
    Pending,
    /// Nothing is known of this id here.
    Absent,
}

impl MemoryStore {
    /// Records that `id` will be produced later.
    pub fn expect(&self, id: ObjectId) {
        self.map
            .lock()
            .entry(id)
            .or_insert_with(|| Entry::Pending(Vec::new()));
    }

    /// Stores a value and runs the callbacks waiting for it. A value already
    /// present is kept (objects are immutable; a retried task's second result
    /// is dropped).
    pub fn put(&self, id: ObjectId, object: Arc<Object>) {
        let callbacks = {
            let mut map = self.map.lock();
            match map.insert(id, Entry::Ready(object.clone())) {
                Some(Entry::Pending(cbs)) => cbs,
                Some(Entry::Ready(old)) => {
                    map.insert(id, Entry::Ready(old));
                    return;
                }
                None => Vec::new(),
            }
        };
        for cb in callbacks {
            cb(&object);
        }
    }

    /// Stores `object` only if `id` is still expected (its refs may all be
    /// gone already). Returns whether it was stored.
    pub fn fulfil(&self, id: ObjectId, object: Arc<Object>) -> bool {
        let callbacks = {
            let mut map = self.map.lock();
            match map.get_mut(&id) {
                Some(entry @ Entry::Pending(_)) => {
                    match std::mem::replace(entry, Entry::Ready(object.clone())) {
                        Entry::Pending(cbs) => cbs,
                        Entry::Ready(_) => unreachable!(),
                    }
                }
                _ => return false,
            }
        };
        for cb in callbacks {
            cb(&object);
        }
        true
    }

    /// The state of `id`.
    pub fn lookup(&self, id: &ObjectId) -> Lookup {
        match self.map.lock().get(id) {
            Some(Entry::Ready(o)) => Lookup::Ready(o.clone()),
            Some(Entry::Pending(_)) => Lookup::Pending,
            None => Lookup::Absent,
        }
    }

    /// Whether the value of each id is here (one lock for all).
    pub fn ready_flags(&self, ids: &[ObjectId]) -> Vec<bool> {
        let map = self.map.lock();
        ids.iter()
            .map(|id| matches!(map.get(id), Some(Entry::Ready(_))))
            .collect()
    }

    /// Runs `cb` when `id` is ready (at once if it is). When `id` is unknown,
    /// it becomes pending first.
    pub fn on_ready(&self, id: ObjectId, cb: ReadyCallback) {
        let ready = {
            let mut map = self.map.lock();
            match map.entry(id).or_insert_with(|| Entry::Pending(Vec::new())) {
                Entry::Ready(o) => o.clone(),
                Entry::Pending(cbs) => {
                    cbs.push(cb);
                    return;
                }
            }
        };
        cb(&ready);
    }

    /// Makes a ready `id` pending again when `stale(value)` says its value
    /// can no longer be read (its only copy was on a dead node); returns
    /// the old value. Waiters added from now on get the next value.
    pub fn reset_if(&self, id: &ObjectId, stale: impl Fn(&Object) -> bool) -> Option<Arc<Object>> {
        let mut map = self.map.lock();
        match map.get(id) {
            Some(Entry::Ready(o)) if stale(o) => {}
            _ => return None,
        }
        match map.insert(*id, Entry::Pending(Vec::new())) {
            Some(Entry::Ready(old)) => Some(old),
            _ => unreachable!("checked ready above"),
        }
    }

    /// The ready ids whose values `matches` (one pass over the store).
    pub fn ready_where(&self, matches: impl Fn(&Object) -> bool) -> Vec<ObjectId> {
        self.map
            .lock()
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Ready(o) if matches(o)))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Forgets `id` (its last reference is gone); returns its value.
    pub fn remove(&self, id: &ObjectId) -> Option<Arc<Object>> {
        match self.map.lock().remove(id) {
            Some(Entry::Ready(o)) => Some(o),
            _ => None,
        }
    }

    /// Resolves every pending id with `make_error()`; used when the runtime
    /// fails so that nobody waits forever.
    pub fn fail_all_pending(&self, make_error: impl Fn() -> Object) {
        let pending: Vec<ObjectId> = self
            .map
            .lock()
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Pending(_)))
            .map(|(id, _)| *id)
            .collect();
        for id in pending {
            self.fulfil(id, Arc::new(make_error()));
        }
    }

    /// Number of entries (ready or pending).
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn obj(b: &'static [u8]) -> Arc<Object> {
        Arc::new(Object {
            data: bytes::Bytes::from_static(b),
            metadata: Default::default(),
            nested: vec![],
        })
    }

    #[test]
    fn callbacks_run_once_on_arrival() {
        let s = MemoryStore::default();
        let id = ObjectId::default();
        let hits = Arc::new(AtomicUsize::new(0));
        s.expect(id);
        for _ in 0..3 {
            let h = hits.clone();
            s.on_ready(
                id,
                Box::new(move |o| {
                    assert_eq!(&o.data[..], b"v");
                    h.fetch_add(1, Ordering::SeqCst);
                }),
            );
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        assert!(s.fulfil(id, obj(b"v")));
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        let h = hits.clone();
        s.on_ready(
            id,
            Box::new(move |_| {
                h.fetch_add(1, Ordering::SeqCst);
            }),
        );
        assert_eq!(
            hits.load(Ordering::SeqCst),
            4,
            "ready values call back at once"
        );
    }

    #[test]
    fn fulfil_ignores_forgotten_ids_and_values_are_immutable() {
        let s = MemoryStore::default();
        let id = ObjectId::default();
        assert!(!s.fulfil(id, obj(b"x")), "nobody expects it");
        s.put(id, obj(b"a"));
        s.put(id, obj(b"b"));
        match s.lookup(&id) {
            Lookup::Ready(o) => assert_eq!(&o.data[..], b"a"),
            _ => panic!("missing"),
        }
        s.remove(&id);
        assert!(matches!(s.lookup(&id), Lookup::Absent));
    }

    #[test]
    fn reset_makes_a_stale_value_pending_again() {
        let s = MemoryStore::default();
        let id = ObjectId::default();
        s.put(id, obj(b"old"));
        assert!(s.reset_if(&id, |o| &o.data[..] == b"other").is_none());
        assert_eq!(s.ready_where(|o| &o.data[..] == b"old"), vec![id]);
        let old = s.reset_if(&id, |o| &o.data[..] == b"old").expect("stale");
        assert_eq!(&old.data[..], b"old");
        assert!(matches!(s.lookup(&id), Lookup::Pending));
        assert!(s.fulfil(id, obj(b"new")), "the rebuilt value is expected");
        match s.lookup(&id) {
            Lookup::Ready(o) => assert_eq!(&o.data[..], b"new"),
            _ => panic!("missing"),
        }
    }

    #[test]
    fn fail_all_pending_wakes_waiters() {
        let s = MemoryStore::default();
        let id = ObjectId::default();
        s.expect(id);
        let hit = Arc::new(AtomicUsize::new(0));
        let h = hit.clone();
        s.on_ready(
            id,
            Box::new(move |o| {
                assert_eq!(&o.data[..], b"dead");
                h.fetch_add(1, Ordering::SeqCst);
            }),
        );
        s.fail_all_pending(|| (*obj(b"dead")).clone());
        assert_eq!(hit.load(Ordering::SeqCst), 1);
    }
}
