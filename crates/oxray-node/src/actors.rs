//! Actor life cycles, run by the control service on the head: starting an
//! actor on a leased worker, restarting it after a crash, killing it, and
//! telling callers where it lives.

use oxray_common::{ActorId, ResourceSet};
use oxray_control::ActorRecord;
use oxray_proto::frame::FrameWriter;
use oxray_proto::*;

use crate::daemon::{ActorWaiter, Node, PendingLease, Requester, State};
use crate::pool::kill_pid;

/// The metadata byte of an object holding a pickled `RayTaskError`.
const TASK_ERROR_KIND: u8 = b'T';

impl Node {
    /// Registers an actor and queues the lease that will start it.
    pub(crate) fn create_actor(&self, req: u64, c: CreateActor, writer: &FrameWriter) {
        let reject = |message: String| {
            writer.reply(req, Body::ErrorReply(ErrorReply { message }));
        };
        let Some(spec) = c.spec else {
            return reject("CreateActor without a creation task".into());
        };
        let Some(id) = ActorId::from_bytes(&spec.actor_id) else {
            return reject("CreateActor with a bad actor id".into());
        };
        let mut st = self.state.lock();
        if !c.name.is_empty() {
            if let Some(existing) = st.actors.by_name(&c.namespace, &c.name) {
                if c.get_if_exists {
                    let info = st
                        .actors
                        .get(&existing)
                        .map(|a| a.info.clone())
                        .unwrap_or_default();
                    writer.reply(req, Body::ActorInfo(info));
                } else {
                    reject(format!(
                        "The name {} (namespace={}) is already taken. Please use a different name or get the \
                         existing actor using oxray.get_actor('{}', namespace='{}')",
                        c.name, c.namespace, c.name, c.namespace
                    ));
                }
                return;
            }
        }
        let resources = ResourceSet::from_units(c.resources.iter());
        let owner = spec.owner.clone();
        let info = ActorInfo {
            actor_id: id.0.to_vec(),
            state: ActorState::Pending as i32,
            handle: c.handle,
            name: c.name,
            namespace: c.namespace,
            class_name: c.class_name.clone(),
            ..Default::default()
        };
        let record = ActorRecord {
            strategy: c.strategy.clone(),
            remote: None,
            info: info.clone(),
            spec,
            resources: resources.clone(),
            detached: c.detached,
            max_restarts: c.max_restarts,
            owner,
        };
        if st.actors.register(id, record).is_err() {
            return reject("actor name raced with another registration; retry".into());
        }
        st.pending.push_back(PendingLease {
            requester: Requester::Actor(id),
            shape: resources,
            description: c.class_name,
            warned: false,
            strategy: c.strategy.clone(),
            spilled: false,
            preferred: String::new(),
            for_actor: true,
            env_key: 0,
        });
        self.journal_actors_now(&mut st);
        writer.reply(req, Body::ActorInfo(info));
        self.dispatch(&mut st);
    }

    /// A worker was leased for actor `id`: push its creation task.
    pub(crate) fn start_actor(
        &self,
        st: &mut State,
        id: ActorId,
        address: String,
        pid: u32,
        gpu_ids: Vec<u32>,
    ) {
        let Some(record) = st.actors.get_mut(&id) else {
            return;
        };
        let remote = record.remote.is_some();
        record.info.pid = pid;
        if !remote {
            record.info.node_id = self.node_id.0.to_vec();
        }
        let incarnation = record.info.incarnation;
        let mut spec = record.spec.clone();
        spec.gpu_ids = gpu_ids;
        spec.attempt = incarnation;
        let me = self.me();
        let peers = self.link.as_ref().map(|l| l.peers.clone());
        tokio::spawn(async move {
            let result = async {
                // Workers on other nodes are reached through the pool (one
                // connection per worker); this node's over a connection of
                // their own, as before.
                let peer = match &peers {
                    Some(peers) if remote => peers.get(&address).await?,
                    Some(peers) => peers.dialer().connect(&address).await?.0,
                    None => {
                        oxray_proto::transport::Dialer::default()
                            .connect(&address)
                            .await?
                            .0
                    }
                };
                let reply = peer.call(Body::PushTask(spec)).await?;
                Ok::<_, oxray_common::Error>((peer, reply))
            }
            .await;
            match result {
                Ok((peer, reply)) => {
                    me.actor_created(id, incarnation, address, Some(reply));
                    if remote {
                        // A worker on another node: its connection closing
                        // is how the head learns that it died.
                        peer.closed().await;
                        me.remote_actor_lost(id, incarnation, pid);
                    }
                }
                Err(_) if remote => me.remote_actor_lost(id, incarnation, pid),
                Err(_) => me.actor_created(id, incarnation, address, None),
            }
        });
    }

