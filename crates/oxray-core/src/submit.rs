//! Task submission, Ray's direct-call way: ask the node daemon for a lease
//! on a worker that fits the task's resources, then push tasks straight to
//! that worker. The daemon is consulted per lease, not per task; an idle
//! lease is kept a moment for the next task and given back after that, or
//! at once when the daemon says someone else is waiting.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use oxray_common::{ObjectId, ResourceSet, TaskId, WorkerId};
use oxray_proto::rpc::RpcPeer;
use oxray_proto::*;

use crate::core::{Inner, TaskRequest};
use crate::objects::{error_object, ObjectKind};

/// How long an idle lease is kept for the next task of the same shape.
const LEASE_IDLE: Duration = Duration::from_millis(20);
/// Most lease requests in flight per resource shape.
const MAX_LEASE_REQUESTS: usize = 4;
/// Tasks queued on one leased worker at once when tasks of this shape are
/// known to be short: the worker finds the next task waiting when it
/// finishes one. Long (or not yet measured) tasks go one at a time, so that
/// they spread over every worker the node can lease.
const PIPELINE_DEPTH: usize = 4;
/// Tasks shorter than this (mean round trip) count as short.
const SHORT_TASK_US: f64 = 1000.0;

/// `resources` as a [`TaskSpec`] carries them.
pub(crate) fn encoded_amounts(resources: &ResourceSet) -> bytes::Bytes {
    ResourceAmounts::encode_units(resources.to_units())
}

/// A scheduling key: the tasks that may share a leased worker. The
/// resource shape of a task, how it picks a node, how many calls a worker
/// may run before it is replaced (`max_calls`; 0 for no limit), and its
/// code environment (0: none).
pub(crate) type Key = Arc<(ResourceSet, Placement, u32, u64)>;

/// How a task picks its node: Ray's `scheduling_strategy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Placement {
    /// `DEFAULT` (or empty), `SPREAD`, `NODE_AFFINITY`.
    pub kind: String,
    /// The node, for `NODE_AFFINITY`.
    pub node_id: Vec<u8>,
    /// `NODE_AFFINITY`: run elsewhere when that node cannot.
    pub soft: bool,
}

impl Placement {
    /// The strategy as sent with a lease request (`None` for the default).
    pub(crate) fn to_wire(&self) -> Option<SchedulingStrategy> {
        if self.kind.is_empty() || self.kind == "DEFAULT" {
            return None;
        }
        Some(SchedulingStrategy {
            kind: self.kind.clone(),
            node_id: self.node_id.clone(),
            soft: self.soft,
        })
    }
}

#[derive(Default)]
pub(crate) struct SubmitState {
    tasks: HashMap<TaskId, Task>,
    /// Queues and leases per scheduling key (resource shape). Keys are
    /// shared (`Arc`) so that the task path never copies a resource set.
    keys: HashMap<Key, KeyState>,
    /// Round-trip statistics per function, deciding pipelining.
    functions: HashMap<Vec<u8>, Timing>,
    /// Whether the task that returns idle leases is scheduled.
    reaper_armed: bool,
}

/// How long a function's tasks take, as seen by the caller.
#[derive(Default)]
struct Timing {
    mean_us: f64,
    samples: u32,
}

impl Timing {
    /// Tasks that may wait on one worker behind another of this function.
    fn depth(&self) -> usize {
        if self.samples >= 3 && self.mean_us < SHORT_TASK_US {
            PIPELINE_DEPTH
        } else {
            1
        }
    }

    fn record(&mut self, elapsed: std::time::Duration) {
        let us = elapsed.as_secs_f64() * 1e6;
        self.mean_us = if self.samples == 0 {
            us
        } else {
            0.8 * self.mean_us + 0.2 * us
        };
        self.samples = self.samples.saturating_add(1);
    }
}

