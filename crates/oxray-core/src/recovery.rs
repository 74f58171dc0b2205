//! Node deaths, as a caller and an owner see them.
//!
//! When the cluster declares nodes dead, the node daemon tells its
//! processes ([`NodesRemoved`]). Each then:
//! - gives up on the workers it was calling there (a frozen or cut-off host
//!   keeps its connections open), so that their tasks are retried and
//!   their actors located again, restarted elsewhere;
//! - for each object it owns whose primary copy was there, makes a whole
//!   copy on a live node the primary ([`CopyLocations`]: readers report the
//!   copies they make to the owner), or else runs the task that made it
//!   again (lineage reconstruction, recursively through lost arguments),
//!   or stores the error saying why it cannot;
//! - for each object it borrowed whose copy was there, asks the owner for
//!   the rebuilt one.
//!
//! A reader that fails to map a copy before the news arrives (or because
//! the copy vanished) asks the same way: [`Inner::recover_lost`].

use std::collections::HashMap;
use std::sync::Arc;

use oxray_common::{ObjectId, TaskId};
use oxray_proto::*;
use parking_lot::Mutex;

use crate::core::Inner;
use crate::lineage::Unrebuildable;
use crate::objects::{error_object, marker_parts, ObjectKind};

/// Whether `value` is a shared-memory marker for a copy on the node at
/// `location`.
fn held_at(value: &Object, location: &str) -> bool {
    marker_parts(value).is_some_and(|(_, l)| l == location)
}

/// The error stored for a lost object that cannot be rebuilt.
fn unrebuildable(why: Unrebuildable, id: &ObjectId) -> Object {
    match why {
        Unrebuildable::NoLineage => error_object(ObjectKind::Lost, why.message(id)),
        _ => error_object(
            ObjectKind::ReconstructionFailed,
            format!("{}\n{}", why.name(), why.message(id)),
        ),
    }
}

/// The nodes holding whole copies of the shared objects this process
/// owns, besides the primary its marker names (readers report them).
#[derive(Default)]
pub(crate) struct CopyLocations {
    map: Mutex<HashMap<ObjectId, Vec<String>>>,
}

impl CopyLocations {
    /// A whole copy of `id` lives on the node at `location`.
    pub(crate) fn add(&self, id: ObjectId, location: String) {
        let mut map = self.map.lock();
        let at = map.entry(id).or_default();
        if !at.contains(&location) {
            at.push(location);
        }
    }

    /// `id` was freed.
    pub(crate) fn forget(&self, id: &ObjectId) {
        self.map.lock().remove(id);
    }

    /// The copies of `id` outside `dead`.
    fn alive(&self, id: &ObjectId, dead: &[String]) -> Vec<String> {
        self.map
            .lock()
            .get(id)
            .map(|at| at.iter().filter(|l| !dead.contains(l)).cloned().collect())
            .unwrap_or_default()
    }
}

impl Inner {
    /// The daemon says these nodes are dead.
    pub(crate) fn nodes_removed(self: &Arc<Self>, news: NodesRemoved) {
        for worker in self.workers_on(&news.addresses, &news.node_ids) {
            self.peers.disconnect(&worker);
        }
        let lost: Vec<(ObjectId, String)> = news
            .addresses
            .iter()
            .flat_map(|address| {
                self.store
                    .ready_where(|o| held_at(o, address))
                    .into_iter()
                    .map(|id| (id, address.clone()))
            })
            .collect();
        let (owned, borrowed): (Vec<_>, Vec<_>) = lost
            .into_iter()
            .partition(|(id, _)| self.refs.owner_of(id).is_some_and(|o| self.is_me(&o[..])));
        self.recover_owned(owned, &news.addresses);
        for (id, location) in borrowed {
            let me = self.clone();
            self.handle
                .spawn(async move { me.recover_lost(id, location, String::new()).await });
        }
    }

    /// The worker addresses this process calls on the given nodes (their
    /// leases are dropped).
    fn workers_on(&self, addresses: &[String], node_ids: &[Vec<u8>]) -> Vec<String> {
        let mut workers = self.submit.lock().drop_leases_on(addresses);
        workers.extend(self.actor_submit.lock().workers_on(node_ids));
        workers
    }

    /// Recovers owned objects whose primary copy was lost with the node at
    /// each one's location (`dead`: every node known dead). All of them go
    /// back to pending first, so that readers, and rebuilt tasks waiting
    /// for rebuilt arguments, wait. Then each takes a whole copy on a live
    /// node as its new primary if there is one; otherwise the task that
    /// made it runs again, or it gets the error saying why it cannot.
    pub(crate) fn recover_owned(self: &Arc<Self>, lost: Vec<(ObjectId, String)>, dead: &[String]) {
        let mut rebuild = Vec::new();
        for (id, location) in lost {
            let Some(old) = self.store.reset_if(&id, |o| held_at(o, &location)) else {
                continue; // recovered already, or freed
            };
            let mut dead = dead.to_vec();
            dead.push(location);
            let copies = self.copies.alive(&id, &dead);
            if copies.is_empty() {
                self.release_nested(&old);
                rebuild.push(id);
            } else {
                let me = self.clone();
                self.handle
                    .spawn(async move { me.adopt_or_rebuild(id, old, copies).await });
            }
        }
        self.rebuild_pending(rebuild);
    }

