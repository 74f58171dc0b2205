//! This process's side of the node's shared-memory store: reserve, write
//! and seal new objects; map existing ones, pinned while in use.

use std::collections::HashMap;
use std::sync::Arc;

use oxray_common::{Error, ObjectId, Result};
use oxray_proto::*;
use oxray_store::Region;
use parking_lot::Mutex;

use crate::core::Inner;

/// Objects this process maps, with how many users each has here.
#[derive(Default)]
pub(crate) struct MappedObjects {
    map: Mutex<HashMap<ObjectId, (u64, u64, u32)>>,
}

fn store_error(reply: &StoreReply) -> Error {
    match StoreFailure::try_from(reply.failure) {
        Ok(StoreFailure::Full) | Ok(StoreFailure::TooLarge) => {
            Error::ObjectStoreFull(reply.error.clone())
        }
        _ => Error::ObjectLost {
            object: String::new(),
            owner: "the node's object store".into(),
            reason: reply.error.clone(),
        },
    }
}

impl Inner {
    fn region_or_err(&self) -> Result<&Arc<Region>> {
        self.region
            .as_ref()
            .ok_or_else(|| Error::Rejected("this node has no shared-memory object store".into()))
    }

    async fn store_call(&self, body: Body) -> Result<StoreReply> {
        match self.daemon.call(body).await? {
            Body::StoreReply(r) if r.failure == StoreFailure::None as i32 => Ok(r),
            Body::StoreReply(r) => Err(store_error(&r)),
            other => Err(Error::Protocol {
                peer: "daemon".into(),
                reason: format!("unexpected {other:?}"),
            }),
        }
    }

    /// Reserves `size` bytes for `id`; returns the offset to write at, or
    /// `None` when the object exists already.
    pub(crate) fn store_create(&self, id: ObjectId, size: u64) -> Result<Option<u64>> {
        self.region_or_err()?;
        let reply = self.block_on(self.store_call(Body::StoreCreate(StoreCreate {
            id: id.0.to_vec(),
            size,
        })))?;
        Ok((!reply.exists).then_some(reply.offset))
    }

    /// Marks a written object complete.
    pub(crate) fn store_seal(&self, id: ObjectId) {
        self.daemon.send(Body::StoreSeal(StoreObject {
            id: id.0.to_vec(),
            source: String::new(),
        }));
    }

    /// Maps `id` and pins it for this process; returns `(offset, size)`.
    /// `source` is the node daemon holding it (from its marker): when that
    /// is another node, the local daemon pulls a copy first.
    pub(crate) fn store_get(&self, id: ObjectId, source: &str, via: &str) -> Result<(u64, u64)> {
        self.region_or_err()?;
        if let Some((offset, size, users)) = self.mapped.map.lock().get_mut(&id) {
            *users += 1;
            return Ok((*offset, *size));
        }
        let remote = self.remote(source);
        let reply = self
            .block_on(self.store_call(Body::StoreGet(StoreObject {
                id: id.0.to_vec(),
                source: remote.clone(),
            })))
            .map_err(|e| match e {
                Error::ObjectLost { reason, owner, .. } => Error::ObjectLost {
                    object: id.hex(),
                    owner,
                    reason,
                },
                other => other,
            })?;
        if !remote.is_empty() {
            if let Some(me) = self.me.upgrade() {
                me.copy_made(id, via);
            }
        }
        let mut map = self.mapped.map.lock();
        let entry = map.entry(id).or_insert((reply.offset, reply.size, 0));
        if entry.2 > 0 {
            // Raced with another thread that pinned it too: one pin is enough.
            self.daemon.send(Body::StoreRelease(StoreObject {
                id: id.0.to_vec(),
                source: String::new(),
            }));
        }
        entry.2 += 1;
        Ok((entry.0, entry.1))
    }

    /// Copies to this node the shared objects among `ids` whose values are
    /// here but whose bytes live on another node (`wait(fetch_local=True)`),
    /// all at once; failures are left for `get` to report.
    pub(crate) fn fetch_local(&self, ids: &[ObjectId]) {
        let remote: Vec<(ObjectId, String)> = ids
            .iter()
            .filter_map(|id| match self.store.lookup(id) {
                crate::store::Lookup::Ready(o) => {
                    crate::objects::marker_parts(&o).map(|(i, l)| (i, self.remote(l)))
                }
                _ => None,
            })
            .filter(|(_, source)| !source.is_empty())
            .collect();
        if remote.is_empty() {
            return;
        }
        let pulls = remote.into_iter().map(|(id, source)| async move {
            if self
                .store_call(Body::StoreGet(StoreObject {
                    id: id.0.to_vec(),
                    source,
                }))
                .await
                .is_ok()
            {
                // Only the copy was wanted: no pin.
                self.daemon.send(Body::StoreRelease(StoreObject {
                    id: id.0.to_vec(),
                    source: String::new(),
                }));
                if let Some(me) = self.me.upgrade() {
                    me.copy_made(id, "");
                }
            }
        });
        let _ = self.block_on(async {
            futures::future::join_all(pulls).await;
            Ok(())
        });
    }

    /// One user of a mapped object is done with it.
    pub(crate) fn store_release(&self, id: ObjectId) {
        let mut map = self.mapped.map.lock();
        if let Some((_, _, users)) = map.get_mut(&id) {
            *users -= 1;
            if *users == 0 {
                map.remove(&id);
                self.daemon.send(Body::StoreRelease(StoreObject {
                    id: id.0.to_vec(),
                    source: String::new(),
                }));
            }
        }
    }

    /// The owner dropped `id`, held by the node at `location`: the stores
    /// may free it (the local daemon passes the delete on to that node).
    pub(crate) fn store_delete(&self, id: ObjectId, location: &str) {
        self.daemon.send(Body::StoreDelete(StoreObject {
            id: id.0.to_vec(),
            source: self.remote(location),
        }));
    }

    /// `location` when it names another node, else empty.
    fn remote(&self, location: &str) -> String {
        if location.is_empty() || location == self.node_address {
            String::new()
        } else {
            location.to_string()
        }
    }

    /// The store's usage and objects.
    pub(crate) fn store_stats(&self) -> Result<StoreStats> {
        match self.block_on(
            self.daemon
                .call(Body::StoreStatsRequest(StoreStatsRequest {})),
        )? {
            Body::StoreStats(s) => Ok(s),
            other => Err(Error::Protocol {
                peer: "daemon".into(),
                reason: format!("unexpected {other:?}"),
            }),
        }
    }
}