    /// The worker of a remote actor is gone: restart or bury the actor.
    pub(crate) fn remote_actor_lost(&self, id: ActorId, incarnation: u32, pid: u32) {
        let mut st = self.state.lock();
        if st
            .actors
            .get(&id)
            .is_some_and(|a| a.info.incarnation == incarnation)
        {
            if let Some(a) = st.actors.get_mut(&id) {
                a.remote = None;
            }
            self.actor_worker_died(&mut st, id, pid);
            self.dispatch(&mut st);
        }
    }

    /// Actor `id` goes to another node: lease a worker there, then start
    /// it on that worker. If the node cannot, the request queues here again.
    pub(crate) fn place_actor_remotely(
        &self,
        id: ActorId,
        p: PendingLease,
        node_id: oxray_common::NodeId,
        node: String,
    ) {
        let Some(link) = &self.link else { return };
        let peers = link.peers.clone();
        let me = self.me();
        tokio::spawn(async move {
            let request = RequestLease {
                resources: p.shape.to_units(),
                description: p.description.clone(),
                strategy: p.strategy.clone(),
                spilled: true,
                preferred: String::new(),
                for_actor: true,
                env_key: 0,
            };
            let reply = match peers.get(&node).await {
                Ok(peer) => peer.call(Body::RequestLease(request)).await.ok(),
                Err(_) => None,
            };
            let unwanted_lease = {
                let mut st = me.state.lock();
                let wanted = st
                    .actors
                    .get(&id)
                    .is_some_and(|a| a.state() != ActorState::Dead);
                match reply {
                    Some(Body::LeaseGranted(g)) if wanted => {
                        if let Some(a) = st.actors.get_mut(&id) {
                            a.info.node_id = node_id.0.to_vec();
                            a.remote = Some((node.clone(), g.lease_id));
                        }
                        me.start_actor(&mut st, id, g.address, g.pid, g.gpu_ids);
                        None
                    }
                    Some(Body::LeaseGranted(g)) => Some(g.lease_id),
                    Some(Body::ErrorReply(e)) if wanted => {
                        me.actor_failed(&mut st, id, e.message);
                        None
                    }
                    _ if wanted => {
                        // The node went away: try again, elsewhere.
                        st.pending.push_back(p);
                        me.dispatch(&mut st);
                        None
                    }
                    _ => None,
                }
            };
            if let Some(lease_id) = unwanted_lease {
                if let Ok(peer) = peers.get(&node).await {
                    peer.send(Body::ReturnLease(ReturnLease {
                        lease_id,
                        kill_worker: true,
                    }));
                }
            }
        });
    }

