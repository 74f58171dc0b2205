//! This process's side of the node's shared-memory store: reserve, write
//! and seal new objects; map existing ones, pinned while in use.

use std::collections::HashMap;
use std::sync::Arc;

use oxray_common::{Error, ObjectId, Result};
use oxray_proto::*;
use oxray_store::Region;
use parking_lot::Mutex;

use crate::core::Inner;

/// Where a shared object's bytes are in this process: a mapping (the
/// node's store file, or the object's own file on disk) and the offset
/// and size within it.
#[derive(Clone)]
pub struct Mapped {
    /// The mapping holding the bytes.
    pub region: Arc<Region>,
    /// Where they start in it.
    pub offset: u64,
    /// How many there are.
    pub size: u64,
}

/// Objects this process maps, with how many users each has here.
#[derive(Default)]
pub(crate) struct MappedObjects {
    map: Mutex<HashMap<ObjectId, (Mapped, u32)>>,
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
            other => Err(crate::core::unexpected(other)),
        }
    }

    /// Where the bytes of a store reply's object are in this process: in
    /// the node's store file, or in the object's own file (mapped now).
    fn mapping_of(&self, reply: &StoreReply) -> Result<Mapped> {
        let region = if reply.file.is_empty() {
            self.region_or_err()?.clone()
        } else {
            let path = std::path::Path::new(&reply.file);
            Arc::new(Region::open(path).map_err(|source| Error::Connection {
                peer: format!("object file {}", reply.file),
                source,
            })?)
        };
        Ok(Mapped {
            region,
            offset: reply.offset,
            size: reply.size,
        })
    }

    /// Reserves `size` bytes for `id`, owned by `owner` (empty: this
    /// process); returns where to write them, or `None` when the object
    /// exists already.
    pub(crate) fn store_create(
        &self,
        id: ObjectId,
        size: u64,
        owner: &str,
    ) -> Result<Option<Mapped>> {
        self.region_or_err()?;
        let owner = if owner.is_empty() {
            self.address.to_string()
        } else {
            owner.to_string()
        };
        let reply = self.block_on(self.store_call(Body::StoreCreate(StoreCreate {
            id: id.0.to_vec(),
            size,
            owner,
        })))?;
        if reply.exists {
            return Ok(None);
        }
        self.mapping_of(&reply).map(Some)
    }

    /// Marks a written object complete.
    pub(crate) fn store_seal(&self, id: ObjectId) {
        self.daemon.send(Body::StoreSeal(StoreObject {
            id: id.0.to_vec(),
            source: String::new(),
        }));
    }

    /// Maps `id` and pins it for this process; returns where it is.
    /// `source` is the node daemon holding it (from its marker): when that
    /// is another node, the local daemon pulls a copy first.
    pub(crate) fn store_get(&self, id: ObjectId, source: &str, via: &str) -> Result<Mapped> {
        self.region_or_err()?;
        if let Some((mapped, users)) = self.mapped.map.lock().get_mut(&id) {
            *users += 1;
            return Ok(mapped.clone());
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
        let mapped = match self.mapping_of(&reply) {
            Ok(m) => m,
            Err(e) => {
                self.daemon.send(Body::StoreRelease(StoreObject {
                    id: id.0.to_vec(),
                    source: String::new(),
                }));
                return Err(e);
            }
        };
        let mut map = self.mapped.map.lock();
        let entry = map.entry(id).or_insert((mapped, 0));
        if entry.1 > 0 {
            // Raced with another thread that pinned it too: one pin is enough.
            self.daemon.send(Body::StoreRelease(StoreObject {
                id: id.0.to_vec(),
                source: String::new(),
            }));
        }
        entry.1 += 1;
        Ok(entry.0.clone())
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
        if let Some((_, users)) = map.get_mut(&id) {
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
}