struct Task {
    spec: TaskSpec,
    /// Whether its arguments are resolved (it is queued or in flight).
    resolved: bool,
    key: Key,
    retries_left: i32,
    /// Its `max_retries` (lineage tells "disabled" from "used up").
    max_retries: i32,
    /// The top-level ref arguments, in slot order (for a rebuild).
    ref_args: Vec<ObjectId>,
    cancelled: bool,
    lease: Option<u64>,
    parent: Option<TaskId>,
    pushed_at: Option<std::time::Instant>,
}

#[derive(Default)]
struct KeyState {
    description: String,
    /// The key's resources as a spec carries them (encoded once).
    units: bytes::Bytes,
    queue: VecDeque<TaskId>,
    leases: HashMap<u64, Lease>,
    requests: usize,
}

struct Lease {
    /// The node daemon that granted it (ours, or another node's after a
    /// spillback): the lease goes back there.
    daemon: Arc<RpcPeer>,
    /// That daemon's address (empty: ours, on a single-node cluster).
    node: String,
    /// The worker's address.
    address: String,
    worker_id: WorkerId,
    peer: Arc<RpcPeer>,
    gpu_ids: Vec<u32>,
    in_flight: usize,
    /// When the lease last ran out of work (None while busy).
    idle_since: Option<std::time::Instant>,
    /// Calls its worker may still be sent, under `max_calls` (None: no
    /// limit). At 0 the worker is replaced once its last call returns.
    calls_left: Option<u32>,
}

impl SubmitState {
    /// Forgets the leases granted by the (dead) nodes at `nodes`, so that
    /// no task is pushed there again; returns their workers' addresses.
    /// Tasks in flight on them fail over when those connections go.
    pub(crate) fn drop_leases_on(&mut self, nodes: &[String]) -> Vec<String> {
        let mut workers = Vec::new();
        for ks in self.keys.values_mut() {
            ks.leases.retain(|_, l| {
                let dead = nodes.contains(&l.node);
                if dead {
                    workers.push(l.address.clone());
                }
                !dead
            });
        }
        workers
    }

    /// The tasks not finished yet, for `list_tasks`.
    pub(crate) fn live_tasks(&self) -> Vec<TaskEntry> {
        use crate::task_log::{entry_of, state};
        self.tasks
            .values()
            .map(|t| {
                let lease = t.lease.and_then(|l| self.keys.get(&t.key)?.leases.get(&l));
                let state = match (lease, t.resolved) {
                    (Some(_), _) => state::SUBMITTED,
                    (None, true) => state::PENDING_NODE,
                    (None, false) => state::PENDING_ARGS,
                };
                let mut entry = entry_of(&t.spec, state);
                if let Some(l) = lease {
                    entry.worker_id = l.worker_id.0.to_vec();
                }
                entry
            })
            .collect()
    }
}

impl Inner {
    /// Registers the task's returns and starts resolving its arguments.
    pub(crate) fn submit_task(self: &Arc<Self>, req: TaskRequest) -> Vec<ObjectId> {
        let task_id = self.next_task_id();
        let returns =
            self.expect_returns(task_id, req.num_returns, &req.ref_args, &req.args_nested);
        let spec = TaskSpec {
            task_id: task_id.0.to_vec(),
            job_id: self.job_id,
            function_id: req.function_id,
            function_name: req.function_name.clone(),
            args: req.args,
            resolved_args: Vec::new(),
            num_returns: req.num_returns,
            retry_exceptions: req.retry_exceptions,
            gpu_ids: Vec::new(),
            attempt: 0,
            owner: self.address.to_string(),
            namespace: req.namespace,
            args_nested: req.args_nested,
            placement_group_id: req.placement_group.0,
            capture_child_tasks: req.placement_group.1,
            env_vars: req.env_vars,
            returns_kind: req.yields.kind as i32,
            created_us: crate::task_log::unix_micros(),
            ..Default::default()
        };
        self.open_stream(task_id, req.yields);
        {
            let mut st = self.submit.lock();
            // Reuse the key the map already holds for this shape.
            let wanted = (req.resources, req.placement, req.max_calls, req.env_key);
            let key = match st.keys.get_key_value(&wanted) {
                Some((k, _)) => k.clone(),
                None => {
                    let k = Arc::new(wanted);
                    st.keys.insert(
                        k.clone(),
                        KeyState {
                            description: req.function_name,
                            units: encoded_amounts(&k.0),
                            ..Default::default()
                        },
                    );
                    k
                }
            };
            let task = Task {
                spec,
                resolved: req.ref_args.is_empty(),
                key,
                retries_left: req.max_retries,
                max_retries: req.max_retries,
                ref_args: req.ref_args.clone(),
                cancelled: false,
                lease: None,
                parent: self.exec.current_task(),
                pushed_at: None,
            };
            st.tasks.insert(task_id, task);
        }
        if req.ref_args.is_empty() {
            self.enqueue(task_id);
        } else {
            let me = self.clone();
            self.handle
                .spawn(async move { me.resolve_and_enqueue(task_id, req.ref_args).await });
        }
        returns
    }

