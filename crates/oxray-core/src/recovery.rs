//! Node deaths, as a caller and an owner see them.
//!
//! When the cluster declares nodes dead, the node daemon tells its
//! processes ([`NodesRemoved`]). Each then:
//! - gives up on the workers it was calling there (a frozen or cut-off host
//!   keeps its connections open), so that their tasks are retried and
//!   their actors located again, restarted elsewhere;
//! - for each object it owns whose only copy was there, runs the task that
//!   made it again (lineage reconstruction, recursively through lost
//!   arguments), or stores the error saying why it cannot;
//! - for each object it borrowed whose copy was there, asks the owner for
//!   the rebuilt one.
//!
//! A reader that fails to map a copy before the news arrives (or because
//! the copy vanished) asks the same way: [`Inner::recover_lost`].

use std::collections::HashMap;
use std::sync::Arc;

use oxray_common::{ObjectId, TaskId};
use oxray_proto::*;

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
        self.rebuild(owned);
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

    /// Rebuilds owned objects whose copies were lost with the node at
    /// each one's location: all of them go back to pending first (so that
    /// a rebuilt task waits for its rebuilt arguments), then each task
    /// that made them runs again, or each gets the error saying why it
    /// cannot.
    pub(crate) fn rebuild(self: &Arc<Self>, lost: Vec<(ObjectId, String)>) {
        let mut by_task: HashMap<TaskId, Vec<ObjectId>> = HashMap::new();
        for (id, location) in lost {
            let Some(old) = self.store.reset_if(&id, |o| held_at(o, &location)) else {
                continue; // rebuilt already, or freed
            };
            self.release_nested(&old);
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
            self.rebuild(vec![(id, lost)]);
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
