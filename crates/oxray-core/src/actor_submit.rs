//! Calls on actors: each caller keeps one ordered queue per actor and pushes
//! calls straight to the actor's worker, in submission order, pipelined.
//! Where the actor lives comes from the control service, asked again when
//! the connection breaks (the actor may have been restarted elsewhere).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use oxray_common::{ActorId, Error, ObjectId, ResourceSet, Result, TaskId};
use oxray_proto::rpc::RpcPeer;
use oxray_proto::*;

use crate::core::Inner;
use crate::objects::{error_object, ObjectKind};

/// A method call on an actor, as the binding hands it over.
#[derive(Clone, Debug)]
pub struct ActorCallRequest {
    /// The actor called.
    pub actor_id: ActorId,
    /// The method to run.
    pub method_name: String,
    /// `Class.method`, for logs and errors.
    pub function_name: String,
    /// The pickled `(args, kwargs)`, with top-level refs replaced by slots.
    pub args: Bytes,
    /// The top-level ref arguments, in slot order (resolved before the call).
    pub ref_args: Vec<ObjectId>,
    /// How many objects the call returns.
    pub num_returns: u32,
    /// Times a call interrupted by the actor's death is run again on the
    /// restarted actor; -1 forever.
    pub max_task_retries: i32,
    /// Refs nested inside `args`.
    pub args_nested: Vec<ObjectRefMsg>,
    /// Pickled `retry_exceptions` (empty: exceptions are not retried):
    /// which exceptions the call is run again for, within
    /// `max_task_retries`.
    pub retry_exceptions: Bytes,
    /// Calls this process may have queued on the actor before the next
    /// fails with [`Error::PendingCallsLimitExceeded`]; 0 for no limit.
    pub max_pending_calls: u32,
    /// The actor's class name, for errors.
    pub class_name: String,
    /// What the values a generator method yields become.
    pub yields: crate::streams::Yields,
}

/// The method name of the call that ends an actor after the calls before it.
pub(crate) const TERMINATE_METHOD: &str = "__oxray_terminate__";

/// The call that ends `actor` once the calls sent before it are done.
pub(crate) fn terminate_call(actor: ActorId) -> ActorCallRequest {
    ActorCallRequest {
        actor_id: actor,
        method_name: TERMINATE_METHOD.into(),
        function_name: TERMINATE_METHOD.into(),
        args: Bytes::new(),
        ref_args: Vec::new(),
        num_returns: 0,
        max_task_retries: 0,
        args_nested: Vec::new(),
        retry_exceptions: Bytes::new(),
        max_pending_calls: 0,
        class_name: String::new(),
        yields: Default::default(),
    }
}

/// A new actor, as the binding hands it over.
#[derive(Clone, Debug)]
pub struct ActorCreateRequest {
    /// The new actor's id.
    pub actor_id: ActorId,
    /// Content hash of the pickled class (a key of the function table).
    pub class_id: Vec<u8>,
    /// The class's name, for listings and errors.
    pub class_name: String,
    /// The constructor's pickled `(args, kwargs)`, refs replaced by slots.
    pub args: Bytes,
    /// The constructor's top-level ref arguments, in slot order.
    pub ref_args: Vec<ObjectId>,
    /// What its worker holds while it lives.
    pub resources: ResourceSet,
    /// Its name (empty: unnamed), unique within `namespace`.
    pub name: String,
    /// The namespace its name lives in.
    pub namespace: String,
    /// Outlives the process that created it.
    pub detached: bool,
    /// Restarts allowed after its process dies; -1 for no limit.
    pub max_restarts: i32,
    /// Calls it runs at once.
    pub max_concurrency: u32,
    /// With a name already taken, return that actor instead of failing.
    pub get_if_exists: bool,
    /// Pickled handle metadata, for `get_actor`.
    pub handle: Vec<u8>,
    /// Refs nested inside `args`.
    pub args_nested: Vec<ObjectRefMsg>,
    /// How the actor picks its node.
    pub placement: crate::submit::Placement,
    /// The placement group it runs in, and whether the tasks it submits
    /// do too (empty id: none).
    pub placement_group: (Vec<u8>, bool),
    /// Environment variables its worker runs with (its `runtime_env`'s).
    pub env_vars: std::collections::BTreeMap<String, String>,
}