    /// The return ids of a new task, pending and referenced once each for
    /// the caller; its ref arguments are held until it finishes.
    pub(crate) fn expect_returns(
        &self,
        task_id: TaskId,
        num_returns: u32,
        ref_args: &[ObjectId],
        args_nested: &[ObjectRefMsg],
    ) -> Vec<ObjectId> {
        let returns: Vec<ObjectId> = (1..=num_returns)
            .map(|i| ObjectId::for_task(&task_id, i))
            .collect();
        for id in &returns {
            self.refs.add(*id, &self.address, true);
            self.store.expect(*id);
        }
        let mut held: Vec<ObjectId> = ref_args.to_vec();
        held.extend(
            args_nested
                .iter()
                .filter_map(|r| ObjectId::from_bytes(&r.id)),
        );
        self.hold_args(task_id, &held);
        returns
    }

    /// A copy of `spec` to push to the worker at `worker`, lending it the
    /// refs inside its arguments.
    pub(crate) fn lend_spec(&self, spec: &TaskSpec, worker: &str) -> TaskSpec {
        let mut out = spec.clone();
        out.args_nested = self.lend_refs(&spec.args_nested, worker);
        out.resolved_args = spec
            .resolved_args
            .iter()
            .map(|o| self.lend(o, worker))
            .collect();
        out
    }

    /// The values of a task's ref arguments, and the first that is an error
    /// (which fails the task without running it).
    pub(crate) async fn resolve_args(
        self: &Arc<Self>,
        args: &[ObjectId],
    ) -> (Vec<Arc<Object>>, Option<Arc<Object>>) {
        let mut values = Vec::with_capacity(args.len());
        for id in args {
            values.push(self.resolve(*id).await);
        }
        self.mark_read(args, &values);
        let failed = values
            .iter()
            .find(|v| ObjectKind::of(v).is_error())
            .cloned();
        (values, failed)
    }

    /// Keeps a task's ref arguments alive until it finishes: a large value
    /// is mapped by the worker only when the task runs.
    fn hold_args(&self, task_id: TaskId, args: &[ObjectId]) {
        if args.is_empty() {
            return;
        }
        for id in args {
            let owner = self
                .refs
                .owner_of(id)
                .unwrap_or_else(|| self.address.clone());
            let owned = self.is_me(&owner);
            self.refs.add(*id, &owner, owned);
        }
        self.held_args.lock().insert(task_id, args.to_vec());
    }

    /// Waits for the ref arguments, inlines their values, then queues the
    /// task. An argument that is an error fails the task without running it.
    async fn resolve_and_enqueue(self: Arc<Self>, task_id: TaskId, args: Vec<ObjectId>) {
        let (values, failed) = self.resolve_args(&args).await;
        if let Some(err) = failed {
            let done = self.submit.lock().tasks.remove(&task_id);
            if let Some(task) = done {
                self.finish(&task, |_| (*err).clone());
            }
            return;
        }
        {
            let mut st = self.submit.lock();
            match st.tasks.get_mut(&task_id) {
                Some(t) => {
                    t.spec.resolved_args = values.iter().map(|v| (**v).clone()).collect();
                    t.resolved = true;
                }
                None => return, // cancelled meanwhile
            }
        }
        self.enqueue(task_id);
    }

