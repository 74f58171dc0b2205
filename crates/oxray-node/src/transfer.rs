//! Objects across nodes: this node serves chunks of its objects to other
//! nodes, and pulls objects it lacks from the node that holds them,
//! straight into its own store. Concurrent pulls of one object are
//! merged; several chunks are in flight at once.
//!
//! The node holding the primary copy remembers which nodes copied an
//! object, and tells them when the owner deletes it.

use std::collections::{HashMap, HashSet};

use oxray_common::ObjectId;
use oxray_proto::frame::FrameWriter;
use oxray_proto::transport::{self, RawConnection};
use oxray_proto::*;
use oxray_store::{Region, Slot};
use parking_lot::Mutex;
use tokio::io::AsyncReadExt;

use crate::daemon::Node;

/// Bytes asked for in one chunk.
const CHUNK: u64 = 8 << 20;
/// Chunks requested at once per pull.
const IN_FLIGHT: usize = 4;
/// How long a pull waits for room in a store that readers keep full.
const ADMIT_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);
/// How long copies whose primary died wait for their owner to adopt one.
const ADOPT_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);
/// The store client a pull writes as (not a connection id).
const PULL_CLIENT: u64 = u64::MAX - 1;

/// What the answer to a first chunk says.
enum First {
    /// The object's size; its first chunk follows.
    Size(u64),
    /// Read it from this node, which holds a whole copy.
    Redirect(String),
}

/// Asks for the first chunk and reads its header.
async fn first_chunk(
    conn: &mut Box<dyn RawConnection>,
    request: Envelope,
) -> Result<First, String> {
    transport::write_frame(conn, request)
        .await
        .map_err(|e| e.to_string())?;
    let header = read_chunk_header(conn).await?;
    Ok(if header.redirect.is_empty() {
        First::Size(header.total)
    } else {
        First::Redirect(header.redirect)
    })
}

/// Reads a chunk's header frame; returns the object's size.
async fn read_header(conn: &mut Box<dyn RawConnection>) -> Result<u64, String> {
    read_chunk_header(conn).await.map(|c| c.total)
}

async fn read_chunk_header(conn: &mut Box<dyn RawConnection>) -> Result<Chunk, String> {
    match transport::read_frame(conn)
        .await
        .map_err(|e| e.to_string())?
    {
        Envelope {
            body: Some(Body::Chunk(c)),
            ..
        } if c.error.is_empty() => Ok(c),
        Envelope {
            body: Some(Body::Chunk(c)),
            ..
        } => Err(c.error),
        other => Err(format!("unexpected reply to a chunk read: {other:?}")),
    }
}

/// Pulls in progress and copies handed out.
#[derive(Default)]
pub(crate) struct Transfers {
    /// Bulk connections to other nodes, idle between pulls.
    idle: Mutex<HashMap<String, Vec<Box<dyn RawConnection>>>>,
    /// Who waits for each object being pulled here.
    pulls: Mutex<HashMap<ObjectId, Vec<PullWaiter>>>,
    /// The nodes (daemon addresses) that copied each object of this store.
    copies: Mutex<HashMap<ObjectId, HashSet<String>>>,
    /// Of those, the ones that read it whole, in the order new readers are
    /// sent to them.
    whole_copies: Mutex<HashMap<ObjectId, std::collections::VecDeque<String>>>,
    /// Bytes sent to other nodes' pulls.
    served: std::sync::atomic::AtomicU64,
    /// The node each copy held here came from.
    pulled_from: Mutex<HashMap<ObjectId, String>>,
    /// Nodes declared dead: nothing more is pulled from them.
    dead: Mutex<HashSet<String>>,
    /// Woken when a node is declared dead.
    died: tokio::sync::Notify,
}

impl Transfers {
    /// A node other than `reader` holding a whole copy of `id`, taken in
    /// turn; dead ones are skipped.
    fn copy_for(&self, id: &ObjectId, reader: &str) -> Option<String> {
        let dead = self.dead.lock();
        let mut whole = self.whole_copies.lock();
        let copies = whole.get_mut(id)?;
        copies.retain(|c| !dead.contains(c));
        let at = copies.iter().position(|c| c != reader)?;
        let copy = copies.remove(at)?;
        copies.push_back(copy.clone());
        Some(copy)
    }

    /// Keeps a bulk connection to `source` for the next pull from there.
    fn keep_idle(&self, source: &str, conn: Box<dyn RawConnection>) {
        self.idle
            .lock()
            .entry(source.to_string())
            .or_default()
            .push(conn);
    }

