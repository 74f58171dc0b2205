//! Objects across nodes: this node serves chunks of its objects to other
//! nodes, and pulls objects it lacks from the node that holds them,
//! straight into its own store. Concurrent pulls of one object are
//! merged; several chunks are in flight at once.
//!
//! The node holding the primary copy remembers which nodes copied an
//! object, and tells them when the owner deletes it.

use std::collections::{HashMap, HashSet};

use futures::stream::{FuturesUnordered, StreamExt};
use oxray_common::ObjectId;
use oxray_proto::frame::FrameWriter;
use oxray_proto::*;
use parking_lot::Mutex;

use crate::daemon::Node;

/// Bytes asked for in one chunk.
const CHUNK: u64 = 8 << 20;
/// Chunks requested at once per pull.
const IN_FLIGHT: usize = 4;
/// The store client a pull writes as (not a connection id).
const PULL_CLIENT: u64 = u64::MAX - 1;

/// Pulls in progress and copies handed out.
#[derive(Default)]
pub(crate) struct Transfers {
    /// Who waits for each object being pulled here.
    pulls: Mutex<HashMap<ObjectId, Vec<PullWaiter>>>,
    /// The nodes (daemon addresses) that copied each object of this store.
    copies: Mutex<HashMap<ObjectId, HashSet<String>>>,
}

/// A `StoreGet` answered once the pull ends.
struct PullWaiter {
    client: u64,
    request: u64,
    writer: FrameWriter,
}

fn store_failure(message: String) -> Body {
    Body::StoreReply(StoreReply { failure: StoreFailure::NotFound as i32, error: message, ..Default::default() })
}

impl Node {
    /// Serves a chunk of a local object to another node. The first chunk
    /// pins the object for that connection; the last one unpins it.
    pub(crate) fn read_chunk(&self, client: u64, req: u64, r: ReadChunk, writer: &FrameWriter) {
        let fail = |error: String| {
            writer.reply(req, Body::Chunk(Chunk { error, ..Default::default() }));
        };
        let Some(id) = ObjectId::from_bytes(&r.id) else { return fail("bad object id".into()) };
        let (region, offset, size) = {
            let mut store = self.store.lock();
            match store.get(&id, client) {
                Ok((offset, size)) => {
                    let last = r.offset.saturating_add(r.len) >= size;
                    if r.offset > 0 {
                        store.release(&id, client); // the first chunk's pin holds it
                    }
                    if last {
                        store.release(&id, client);
                    }
                    (store.region().clone(), offset, size)
                }
                Err(e) => return fail(format!("{e} (on node {})", self.address)),
            }
        };
        if r.offset == 0 && !r.reader.is_empty() {
            self.transfers.copies.lock().entry(id).or_default().insert(r.reader.clone());
        }
        let start = r.offset.min(size);
        let len = r.len.min(size - start);
        // SAFETY: sealed objects are immutable, and this one is pinned for
        // the reader until its last chunk is served.
        let data = bytes::Bytes::copy_from_slice(unsafe { region.slice(offset + start, len) });
        writer.reply(req, Body::Chunk(Chunk { total: size, data, error: String::new() }));
    }

    /// A `StoreGet` for an object this node lacks, held by the node at
    /// `source`: pull it, then answer.
    pub(crate) fn pull_then_reply(&self, client: u64, request: u64, id: ObjectId, source: String, writer: &FrameWriter) {
        let first = {
            let mut pulls = self.transfers.pulls.lock();
            let waiters = pulls.entry(id).or_default();
            waiters.push(PullWaiter { client, request, writer: writer.clone() });
            waiters.len() == 1
        };
        if !first {
            return;
        }
        let me = self.me();
        tokio::spawn(async move {
            let result = me.pull(id, &source).await;
            let waiters = me.transfers.pulls.lock().remove(&id).unwrap_or_default();
            for w in waiters {
                let reply = match &result {
                    Ok(()) => match me.store.lock().get(&id, w.client) {
                        Ok((offset, size)) => Body::StoreReply(StoreReply { offset, size, ..Default::default() }),
                        Err(e) => store_failure(e.to_string()),
                    },
                    Err(e) => store_failure(e.clone()),
                };
                w.writer.reply(w.request, reply);
            }
        });
    }

    /// Copies object `id` from the node at `source` into this node's store.
    async fn pull(&self, id: ObjectId, source: &str) -> Result<(), String> {
        let Some(link) = &self.link else { return Err("this node is not part of a multi-node cluster".into()) };
        let unreachable = |e: oxray_common::Error| format!("cannot fetch object {} from node {source}: {e}", id.hex());
        let peer = link.peers.get(source).await.map_err(unreachable)?;
        let read = |offset: u64| ReadChunk { id: id.0.to_vec(), offset, len: CHUNK, reader: self.address.clone() };
        let first = match peer.call(Body::ReadChunk(read(0))).await.map_err(unreachable)? {
            Body::Chunk(c) if c.error.is_empty() => c,
            Body::Chunk(c) => return Err(c.error),
            other => return Err(format!("unexpected reply to a chunk read: {other:?}")),
        };
        let total = first.total;
        let created = self.store.lock().create(id, total, PULL_CLIENT);
        let Some(base) = created.map_err(|e| e.to_string())? else {
            return Ok(()); // a copy exists already
        };
        let region = self.store.lock().region().clone();
        let write = |at: u64, data: &[u8]| -> Result<(), String> {
            if at + data.len() as u64 > total {
                return Err("a chunk ran past the object's end".into());
            }
            // SAFETY: the range belongs to this unsealed object, written
            // only here.
            unsafe { region.slice_mut(base + at, data.len() as u64) }.copy_from_slice(data);
            Ok(())
        };
        let outcome = async {
            write(0, &first.data)?;
            let mut next = first.data.len() as u64;
            let mut in_flight = FuturesUnordered::new();
            loop {
                while in_flight.len() < IN_FLIGHT && next < total {
                    let at = next;
                    next += CHUNK;
                    let call = peer.call(Body::ReadChunk(read(at)));
                    in_flight.push(async move { (at, call.await) });
                }
                let Some((at, reply)) = in_flight.next().await else { break };
                match reply.map_err(unreachable)? {
                    Body::Chunk(c) if c.error.is_empty() => write(at, &c.data)?,
                    Body::Chunk(c) => return Err(c.error),
                    other => return Err(format!("unexpected reply to a chunk read: {other:?}")),
                }
            }
            Ok(())
        }
        .await;
        let mut store = self.store.lock();
        match outcome {
            Ok(()) => {
                store.seal(&id);
                Ok(())
            }
            Err(e) => {
                store.abort(&id);
                Err(e)
            }
        }
    }

    /// The owner deleted object `id`. With a `source`, the primary copy
    /// is on that node: pass the delete on. Nodes that copied a primary
    /// held here are told too.
    pub(crate) fn delete_object(&self, id: ObjectId, source: String) {
        self.store.lock().delete(&id);
        let mut targets: Vec<String> = self.transfers.copies.lock().remove(&id).into_iter().flatten().collect();
        if !source.is_empty() {
            targets.push(source);
        }
        let Some(link) = &self.link else { return };
        targets.retain(|t| *t != self.address);
        for target in targets {
            let peers = link.peers.clone();
            tokio::spawn(async move {
                if let Ok(peer) = peers.get(&target).await {
                    peer.send(Body::StoreDelete(StoreObject { id: id.0.to_vec(), source: String::new() }));
                }
            });
        }
    }
}