    fn enqueue(self: &Arc<Self>, task_id: TaskId) {
        let mut st = self.submit.lock();
        let Some(key) = st.tasks.get(&task_id).map(|t| t.key.clone()) else {
            return;
        };
        st.keys
            .entry(key.clone())
            .or_default()
            .queue
            .push_back(task_id);
        self.pump(&mut st, &key);
    }

    /// Pushes queued tasks to idle leases and asks for more leases while the
    /// queue is longer than what is in flight.
    fn pump(self: &Arc<Self>, st: &mut SubmitState, key: &Key) {
        let SubmitState {
            tasks,
            keys,
            functions,
            ..
        } = st;
        let Some(ks) = keys.get_mut(key) else { return };
        for (lease_id, lease) in ks.leases.iter_mut() {
            while let Some(&task_id) = ks.queue.front() {
                let Some(task) = tasks.get_mut(&task_id) else {
                    ks.queue.pop_front();
                    continue;
                };
                let depth = functions
                    .get(&task.spec.function_id)
                    .map_or(1, Timing::depth);
                if lease.in_flight >= depth || lease.calls_left == Some(0) {
                    break;
                }
                ks.queue.pop_front();
                task.lease = Some(*lease_id);
                task.pushed_at = Some(std::time::Instant::now());
                lease.in_flight += 1;
                if let Some(left) = &mut lease.calls_left {
                    *left -= 1;
                }
                let mut spec = self.lend_spec(&task.spec, &lease.address);
                spec.gpu_ids = lease.gpu_ids.clone();
                spec.resources = ks.units.clone();
                self.push(task_id, *lease_id, key.clone(), lease.peer.clone(), spec);
            }
        }
        let wanted = ks.queue.len().min(MAX_LEASE_REQUESTS);
        if ks.requests < wanted {
            let preferred = ks
                .queue
                .front()
                .and_then(|t| tasks.get(t))
                .map(|t| self.arguments_node(&t.spec))
                .unwrap_or_default();
            while ks.requests < wanted {
                ks.requests += 1;
                self.request_lease(key.clone(), ks.description.clone(), preferred.clone());
            }
        }
        let mut any_idle = false;
        for lease in ks.leases.values_mut() {
            if lease.in_flight == 0 {
                lease.idle_since.get_or_insert_with(std::time::Instant::now);
                any_idle = true;
            } else {
                lease.idle_since = None;
            }
        }
        if any_idle && !st.reaper_armed {
            st.reaper_armed = true;
            self.reap_idle_leases_later(LEASE_IDLE);
        }
    }

    fn push(
        self: &Arc<Self>,
        task_id: TaskId,
        lease_id: u64,
        key: Key,
        peer: Arc<RpcPeer>,
        spec: TaskSpec,
    ) {
        let me = self.clone();
        // The reply is handled on the connection's reader task: no hop
        // through another task on the task path.
        peer.call_with(Body::PushTask(spec), move |reply| {
            me.on_task_reply(task_id, lease_id, key, reply)
        });
    }