    /// Makes the first of `copies` that still holds `id` its primary, with
    /// a marker like `old` pointing there; rebuilds it when none does.
    async fn adopt_or_rebuild(
        self: Arc<Self>,
        id: ObjectId,
        old: Arc<Object>,
        copies: Vec<String>,
    ) {
        for copy in copies {
            let adopted = match self.peers.get(&copy).await {
                Ok(daemon) => matches!(
                    daemon
                        .call(Body::AdoptCopy(StoreObject {
                            id: id.0.to_vec(),
                            source: String::new(),
                        }))
                        .await,
                    Ok(Body::Ack(_))
                ),
                Err(_) => false,
            };
            if adopted {
                let kind = old.metadata.get(1).copied().unwrap_or(b'P');
                let marker = crate::objects::shared_marker(&id, kind, old.nested.clone(), &copy);
                // The refs nested in it stay held, as they were.
                self.store.fulfil(id, Arc::new(marker));
                return;
            }
        }
        self.release_nested(&old);
        self.rebuild_pending(vec![id]);
    }

    /// Runs again the tasks that made these lost objects (pending again),
    /// or stores the error saying why one cannot be.
    fn rebuild_pending(self: &Arc<Self>, ids: Vec<ObjectId>) {
        let mut by_task: HashMap<TaskId, Vec<ObjectId>> = HashMap::new();
        for id in ids {
            by_task.entry(id.task_id()).or_default().push(id);
        }
        for (task, ids) in by_task {
            match self.lineage.take_for_rebuild(&ids[0]) {
                Ok(record) => {
                    tracing::info!(
                        "rebuilding {} object(s) of task '{}' lost with their node",
                        ids.len(),
                        record.spec.function_name
                    );
                    self.resubmit(task, record);
                }
                Err((why, held)) => {
                    for h in &held {
                        self.release_ref(h);
                    }
                    for id in ids {
                        self.store.fulfil(id, Arc::new(unrebuildable(why, &id)));
                    }
                }
            }
        }
    }

    /// A whole copy of `id` now lives on this node (a reader mapped it from
    /// another node): its owner — this process, the owner this process
    /// knows, or `via` — records it, to fall back on if the primary dies.
    pub(crate) fn copy_made(self: &Arc<Self>, id: ObjectId, via: &str) {
        let owner = self
            .refs
            .owner_of(&id)
            .map(|o| o.to_string())
            .unwrap_or_else(|| via.to_string());
        if owner.is_empty() {
            return;
        }
        if self.is_me(&owner) {
            self.copies.add(id, self.node_address.clone());
            return;
        }
        let me = self.clone();
        self.handle.spawn(async move {
            if let Ok(peer) = me.peers.get(&owner).await {
                peer.send(Body::ObjectLocation(StoreObject {
                    id: id.0.to_vec(),
                    source: me.node_address.clone(),
                }));
            }
        });
    }

    /// A reader reports a whole copy of an object this process owns.
    pub(crate) fn copy_reported(&self, id: ObjectId, location: String) {
        if matches!(self.store.lookup(&id), crate::store::Lookup::Ready(_)) {
            self.copies.add(id, location);
        }
    }

    /// The copy of `id` at `lost` (a node daemon's address) could not be
    /// read. Returns the value to use instead: rebuilt here when this
    /// process owns it, else the owner's (or `via`'s, who sent us the
    /// value, when we hold no reference of our own) — or the error saying
    /// why there is none.
    pub(crate) async fn recover_lost(
        self: Arc<Self>,
        id: ObjectId,
        lost: String,
        via: String,
    ) -> Arc<Object> {
        let owner = self.refs.owner_of(&id).map(|o| o.to_string());
        if owner.as_deref().is_some_and(|o| self.is_me(o)) {
            self.recover_owned(vec![(id, lost)], &[]);
            return self.resolve(id).await;
        }
        let Some(owner) = owner.or((!via.is_empty()).then_some(via)) else {
            return Arc::new(unrebuildable(Unrebuildable::NoLineage, &id));
        };
        // A value cached here goes pending, so that other readers wait for
        // the new one rather than read the lost copy.
        let cached = match self.store.reset_if(&id, |o| held_at(o, &lost)) {
            Some(old) => {
                self.release_nested(&old);
                true
            }
            None => match self.store.lookup(&id) {
                crate::store::Lookup::Ready(o) => return o, // recovered already
                crate::store::Lookup::Pending => return self.resolve(id).await,
                crate::store::Lookup::Absent => false,
            },
        };
        let object = self.ask_owner(id, &owner, &lost).await;
        if cached {
            self.fulfil_holding(id, object.clone(), false);
        } else {
            // Nothing here keeps it: the holds it came with go back.
            for nested in self.hold_refs(&object.nested) {
                self.release_ref(&nested);
            }
        }
        Arc::new(object)
    }

    /// Drops the references a stored value held to refs nested in it.
    fn release_nested(&self, value: &Object) {
        for nested in value
            .nested
            .iter()
            .filter_map(|r| ObjectId::from_bytes(&r.id))
        {
            self.release_ref(&nested);
        }
    }

    /// Blocking [`Inner::recover_lost`] for a reader (a `get`, a task's
    /// argument): a worker lends its CPU meanwhile, since the rebuild may
    /// need it.
    pub(crate) fn recover_blocking(&self, id: ObjectId, lost: &str, via: &str) -> Arc<Object> {
        let Some(me) = self.me.upgrade() else {
            return Arc::new(error_object(
                ObjectKind::SystemError,
                "the runtime shut down",
            ));
        };
        let (lost, via) = (lost.to_string(), via.to_string());
        self.lending_cpu(|| {
            self.driver
                .block_on(me.recover_lost(id, lost, via))
                .unwrap_or_else(|e| Arc::new(error_object(ObjectKind::SystemError, e.to_string())))
        })
    }
}
