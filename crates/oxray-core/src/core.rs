//! The core worker's handle, its shared state, and start-up and shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use oxray_common::{ActorId, Error, NodeId, ObjectId, ResourceSet, Result, TaskId, WorkerId};
use oxray_proto::rpc::RpcPeer;
use oxray_proto::*;
use parking_lot::Mutex;
use tokio::net::UnixListener;
use tokio::sync::mpsc;

use crate::actor_submit::{ActorCallRequest, ActorCreateRequest, ActorSubmitState};
use crate::driver::Driver;
use crate::execute::{ExecState, IncomingTask};
use crate::fetch::WaitLimit;
use crate::objects::{error_object, ObjectKind};
use crate::refs::{RefTable, Released};
use crate::shared::{Mapped, MappedObjects};
use crate::store::MemoryStore;
use crate::submit::SubmitState;
use oxray_proto::peers::PeerPool;

/// The key `key` of the key-value table's `namespace`, as requests name it.
fn kv_key(namespace: &str, key: &[u8]) -> KvGet {
    KvGet {
        namespace: namespace.into(),
        key: key.to_vec(),
    }
}

/// How long an administrative call to a node daemon (its store's
/// listing, its log files) may take before it fails.
const NODE_ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Whether this process is a driver (a user program) or a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A user's program, connected with `init()`.
    Driver,
    /// A process the node daemon started to run tasks and actors.
    Worker,
}

/// How to connect a core worker.
#[derive(Clone, Debug)]
pub struct Options {
    /// Path of the node daemon's Unix socket.
    pub daemon_socket: String,
    /// A driver or a worker.
    pub mode: Mode,
    /// This process's id (a worker's is chosen by its daemon).
    pub worker_id: WorkerId,
    /// Stop the cluster when this driver disconnects.
    pub owns_cluster: bool,
    /// Where this process listens for pushed tasks and object requests.
    pub listen_path: String,
    /// The node's IP in a multi-node cluster: this process also listens
    /// for other hosts on a TCP port there. `None` on a single node.
    pub node_ip: Option<String>,
    /// Print the output workers relay to this driver (Ray's
    /// `log_to_driver`).
    pub log_to_driver: bool,
}