    /// Bytes sent to other nodes' pulls so far.
    pub(crate) fn bytes_served(&self) -> u64 {
        self.served.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Resolves once the node at `source` is declared dead.
    async fn source_dies(&self, source: &str) {
        loop {
            let died = self.died.notified();
            tokio::pin!(died);
            died.as_mut().enable();
            if self.dead.lock().contains(source) {
                return;
            }
            died.await;
        }
    }
}

/// A `StoreGet` answered once the pull ends.
struct PullWaiter {
    client: u64,
    request: u64,
    writer: FrameWriter,
}

/// The mapping holding a slot's bytes, and where they start in it: the
/// store's shared region, or the object's own file (mapped now).
fn map_slot(
    store: &oxray_store::ObjectTable,
    slot: Slot,
) -> Result<(std::sync::Arc<Region>, u64), String> {
    match slot {
        Slot::Region(offset) => Ok((store.region().clone(), offset)),
        Slot::File(path) => Region::open(&path)
            .map(|r| (std::sync::Arc::new(r), 0))
            .map_err(|e| format!("cannot map {}: {e}", path.display())),
    }
}

fn store_failure(message: String) -> Body {
    Body::StoreReply(StoreReply {
        failure: StoreFailure::NotFound as i32,
        error: message,
        ..Default::default()
    })
}

impl Node {
    /// Serves a chunk as a bulk stream: a `Chunk` frame saying how much
    /// follows, then the bytes themselves, written straight from the store.
    /// False when the connection broke.
    pub(crate) async fn serve_raw_chunk(
        &self,
        client: u64,
        req: u64,
        r: ReadChunk,
        writer: &FrameWriter,
    ) -> bool {
        let Some(id) = ObjectId::from_bytes(&r.id) else {
            writer.reply(
                req,
                Body::Chunk(Chunk {
                    error: "bad object id".into(),
                    ..Default::default()
                }),
            );
            return true;
        };
        let located = {
            let mut store = self.store.lock();
            match store.get(&id, client) {
                Ok((slot, size)) => match map_slot(&store, slot) {
                    Ok((region, offset)) => Ok((region, offset, size)),
                    Err(e) => {
                        store.release(&id, client);
                        Err(e)
                    }
                },
                Err(e) => Err(e.to_string()),
            }
            .map_err(|e| format!("{e} (on node {})", self.address))
        };
        let (region, offset, size) = match located {
            Ok(found) => found,
            Err(error) => {
                writer.reply(
                    req,
                    Body::Chunk(Chunk {
                        error,
                        ..Default::default()
                    }),
                );
                return true;
            }
        };
        if r.offset == 0 && !r.reader.is_empty() {
            // A node holding a whole copy serves this reader instead, so a
            // broadcast spreads over the nodes that have it.
            if let Some(copy) = (!r.direct)
                .then(|| self.transfers.copy_for(&id, &r.reader))
                .flatten()
            {
                self.store.lock().release(&id, client);
                writer.reply(
                    req,
                    Body::Chunk(Chunk {
                        total: size,
                        redirect: copy,
                        ..Default::default()
                    }),
                );
                return true;
            }
            self.transfers
                .copies
                .lock()
                .entry(id)
                .or_default()
                .insert(r.reader.clone());
        }
        let start = r.offset.min(size);
        let len = r.len.min(size - start);
        if start + len == size && !r.reader.is_empty() {
            self.transfers
                .whole_copies
                .lock()
                .entry(id)
                .or_default()
                .push_back(r.reader.clone());
        }
        self.transfers
            .served
            .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
        writer.reply(
            req,
            Body::Chunk(Chunk {
                total: size,
                ..Default::default()
            }),
        );
        // SAFETY: sealed objects are immutable, and this one stays pinned
        // (for this connection) until the bytes are written.
        let data = unsafe { region.slice(offset + start, len) };
        let written = writer.write_raw(data).await.is_ok();
        self.store.lock().release(&id, client);
        written
    }