    fn on_task_reply(
        self: &Arc<Self>,
        task_id: TaskId,
        lease_id: u64,
        key: Key,
        reply: Option<Body>,
    ) {
        let mut st = self.submit.lock();
        let worker_died = !matches!(reply, Some(Body::TaskReply(_)));
        let bounced = matches!(&reply, Some(Body::TaskReply(r)) if r.bounced);
        if let Some(ks) = st.keys.get_mut(&key) {
            if worker_died {
                ks.leases.remove(&lease_id);
            } else if let Some(l) = ks.leases.get_mut(&lease_id) {
                l.in_flight = l.in_flight.saturating_sub(1);
                if let (Some(left), true) = (&mut l.calls_left, bounced) {
                    *left += 1; // it never ran there
                }
                if l.calls_left == Some(0) && l.in_flight == 0 {
                    // `max_calls` reached: a fresh worker takes its place.
                    if let Some(lease) = ks.leases.remove(&lease_id) {
                        lease.daemon.send(Body::ReturnLease(ReturnLease {
                            lease_id,
                            kill_worker: true,
                        }));
                    }
                }
            }
        }
        if let Some(Body::TaskReply(r)) = &reply {
            let SubmitState {
                tasks,
                keys,
                functions,
                ..
            } = &mut *st;
            if let Some(task) = tasks.get_mut(&task_id) {
                let timing = functions.entry(task.spec.function_id.clone()).or_default();
                if r.bounced {
                    // It waited behind a task that blocked: run it elsewhere,
                    // and stop queueing this function's tasks behind others.
                    *timing = Timing::default();
                    task.lease = None;
                    keys.entry(task.key.clone())
                        .or_default()
                        .queue
                        .push_front(task_id);
                    self.pump(&mut st, &key);
                    return;
                }
                if let Some(t) = task.pushed_at {
                    timing.record(t.elapsed());
                }
            }
        }
        let outcome = match reply {
            Some(Body::TaskReply(r)) => Ok(r),
            _ => Err(()),
        };
        let mut done = None;
        if let Some(task) = st.tasks.get_mut(&task_id) {
            task.lease = None;
            let retry = match &outcome {
                Ok(r) => r.retryable && task.retries_left != 0 && !task.cancelled,
                Err(()) => task.retries_left != 0 && !task.cancelled,
            };
            if retry {
                if task.retries_left > 0 {
                    task.retries_left -= 1;
                }
                // The failed attempt stays listed (Ray lists each attempt).
                match &outcome {
                    Ok(r) => self.finished.record(&task.spec, r.returns.first()),
                    Err(()) => {
                        let crashed = error_object(ObjectKind::WorkerCrashed, String::new());
                        self.finished.record(&task.spec, Some(&crashed));
                    }
                }
                task.spec.attempt += 1;
                let k = task.key.clone();
                st.keys.entry(k).or_default().queue.push_front(task_id);
            } else {
                done = st.tasks.remove(&task_id).map(|t| (t, outcome));
            }
        }
        self.pump(&mut st, &key);
        drop(st);
        if let Some((task, outcome)) = done {
            match outcome {
                Ok(reply) => {
                    let mut returns = reply.returns.into_iter();
                    self.finish(&task, |_| returns.next().unwrap_or_else(|| missing_return(&task.spec)));
                }
                Err(()) if task.cancelled => self.finish(&task, |_| cancelled(&task.spec)),
                Err(()) => self.finish(&task, |_| {
                    error_object(
                        ObjectKind::WorkerCrashed,
                        format!(
                            "The worker running task '{}' died unexpectedly (it may have crashed, been \
                             killed, or run out of memory). The task was attempted {} time(s).",
                            task.spec.function_name,
                            task.spec.attempt + 1
                        ),
                    )
                }),
            }
        }
    }

    /// Stores the task's return values (or errors), one per return id. On
    /// a multi-node cluster, a task with a return in a node's shared store
    /// leaves its lineage, to be run again if that node dies.
    fn finish(&self, task: &Task, value: impl FnMut(u32) -> Object) {
        let (held, shared) = self.fulfil_returns(&task.spec, value);
        let task_id = TaskId::from_bytes(&task.spec.task_id).unwrap_or_default();
        if shared && !self.node_address.is_empty() && !task.cancelled {
            let ids: Vec<ObjectId> = (1..=task.spec.num_returns)
                .map(|i| ObjectId::for_task(&task_id, i))
                .collect();
            let live = self.store.ready_flags(&ids).iter().filter(|r| **r).count() as u32;
            if live > 0 {
                let mut spec = task.spec.clone();
                spec.resolved_args.clear();
                self.lineage.record(
                    task_id,
                    crate::lineage::Record {
                        spec,
                        key: task.key.clone(),
                        ref_args: task.ref_args.clone(),
                        held,
                        retries_left: task.retries_left,
                        max_retries: task.max_retries,
                        live,
                    },
                );
                return;
            }
        }
        for id in &held {
            self.release_ref(id);
        }
    }