/// Listens on an ephemeral TCP port of `ip`; returns it with `IP:PORT`.
async fn bind_tcp(ip: &str) -> Result<(tokio::net::TcpListener, String)> {
    let listener = tokio::net::TcpListener::bind((ip, 0))
        .await
        .map_err(|source| Error::Connection {
            peer: format!("{ip}:0 (listening)"),
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| Error::Connection {
            peer: ip.to_string(),
            source,
        })?
        .port();
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    Ok((listener, format!("{host}:{port}")))
}

/// A task to submit, as the binding hands it over.
#[derive(Clone, Debug)]
pub struct TaskRequest {
    /// Content hash of the pickled function (a key of the function table).
    pub function_id: Vec<u8>,
    /// Its name, for logs, errors and listings.
    pub function_name: String,
    /// Pickled `(args, kwargs)` with top-level refs replaced by slots.
    pub args: Bytes,
    /// The top-level ref arguments, in slot order.
    pub ref_args: Vec<ObjectId>,
    /// How many objects the task returns.
    pub num_returns: u32,
    /// What its worker holds while it runs.
    pub resources: ResourceSet,
    /// Retries after a worker crash; -1 retries forever.
    pub max_retries: i32,
    /// Pickled `retry_exceptions` (empty: exceptions are not retried).
    pub retry_exceptions: Bytes,
    /// The submitting job's namespace (named actors are looked up there).
    pub namespace: String,
    /// Refs nested inside `args`.
    pub args_nested: Vec<ObjectRefMsg>,
    /// How the task picks its node.
    pub placement: crate::submit::Placement,
    /// The placement group it runs in, and whether the tasks it submits
    /// do too (empty id: none).
    pub placement_group: (Vec<u8>, bool),
    /// Environment variables it runs with (its `runtime_env`'s).
    pub env_vars: std::collections::BTreeMap<String, String>,
    /// Calls a worker runs before it is replaced (`max_calls`; 0: no
    /// limit).
    pub max_calls: u32,
    /// What the values a generator function yields become.
    pub yields: crate::streams::Yields,
    /// Its code environment (a hash of its runtime_env's packages; 0:
    /// none): it runs only on workers of that environment.
    pub env_key: u64,
}

/// Who and where this process is, for `get_runtime_context()`.
#[derive(Clone, Debug)]
pub struct ContextInfo {
    /// This process's id.
    pub worker_id: WorkerId,
    /// The node it runs on.
    pub node_id: NodeId,
    /// Its job (one per driver).
    pub job_id: u32,
    /// Where other processes reach it.
    pub address: String,
    /// Its node's session directory.
    pub session_dir: String,
    /// The task it runs now, if any.
    pub current_task: Option<TaskId>,
}

/// The error for a reply of the node daemon that does not answer the
/// request (a version mismatch or a bug).
pub(crate) fn unexpected(other: Body) -> Error {
    Error::Protocol {
        peer: "daemon".into(),
        reason: format!("unexpected {other:?}"),
    }
}

/// State shared by the core worker's tasks and its callers.
pub(crate) struct Inner {
    pub mode: Mode,
    pub worker_id: WorkerId,
    pub node_id: NodeId,
    pub job_id: u32,
    pub session_dir: String,
    pub address: Arc<str>,
    pub listen_path: String,
    pub daemon: Arc<RpcPeer>,
    pub store: MemoryStore,
    pub refs: RefTable,
    pub peers: Arc<PeerPool>,
    /// This node's daemon address for other nodes (empty on a single-node
    /// cluster); shared-memory markers carry it.
    pub node_address: String,
    pub submit: Mutex<SubmitState>,
    pub actor_submit: Mutex<ActorSubmitState>,
    pub exec: ExecState,
    /// Tasks this process owned that have finished, for `list_tasks`.
    pub finished: crate::task_log::FinishedTasks,
    pub dead: Mutex<Option<String>>,
    pub handle: tokio::runtime::Handle,
    /// The event loop, driven by whichever thread waits.
    pub driver: Driver,
    /// This process's mapping of the node's shared-memory store.
    pub region: Option<Arc<oxray_store::Region>>,
    pub mapped: MappedObjects,
    /// Ref arguments of unfinished tasks, released when each finishes.
    pub held_args: Mutex<HashMap<oxray_common::TaskId, Vec<ObjectId>>>,
    /// How to rebuild the objects this process owns (multi-node only).
    pub lineage: crate::lineage::LineageTable,
    /// Whole copies of the shared objects this process owns.
    pub copies: crate::recovery::CopyLocations,
    /// Values of the streaming generator tasks this process submitted.
    pub streams: crate::streams::Streams,
    /// Error values this process owns that nobody read yet.
    pub unread: crate::unhandled::UnreadErrors,
    /// Where worker output relayed to this driver goes instead of this
    /// process's stdout/stderr (progress bars draw it themselves).
    pub log_sink: Mutex<Option<LogSink>>,
    /// This state, for tasks spawned from `&self` methods.
    pub me: std::sync::Weak<Inner>,
    counter: AtomicU64,
}

impl Inner {
    /// A task id never used before by this process.
    pub(crate) fn next_task_id(&self) -> TaskId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        TaskId::nth(self.worker_id.0[..8].try_into().expect("8 bytes"), n)
    }

    /// Whether `owner` is this process.
    pub(crate) fn is_me(&self, owner: &str) -> bool {
        *self.address == *owner
    }

    /// Drops one reference; see [`Inner::release_ref_n`].
    pub(crate) fn release_ref(&self, id: &ObjectId) {
        self.release_ref_n(id, 1);
    }

    /// Drops `n` references. With the last one the value goes (and, for an
    /// owned value in the shared store, its copy there too), so do the
    /// references it held to refs nested in it, and the holds other
    /// processes lent us are given back.
    pub(crate) fn release_ref_n(&self, id: &ObjectId, n: u32) {
        let Released::Free { owned, lenders } = self.refs.release_n(id, n) else {
            return;
        };
        if let (Some(actor), true) = (id.actor_of_handles(), owned) {
            // The last handle of an actor this process created is gone: end
            // it once the calls already sent are done.
            if let Some(me) = self.me.upgrade() {
                // Has no pending-calls limit, so it cannot be refused.
                let _ = me.submit_actor_task(crate::actor_submit::terminate_call(actor));
            }
        }
        // Lineage is kept on multi-node clusters only.
        if owned && !self.node_address.is_empty() && !self.lineage.is_empty() {
            for held in self.lineage.return_freed(id).into_iter().flatten() {
                self.release_ref(&held);
            }
        }
        if let Some(value) = self.store.remove(id) {
            if owned {
                self.delete_shared_copy(&value);
                self.freed_value(id, &value);
                if !self.node_address.is_empty() {
                    self.copies.forget(id);
                }
            }
            for nested in value
                .nested
                .iter()
                .filter_map(|r| ObjectId::from_bytes(&r.id))
            {
                self.release_ref(&nested);
            }
        }
        for (lender, count) in lenders {
            self.give_back(lender, *id, count);
        }
    }

    fn give_back(&self, lender: Arc<str>, id: ObjectId, count: u32) {
        if self.is_me(&lender) {
            self.refs.loan_returned(&lender, &id, count);
            self.release_ref_n(&id, count);
            return;
        }
        let Some(me) = self.me.upgrade() else { return };
        self.handle.spawn(async move {
            // A lender that is gone has nothing left to free.
            if let Ok(peer) = me.peers.get(&lender).await {
                peer.send(Body::ReleaseLent(ReleaseLent {
                    id: id.0.to_vec(),
                    count,
                    borrower: me.address.to_string(),
                }));
            }
        });
    }

    /// Counts one reference per ref in `refs`, noting who lent it.
    pub(crate) fn hold_refs(&self, refs: &[ObjectRefMsg]) -> Vec<ObjectId> {
        let mut held = Vec::with_capacity(refs.len());
        for r in refs {
            let Some(id) = ObjectId::from_bytes(&r.id) else {
                continue;
            };
            let owned = self.is_me(&r.owner);
            let owner: Arc<str> = if owned {
                self.address.clone()
            } else {
                Arc::from(r.owner.as_str())
            };
            if r.lender.is_empty() {
                self.refs.add(id, &owner, owned);
            } else {
                self.refs
                    .add_lent(id, &owner, owned, &Arc::from(r.lender.as_str()));
            }
            held.push(id);
        }
        held
    }

    /// Stores an expected value, holding the refs nested in it. When nobody
    /// expects it any more (its refs went meanwhile), it is dropped at once:
    /// its holds go, and for an `owned` value its shared-memory copy too.
    /// Returns whether it was stored.
    pub(crate) fn fulfil_holding(&self, id: ObjectId, object: Object, owned: bool) -> bool {
        let held = self.hold_refs(&object.nested);
        let marker = if owned {
            crate::objects::marker_parts(&object).map(|(i, l)| (i, l.to_string()))
        } else {
            None
        };
        if self.store.fulfil(id, Arc::new(object)) {
            return true;
        }
        if let Some((id, location)) = marker {
            // A copy made again where the kept one lives is that one.
            let kept_there = matches!(
                self.store.lookup(&id),
                crate::store::Lookup::Ready(o)
                    if crate::objects::marker_parts(&o).is_some_and(|(_, l)| l == location)
            );
            if !kept_there {
                self.store_delete(id, &location);
            }
        }
        for n in &held {
            self.release_ref(n);
        }
        false
    }

    /// Frees the shared-memory copy a marker points to (values held inline
    /// have none).
    fn delete_shared_copy(&self, value: &Object) {
        if let Some((id, location)) = crate::objects::marker_parts(value) {
            self.store_delete(id, location);
        }
    }

    /// Counts one reference per ref nested in a value stored here; they go
    /// when the value does ([`Inner::release_ref`]).
    pub(crate) fn hold_nested(&self, object: &Object) {
        self.hold_refs(&object.nested);
    }

    /// `refs` are about to leave this process for `borrower`: take one
    /// hold on each for it, which it gives back when done with it.
    pub(crate) fn lend_refs(&self, refs: &[ObjectRefMsg], borrower: &str) -> Vec<ObjectRefMsg> {
        if refs.is_empty() {
            return Vec::new(); // every task push comes here: no allocation
        }
        let holds: Vec<(ObjectId, Arc<str>, bool)> = refs
            .iter()
            .filter_map(|r| {
                let id = ObjectId::from_bytes(&r.id)?;
                let owned = self.is_me(&r.owner);
                let owner: Arc<str> = if owned {
                    self.address.clone()
                } else {
                    Arc::from(r.owner.as_str())
                };
                Some((id, owner, owned))
            })
            .collect();
        self.refs.lend(&holds, borrower);
        let lender = self.address.to_string();
        refs.iter()
            .map(|r| ObjectRefMsg {
                id: r.id.clone(),
                owner: r.owner.clone(),
                lender: lender.clone(),
            })
            .collect()
    }

    /// A value about to leave this process for `borrower`, with holds lent
    /// on its refs.
    pub(crate) fn lend(&self, object: &Object, borrower: &str) -> Object {
        if object.nested.is_empty() {
            return object.clone();
        }
        Object {
            data: object.data.clone(),
            metadata: object.metadata.clone(),
            nested: self.lend_refs(&object.nested, borrower),
        }
    }

    /// `borrower` gave back `count` holds on `id` (only those it was
    /// lent count).
    pub(crate) fn loan_returned(&self, borrower: &str, id: ObjectId, count: u32) {
        let returned = self.refs.loan_returned(borrower, &id, count);
        if returned > 0 {
            self.release_ref_n(&id, returned);
        }
    }

    /// Processes that exited: the holds lent to them come back.
    pub(crate) fn processes_gone(&self, addresses: &[String]) {
        for address in addresses {
            for (id, count) in self.refs.take_loans(address) {
                self.release_ref_n(&id, count);
            }
        }
    }

    /// A value that leaves this process for good (an actor's constructor
    /// arguments, run again at each restart): its refs escape.
    pub(crate) fn escape_nested(&self, object: &Object) {
        for id in object
            .nested
            .iter()
            .filter_map(|r| ObjectId::from_bytes(&r.id))
        {
            self.refs.mark_escaped(&id);
        }
    }

    /// Waits for `f`, driving the event loop from this thread meanwhile.
    /// Must not be called from a task on the loop.
    pub(crate) fn block_on<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.driver.block_on(f)?
    }

    /// Fails with the daemon's death reason, if it died.
    pub(crate) fn check_alive(&self) -> Result<()> {
        match &*self.dead.lock() {
            Some(reason) => Err(Error::DaemonDied(reason.clone())),
            None => Ok(()),
        }
    }

    /// The daemon is gone: a worker exits at once; a driver fails every
    /// pending object so nobody waits forever.
    fn daemon_lost(self: &Arc<Self>, reason: String) {
        if self.mode == Mode::Worker {
            // SAFETY: _exit ends the process without running anything else,
            // which is what a worker orphaned by its daemon must do.
            unsafe { libc::_exit(1) };
        }
        *self.dead.lock() = Some(reason.clone());
        let message =
            format!("the oxray daemon died ({reason}); this object can no longer be computed");
        self.fail_all_tasks(&message);
        self.store
            .fail_all_pending(|| error_object(ObjectKind::SystemError, message.clone()));
    }

    async fn handle_daemon_messages(
        self: Arc<Self>,
        mut inbox: mpsc::UnboundedReceiver<Envelope>,
        log_to_driver: bool,
    ) {
        while let Some(env) = inbox.recv().await {
            match env.body {
                Some(Body::LogLines(l)) if log_to_driver => {
                    let sink = self.log_sink.lock().clone();
                    match sink {
                        Some(sink) => sink(l),
                        None => print_lines(&l),
                    }
                }
                Some(Body::Warning(w)) => eprintln!("{}", w.text),
                Some(Body::LeaseWanted(_)) => self.return_idle_leases(),
                Some(Body::NodesRemoved(n)) => self.nodes_removed(n),
                Some(Body::ProcessesGone(g)) => self.processes_gone(&g.addresses),
                _ => {}
            }
        }
        self.daemon_lost("connection closed".into());
    }
}