    /// A `StoreGet` for an object this node lacks, held by the node at
    /// `source`: pull it, then answer.
    pub(crate) fn pull_then_reply(
        &self,
        client: u64,
        request: u64,
        id: ObjectId,
        source: String,
        writer: &FrameWriter,
    ) {
        let first = {
            let mut pulls = self.transfers.pulls.lock();
            let waiters = pulls.entry(id).or_default();
            waiters.push(PullWaiter {
                client,
                request,
                writer: writer.clone(),
            });
            waiters.len() == 1
        };
        if !first {
            return;
        }
        let me = self.me();
        tokio::spawn(async move {
            // A frozen or cut-off node keeps its connections open: its
            // declared death ends the pull rather than a timeout.
            let result = tokio::select! {
                r = me.pull(id, &source) => r,
                () = me.transfers.source_dies(&source) => {
                    me.store.lock().abort(&id);
                    Err(format!(
                        "cannot fetch object {} from node {source}: the node died",
                        id.hex()
                    ))
                }
            };
            let waiters = me.transfers.pulls.lock().remove(&id).unwrap_or_default();
            for w in waiters {
                let reply = match &result {
                    Ok(()) => match me.store.lock().get(&id, w.client) {
                        Ok((slot, size)) => crate::store_service::slot_reply(slot, size),
                        Err(e) => store_failure(e.to_string()),
                    },
                    Err(e) => store_failure(e.clone()),
                };
                w.writer.reply(w.request, reply);
            }
        });
    }

    /// Copies object `id` from the node at `source` into this node's store,
    /// over a bulk stream: chunk requests go ahead ([`IN_FLIGHT`] at once),
    /// and each chunk's bytes are read straight into the store.
    async fn pull(&self, id: ObjectId, source: &str) -> Result<(), String> {
        match self.pull_from(id, source, false).await? {
            None => {}
            Some(copy) => {
                // The source sent us to a node with a copy; if that one
                // fails, the source serves the pull itself.
                let from_copy = self.pull_from(id, &copy, true).await;
                if !matches!(from_copy, Ok(None)) {
                    self.pull_from(id, source, true).await?;
                }
            }
        }
        // Copies go when their primary does: remember where that is.
        if self.store.lock().contains(&id) {
            self.transfers
                .pulled_from
                .lock()
                .insert(id, source.to_string());
        }
        Ok(())
    }

    /// One pull from the node at `source`; `Some(node)` when `source`
    /// sends it to a node holding a whole copy instead (never when
    /// `direct`).
    async fn pull_from(
        &self,
        id: ObjectId,
        source: &str,
        direct: bool,
    ) -> Result<Option<String>, String> {
        let Some(link) = &self.link else {
            return Err("this node is not part of a multi-node cluster".into());
        };
        let fail = |e: &dyn std::fmt::Display| {
            format!("cannot fetch object {} from node {source}: {e}", id.hex())
        };
        let request = |offset: u64| Envelope {
            id: 1,
            body: Some(Body::ReadChunk(ReadChunk {
                id: id.0.to_vec(),
                offset,
                len: CHUNK,
                reader: self.address.clone(),
                raw: true,
                direct,
            })),
        };
        let connect = || async {
            link.peers
                .dialer()
                .connect_raw(source)
                .await
                .map_err(|e| fail(&e))
        };
        // A bulk connection kept from an earlier pull may have broken
        // meanwhile: on failure, ask again over a fresh one.
        let idle = self
            .transfers
            .idle
            .lock()
            .get_mut(source)
            .and_then(Vec::pop);
        let (mut conn, first) = match idle {
            Some(mut c) => match first_chunk(&mut c, request(0)).await {
                Ok(total) => (c, Ok(total)),
                Err(_) => {
                    let mut c = connect().await?;
                    let first = first_chunk(&mut c, request(0)).await;
                    (c, first)
                }
            },
            None => {
                let mut c = connect().await?;
                let first = first_chunk(&mut c, request(0)).await;
                (c, first)
            }
        };
        let total = match first.map_err(|e| fail(&e))? {
            First::Size(total) => total,
            First::Redirect(copy) => {
                self.transfers.keep_idle(source, conn);
                return Ok(Some(copy));
            }
        };
        let mut made = false;
        let result = async {
            let slot = self.admit(id, total).await?;
            made = slot.is_some();
            let (region, base) = match slot {
                Some(slot) => {
                    let (region, base) = map_slot(&self.store.lock(), slot)?;
                    region.populate(base, total);
                    (region, Some(base))
                }
                None => (self.store.lock().region().clone(), None),
            };
            let chunks = total.div_ceil(CHUNK).max(1);
            let mut requested = 1;
            let mut scratch = Vec::new();
            for i in 0..chunks {
                while requested < chunks && requested < i + 1 + IN_FLIGHT as u64 {
                    transport::write_frame(&mut conn, request(requested * CHUNK))
                        .await
                        .map_err(|e| fail(&e))?;
                    requested += 1;
                }
                if i > 0 {
                    read_header(&mut conn).await.map_err(|e| fail(&e))?;
                }
                let at = i * CHUNK;
                let len = CHUNK.min(total - at);
                let out: &mut [u8] = match base {
                    // SAFETY: the range belongs to this unsealed object,
                    // written only here.
                    Some(base) => unsafe { region.slice_mut(base + at, len) },
                    None => {
                        scratch.resize(len as usize, 0);
                        &mut scratch
                    }
                };
                conn.read_exact(out).await.map_err(|e| fail(&e))?;
            }
            Ok::<_, String>(())
        }
        .await;
        match result {
            Ok(()) => {
                if made {
                    self.store.lock().seal(&id);
                }
                self.transfers.keep_idle(source, conn);
                Ok(None)
            }
            Err(e) => {
                if made {
                    self.store.lock().abort(&id);
                }
                Err(e)
            }
        }
    }