    /// Stores a task's return values, one per return id, counting the refs
    /// nested in them as borrowed.
    pub(crate) fn store_returns(&self, spec: &TaskSpec, value: impl FnMut(u32) -> Object) {
        for id in self.fulfil_returns(spec, value).0 {
            self.release_ref(&id);
        }
    }

    /// Stores a task's return values; returns the references held on its
    /// arguments (for the caller to drop or keep), and whether a stored
    /// return lives in a node's shared store.
    fn fulfil_returns(
        &self,
        spec: &TaskSpec,
        mut value: impl FnMut(u32) -> Object,
    ) -> (Vec<ObjectId>, bool) {
        let task_id = TaskId::from_bytes(&spec.task_id).unwrap_or_default();
        let held = self.held_args.lock().remove(&task_id).unwrap_or_default();
        if spec.num_returns == 0 {
            self.finished.record(spec, None);
        }
        let mut shared = false;
        for i in 1..=spec.num_returns {
            let id = ObjectId::for_task(&task_id, i);
            let object = value(i);
            let kind = ObjectKind::of(&object);
            if i == 1 {
                self.finished.record(spec, Some(&object));
                if spec.returns_kind == ReturnsKind::Streaming as i32 {
                    self.finish_stream(task_id, kind.is_error());
                }
            }
            let error = self.note_returned(id, kind, &object);
            let stored = self.fulfil_holding(id, object, true);
            if let (false, Some(error)) = (stored, error) {
                self.returned_unreferenced(id, error);
            }
            shared |= stored && kind == ObjectKind::Shared;
        }
        (held, shared)
    }

    /// Runs a finished task again to rebuild its lost returns (they are
    /// pending again). Its arguments are resolved anew: those lost too
    /// are being rebuilt the same way, and it waits for them.
    pub(crate) fn resubmit(self: &Arc<Self>, task_id: TaskId, record: crate::lineage::Record) {
        let crate::lineage::Record {
            mut spec,
            key,
            ref_args,
            held,
            retries_left,
            max_retries,
            ..
        } = record;
        spec.attempt += 1;
        self.held_args.lock().insert(task_id, held);
        {
            let mut st = self.submit.lock();
            st.keys.entry(key.clone()).or_insert_with(|| KeyState {
                description: spec.function_name.clone(),
                units: encoded_amounts(&key.0),
                ..Default::default()
            });
            st.tasks.insert(
                task_id,
                Task {
                    spec,
                    resolved: ref_args.is_empty(),
                    key,
                    retries_left: if retries_left > 0 {
                        retries_left - 1
                    } else {
                        retries_left
                    },
                    max_retries,
                    ref_args: ref_args.clone(),
                    cancelled: false,
                    lease: None,
                    parent: None,
                    pushed_at: None,
                },
            );
        }
        if ref_args.is_empty() {
            self.enqueue(task_id);
        } else {
            let me = self.clone();
            self.handle
                .spawn(async move { me.resolve_and_enqueue(task_id, ref_args).await });
        }
    }

    /// The node holding a task's first large argument in its shared store,
    /// when that is another node (empty otherwise).
    fn arguments_node(&self, spec: &TaskSpec) -> String {
        spec.resolved_args
            .iter()
            .filter_map(crate::objects::marker_parts)
            .map(|(_, location)| location)
            .find(|l| !l.is_empty() && *l != self.node_address)
            .unwrap_or_default()
            .to_string()
    }

    fn request_lease(self: &Arc<Self>, key: Key, description: String, preferred: String) {
        let request = RequestLease {
            resources: key.0.to_units(),
            description,
            strategy: key.1.to_wire(),
            spilled: false,
            preferred,
            for_actor: false,
            env_key: key.3,
        };
        let daemon = self.daemon.clone();
        let me = self.clone();
        self.handle.spawn(async move {
            let reply = match daemon.start_call(Body::RequestLease(request.clone())) {
                Ok(rx) => rx.await.ok(),
                Err(_) => None,
            };
            let node = me.node_address.clone();
            me.on_lease_reply(key, daemon, node, request, reply).await;
        });
    }