/// The callers' side of every actor this process calls.
#[derive(Default)]
pub(crate) struct ActorSubmitState {
    actors: HashMap<ActorId, ActorQueue>,
}

#[derive(Default)]
struct ActorQueue {
    peer: Option<Arc<RpcPeer>>,
    /// Where `peer` runs: its worker's address and node.
    address: String,
    node_id: Vec<u8>,
    /// The incarnation `peer` talks to.
    incarnation: u32,
    resolving: bool,
    dead: Option<Object>,
    /// Calls not yet sent, in submission order.
    queue: VecDeque<TaskId>,
    calls: HashMap<TaskId, Call>,
    next_seq: u64,
}

struct Call {
    spec: TaskSpec,
    seq: u64,
    resolved: bool,
    retries_left: i32,
    /// Sent to an incarnation that died before answering.
    interrupted: bool,
}

impl ActorSubmitState {
    /// The addresses of the actors called here that run on `nodes`.
    pub(crate) fn workers_on(&self, nodes: &[Vec<u8>]) -> Vec<String> {
        self.actors
            .values()
            .filter(|q| q.peer.is_some() && nodes.contains(&q.node_id))
            .map(|q| q.address.clone())
            .collect()
    }

    /// The calls not finished yet, for `list_tasks`.
    pub(crate) fn live_calls(&self) -> Vec<TaskEntry> {
        use crate::task_log::{entry_of, state};
        self.actors
            .values()
            .flat_map(|q| {
                q.calls.iter().map(|(id, call)| {
                    let state = if !call.resolved {
                        state::PENDING_ARGS
                    } else if q.queue.contains(id) {
                        state::PENDING_NODE
                    } else {
                        state::SUBMITTED
                    };
                    entry_of(&call.spec, state)
                })
            })
            .collect()
    }
}

impl Inner {
    /// Registers the actor with the control service, which starts it.
    /// Returns the actor's info (for `get_if_exists`, the existing one's).
    pub(crate) fn create_actor(self: &Arc<Self>, req: ActorCreateRequest) -> Result<ActorInfo> {
        let task_id = self.next_task_id();
        let mut resolved = Vec::with_capacity(req.ref_args.len());
        for id in &req.ref_args {
            let value = self.driver.block_on(self.resolve(*id))?;
            self.escape_nested(&value);
            resolved.push((*value).clone());
            // A restart runs the constructor again: its arguments must
            // outlive the caller's refs.
            self.refs.mark_escaped(id);
        }
        for id in req
            .args_nested
            .iter()
            .filter_map(|r| ObjectId::from_bytes(&r.id))
        {
            self.refs.mark_escaped(&id);
        }
        let spec = TaskSpec {
            task_id: task_id.0.to_vec(),
            job_id: self.job_id,
            function_id: req.class_id,
            function_name: req.class_name.clone(),
            args: req.args,
            resolved_args: resolved,
            num_returns: 1,
            owner: self.address.to_string(),
            actor_id: req.actor_id.0.to_vec(),
            actor_creation: true,
            max_concurrency: req.max_concurrency,
            namespace: req.namespace.clone(),
            args_nested: req.args_nested.clone(),
            placement_group_id: req.placement_group.0.clone(),
            capture_child_tasks: req.placement_group.1,
            env_vars: req.env_vars.clone(),
            resources: crate::submit::encoded_amounts(&req.resources),
            ..Default::default()
        };
        let body = Body::CreateActor(CreateActor {
            spec: Some(spec),
            resources: req.resources.to_units(),
            name: req.name,
            namespace: req.namespace,
            detached: req.detached,
            max_restarts: req.max_restarts,
            get_if_exists: req.get_if_exists,
            handle: req.handle,
            class_name: req.class_name,
            strategy: req.placement.to_wire(),
        });
        match self.block_on(self.daemon.call(body)) {
            Ok(Body::ActorInfo(info)) => Ok(info),
            Ok(other) => Err(crate::core::unexpected(other)),
            Err(Error::Rejected(message)) => Err(Error::InvalidArgument(message)),
            Err(e) => Err(e),
        }
    }

