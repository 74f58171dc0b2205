//! The node daemon's side of the shared-memory store: allocation, sealing,
//! pins and statistics, on behalf of the processes of the node.

use std::collections::HashMap;

use oxray_common::ObjectId;
use oxray_proto::frame::FrameWriter;
use oxray_proto::*;
use oxray_store::{Slot, StoreError};

use crate::daemon::Node;

fn failure(e: &StoreError) -> StoreFailure {
    match e {
        StoreError::Full { .. } | StoreError::NoSpace { .. } => StoreFailure::Full,
        StoreError::TooLarge { .. } => StoreFailure::TooLarge,
        StoreError::NotFound(_) => StoreFailure::NotFound,
        StoreError::Spill { .. } => StoreFailure::Spill,
    }
}

fn error_reply(e: StoreError) -> Body {
    Body::StoreReply(StoreReply {
        failure: failure(&e) as i32,
        error: e.to_string(),
        ..Default::default()
    })
}

/// The reply telling a client where an object of `size` bytes is.
pub(crate) fn slot_reply(slot: Slot, size: u64) -> Body {
    let (offset, file) = match slot {
        Slot::Region(offset) => (offset, String::new()),
        Slot::File(path) => (0, path.display().to_string()),
    };
    Body::StoreReply(StoreReply {
        offset,
        size,
        file,
        ..Default::default()
    })
}

/// The answer to a request naming no valid object id (never silence: the
/// caller would wait forever).
fn bad_id() -> Body {
    Body::StoreReply(StoreReply {
        failure: StoreFailure::NotFound as i32,
        error: "the request names no valid object id".into(),
        ..Default::default()
    })
}

impl Node {
    /// Runs a store operation that may block on the disk (spilling,
    /// restoring, a file for an object memory cannot take) on tokio's
    /// blocking threads, and replies from there: the daemon's event loop,
    /// and so leases and other clients, go on meanwhile.
    ///
    /// A client gone meanwhile (its pins and unsealed objects already
    /// dropped) loses what the operation gave it too.
    fn off_loop(
        &self,
        client: u64,
        req: u64,
        writer: &FrameWriter,
        op: impl FnOnce(&mut oxray_store::ObjectTable) -> Body + Send + 'static,
    ) {
        let (me, writer) = (self.me(), writer.clone());
        tokio::task::spawn_blocking(move || {
            let reply = op(&mut me.store.lock());
            if !me.state.lock().clients.contains_key(&client) {
                me.store.lock().client_gone(client);
            }
            writer.reply(req, reply);
        });
    }

    pub(crate) fn handle_store(&self, client: u64, req: u64, body: Body, writer: &FrameWriter) {
        let id_of = |b: &[u8]| ObjectId::from_bytes(b);
        match body {
            Body::StoreCreate(c) => {
                let Some(id) = id_of(&c.id) else {
                    writer.reply(req, bad_id());
                    return;
                };
                let size = c.size;
                let created_reply = move |created| match created {
                    Ok(Some(slot)) => slot_reply(slot, size),
                    Ok(None) => Body::StoreReply(StoreReply {
                        exists: true,
                        ..Default::default()
                    }),
                    Err(e) => error_reply(e),
                };
                let fast = self
                    .store
                    .lock()
                    .create_in_memory(id, size, client, &c.owner);
                match fast {
                    Some(created) => {
                        writer.reply(req, created_reply(created));
                    }
                    None => self.off_loop(client, req, writer, move |store| {
                        created_reply(store.create(id, size, client, &c.owner))
                    }),
                };
            }
            Body::StoreGet(g) => {
                let Some(id) = id_of(&g.id) else {
                    writer.reply(req, bad_id());
                    return;
                };
                let fast = self.store.lock().get_in_memory(&id, client);
                let reply = match fast {
                    // Spilled: restoring it reads the disk.
                    None => {
                        return self.off_loop(client, req, writer, move |store| {
                            match store.get(&id, client) {
                                Ok((slot, size)) => slot_reply(slot, size),
                                Err(e) => error_reply(e),
                            }
                        })
                    }
                    Some(Ok((slot, size))) => slot_reply(slot, size),
                    Some(Err(StoreError::NotFound(_)))
                        if !g.source.is_empty() && g.source != self.address =>
                    {
                        return self.pull_then_reply(client, req, id, g.source, writer);
                    }
                    Some(Err(e)) => error_reply(e),
                };
                writer.reply(req, reply);
            }
            Body::StoreSeal(o) => {
                if let Some(id) = id_of(&o.id) {
                    self.store.lock().seal(&id);
                }
            }
            Body::StoreRelease(o) => {
                if let Some(id) = id_of(&o.id) {
                    self.store.lock().release(&id, client);
                }
            }
            Body::StoreDelete(o) => {
                let Some(id) = id_of(&o.id) else { return };
                // A process of this node deletes only what it owns (or a
                // copy); other nodes' daemons pass on their owners' deletes.
                let deleter = self
                    .state
                    .lock()
                    .clients
                    .get(&client)
                    .filter(|c| c.is_local_process())
                    .map(|c| c.address().to_string());
                if let Some(deleter) = deleter {
                    if !self.store.lock().may_delete(&id, &deleter) {
                        tracing::warn!(
                            "refused to delete object {} for {deleter}, which does not own it",
                            id.hex()
                        );
                        return;
                    }
                }
                self.delete_object(id, o.source);
            }
            Body::StoreStatsRequest(r) => {
                let listing = {
                    let store = self.store.lock();
                    let list = if r.totals_only {
                        Vec::new()
                    } else {
                        store.list()
                    };
                    (store.stats(), list)
                };
                let (s, list) = listing;
                let st = self.state.lock();
                // Processes of this node that registered (a peer or the CLI
                // names no address).
                let pids: HashMap<&str, u32> = st
                    .clients
                    .values()
                    .filter(|c| c.pid != 0 && !c.address().is_empty())
                    .map(|c| (c.address(), c.pid))
                    .collect();
                let objects = list
                    .into_iter()
                    .map(|o| StoreEntry {
                        id: o.id.0.to_vec(),
                        size: o.size,
                        pins: o.pins,
                        spilled: o.spilled,
                        creator_pid: st.clients.get(&o.creator).map_or(0, |c| c.pid),
                        owner_pid: if o.owner.is_empty() {
                            0
                        } else {
                            pids.get(o.owner.as_str()).copied().unwrap_or(0)
                        },
                        owner: o.owner,
                    })
                    .collect();
                writer.reply(
                    req,
                    Body::StoreStats(StoreStats {
                        capacity: s.capacity,
                        used: s.used,
                        pinned_bytes: s.pinned_bytes,
                        spilled_bytes: s.spilled_bytes,
                        spilled_objects: s.spilled_objects as u32,
                        num_objects: s.objects as u32,
                        objects,
                        spill_dir: self.config.spill_dir.display().to_string(),
                        bytes_served: self.transfers.bytes_served(),
                    }),
                );
            }
            _ => {}
        }
    }
}