    async fn on_lease_reply(
        self: Arc<Self>,
        key: Key,
        daemon: Arc<RpcPeer>,
        node: String,
        request: RequestLease,
        reply: Option<Body>,
    ) {
        let kind = match &reply {
            Some(Body::Unschedulable(_)) => ObjectKind::Unschedulable,
            _ => ObjectKind::SystemError,
        };
        match reply {
            Some(Body::Spillback(s)) => {
                // Another node fits: ask its daemon, which grants or queues
                // but never sends us on again.
                let remote = self.peers.get(&s.address).await;
                let me = self.clone();
                let request = RequestLease {
                    spilled: true,
                    ..request
                };
                let reply = match &remote {
                    Ok(peer) => match peer.start_call(Body::RequestLease(request.clone())) {
                        Ok(rx) => rx.await.ok(),
                        Err(_) => None,
                    },
                    Err(_) => None,
                };
                match (remote, reply) {
                    (Ok(peer), Some(reply)) => {
                        Box::pin(me.on_lease_reply(key, peer, s.address, request, Some(reply)))
                            .await
                    }
                    _ => {
                        // That node is gone: ask our own node again.
                        let mut st = self.submit.lock();
                        if let Some(ks) = st.keys.get_mut(&key) {
                            ks.requests = ks.requests.saturating_sub(1);
                        }
                        self.pump(&mut st, &key);
                    }
                }
            }
            Some(Body::LeaseGranted(g)) => {
                let peer = self.peers.get(&g.address).await;
                let mut st = self.submit.lock();
                let ks = st.keys.entry(key.clone()).or_default();
                ks.requests = ks.requests.saturating_sub(1);
                match peer {
                    Ok(peer) => {
                        ks.leases.insert(
                            g.lease_id,
                            Lease {
                                daemon: daemon.clone(),
                                node,
                                address: g.address.clone(),
                                worker_id: WorkerId::from_bytes(&g.worker_id).unwrap_or_default(),
                                peer,
                                gpu_ids: g.gpu_ids,
                                in_flight: 0,
                                idle_since: None,
                                calls_left: (key.2 > 0).then_some(key.2),
                            },
                        );
                    }
                    Err(_) => {
                        daemon.send(Body::ReturnLease(ReturnLease {
                            lease_id: g.lease_id,
                            kill_worker: true,
                        }));
                    }
                }
                self.pump(&mut st, &key);
            }
            Some(Body::ErrorReply(e)) | Some(Body::Unschedulable(e)) => {
                let mut st = self.submit.lock();
                let failed: Vec<Task> = match st.keys.get_mut(&key) {
                    Some(ks) => {
                        ks.requests = ks.requests.saturating_sub(1);
                        let ids: Vec<TaskId> = ks.queue.drain(..).collect();
                        ids.iter().filter_map(|id| st.tasks.remove(id)).collect()
                    }
                    None => Vec::new(),
                };
                drop(st);
                for task in failed {
                    self.finish(&task, |_| error_object(kind, e.message.clone()));
                }
            }
            _ => {} // The daemon is gone; daemon_lost fails everything.
        }
    }

    /// One timer for all leases: returns those idle for [`LEASE_IDLE`], and
    /// sleeps until the next one would be (rather than a timer per task).
    fn reap_idle_leases_later(self: &Arc<Self>, after: std::time::Duration) {
        let me = self.clone();
        self.handle.spawn(async move {
            tokio::time::sleep(after).await;
            let mut st = me.submit.lock();
            let now = std::time::Instant::now();
            let mut next: Option<std::time::Duration> = None;
            for ks in st.keys.values_mut() {
                let queue_empty = ks.queue.is_empty();
                let mut expired = Vec::new();
                for (lease_id, lease) in &ks.leases {
                    let Some(since) = lease.idle_since.filter(|_| lease.in_flight == 0) else {
                        continue;
                    };
                    let idle = now.duration_since(since);
                    if idle >= LEASE_IDLE && queue_empty {
                        expired.push(*lease_id);
                    } else {
                        let left = LEASE_IDLE
                            .saturating_sub(idle)
                            .max(std::time::Duration::from_millis(1));
                        next = Some(next.map_or(left, |n| n.min(left)));
                    }
                }
                for lease_id in expired {
                    if let Some(lease) = ks.leases.remove(&lease_id) {
                        lease.daemon.send(Body::ReturnLease(ReturnLease {
                            lease_id,
                            kill_worker: false,
                        }));
                    }
                }
            }
            match next {
                Some(after) => me.reap_idle_leases_later(after),
                None => st.reaper_armed = false,
            }
        });
    }

