//! A head that survives a restart: its control service's tables are
//! journaled to disk ([`oxray_control::Journal`]) and read back when the
//! head starts again with the same file.
//!
//! The key-value table is written through at each change. Changes of
//! actors and placement groups are written by a writer task in batches
//! (within [`WRITE_BATCH`]), and before a client is told of them where it
//! matters: an actor's registration and state, a group's reservation.
//! Recovered actors that were alive are reattached: the head connects to
//! each one's worker again, and watches that connection as it did before
//! (if the worker is gone, the actor restarts as after any crash).

use std::collections::HashMap;
use std::sync::Arc;

use oxray_common::ActorId;
use oxray_control::{ActorRecord, ControlService, Journal, JournaledStore, Recovered};
use oxray_proto::{ActorJournalEntry, ActorState, PlacementGroupJournalEntry};
use parking_lot::Mutex;

use crate::daemon::Node;
use crate::NodeError;

/// The head's control service over its journal at `path`, the journal,
/// and what it held besides the key-value table (restored once the node
/// runs).
pub(crate) fn open(
    path: &std::path::Path,
) -> Result<(ControlService, Arc<Journal>, Recovered), NodeError> {
    let journal = Arc::new(Journal::open(path)?);
    let mut recovered = journal.load()?;
    let kv = std::mem::take(&mut recovered.kv);
    if !recovered.actors.is_empty() || !kv.is_empty() {
        tracing::info!(
            "head journal {}: recovered {} key(s), {} actor(s), {} placement group(s)",
            path.display(),
            kv.len(),
            recovered.actors.len(),
            recovered.placement_groups.len()
        );
    }
    let control = ControlService::new(Box::new(JournaledStore::new(journal.clone(), kv)));
    Ok((control, journal, recovered))
}

/// How long the writer gathers changes before a commit.
const WRITE_BATCH: std::time::Duration = std::time::Duration::from_millis(20);

/// Changes waiting for the journal's writer.
#[derive(Default)]
pub(crate) struct PendingWrites {
    /// Wakes the writer.
    wake: tokio::sync::Notify,
    /// Placement groups as they last changed (`None`: removed).
    groups: Mutex<HashMap<Vec<u8>, Option<PlacementGroupJournalEntry>>>,
}

impl PendingWrites {
    /// Placement group `id` changed to `entry` (`None`: removed).
    pub(crate) fn group_changed(&self, id: &[u8], entry: Option<PlacementGroupJournalEntry>) {
        self.groups.lock().insert(id.to_vec(), entry);
        self.wake.notify_one();
    }

    fn take_groups(&self) -> Vec<(Vec<u8>, Option<PlacementGroupJournalEntry>)> {
        self.groups.lock().drain().collect()
    }
}

impl Node {
    /// Puts back what the journal held: actors, then placement groups
    /// (bundles on the previous head, gone with it, are reserved again);
    /// from now on the actor directory's changes are collected for the
    /// journal.
    pub(crate) fn restore(&self, recovered: Recovered) {
        {
            let me = Arc::downgrade(&self.me());
            self.state.lock().actors.on_change(Box::new(move || {
                if let Some(node) = me.upgrade() {
                    node.journal_queue.wake.notify_one();
                }
            }));
        }
        let previous_head = self.control.record_head(self.node_id);
        self.restore_actors(recovered.actors);
        self.restore_placement_groups(recovered.placement_groups, previous_head);
    }

    /// Puts the recovered actors back in the directory, reattaches those
    /// that were alive and starts again those that were being started.
    fn restore_actors(&self, actors: Vec<(ActorId, ActorJournalEntry)>) {
        let mut st = self.state.lock();
        let mut alive = Vec::new();
        for (id, entry) in actors {
            let record = ActorRecord::from_journal(entry);
            let state = record.state();
            let (address, incarnation, pid) = (
                record.info.address.clone(),
                record.info.incarnation,
                record.info.pid,
            );
            if st.actors.register(id, record).is_err() {
                continue;
            }
            match state {
                ActorState::Alive => alive.push((id, address, incarnation, pid)),
                // Its start was under way on the old head: start it again.
                _ => self.actor_worker_died(&mut st, id, pid),
            }
        }
        self.dispatch(&mut st);
        drop(st);
        for (id, address, incarnation, pid) in alive {
            self.reattach_actor(id, address, incarnation, pid);
        }
    }

    /// Watches a recovered actor's worker again, through a new connection.
    fn reattach_actor(&self, id: ActorId, address: String, incarnation: u32, pid: u32) {
        let Some(link) = &self.link else { return };
        let peers = link.peers.clone();
        let me = self.me();
        tokio::spawn(async move {
            if let Ok(peer) = peers.get(&address).await {
                peer.closed().await;
            }
            // Unreachable (it lived on the old head, or its node is gone),
            // or gone since: restart or bury it.
            me.remote_actor_lost(id, incarnation, pid);
        });
    }

    /// Writes the actor directory's pending changes now, before a client
    /// is told of them.
    pub(crate) fn journal_actors_now(&self, st: &mut crate::daemon::State) {
        let Some(journal) = &self.journal else { return };
        let changes = st.actors.take_changed();
        if !changes.is_empty() {
            if let Err(e) = journal.write(&changes, &[]) {
                tracing::error!("{e}");
            }
        }
    }

    /// Writes the placement groups' pending changes now, before a client
    /// is told of them.
    pub(crate) fn journal_groups_now(&self) {
        let Some(journal) = &self.journal else { return };
        let changes = self.journal_queue.take_groups();
        if !changes.is_empty() {
            if let Err(e) = journal.write(&[], &changes) {
                tracing::error!("{e}");
            }
        }
    }

    /// Writes the changes of actors and placement groups as they come.
    /// Runs after [`Node::restore`], which makes the directory collect
    /// its changes.
    pub(crate) async fn flush_journal(self: Arc<Self>, journal: Arc<Journal>) {
        loop {
            self.journal_queue.wake.notified().await;
            // Changes nobody was told of yet gather a moment: one commit
            // (about 0.1 ms) for all of them.
            tokio::time::sleep(WRITE_BATCH).await;
            let actors = self.state.lock().actors.take_changed();
            let groups = self.journal_queue.take_groups();
            if actors.is_empty() && groups.is_empty() {
                continue;
            }
            let journal = journal.clone();
            let written =
                tokio::task::spawn_blocking(move || journal.write(&actors, &groups)).await;
            match written {
                Ok(Err(e)) => tracing::error!("{e}"),
                Err(e) => tracing::error!("the journal writer failed: {e}"),
                Ok(Ok(())) => {}
            }
        }
    }
}