    /// Submits a method call; returns its return ids, each holding one
    /// reference for the caller.
    pub(crate) fn submit_actor_task(
        self: &Arc<Self>,
        req: ActorCallRequest,
    ) -> Result<Vec<ObjectId>> {
        if req.max_pending_calls > 0 {
            let st = self.actor_submit.lock();
            let pending = st.actors.get(&req.actor_id).map_or(0, |q| q.calls.len());
            if pending >= req.max_pending_calls as usize {
                return Err(Error::PendingCallsLimitExceeded {
                    method: req.method_name,
                    actor: format!("Actor({}, {})", req.class_name, req.actor_id.hex()),
                    limit: req.max_pending_calls,
                });
            }
        }
        let task_id = self.next_task_id();
        let returns =
            self.expect_returns(task_id, req.num_returns, &req.ref_args, &req.args_nested);
        let spec = TaskSpec {
            task_id: task_id.0.to_vec(),
            job_id: self.job_id,
            function_name: req.function_name,
            args: req.args,
            num_returns: req.num_returns,
            owner: self.address.to_string(),
            actor_id: req.actor_id.0.to_vec(),
            method_name: req.method_name,
            args_nested: req.args_nested,
            retry_exceptions: req.retry_exceptions,
            returns_kind: req.yields.kind as i32,
            created_us: crate::task_log::unix_micros(),
            ..Default::default()
        };
        self.open_stream(task_id, req.yields);
        let resolved = req.ref_args.is_empty();
        {
            let mut st = self.actor_submit.lock();
            let q = st.actors.entry(req.actor_id).or_default();
            let seq = q.next_seq;
            q.next_seq += 1;
            q.calls.insert(
                task_id,
                Call {
                    spec,
                    seq,
                    resolved,
                    retries_left: req.max_task_retries,
                    interrupted: false,
                },
            );
            q.queue.push_back(task_id);
            if resolved {
                self.pump_actor(q, req.actor_id);
            }
        }
        if !resolved {
            let me = self.clone();
            let actor = req.actor_id;
            self.handle
                .spawn(async move { me.resolve_actor_call(actor, task_id, req.ref_args).await });
        }
        Ok(returns)
    }

    async fn resolve_actor_call(
        self: Arc<Self>,
        actor: ActorId,
        task_id: TaskId,
        args: Vec<ObjectId>,
    ) {
        let (values, failed) = self.resolve_args(&args).await;
        let mut st = self.actor_submit.lock();
        let Some(q) = st.actors.get_mut(&actor) else {
            return;
        };
        if let Some(err) = failed {
            if let Some(call) = q.calls.remove(&task_id) {
                q.queue.retain(|t| *t != task_id);
                drop(st);
                self.finish_call(&call.spec, |_| (*err).clone());
            }
            return;
        }
        if let Some(call) = q.calls.get_mut(&task_id) {
            call.spec.resolved_args = values.iter().map(|v| (**v).clone()).collect();
            call.resolved = true;
        }
        self.pump_actor(q, actor);
    }

