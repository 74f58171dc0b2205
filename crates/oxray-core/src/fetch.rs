//! Getting values: from this process's store, or from the owner's when the
//! ref was borrowed; blocking (`get`, `wait`) or async (argument resolution).

use std::sync::Arc;
use std::time::Duration;

use oxray_common::{Error, ObjectId, Result};
use oxray_proto::*;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::core::{Inner, Mode};
use crate::objects::{error_object, ObjectKind};
use crate::store::{Lookup, ReadyCallback};

/// How often a blocked `get` or `wait` asks whether to give up (for
/// Ctrl-C: Python handles signals only between calls).
const INTERRUPT_CHECK: Duration = Duration::from_millis(100);

/// How long a `get` or `wait` may block.
#[derive(Clone, Copy)]
pub struct WaitLimit<'a> {
    /// Give up after this long; `None` waits as long as it takes.
    pub timeout: Option<Duration>,
    /// Asked every [`INTERRUPT_CHECK`] while blocked; `true` stops the wait
    /// with [`Error::Interrupted`].
    pub interrupted: &'a dyn Fn() -> bool,
}

impl WaitLimit<'_> {
    /// Only a timeout.
    pub fn timeout(timeout: Option<Duration>) -> WaitLimit<'static> {
        WaitLimit {
            timeout,
            interrupted: &|| false,
        }
    }
}

/// Counts ready objects for a blocked caller.
struct Waiter {
    state: Mutex<WaitState>,
    more: Notify,
}

struct WaitState {
    ready: Vec<Option<Arc<Object>>>,
    count: usize,
}

impl Inner {
    /// Calls `cb` once `id` is available here, starting a fetch from its
    /// owner if this process does not own it.
    pub(crate) fn when_ready(self: &Arc<Self>, id: ObjectId, cb: ReadyCallback) {
        if let Lookup::Absent = self.store.lookup(&id) {
            match self.refs.owner_of(&id) {
                Some(owner) if !self.is_me(&owner) => {
                    self.store.expect(id);
                    self.fetch_from_owner(id, owner.to_string());
                }
                _ => {
                    let message = format!(
                        "Object {} is lost: this process owns it but no longer holds its value \
                         (all references to it were dropped).",
                        id.hex()
                    );
                    self.store
                        .put(id, Arc::new(error_object(ObjectKind::Lost, message)));
                }
            }
        }
        self.store.on_ready(id, cb);
    }

    fn fetch_from_owner(self: &Arc<Self>, id: ObjectId, owner: String) {
        let me = self.clone();
        self.handle.spawn(async move {
            let object = me.ask_owner(id, &owner, "").await;
            me.fulfil_holding(id, object, false);
        });
    }

    /// The value of `id` from its `owner` (or the error to store instead).
    /// With `lost`, the copy on that node could not be read: the owner
    /// rebuilds it first.
    pub(crate) async fn ask_owner(
        self: &Arc<Self>,
        id: ObjectId,
        owner: &str,
        lost: &str,
    ) -> Object {
        let result = async {
            let peer = self.peers.get(owner).await?;
            peer.call(Body::GetObject(GetObject {
                id: id.0.to_vec(),
                lost_location: lost.to_string(),
                reader: self.address.to_string(),
            }))
            .await
        }
        .await;
        match result {
            Ok(Body::ObjectReply(ObjectReply { object: Some(o), .. })) => o,
            Ok(Body::ObjectReply(r)) => error_object(ObjectKind::Lost, r.error),
            Ok(other) => error_object(ObjectKind::SystemError, format!("unexpected reply {other:?}")),
            Err(e) => error_object(
                ObjectKind::OwnerDied,
                format!(
                    "Object {} is lost because its owner at {owner} has died or is unreachable ({e}); \
                     an object lives only as long as the process that created it.",
                    id.hex()
                ),
            ),
        }
    }

