//! Reference counting by ownership, with lending.
//!
//! Each process counts the live references it holds to each object: one per
//! Python `ObjectRef`, one per pending task argument, one per stored value
//! that contains the ref, and one per hold *lent* to another process. The
//! process that created an object *owns* it and frees it when its count
//! reaches zero.
//!
//! When a value containing refs leaves a process (a task's arguments, a
//! return value, a fetched copy), the sender takes one hold per ref for the
//! receiver before sending (`lend`); the receiver records who lent each of
//! its holds and, when its own count reaches zero, gives them back
//! (`ReleaseLent`). Since a hold is taken before the value leaves and given
//! back only after the receiver is done, an object is never freed while a
//! process can still reach it. A ref pickled by other means (user code) has
//! *escaped*: its owner keeps the value until the session ends.
//!
//! The lender also notes how many holds each borrower has
//! ([`RefTable::lend`]), so that when a borrower exits without giving
//! them back ([`RefTable::take_loans`]) they are released all the same.

use std::collections::HashMap;
use std::sync::Arc;

use oxray_common::ObjectId;
use parking_lot::Mutex;

struct RefEntry {
    count: u32,
    owned: bool,
    escaped: bool,
    owner: Arc<str>,
    /// Holds other processes keep for us, to give back at zero.
    lenders: Vec<(Arc<str>, u32)>,
    /// Holds we lent to other processes and they have not given back.
    borrowers: Vec<(Arc<str>, u32)>,
}

/// What happened when a reference was dropped.
#[derive(Debug, PartialEq, Eq)]
pub enum Released {
    /// Other references remain, or the object escaped.
    Kept,
    /// The last reference went: drop the value (`owned`: this process
    /// owned it, so copies elsewhere go too) and give back the holds lent
    /// to us.
    Free {
        /// This process owned it.
        owned: bool,
        /// The processes that lent us holds on it, and how many each.
        lenders: Vec<(Arc<str>, u32)>,
    },
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
            lenders: Vec::new(),
            borrowers: Vec::new(),
        });
        e.count += 1;
    }

    /// Adds one reference to `id` that `lender` holds for us.
    pub fn add_lent(&self, id: ObjectId, owner: &Arc<str>, owned: bool, lender: &Arc<str>) {
        self.add(id, owner, owned);
        let mut map = self.map.lock();
        let e = map.get_mut(&id).expect("just added");
        match e.lenders.iter_mut().find(|(l, _)| l == lender) {
            Some((_, n)) => *n += 1,
            None => e.lenders.push((lender.clone(), 1)),
        }
    }

    /// Takes one hold on each of `refs` (id, owner, owned by this process)
    /// for `borrower` (a process about to receive them), noted against it
    /// until it gives them back.
    pub fn lend(&self, refs: &[(ObjectId, Arc<str>, bool)], borrower: &str) {
        if refs.is_empty() {
            return;
        }
        let borrower: Arc<str> = Arc::from(borrower);
        let mut map = self.map.lock();
        for (id, owner, owned) in refs {
            let e = map.entry(*id).or_insert_with(|| RefEntry {
                count: 0,
                owned: *owned,
                escaped: false,
                owner: owner.clone(),
                lenders: Vec::new(),
                borrowers: Vec::new(),
            });
            e.count += 1;
            match e.borrowers.iter_mut().find(|(b, _)| *b == borrower) {
                Some((_, n)) => *n += 1,
                None => e.borrowers.push((borrower.clone(), 1)),
            }
        }
    }

    /// `borrower` gave `n` holds on `id` back: no longer noted against it.
    /// Returns how many it really had (at most `n`), for the caller to
    /// release: a process cannot give back holds it was never lent.
    pub fn loan_returned(&self, borrower: &str, id: &ObjectId, n: u32) -> u32 {
        let mut map = self.map.lock();
        let Some(e) = map.get_mut(id) else { return 0 };
        let Some(pos) = e.borrowers.iter().position(|(b, _)| &**b == borrower) else {
            return 0;
        };
        let held = &mut e.borrowers[pos].1;
        let returned = n.min(*held);
        *held -= returned;
        if *held == 0 {
            e.borrowers.swap_remove(pos);
        }
        returned
    }

    /// The holds `borrower` (which exited) never gave back, forgotten here:
    /// the caller releases them.
    pub fn take_loans(&self, borrower: &str) -> Vec<(ObjectId, u32)> {
        let mut map = self.map.lock();
        let mut taken = Vec::new();
        for (id, e) in map.iter_mut() {
            if let Some(pos) = e.borrowers.iter().position(|(b, _)| &**b == borrower) {
                taken.push((*id, e.borrowers.swap_remove(pos).1));
            }
        }
        taken
    }

    /// Drops one reference to `id`.
    pub fn release(&self, id: &ObjectId) -> Released {
        self.release_n(id, 1)
    }

    /// Drops `n` references to `id`.
    pub fn release_n(&self, id: &ObjectId, n: u32) -> Released {
        let mut map = self.map.lock();
        let Some(e) = map.get_mut(id) else {
            return Released::Kept;
        };
        e.count = e.count.saturating_sub(n);
        if e.count > 0 || (e.owned && e.escaped) {
            return Released::Kept;
        }
        let e = map.remove(id).expect("present");
        Released::Free {
            owned: e.owned,
            lenders: e.lenders,
        }
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
        assert_eq!(
            t.release(&a),
            Released::Free {
                owned: true,
                lenders: vec![]
            }
        );
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
        assert_eq!(
            t.release(&a),
            Released::Free {
                owned: false,
                lenders: vec![]
            }
        );
    }

    #[test]
    fn holds_of_a_borrower_that_exits_come_back() {
        let t = RefTable::default();
        let me: Arc<str> = Arc::from("me");
        let (a, b) = (ObjectId([1; 20]), ObjectId([2; 20]));
        t.add(a, &me, true);
        t.lend(&[(a, me.clone(), true), (a, me.clone(), true)], "worker-1");
        t.lend(&[(b, me.clone(), true)], "worker-2");
        assert_eq!(t.loan_returned("worker-1", &a, 1), 1);
        // Nobody gives back more than it was lent, or another's holds.
        assert_eq!(t.loan_returned("worker-2", &a, 5), 0);
        assert_eq!(t.take_loans("worker-1"), vec![(a, 1)]);
        assert_eq!(t.loan_returned("worker-1", &a, 1), 0);
        assert!(t.take_loans("worker-1").is_empty());
        assert_eq!(t.take_loans("worker-2"), vec![(b, 1)]);
    }

    #[test]
    fn lent_holds_are_given_back_at_zero() {
        let t = RefTable::default();
        let owner: Arc<str> = Arc::from("unix:/owner");
        let lender: Arc<str> = Arc::from("unix:/lender");
        let a = ObjectId([4; 20]);
        t.add_lent(a, &owner, false, &lender);
        t.add_lent(a, &owner, false, &lender);
        t.add(a, &owner, false);
        assert_eq!(t.release_n(&a, 2), Released::Kept);
        assert_eq!(
            t.release(&a),
            Released::Free {
                owned: false,
                lenders: vec![(lender, 2)]
            }
        );
    }
}