    /// Room for a pulled object of `size` bytes in this node's store:
    /// unpinned objects are spilled to make it, or it goes to disk (see
    /// `ObjectTable::create`); should even that fail, the pull waits for
    /// room (up to [`ADMIT_WITHIN`]) rather than fail. `None` when a copy
    /// exists already.
    async fn admit(&self, id: ObjectId, size: u64) -> Result<Option<Slot>, String> {
        let deadline = std::time::Instant::now() + ADMIT_WITHIN;
        let mut pause = std::time::Duration::from_millis(5);
        loop {
            // A copy: it goes when its primary does, whoever owns it. Made
            // on a blocking thread when it needs the disk.
            let fast = self
                .store
                .lock()
                .create_in_memory(id, size, PULL_CLIENT, "");
            let created = match fast {
                Some(created) => created,
                None => {
                    let me = self.me();
                    tokio::task::spawn_blocking(move || {
                        me.store.lock().create(id, size, PULL_CLIENT, "")
                    })
                    .await
                    .map_err(|e| format!("making room for object {}: {e}", id.hex()))?
                }
            };
            match created {
                Ok(base) => return Ok(base),
                Err(
                    oxray_store::StoreError::Full { .. } | oxray_store::StoreError::NoSpace { .. },
                ) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(200));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// The owner deleted object `id`. With a `source`, the primary copy
    /// is on that node: pass the delete on. Nodes that copied a primary
    /// held here are told too.
    pub(crate) fn delete_object(&self, id: ObjectId, source: String) {
        self.store.lock().delete(&id);
        self.transfers.pulled_from.lock().remove(&id);
        self.transfers.whole_copies.lock().remove(&id);
        let mut targets: Vec<String> = self
            .transfers
            .copies
            .lock()
            .remove(&id)
            .into_iter()
            .flatten()
            .collect();
        if !source.is_empty() {
            targets.push(source);
        }
        let Some(link) = &self.link else { return };
        targets.retain(|t| *t != self.address);
        for target in targets {
            let peers = link.peers.clone();
            tokio::spawn(async move {
                if let Ok(peer) = peers.get(&target).await {
                    peer.send(Body::StoreDelete(StoreObject {
                        id: id.0.to_vec(),
                        source: String::new(),
                    }));
                }
            });
        }
    }

    /// Nodes were declared dead: pulls from them fail now. The copies
    /// taken from them lost their primaries: each owner adopts one copy
    /// as the new primary ([`Node::adopt_copy`]) or rebuilds the object;
    /// the copies not adopted within [`ADOPT_WITHIN`] go.
    pub(crate) fn sources_died(&self, addresses: &[String]) {
        self.transfers.dead.lock().extend(addresses.iter().cloned());
        self.transfers.died.notify_waiters();
        self.transfers
            .idle
            .lock()
            .retain(|source, _| !addresses.contains(source));
        let orphans: Vec<ObjectId> = self
            .transfers
            .pulled_from
            .lock()
            .iter()
            .filter(|(_, from)| addresses.contains(from))
            .map(|(id, _)| *id)
            .collect();
        if orphans.is_empty() {
            return;
        }
        let me = self.me();
        let addresses = addresses.to_vec();
        tokio::spawn(async move {
            tokio::time::sleep(ADOPT_WITHIN).await;
            for id in orphans {
                let still_orphan = {
                    let mut pulled = me.transfers.pulled_from.lock();
                    let orphan = pulled.get(&id).is_some_and(|from| addresses.contains(from));
                    if orphan {
                        pulled.remove(&id);
                    }
                    orphan
                };
                if still_orphan {
                    // Copies served from this one go too.
                    me.delete_object(id, String::new());
                }
            }
        });
    }

    /// The owner of `id` makes this node's copy the primary (the old one
    /// died): it stays. Whether this node holds it.
    pub(crate) fn adopt_copy(&self, id: ObjectId) -> bool {
        self.transfers.pulled_from.lock().remove(&id);
        self.store.lock().contains(&id)
    }
}