    /// Sends what can be sent, or finds out where the actor is first.
    fn pump_actor(self: &Arc<Self>, q: &mut ActorQueue, actor: ActorId) {
        if let Some(death) = &q.dead {
            let calls: Vec<Call> = q
                .queue
                .drain(..)
                .filter_map(|t| q.calls.remove(&t))
                .collect();
            for call in calls {
                self.finish_call(&call.spec, |_| death.clone());
            }
            return;
        }
        let Some(peer) = q.peer.clone() else {
            if !q.resolving {
                q.resolving = true;
                self.locate_actor(actor, q.incarnation);
            }
            return;
        };
        while let Some(&task_id) = q.queue.front() {
            let Some(call) = q.calls.get(&task_id) else {
                q.queue.pop_front();
                continue;
            };
            if !call.resolved {
                break;
            }
            q.queue.pop_front();
            let me = self.clone();
            let incarnation = q.incarnation;
            let spec = self.lend_spec(&call.spec, &q.address);
            peer.call_with(Body::PushTask(spec), move |reply| {
                me.on_actor_reply(actor, task_id, incarnation, reply)
            });
        }
    }

    fn on_actor_reply(
        self: &Arc<Self>,
        actor: ActorId,
        task_id: TaskId,
        incarnation: u32,
        reply: Option<Body>,
    ) {
        let mut st = self.actor_submit.lock();
        let Some(q) = st.actors.get_mut(&actor) else {
            return;
        };
        match reply {
            Some(Body::TaskReply(r)) => {
                if r.retryable {
                    // An exception `retry_exceptions` allows: run the call
                    // again, before the calls queued after it.
                    if let Some(call) = q.calls.get_mut(&task_id).filter(|c| c.retries_left != 0) {
                        call.retries_left = (call.retries_left - 1).max(-1);
                        q.queue.push_front(task_id);
                        self.pump_actor(q, actor);
                        return;
                    }
                }
                let Some(call) = q.calls.remove(&task_id) else {
                    return;
                };
                drop(st);
                let mut returns = r.returns.into_iter();
                self.finish_call(&call.spec, |_| {
                    returns.next().unwrap_or_else(|| {
                        error_object(ObjectKind::SystemError, "missing return value")
                    })
                });
            }
            _ => {
                // The actor's process is gone: the call waits, in order, for
                // the control service to say whether the actor comes back.
                if q.incarnation == incarnation && q.peer.is_some() {
                    q.peer = None;
                    q.incarnation = incarnation + 1;
                }
                if let Some(call) = q.calls.get_mut(&task_id) {
                    call.interrupted = true;
                    let seq = call.seq;
                    let pos = q
                        .queue
                        .iter()
                        .position(|t| q.calls.get(t).is_some_and(|c| c.seq > seq));
                    match pos {
                        Some(p) => q.queue.insert(p, task_id),
                        None => q.queue.push_back(task_id),
                    }
                }
                self.pump_actor(q, actor);
            }
        }
    }

    fn locate_actor(self: &Arc<Self>, actor: ActorId, min_incarnation: u32) {
        let call = self.daemon.start_call(Body::GetActorInfo(GetActorInfo {
            actor_id: actor.0.to_vec(),
            wait: true,
            min_incarnation,
            ..Default::default()
        }));
        let me = self.clone();
        self.handle.spawn(async move {
            let reply = match call {
                Ok(rx) => rx.await.ok(),
                Err(_) => None,
            };
            let (peer, death) = match reply {
                Some(Body::ActorInfo(info)) if info.state == ActorState::Alive as i32 => {
                    match me.peers.get(&info.address).await {
                        Ok(peer) => (Some((peer, info)), None),
                        // Gone again already: ask once more.
                        Err(_) => (None, None),
                    }
                }
                Some(Body::ActorInfo(info)) => (None, Some(death_object(&info))),
                Some(Body::ErrorReply(e)) => {
                    (None, Some(error_object(ObjectKind::ActorDied, e.message)))
                }
                _ => (
                    None,
                    Some(error_object(
                        ObjectKind::ActorDied,
                        "the oxray daemon is gone",
                    )),
                ),
            };
            let mut st = me.actor_submit.lock();
            let Some(q) = st.actors.get_mut(&actor) else {
                return;
            };
            q.resolving = false;
            match (peer, death) {
                (Some((peer, info)), _) => {
                    q.peer = Some(peer);
                    q.incarnation = info.incarnation;
                    q.address = info.address;
                    q.node_id = info.node_id;
                    me.settle_interrupted(q);
                }
                (None, Some(death)) => q.dead = Some(death),
                (None, None) => {}
            }
            me.pump_actor(q, actor);
        });
    }