    /// The value of `id`, waiting as long as it takes.
    pub(crate) async fn resolve(self: &Arc<Self>, id: ObjectId) -> Arc<Object> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.when_ready(
            id,
            Box::new(move |o| {
                let _ = tx.send(o.clone());
            }),
        );
        rx.await.unwrap_or_else(|_| {
            Arc::new(error_object(
                ObjectKind::SystemError,
                "the runtime shut down",
            ))
        })
    }

    /// Blocks until all of `ids` are ready, or fails after `timeout`.
    pub(crate) fn get(
        self: &Arc<Self>,
        ids: &[ObjectId],
        limit: WaitLimit<'_>,
    ) -> Result<Vec<Arc<Object>>> {
        let waiter = self.register_waiter(ids);
        let need = ids.len();
        let timeout = limit.timeout;
        if !self.block_until(&waiter, need, limit)? {
            return Err(Error::Timeout(timeout.unwrap_or_default().as_secs_f64()));
        }
        let st = waiter.state.lock();
        Ok(st
            .ready
            .iter()
            .map(|o| o.clone().expect("counted ready"))
            .collect())
    }

    /// Blocks until `num_returns` of `ids` are ready or `timeout` passes.
    pub(crate) fn wait(
        self: &Arc<Self>,
        ids: &[ObjectId],
        num_returns: usize,
        limit: WaitLimit<'_>,
    ) -> Result<Vec<bool>> {
        self.check_alive()?;
        // Fast path: enough are ready already (the common case when a
        // caller drains a list with repeated waits).
        let ready = self.store.ready_flags(ids);
        if ready.iter().filter(|r| **r).count() >= num_returns.min(ids.len()) {
            return Ok(ready);
        }
        let waiter = self.register_waiter(ids);
        self.block_until(&waiter, num_returns.min(ids.len()), limit)?;
        let st = waiter.state.lock();
        Ok(st.ready.iter().map(Option::is_some).collect())
    }

    fn register_waiter(self: &Arc<Self>, ids: &[ObjectId]) -> Arc<Waiter> {
        let waiter = Arc::new(Waiter {
            state: Mutex::new(WaitState {
                ready: vec![None; ids.len()],
                count: 0,
            }),
            more: Notify::new(),
        });
        for (i, id) in ids.iter().enumerate() {
            if let Lookup::Ready(o) = self.store.lookup(id) {
                let mut st = waiter.state.lock();
                st.ready[i] = Some(o);
                st.count += 1;
                continue;
            }
            // A weak handle: a waiter that gave up costs nothing when the
            // value arrives later.
            let w = Arc::downgrade(&waiter);
            self.when_ready(
                *id,
                Box::new(move |o| {
                    if let Some(w) = w.upgrade() {
                        let mut st = w.state.lock();
                        if st.ready[i].is_none() {
                            st.ready[i] = Some(o.clone());
                            st.count += 1;
                            w.more.notify_one();
                        }
                    }
                }),
            );
        }
        waiter
    }

    /// Waits until `need` objects of `waiter` are ready; false on timeout,
    /// [`Error::Interrupted`] when the caller's check says to stop.
    /// The waiting thread drives the event loop meanwhile, so the reply
    /// that completes the wait wakes this thread directly. A worker blocked
    /// inside a task lends its CPU to the node meanwhile.
    fn block_until(&self, waiter: &Waiter, need: usize, limit: WaitLimit<'_>) -> Result<bool> {
        if waiter.state.lock().count >= need {
            return Ok(true);
        }
        self.lending_cpu(|| self.wait_for(waiter, need, limit))
    }

    /// Runs `f`, which blocks; a worker inside a task lends its CPU to the
    /// node meanwhile, so that the tasks it waits for can run.
    pub(crate) fn lending_cpu<T>(&self, f: impl FnOnce() -> T) -> T {
        let lend = self.mode == Mode::Worker && self.exec.current_task().is_some();
        if lend {
            self.set_blocked(true);
            self.daemon.send(Body::WorkerBlocked(WorkerBlocked {}));
        }
        let out = f();
        if lend {
            self.set_blocked(false);
            self.daemon.send(Body::WorkerUnblocked(WorkerUnblocked {}));
        }
        out
    }

    fn wait_for(&self, waiter: &Waiter, need: usize, limit: WaitLimit<'_>) -> Result<bool> {
        self.block_until_notified(&waiter.more, limit, || waiter.state.lock().count >= need)
    }

    /// Resolves once the caller's check says to stop, or the task this
    /// process runs now was cancelled: a task blocked waiting stops then, as
    /// it does for Ctrl-C.
    pub(crate) async fn interrupted(&self, check: &dyn Fn() -> bool) {
        let in_task = self.mode == Mode::Worker && self.exec.current_task().is_some();
        let mut tick = tokio::time::interval(INTERRUPT_CHECK);
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            if (in_task && self.exec.current_cancelled()) || check() {
                return;
            }
        }
    }

    /// Blocks until `ready()` holds, asking again each time `more` is
    /// notified; false on timeout, [`Error::Interrupted`] when the caller's
    /// check says to stop or the task blocked here is cancelled. The waiting
    /// thread drives the event loop meanwhile.
    pub(crate) fn block_until_notified(
        &self,
        more: &Notify,
        limit: WaitLimit<'_>,
        mut ready: impl FnMut() -> bool,
    ) -> Result<bool> {
        let enough = async {
            loop {
                let notified = more.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if ready() {
                    return;
                }
                notified.await;
            }
        };
        let interrupted = self.interrupted(limit.interrupted);
        let ok = self.driver.block_on(async {
            tokio::select! {
                biased;
                done = async {
                    match limit.timeout {
                        Some(t) => tokio::time::timeout(t, enough).await.is_ok(),
                        None => {
                            enough.await;
                            true
                        }
                    }
                } => Ok(done),
                () = interrupted => Err(Error::Interrupted),
            }
        });
        ok?
    }
}
