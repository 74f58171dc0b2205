//! Reference counting by ownership.
//!
//! Each process counts the live references it holds to each object (one per
//! Python `ObjectRef`, plus one per pending task argument). The process that
//! created an object *owns* it and frees it when its count reaches zero.
//! An owned ref that was serialized into another value or sent to another
//! process has *escaped*: other processes may borrow it, so the owner keeps
//! the value until the session ends. (Counting borrowers precisely, as Ray
//! does, is future work; keeping escaped values is the safe side.)

use std::collections::HashMap;
use std::sync::Arc;

use oxray_common::ObjectId;
use parking_lot::Mutex;

struct RefEntry {
    count: u32,
    owned: bool,
    escaped: bool,
    owner: Arc<str>,
}

/// What happened when a reference was dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum Released {
    /// Other references remain, or the object escaped.
    Kept,
    /// The last reference went: drop the value (`owned`: this process
    /// owned it, so copies elsewhere go too).
    Free { owned: bool },
}

/// Reference counts of the objects this process knows.
#[derive(Default)]
pub struct RefTable {
    map: Mutex<HashMap<ObjectId, RefEntry>>,
}

impl RefTable {
    /// Adds one reference to `id`, owned by `owner` (`owned` when that is
    /// this process).
    pub fn add(&self, id: ObjectId, owner: &Arc<str>, owned: bool) {
        let mut map = self.map.lock();
        let e = map.entry(id).or_insert_with(|| RefEntry {
            count: 0,
            owned,
            escaped: false,
            owner: owner.clone(),
        });
        e.count += 1;
    }

    /// Drops one reference to `id`.
    pub fn release(&self, id: &ObjectId) -> Released {
        let mut map = self.map.lock();
        let Some(e) = map.get_mut(id) else { return Released::Kept };
        e.count = e.count.saturating_sub(1);
        if e.count > 0 || (e.owned && e.escaped) {
            return Released::Kept;
        }
        let owned = e.owned;
        map.remove(id);
        Released::Free { owned }
    }

    /// Records that `id` was serialized into a value or message that may reach
    /// another process.
    pub fn mark_escaped(&self, id: &ObjectId) {
        if let Some(e) = self.map.lock().get_mut(id) {
            e.escaped = true;
        }
    }

    /// The owner's address of `id`, if any reference to it is held here.
    pub fn owner_of(&self, id: &ObjectId) -> Option<Arc<str>> {
        self.map.lock().get(id).map(|e| e.owner.clone())
    }

    /// Whether any reference to `id` is held here.
    pub fn contains(&self, id: &ObjectId) -> bool {
        self.map.lock().contains_key(id)
    }

    /// Number of objects with references held here.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether no references are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_release_frees_unless_escaped() {
        let t = RefTable::default();
        let me: Arc<str> = Arc::from("unix:/me");
        let a = ObjectId([1; 20]);
        let b = ObjectId([2; 20]);
        t.add(a, &me, true);
        t.add(a, &me, true);
        assert_eq!(t.release(&a), Released::Kept);
        assert_eq!(t.release(&a), Released::Free { owned: true });
        assert!(!t.contains(&a));
        t.add(b, &me, true);
        t.mark_escaped(&b);
        assert_eq!(t.release(&b), Released::Kept);
        assert!(t.contains(&b));
    }

    #[test]
    fn borrowed_refs_free_their_cached_copy() {
        let t = RefTable::default();
        let other: Arc<str> = Arc::from("unix:/other");
        let a = ObjectId([3; 20]);
        t.add(a, &other, false);
        t.mark_escaped(&a);
        assert_eq!(t.owner_of(&a).as_deref(), Some("unix:/other"));
        assert_eq!(t.release(&a), Released::Free { owned: false });
    }
}