    /// Calls cut short by a restart run again if their retries allow.
    fn settle_interrupted(&self, q: &mut ActorQueue) {
        let mut failed = Vec::new();
        for task_id in &q.queue {
            let Some(call) = q.calls.get_mut(task_id) else {
                continue;
            };
            if !call.interrupted {
                continue;
            }
            call.interrupted = false;
            if call.retries_left != 0 {
                if call.retries_left > 0 {
                    call.retries_left -= 1;
                }
                // The interrupted attempt stays listed (Ray lists each attempt).
                let died = error_object(ObjectKind::ActorDied, String::new());
                self.finished.record(&call.spec, Some(&died));
                call.spec.attempt += 1;
            } else {
                failed.push(*task_id);
            }
        }
        for task_id in failed {
            q.queue.retain(|t| *t != task_id);
            if let Some(call) = q.calls.remove(&task_id) {
                self.finish_call(&call.spec, |_| {
                    error_object(
                        ObjectKind::ActorDied,
                        format!(
                            "The actor died unexpectedly before finishing this task ({}). It was restarted, but \
                             max_task_retries does not allow running this call again.",
                            call.spec.function_name
                        ),
                    )
                });
            }
        }
    }

    fn finish_call(&self, spec: &TaskSpec, value: impl FnMut(u32) -> Object) {
        self.store_returns(spec, value);
    }

    /// Kills an actor (through the control service).
    pub(crate) fn kill_actor(&self, actor: ActorId, no_restart: bool) -> Result<()> {
        let body = Body::KillActor(KillActor {
            actor_id: actor.0.to_vec(),
            no_restart,
        });
        self.block_on(self.daemon.call(body)).map(|_| ())
    }

    /// Looks an actor up (by name when `actor` is `None`).
    pub(crate) fn actor_info(
        &self,
        actor: Option<ActorId>,
        name: &str,
        namespace: &str,
    ) -> Result<ActorInfo> {
        let body = Body::GetActorInfo(GetActorInfo {
            actor_id: actor.map(|a| a.0.to_vec()).unwrap_or_default(),
            name: name.to_string(),
            namespace: namespace.to_string(),
            wait: false,
            min_incarnation: 0,
        });
        match self.block_on(self.daemon.call(body)) {
            Ok(Body::ActorInfo(info)) => Ok(info),
            Ok(other) => Err(crate::core::unexpected(other)),
            Err(Error::Rejected(message)) => Err(Error::InvalidArgument(message)),
            Err(e) => Err(e),
        }
    }

    /// Every actor of the cluster.
    pub(crate) fn list_actors(&self) -> Result<Vec<ActorInfo>> {
        match self.block_on(self.daemon.call(Body::ListActors(ListActors::default())))? {
            Body::ListActors(l) => Ok(l.actors),
            other => Err(crate::core::unexpected(other)),
        }
    }

    /// Tells the control service this actor is ending itself, and waits for
    /// it to be recorded.
    pub(crate) fn actor_exiting(&self, actor: ActorId) -> Result<()> {
        let body = Body::ActorExiting(ActorExiting {
            actor_id: actor.0.to_vec(),
        });
        self.block_on(self.daemon.call(body)).map(|_| ())
    }
}

/// The error every call on a dead actor gets.
fn death_object(info: &ActorInfo) -> Object {
    match &info.death_error {
        Some(error) => Object {
            data: error.data.clone(),
            metadata: Bytes::from_static(b"D"),
            nested: Vec::new(),
        },
        None => error_object(ObjectKind::ActorDied, info.death_message.clone()),
    }
}