    fn actor_created(&self, id: ActorId, incarnation: u32, address: String, reply: Option<Body>) {
        let mut st = self.state.lock();
        let Some(record) = st.actors.get_mut(&id) else {
            return;
        };
        if record.info.incarnation != incarnation || record.state() == ActorState::Dead {
            return;
        }
        let Some(Body::TaskReply(reply)) = reply else {
            return; // The worker died; its exit restarts or buries the actor.
        };
        let init_error = reply
            .returns
            .into_iter()
            .find(|o| o.metadata.first() == Some(&TASK_ERROR_KIND));
        match init_error {
            Some(error) => {
                record.info.death_error = Some(error);
                st.actors.mark_dead(
                    &id,
                    "The actor died because of an error raised in its creation task".into(),
                );
                self.kill_actor_worker(&st, &id);
            }
            None => {
                record.info.state = ActorState::Alive as i32;
                record.info.address = address;
            }
        }
        self.notify_actor_waiters(&mut st, id);
    }

    /// Answers a lookup by id or by name, at once or (with `wait`) once the
    /// actor is alive or dead.
    pub(crate) fn get_actor_info(&self, req: u64, g: GetActorInfo, writer: &FrameWriter) {
        let mut st = self.state.lock();
        let id = match ActorId::from_bytes(&g.actor_id) {
            Some(id) => Some(id),
            None => st.actors.by_name(&g.namespace, &g.name),
        };
        let Some(record) = id.and_then(|id| st.actors.get(&id)) else {
            let message = if g.name.is_empty() {
                "no such actor".to_string()
            } else {
                format!(
                    "Failed to look up actor with name '{}'. This could because 1. You are trying to look up a \
                     named actor you didn't create. 2. The named actor died. 3. You did not use a namespace \
                     matching the namespace of the actor.",
                    g.name
                )
            };
            writer.reply(req, Body::ErrorReply(ErrorReply { message }));
            return;
        };
        if !g.wait || is_settled(&record.info, g.min_incarnation) {
            let info = record.info.clone();
            self.journal_actors_now(&mut st);
            writer.reply(req, Body::ActorInfo(info));
            return;
        }
        let actor = id.expect("found");
        st.actor_waiters
            .entry(actor)
            .or_default()
            .push(ActorWaiter {
                writer: writer.clone(),
                request: req,
                min_incarnation: g.min_incarnation,
            });
    }

    /// Kills an actor's worker; with `no_restart` the actor stays dead.
    /// False when no such actor is known.
    pub(crate) fn kill_actor(&self, k: KillActor) -> bool {
        let Some(id) = ActorId::from_bytes(&k.actor_id) else {
            return false;
        };
        let mut st = self.state.lock();
        if st.actors.get(&id).is_none() {
            return false;
        }
        if k.no_restart {
            st.actors
                .mark_dead(&id, "The actor was killed by oxray.kill().".into());
        }
        self.kill_actor_worker(&st, &id);
        self.notify_actor_waiters(&mut st, id);
        true
    }

    /// The actor ends itself (`exit_actor`): it must not be restarted.
    /// False when no such actor is known.
    pub(crate) fn actor_exiting(&self, e: ActorExiting) -> bool {
        let Some(id) = ActorId::from_bytes(&e.actor_id) else {
            return false;
        };
        let mut st = self.state.lock();
        if st.actors.get(&id).is_none() {
            return false;
        }
        st.actors.mark_dead(
            &id,
            "The actor is dead because its worker process has died. Worker exit type: INTENDED_USER_EXIT \
             Worker exit detail: the actor exited intentionally by calling exit_actor() (or \
             __ray_terminate__)."
                .into(),
        );
        self.notify_actor_waiters(&mut st, id);
        true
    }

    /// Every actor, for state listings.
    pub(crate) fn list_actors(&self) -> ListActors {
        let st = self.state.lock();
        ListActors {
            actors: st.actors.iter().map(|(_, r)| r.info.clone()).collect(),
        }
    }