/// Takes the worker output relayed to a driver (see [`CoreWorker::set_log_sink`]).
pub type LogSink = Arc<dyn Fn(LogLines) + Send + Sync>;

fn print_lines(l: &LogLines) {
    use std::io::Write;
    if l.stderr {
        let mut err = std::io::stderr().lock();
        for line in &l.lines {
            let _ = writeln!(err, "{line}");
        }
    } else {
        let mut out = std::io::stdout().lock();
        for line in &l.lines {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
}

/// A connected core worker. Dropping it disconnects.
pub struct CoreWorker {
    pub(crate) inner: Arc<Inner>,
}

impl CoreWorker {
    /// Starts the runtime, listens for peers, and registers with the node
    /// daemon.
    pub fn connect(opts: Options) -> Result<Self> {
        let driver = Driver::start()?;
        let setup = driver.block_on(async {
            let _ = std::fs::remove_file(&opts.listen_path);
            let listener =
                UnixListener::bind(&opts.listen_path).map_err(|source| Error::Connection {
                    peer: opts.listen_path.clone(),
                    source,
                })?;
            let (daemon, inbox) = RpcPeer::connect_unix(&opts.daemon_socket).await?;
            // On a node of a multi-node cluster, other hosts reach this
            // process over TCP, on the node's IP.
            let tcp = match opts.node_ip.as_deref().filter(|ip| !ip.is_empty()) {
                Some(ip) => Some(bind_tcp(ip).await?),
                None => None,
            };
            let address = oxray_proto::transport::Address {
                tcp: tcp.as_ref().map(|(_, a)| a.clone()),
                unix: Some(opts.listen_path.clone()),
            }
            .format();
            let kind = match opts.mode {
                Mode::Driver => ClientKind::Driver,
                Mode::Worker => ClientKind::Worker,
            };
            let reply = daemon
                .call(Body::Register(Register {
                    kind: kind as i32,
                    worker_id: opts.worker_id.0.to_vec(),
                    pid: std::process::id(),
                    address: address.clone(),
                    owns_cluster: opts.owns_cluster,
                }))
                .await?;
            let Body::Registered(reg) = reply else {
                return Err(Error::Protocol {
                    peer: opts.daemon_socket.clone(),
                    reason: "expected Registered".into(),
                });
            };
            let region = if reg.store_path.is_empty() {
                None
            } else {
                let path = std::path::Path::new(&reg.store_path);
                Some(Arc::new(oxray_store::Region::open(path).map_err(
                    |source| Error::Connection {
                        peer: reg.store_path.clone(),
                        source,
                    },
                )?))
            };
            let dialer = oxray_proto::transport::Dialer::new(&reg.node_ip, &reg.token);
            let inner = Arc::new_cyclic(|me| Inner {
                me: me.clone(),
                region,
                mapped: MappedObjects::default(),
                held_args: Mutex::new(HashMap::new()),
                lineage: Default::default(),
                copies: Default::default(),
                mode: opts.mode,
                worker_id: opts.worker_id,
                node_id: NodeId::from_bytes(&reg.node_id).unwrap_or_default(),
                job_id: reg.job_id,
                session_dir: reg.session_dir,
                address: Arc::from(address),
                listen_path: opts.listen_path.clone(),
                daemon,
                store: MemoryStore::default(),
                refs: RefTable::default(),
                peers: Arc::new(PeerPool::new(dialer.clone())),
                node_address: reg.node_address.clone(),
                submit: Mutex::new(SubmitState::default()),
                actor_submit: Mutex::new(ActorSubmitState::default()),
                exec: ExecState::default(),
                finished: Default::default(),
                streams: Default::default(),
                unread: Default::default(),
                log_sink: Mutex::new(None),
                dead: Mutex::new(None),
                handle: tokio::runtime::Handle::current(),
                driver: driver.clone(),
                counter: AtomicU64::new(1),
            });
            let weak = Arc::downgrade(&inner);
            inner.peers.set_inbox_handler(Box::new(move |body| {
                if let (Body::LeaseWanted(_), Some(me)) = (body, weak.upgrade()) {
                    me.return_idle_leases();
                }
            }));
            tokio::spawn(
                inner
                    .clone()
                    .handle_daemon_messages(inbox, opts.log_to_driver),
            );
            tokio::spawn(inner.clone().serve(listener));
            if let Some((listener, _)) = tcp {
                tokio::spawn(
                    inner
                        .clone()
                        .serve_tcp(listener, dialer.token().to_string()),
                );
            }
            Ok::<_, Error>(inner)
        });
        match setup {
            Ok(Ok(inner)) => Ok(Self { inner }),
            Ok(Err(e)) | Err(e) => {
                driver.shutdown();
                Err(e)
            }
        }
    }

    /// Who and where this process is.
    pub fn context(&self) -> ContextInfo {
        let i = &self.inner;
        ContextInfo {
            worker_id: i.worker_id,
            node_id: i.node_id,
            job_id: i.job_id,
            address: i.address.to_string(),
            session_dir: i.session_dir.clone(),
            current_task: i.exec.current_task(),
        }
    }

    /// This process's address: the owner address of the objects it creates.
    pub fn address(&self) -> &Arc<str> {
        &self.inner.address
    }

    /// Submits a task; returns its return ids, each already holding one
    /// reference for the caller.
    pub fn submit_task(&self, req: TaskRequest) -> Result<Vec<ObjectId>> {
        self.inner.check_alive()?;
        Ok(self.inner.submit_task(req))
    }

    /// Registers an actor with the control service, which starts it.
    pub fn create_actor(&self, req: ActorCreateRequest) -> Result<ActorInfo> {
        self.inner.check_alive()?;
        self.inner.create_actor(req)
    }

    /// Calls a method on an actor; returns its return ids.
    pub fn submit_actor_task(&self, req: ActorCallRequest) -> Result<Vec<ObjectId>> {
        self.inner.check_alive()?;
        self.inner.submit_actor_task(req)
    }

    /// Kills an actor.
    pub fn kill_actor(&self, actor: ActorId, no_restart: bool) -> Result<()> {
        self.inner.check_alive()?;
        self.inner.kill_actor(actor, no_restart)
    }

    /// Looks an actor up by id, or by name and namespace.
    pub fn actor_info(
        &self,
        actor: Option<ActorId>,
        name: &str,
        namespace: &str,
    ) -> Result<ActorInfo> {
        self.inner.check_alive()?;
        self.inner.actor_info(actor, name, namespace)
    }

    /// Every actor of the cluster.
    pub fn list_actors(&self) -> Result<Vec<ActorInfo>> {
        self.inner.check_alive()?;
        self.inner.list_actors()
    }

    /// Records that the actor hosted here ends itself.
    pub fn actor_exiting(&self, actor: ActorId) -> Result<()> {
        self.inner.actor_exiting(actor)
    }

    /// A fresh id for a `put`.
    pub fn new_put_id(&self) -> ObjectId {
        ObjectId::for_task(
            &self.inner.next_task_id(),
            oxray_common::ids::PUT_INDEX_BIT | 1,
        )
    }

    /// Stores a value under `id` (from [`CoreWorker::new_put_id`]); the
    /// caller holds one reference.
    pub fn put_with_id(&self, id: ObjectId, object: Object) -> Result<()> {
        self.inner.check_alive()?;
        // The value holds its nested refs until it is freed (or shipped to
        // another process, when they escape).
        self.inner.hold_nested(&object);
        self.inner.refs.add(id, &self.inner.address, true);
        self.inner.store.put(id, Arc::new(object));
        Ok(())
    }

    /// Stores a value; returns its id holding one reference for the caller.
    pub fn put(&self, object: Object) -> Result<ObjectId> {
        let id = self.new_put_id();
        self.put_with_id(id, object)?;
        Ok(id)
    }

    /// Reserves `size` bytes in the shared store for `id`, owned by
    /// `owner` (empty: this process); returns where to write them, `None`
    /// when the object exists already.
    pub fn store_create(&self, id: ObjectId, size: u64, owner: &str) -> Result<Option<Mapped>> {
        self.inner.check_alive()?;
        self.inner.store_create(id, size, owner)
    }

    /// Marks a written shared object complete.
    pub fn store_seal(&self, id: ObjectId) {
        self.inner.store_seal(id);
    }

    /// The copy of `id` at `location` (from its marker) could not be read:
    /// its node died, or it is gone. Returns the value to use instead,
    /// rebuilt by lineage where possible, or the error object saying why
    /// there is none. `via` is who handed us the value (a task's owner),
    /// asked when this process holds no reference to `id` itself.
    pub fn recover(&self, id: ObjectId, location: &str, via: &str) -> Arc<Object> {
        self.inner.recover_blocking(id, location, via)
    }

    /// Maps a shared object, pinned until [`CoreWorker::store_release`];
    /// `source` is the node holding it, from its marker.
    /// `via` is who handed us the marker (a task's owner), told of the
    /// copy this makes on this node when this process does not know the
    /// object's owner.
    pub fn store_get(&self, id: ObjectId, source: &str, via: &str) -> Result<Mapped> {
        self.inner.check_alive()?;
        self.inner.store_get(id, source, via)
    }

    /// This node's daemon address for other nodes (empty on a single-node
    /// cluster): where the shared objects this process writes live.
    pub fn node_address(&self) -> &str {
        &self.inner.node_address
    }

    /// Unpins a shared object mapped by [`CoreWorker::store_get`].
    pub fn store_release(&self, id: ObjectId) {
        self.inner.store_release(id);
    }

    /// The shared store's usage, and with `objects` its objects, of the
    /// node whose daemon is at `node_address` (empty: this process's node).
    pub fn store_stats(
        &self,
        node_address: &str,
        objects: bool,
    ) -> Result<oxray_proto::StoreStats> {
        let request = StoreStatsRequest {
            totals_only: !objects,
        };
        match self.call_node(node_address, Body::StoreStatsRequest(request))? {
            Body::StoreStats(s) => Ok(s),
            other => Err(crate::core::unexpected(other)),
        }
    }

    /// Sends `body` to the daemon at `node_address` (empty: this node's,
    /// over the connection already open; another's through the peer pool)
    /// and waits up to [`NODE_ANSWER_WITHIN`] for the reply, so that an
    /// unreachable node fails the call instead of hanging it.
    pub(crate) fn call_node(&self, node_address: &str, body: Body) -> Result<Body> {
        self.inner.check_alive()?;
        let inner = &self.inner;
        if node_address.is_empty() || node_address == inner.node_address {
            return inner.block_on(inner.daemon.call_within(body, NODE_ANSWER_WITHIN));
        }
        inner.block_on(async {
            let peer = tokio::time::timeout(NODE_ANSWER_WITHIN, inner.peers.get(node_address))
                .await
                .map_err(|_| Error::Connection {
                    peer: node_address.to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "could not connect within {}s; is the node's daemon running and reachable?",
                            NODE_ANSWER_WITHIN.as_secs()
                        ),
                    ),
                })??;
            peer.call_within(body, NODE_ANSWER_WITHIN).await
        })
    }

    /// Waits for every object in `ids` and returns their values in order.
    pub fn get(&self, ids: &[ObjectId], limit: WaitLimit<'_>) -> Result<Vec<Arc<Object>>> {
        let values = self.inner.get(ids, limit)?;
        self.inner.mark_read(ids, &values);
        Ok(values)
    }

    /// Sends the worker output relayed to this driver to `sink` instead of
    /// printing it (so that one printer can interleave it with progress
    /// bars); `None` prints it again.
    pub fn set_log_sink(&self, sink: Option<LogSink>) {
        *self.inner.log_sink.lock() = sink;
    }

    /// Sets what to call with an error value this process owns that is
    /// dropped without anyone reading it (Ray's "Unhandled error").
    pub fn set_unhandled_error_hook(&self, hook: crate::UnhandledHook) {
        self.inner.set_unhandled_hook(hook);
    }

    /// Copies to this node the shared objects among `ids` that live on
    /// other nodes (what `wait(fetch_local=True)` promises).
    pub fn fetch_local(&self, ids: &[ObjectId]) {
        self.inner.fetch_local(ids);
    }

    /// Waits until `num_returns` of `ids` are ready or `timeout` passes;
    /// returns which are ready.
    pub fn wait(
        &self,
        ids: &[ObjectId],
        num_returns: usize,
        limit: WaitLimit<'_>,
    ) -> Result<Vec<bool>> {
        self.inner.wait(ids, num_returns, limit)
    }

    /// Runs `cb` once the object is available here (fetching it if needed),
    /// on the thread driving the event loop: `cb` must not block on it.
    pub fn on_ready(&self, id: ObjectId, cb: crate::store::ReadyCallback) {
        self.inner.when_ready(id, cb);
    }

    /// Counts one more reference to `id`, owned by `owner`.
    pub fn add_ref(&self, id: ObjectId, owner: &str) {
        let owner: Arc<str> = if self.inner.is_me(owner) {
            self.inner.address.clone()
        } else {
            Arc::from(owner)
        };
        let owned = self.inner.is_me(&owner);
        self.inner.refs.add(id, &owner, owned);
    }

    /// Drops one reference; the value goes when the last one does.
    pub fn release_ref(&self, id: &ObjectId) {
        self.inner.release_ref(id);
    }

    /// Records that `id` was serialized into something another process may
    /// read.
    pub fn mark_escaped(&self, id: &ObjectId) {
        self.inner.refs.mark_escaped(id);
    }

    /// The owner address recorded for `id`, if a reference is held here.
    pub fn owner_of(&self, id: &ObjectId) -> Option<String> {
        self.inner.refs.owner_of(id).map(|s| s.to_string())
    }

    /// Cancels the task that produces `id`, owned by `owner` (through it,
    /// when that is another process).
    pub fn cancel(&self, id: &ObjectId, owner: &str, force: bool, recursive: bool) -> Result<()> {
        self.inner.check_alive()?;
        if owner.is_empty() || self.inner.is_me(owner) {
            self.inner.cancel_task(id.task_id(), force, recursive);
            return Ok(());
        }
        // A borrowed ref: its owner submitted the task and cancels it.
        let (inner, owner) = (self.inner.clone(), owner.to_string());
        let body = Body::CancelTask(CancelTask {
            task_id: id.task_id().0.to_vec(),
            force,
            recursive,
        });
        self.inner.handle.spawn(async move {
            if let Ok(peer) = inner.peers.get(&owner).await {
                peer.send(body);
            }
        });
        Ok(())
    }

    /// Every task on this node: pending, running, and recently finished.
    pub fn list_tasks(&self) -> Result<Vec<oxray_proto::TaskEntry>> {
        self.inner.check_alive()?;
        self.block_on(self.inner.list_tasks())
    }

    /// Stores a value in the control service's key-value table.
    pub fn kv_put(&self, namespace: &str, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.inner.check_alive()?;
        let body = Body::KvPut(KvPut {
            namespace: namespace.into(),
            key: key.to_vec(),
            value,
        });
        self.block_on(self.inner.daemon.call(body)).map(|_| ())
    }

    /// Removes a key from the control service's key-value table; returns
    /// whether it was there.
    pub fn kv_delete(&self, namespace: &str, key: &[u8]) -> Result<bool> {
        self.kv_value(Body::KvDelete(kv_key(namespace, key)))
            .map(|v| v.found)
    }

    /// Sends a key-value read or delete; the value the table had.
    fn kv_value(&self, body: Body) -> Result<KvValue> {
        self.inner.check_alive()?;
        match self.block_on(self.inner.daemon.call(body))? {
            Body::KvValue(v) => Ok(v),
            other => Err(crate::core::unexpected(other)),
        }
    }

    /// The keys of a namespace of the key-value table that start with
    /// `prefix`.
    pub fn kv_keys(&self, namespace: &str, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.inner.check_alive()?;
        let body = Body::KvKeys(KvKeys {
            namespace: namespace.into(),
            prefix: prefix.to_vec(),
        });
        match self.block_on(self.inner.daemon.call(body))? {
            Body::KvKeyList(l) => Ok(l.keys),
            other => Err(crate::core::unexpected(other)),
        }
    }

    /// Reads a value from the control service's key-value table.
    pub fn kv_get(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.kv_value(Body::KvGet(kv_key(namespace, key)))
            .map(|v| v.found.then_some(v.value))
    }

    /// The cluster's node table.
    pub fn cluster_info(&self) -> Result<ClusterInfo> {
        self.inner.check_alive()?;
        match self.block_on(
            self.inner
                .daemon
                .call(Body::ClusterInfoRequest(ClusterInfoRequest {})),
        )? {
            Body::ClusterInfo(c) => Ok(c),
            other => Err(crate::core::unexpected(other)),
        }
    }

    /// The next task pushed to this worker; blocks. `None` once shut down.
    pub fn next_task(&self) -> Option<IncomingTask> {
        self.inner.next_task()
    }

    /// The next pushed task if one is queued, without waiting.
    pub fn try_next_task(&self) -> Option<IncomingTask> {
        self.inner.exec.try_pop()
    }

    /// A file descriptor that becomes readable when tasks arrive, for an
    /// event loop to poll (`try_next_task` then drains the queue).
    pub fn task_notify_fd(&self) -> Result<std::os::fd::OwnedFd> {
        self.inner
            .exec
            .notify_fd()
            .map_err(|source| Error::Connection {
                peer: "task notification pipe".into(),
                source,
            })
    }

    /// Sends a task's outcome back to its caller.
    pub fn complete_task(
        &self,
        task: &IncomingTask,
        returns: Vec<Object>,
        retryable: bool,
        error: Option<&str>,
    ) {
        // The returns go to the caller: lend it the refs inside them.
        let owner = &task.spec.owner;
        let returns = returns.iter().map(|o| self.inner.lend(o, owner)).collect();
        self.inner.complete_task(task, returns, retryable, error);
    }

    /// Sends the `index`-th value (from 0) a streaming generator task
    /// yielded to the task's caller, and waits until the caller takes it
    /// (longer while its consumer is behind: Ray's backpressure).
    pub fn report_generator_item(
        &self,
        task: &IncomingTask,
        index: u32,
        object: Object,
    ) -> Result<()> {
        let caller = &task.spec.owner;
        let object = self.inner.lend(&object, caller);
        let body = Body::GeneratorItem(GeneratorItem {
            task_id: task.spec.task_id.clone(),
            index,
            object: Some(object),
        });
        let inner = &self.inner;
        let reply = inner.driver.block_on(async {
            let report = async {
                let peer = inner.peers.get(caller).await?;
                peer.call(body).await
            };
            // Cancelling the task ends the wait (backpressure may hold it).
            tokio::select! {
                reply = report => Some(reply),
                () = inner.interrupted(&|| false) => None,
            }
        })?;
        // A cancel that lands while the caller answers stops the task too:
        // the cancel hook raises nothing on the thread that waits here.
        if reply.is_none() || inner.exec.current_cancelled() {
            return Err(Error::Interrupted);
        }
        match reply.expect("checked above") {
            Ok(Body::Ack(_)) => Ok(()),
            Ok(other) => Err(Error::Protocol {
                peer: caller.clone(),
                reason: format!("unexpected reply {other:?} to a generator value"),
            }),
            Err(e) => Err(Error::CallerGone {
                task: task.spec.function_name.clone(),
                caller: caller.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// The next value of the stream of generator task `task`, waiting up
    /// to `limit`.
    pub fn stream_next(&self, task: TaskId, limit: WaitLimit<'_>) -> Result<crate::StreamNext> {
        self.inner.check_alive()?;
        self.inner.stream_next(task, limit)
    }

    /// Whether the stream of `task` has its next value (or its end) ready.
    pub fn stream_ready(&self, task: TaskId) -> bool {
        self.inner.stream_ready(task)
    }

    /// The consumer of the stream of `task` is gone: its values not taken
    /// are freed.
    pub fn close_stream(&self, task: TaskId) {
        self.inner.close_stream(task);
    }

    /// Registers what to call when a running task must be interrupted
    /// (`cancel` with `force=False`).
    pub fn set_cancel_hook(&self, hook: Box<dyn Fn(TaskId) + Send + Sync>) {
        self.inner.exec.set_cancel_hook(hook);
    }

    /// Number of objects with references held here (for tests and `memory`).
    pub fn num_refs(&self) -> usize {
        self.inner.refs.len()
    }

    /// Number of values held in this process's store.
    pub fn num_stored(&self) -> usize {
        self.inner.store.len()
    }

    /// Disconnects. A driver that owns the cluster stops it first.
    pub fn shutdown(&self, stop_cluster: bool) {
        if self.inner.driver.handle().is_err() {
            return; // shut down already
        }
        if stop_cluster && self.inner.dead.lock().is_none() {
            let call = self
                .inner
                .daemon
                .call(Body::ShutdownCluster(ShutdownCluster {}));
            let _ = self
                .inner
                .driver
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), call).await });
        }
        self.inner.exec.close();
        *self.inner.dead.lock() = Some("oxray was shut down".into());
        self.inner.peers.clear();
        let _ = std::fs::remove_file(&self.inner.listen_path);
        self.inner.driver.shutdown();
    }

    fn block_on<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.inner.block_on(f)
    }
}

impl Drop for CoreWorker {
    fn drop(&mut self) {
        self.shutdown(false);
    }
}