    /// Gives back every lease that has nothing to run (the daemon asked).
    pub(crate) fn return_idle_leases(&self) {
        let mut st = self.submit.lock();
        for ks in st.keys.values_mut() {
            if !ks.queue.is_empty() {
                continue;
            }
            let idle: Vec<u64> = ks
                .leases
                .iter()
                .filter(|(_, l)| l.in_flight == 0)
                .map(|(id, _)| *id)
                .collect();
            for lease_id in idle {
                if let Some(lease) = ks.leases.remove(&lease_id) {
                    lease.daemon.send(Body::ReturnLease(ReturnLease {
                        lease_id,
                        kill_worker: false,
                    }));
                }
            }
        }
    }

    /// Cancels a task this process submitted: dropped from the queue if it
    /// has not started, interrupted (or its worker killed, with `force`) if
    /// it runs. Also cancels the tasks it submitted, with `recursive`.
    /// Whether `task_id` is a task this process submitted and that has not
    /// finished.
    pub(crate) fn submitted(&self, task_id: TaskId) -> bool {
        self.submit.lock().tasks.contains_key(&task_id)
    }

    pub(crate) fn cancel_task(self: &Arc<Self>, task_id: TaskId, force: bool, recursive: bool) {
        let mut st = self.submit.lock();
        let Some(task) = st.tasks.get_mut(&task_id) else {
            return;
        };
        task.cancelled = true;
        let (lease, key) = (task.lease, task.key.clone());
        match lease {
            None => {
                let task = st.tasks.remove(&task_id).expect("present");
                if let Some(ks) = st.keys.get_mut(&task.key) {
                    ks.queue.retain(|t| *t != task_id);
                }
                drop(st);
                self.finish(&task, |_| cancelled(&task.spec));
            }
            Some(lease_id) => {
                let lease = st.keys.get(&key).and_then(|ks| ks.leases.get(&lease_id));
                let Some(lease) = lease else { return };
                if force {
                    let body = Body::KillWorker(KillWorker {
                        worker_id: lease.worker_id.0.to_vec(),
                    });
                    let _ = lease.daemon.start_call(body);
                } else {
                    lease.peer.send(Body::CancelTask(CancelTask {
                        task_id: task_id.0.to_vec(),
                        force,
                        recursive,
                    }));
                }
            }
        }
    }

    /// Cancels every unfinished task that `parent` submitted.
    pub(crate) fn cancel_children(self: &Arc<Self>, parent: TaskId, force: bool) {
        let children: Vec<TaskId> = self
            .submit
            .lock()
            .tasks
            .iter()
            .filter(|(_, t)| t.parent == Some(parent))
            .map(|(id, _)| *id)
            .collect();
        for child in children {
            self.cancel_task(child, force, true);
        }
    }

    /// Fails every task not yet finished (the runtime is going away).
    pub(crate) fn fail_all_tasks(&self, message: &str) {
        let tasks: Vec<Task> = {
            let mut st = self.submit.lock();
            st.keys.clear();
            st.tasks.drain().map(|(_, t)| t).collect()
        };
        for task in tasks {
            self.finish(&task, |_| error_object(ObjectKind::SystemError, message));
        }
    }
}

fn cancelled(spec: &TaskSpec) -> Object {
    error_object(
        ObjectKind::Cancelled,
        format!("Task '{}' was cancelled.", spec.function_name),
    )
}

fn missing_return(spec: &TaskSpec) -> Object {
    error_object(
        ObjectKind::SystemError,
        format!(
            "task '{}' sent fewer return values than num_returns={}",
            spec.function_name, spec.num_returns
        ),
    )
}