    /// The worker hosting actor `id` exited: restart the actor if its
    /// budget allows, else bury it.
    pub(crate) fn actor_worker_died(&self, st: &mut State, id: ActorId, pid: u32) {
        let Some(record) = st.actors.get_mut(&id) else {
            return;
        };
        if record.state() != ActorState::Dead {
            if record.may_restart() {
                record.info.num_restarts += 1;
                record.info.incarnation += 1;
                record.info.state = ActorState::Restarting as i32;
                record.info.address.clear();
                let pending = PendingLease {
                    requester: Requester::Actor(id),
                    shape: record.resources.clone(),
                    description: record.info.class_name.clone(),
                    warned: false,
                    strategy: record.strategy.clone(),
                    spilled: false,
                    preferred: String::new(),
                    for_actor: true,
                    env_key: 0,
                };
                st.pending.push_back(pending);
            } else {
                let message = format!(
                    "The actor died unexpectedly: its worker process (pid {pid}) exited. It was restarted {} \
                     time(s) (max_restarts={}).",
                    record.info.num_restarts, record.max_restarts
                );
                st.actors.mark_dead(&id, message);
            }
        }
        self.notify_actor_waiters(st, id);
    }

    /// Actor `id` ends for good: marked dead, its worker killed.
    pub(crate) fn actor_ended(&self, st: &mut State, id: ActorId, message: String) {
        if st
            .actors
            .get(&id)
            .is_none_or(|a| a.state() == ActorState::Dead)
        {
            return;
        }
        st.actors.mark_dead(&id, message);
        self.kill_actor_worker(st, &id);
        self.notify_actor_waiters(st, id);
    }

    /// Actor `id` cannot be started at all.
    pub(crate) fn actor_failed(&self, st: &mut State, id: ActorId, message: String) {
        st.actors.mark_dead(&id, message);
        self.notify_actor_waiters(st, id);
    }

    /// A process disconnected: the non-detached actors it created die with it.
    pub(crate) fn owner_gone(&self, st: &mut State, address: &str) {
        let owned: Vec<ActorId> = st
            .actors
            .iter()
            .filter(|(_, r)| r.owner == address && !r.detached && r.state() != ActorState::Dead)
            .map(|(id, _)| *id)
            .collect();
        for id in owned {
            self.actor_ended(
                st,
                id,
                "The actor's owner (the process that created it) has exited.".into(),
            );
        }
    }

    fn kill_actor_worker(&self, st: &State, id: &ActorId) {
        if let Some(w) = st.workers.values().find(|w| w.actor == Some(*id)) {
            kill_pid(w.pid);
        }
        if let (Some((node, lease_id)), Some(link)) =
            (st.actors.get(id).and_then(|a| a.remote.clone()), &self.link)
        {
            let peers = link.peers.clone();
            tokio::spawn(async move {
                if let Ok(peer) = peers.get(&node).await {
                    peer.send(Body::ReturnLease(ReturnLease {
                        lease_id,
                        kill_worker: true,
                    }));
                }
            });
        }
    }

    /// Answers the lookups waiting for actor `id` that its state settles.
    fn notify_actor_waiters(&self, st: &mut State, id: ActorId) {
        if !st.actor_waiters.contains_key(&id) {
            return;
        }
        self.journal_actors_now(st);
        let State {
            actor_waiters,
            actors,
            ..
        } = st;
        let Some(waiters) = actor_waiters.get_mut(&id) else {
            return;
        };
        let Some(record) = actors.get(&id) else {
            actor_waiters.remove(&id);
            return;
        };
        waiters.retain(|w| {
            if is_settled(&record.info, w.min_incarnation) {
                w.writer
                    .reply(w.request, Body::ActorInfo(record.info.clone()));
                false
            } else {
                !w.writer.is_closed()
            }
        });
        if waiters.is_empty() {
            actor_waiters.remove(&id);
        }
    }
}

fn is_settled(info: &ActorInfo, min_incarnation: u32) -> bool {
    match ActorState::try_from(info.state) {
        Ok(ActorState::Dead) => true,
        Ok(ActorState::Alive) => info.incarnation >= min_incarnation,
        _ => false,
    }
}
