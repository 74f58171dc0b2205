//! The node's part in a multi-node cluster.
//!
//! The head serves the control service: other nodes register with it over
//! TCP, report their available resources (versioned), and receive the
//! cluster's resource view whenever it changes. Every other node forwards
//! the control service's requests (key-value table, actors, placement
//! groups, jobs) to the head, and tells it when one of its processes goes.
//! A node that loses the head stops: its work belongs to a cluster that is
//! gone.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oxray_common::NodeId;
use oxray_control::NodeEntry;
use oxray_proto::frame::FrameWriter;
use oxray_proto::peers::PeerPool;
use oxray_proto::rpc::RpcPeer;
use oxray_proto::transport::{self, Dialer};
use oxray_proto::*;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::ClusterConfig;
use crate::daemon::{hostname, Node, PendingLease, State};
use crate::scheduling::{view_of, ClusterView, Decision, NodeView};
use crate::NodeError;

/// How long resource changes gather before a node reports them: many
/// leases granted at once cost one report.
const PUBLISH_DELAY: Duration = Duration::from_millis(2);
/// How long the head gathers changes before sending them to every node:
/// one message per node carries every change of the period.
const BROADCAST_PERIOD: Duration = Duration::from_millis(20);
/// When requests wait, how soon placement looks at the view again.
const RECHECK: Duration = Duration::from_millis(50);

/// How often a node tells the head it is alive, and how many periods of
/// silence make the head declare it dead: a node killed outright is
/// noticed at once (its connection breaks); a frozen or cut-off one after
/// period x threshold. `OXRAY_HEALTH_CHECK_PERIOD_MS` and
/// `OXRAY_HEALTH_CHECK_FAILURE_THRESHOLD` change them.
/// How long a node keeps running without its head, trying to reconnect
/// (`OXRAY_HEAD_RECONNECT_TIMEOUT_S`, 60 s by default).
pub(crate) fn head_reconnect_timeout() -> Duration {
    let secs = std::env::var("OXRAY_HEAD_RECONNECT_TIMEOUT_S")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(60.0);
    Duration::from_secs_f64(secs)
}

/// The pause between two attempts to reach a head that went away.
const RECONNECT_PAUSE: Duration = Duration::from_millis(250);

fn health_check() -> (Duration, u32) {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    (
        Duration::from_millis(env("OXRAY_HEALTH_CHECK_PERIOD_MS", 1000).max(10)),
        env("OXRAY_HEALTH_CHECK_FAILURE_THRESHOLD", 4).max(1) as u32,
    )
}

/// What a node of a multi-node cluster keeps about the cluster.
pub(crate) struct ClusterLink {
    pub config: ClusterConfig,
    /// The connection to the head (on every other node; replaced when it
    /// reconnects after losing it).
    head: Mutex<Option<Arc<RpcPeer>>>,
    /// Connections to other nodes' daemons and processes.
    pub peers: Arc<PeerPool>,
    /// Every node's resources, for placement.
    pub view: Mutex<ClusterView>,
    /// Wakes the task that publishes this node's resource changes.
    changed: Notify,
    version: AtomicU64,
    /// Whether a second look at pending requests is scheduled.
    recheck_armed: std::sync::atomic::AtomicBool,
    /// Nodes whose entries changed since the head last published (head).
    dirty: Mutex<std::collections::HashSet<NodeId>>,
    /// When each node was last heard from (head).
    last_heard: Mutex<std::collections::HashMap<NodeId, std::time::Instant>>,
}

impl ClusterLink {
    pub(crate) fn new(config: ClusterConfig) -> Self {
        let peers = Arc::new(PeerPool::new(Dialer::new(&config.node_ip, &config.token)));
        Self {
            config,
            head: Mutex::default(),
            peers,
            view: Mutex::default(),
            changed: Notify::new(),
            version: AtomicU64::new(1),
            recheck_armed: Default::default(),
            dirty: Mutex::default(),
            last_heard: Mutex::default(),
        }
    }

    /// Node `id` changed: the head sends it to every node at the next
    /// broadcast.
    fn mark_dirty(&self, id: NodeId) {
        self.dirty.lock().insert(id);
        self.changed.notify_one();
    }

    /// Puts this node into its own view.
    pub(crate) fn seed_view(&self, me: NodeId, info: NodeInfo) {
        self.view.lock().update(me, view_of(&info));
    }
}

/// What a node tells the head about itself.
fn report_of(info: NodeInfo) -> ResourceReport {
    ResourceReport {
        node_id: info.node_id,
        version: info.version,
        available: info.available,
        total: info.total,
        pending: info.pending,
    }
}

impl Node {
    /// Whether this node serves the control service (a single-node
    /// cluster's only node is its head).
    pub(crate) fn is_head(&self) -> bool {
        self.link.as_ref().is_none_or(|l| l.config.head.is_none())
    }

    /// The connection to the head, on nodes that are not the head.
    pub(crate) fn head(&self) -> Option<Arc<RpcPeer>> {
        self.link.as_ref().and_then(|l| l.head.lock().clone())
    }

    /// This node's IP in the cluster (empty on a single-node cluster).
    pub(crate) fn ip(&self) -> &str {
        self.link.as_ref().map_or("", |l| l.config.node_ip.as_str())
    }

    /// This node as the node table shows it.
    pub(crate) fn self_info(&self, alive: bool) -> NodeInfo {
        let st = self.state.lock();
        NodeInfo {
            node_id: self.node_id.0.to_vec(),
            address: self.address.clone(),
            alive,
            total: st.ledger.total().to_units(),
            available: st.ledger.available().to_units(),
            hostname: hostname(),
            is_head: self.is_head(),
            ip: self.ip().to_string(),
            version: self
                .link
                .as_ref()
                .map_or(0, |l| l.version.fetch_add(1, Ordering::Relaxed)),
            pending: st.demands(),
            metrics_port: u32::from(self.metrics_port()),
        }
    }

    /// Accepts TCP connections, each once it proved the cluster token.
    pub(crate) async fn accept_tcp(self: Arc<Self>, listener: tokio::net::TcpListener) {
        let token: Arc<str> = Arc::from(self.link.as_ref().map_or("", |l| l.config.token.as_str()));
        while let Ok((stream, _)) = listener.accept().await {
            let (me, token) = (self.clone(), token.clone());
            tokio::spawn(async move {
                if let Some((reader, writer)) = transport::accept_tcp(stream, &token).await {
                    me.handle_connection(reader, writer, 0).await;
                }
            });
        }
    }

    /// Starts publishing resource changes and, on a node that is not the
    /// head, registers with the head.
    pub(crate) async fn join_cluster(self: Arc<Self>) -> Result<(), NodeError> {
        let Some(link) = &self.link else {
            return Ok(());
        };
        tokio::spawn(self.clone().publish_changes());
        let Some(head_addr) = link.config.head.clone() else {
            tokio::spawn(self.clone().check_node_health());
            return Ok(());
        };
        let (head, inbox) = self
            .register_with_head(&head_addr)
            .await
            .map_err(|reason| NodeError::Join {
                head: head_addr.clone(),
                reason,
            })?;
        *link.head.lock() = Some(head);
        tokio::spawn(self.clone().send_heartbeats());
        tokio::spawn(self.clone().stay_joined(head_addr, inbox));
        Ok(())
    }

    /// Registers this node with the head at `head_addr` and takes the
    /// cluster's view from its reply.
    async fn register_with_head(
        &self,
        head_addr: &str,
    ) -> Result<(Arc<RpcPeer>, tokio::sync::mpsc::UnboundedReceiver<Envelope>), String> {
        let Some(link) = &self.link else {
            return Err("not part of a multi-node cluster".into());
        };
        let (head, inbox) = RpcPeer::connect_tcp(head_addr, &link.config.token)
            .await
            .map_err(|e| e.to_string())?;
        let reply = head
            .call(Body::RegisterNode(RegisterNode {
                node: Some(self.self_info(true)),
            }))
            .await
            .map_err(|e| e.to_string())?;
        if let Body::ClusterView(view) = reply {
            link.view.lock().replace(&view.nodes, self.node_id);
        }
        Ok((head, inbox))
    }

    /// Follows the head's messages; when its connection breaks (the head
    /// died or restarts), keeps this node running — its tasks, actors and
    /// objects — and registers again as soon as a head answers at the same
    /// address, for up to [`head_reconnect_timeout`]. Stops the node after
    /// that, or when the head says this node was declared dead.
    async fn stay_joined(
        self: Arc<Self>,
        head_addr: String,
        mut inbox: tokio::sync::mpsc::UnboundedReceiver<Envelope>,
    ) {
        loop {
            if !self.follow_head(&mut inbox).await {
                return;
            }
            tracing::warn!("lost the connection to the head at {head_addr}; reconnecting");
            eprintln!("oxray: lost the connection to the head at {head_addr}; reconnecting");
            let deadline = std::time::Instant::now() + head_reconnect_timeout();
            loop {
                if std::time::Instant::now() > deadline {
                    eprintln!(
                        "oxray: the head at {head_addr} did not come back within {:?}; stopping this node",
                        head_reconnect_timeout()
                    );
                    self.shutdown();
                    return;
                }
                tokio::time::sleep(RECONNECT_PAUSE).await;
                match self.register_with_head(&head_addr).await {
                    Ok((head, fresh)) => {
                        if let Some(link) = &self.link {
                            *link.head.lock() = Some(head);
                        }
                        inbox = fresh;
                        eprintln!("oxray: reconnected to the head at {head_addr}");
                        self.resources_changed();
                        break;
                    }
                    Err(e) if e.contains("declared dead") => {
                        eprintln!("oxray: {e}; stopping this node");
                        self.shutdown();
                        return;
                    }
                    Err(_) => {}
                }
            }
        }
    }

    /// Handles the head's messages until its connection closes; false when
    /// this node must stop instead of reconnecting.
    async fn follow_head(
        &self,
        inbox: &mut tokio::sync::mpsc::UnboundedReceiver<Envelope>,
    ) -> bool {
        while let Some(env) = inbox.recv().await {
            match env.body {
                Some(Body::ClusterView(view)) => {
                    if let Some(link) = &self.link {
                        let mut v = link.view.lock();
                        if view.delta {
                            for n in &view.nodes {
                                match NodeId::from_bytes(&n.node_id) {
                                    Some(id) if id != self.node_id => {
                                        v.update(id, view_of(n));
                                    }
                                    _ => {}
                                }
                            }
                        } else {
                            v.replace(&view.nodes, self.node_id);
                        }
                    }
                    self.announce_deaths();
                    let mut st = self.state.lock();
                    self.dispatch(&mut st);
                }
                Some(Body::LogLines(l)) => self.to_local_drivers(&l, false),
                Some(Body::ProcessesGone(g)) => self.processes_gone(g.addresses),
                Some(Body::ShutdownCluster(_)) => {
                    // The head declared this node dead (it was silent
                    // too long): its work was given to others.
                    eprintln!("oxray: the head declared this node dead; stopping it");
                    self.shutdown();
                    return false;
                }
                _ => {}
            }
        }
        !self.state.lock().shutting_down
    }

    /// Reminds the head that this node is alive, every health-check period
    /// (a report of its resources, which changes nothing when they did not).
    async fn send_heartbeats(self: Arc<Self>) {
        let (period, _) = health_check();
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            if self.state.lock().shutting_down {
                return;
            }
            // While the head is away the send fails; heartbeats resume on
            // the new connection.
            if let Some(head) = self.head() {
                head.send(Body::ResourceReport(report_of(self.self_info(true))));
            }
        }
    }

    /// Declares dead the nodes the head has not heard from for the
    /// health-check threshold (head only).
    async fn check_node_health(self: Arc<Self>) {
        let Some(link) = &self.link else { return };
        let (period, threshold) = health_check();
        // Looked at four times a period, so that a silent node is declared
        // dead within a quarter period of the threshold.
        let mut tick = tokio::time::interval(period / 4);
        loop {
            tick.tick().await;
            let silent: Vec<NodeId> = link
                .last_heard
                .lock()
                .iter()
                .filter(|(_, at)| at.elapsed() > period * threshold)
                .map(|(id, _)| *id)
                .collect();
            for id in silent {
                tracing::warn!(
                    "node {} was silent for {:?}: declared dead",
                    id.hex(),
                    period * threshold
                );
                eprintln!(
                    "oxray: node {} was silent for {:?}; declaring it dead",
                    id.hex(),
                    period * threshold
                );
                let mut st = self.state.lock();
                // If it ever speaks again, it hears that it is dead.
                if let Some(c) = st.clients.values_mut().find(|c| c.node == Some(id)) {
                    c.node = None;
                    c.writer.send(Envelope {
                        id: 0,
                        body: Some(Body::ShutdownCluster(ShutdownCluster {})),
                    });
                }
                self.node_gone(&mut st, id);
            }
        }
    }

    /// This node's resources changed: publish soon.
    pub(crate) fn resources_changed(&self) {
        if let Some(link) = &self.link {
            link.changed.notify_one();
        }
    }

    /// Publishes resource changes: other nodes report their own resources
    /// to the head; the head sends what changed to every node.
    async fn publish_changes(self: Arc<Self>) {
        let Some(link) = &self.link else { return };
        let mut last_broadcast: Option<(BTreeMap<String, i64>, BTreeMap<String, i64>)> = None;
        loop {
            link.changed.notified().await;
            tokio::time::sleep(if self.is_head() {
                BROADCAST_PERIOD
            } else {
                PUBLISH_DELAY
            })
            .await;
            let info = self.self_info(true);
            link.view.lock().update(self.node_id, view_of(&info));
            match self.head() {
                Some(head) => {
                    // Sent even when equal to the last report: a lease
                    // granted and returned meanwhile leaves the resources
                    // as they were, but others counted it here until now.
                    head.send(Body::ResourceReport(report_of(info)));
                }
                None => {
                    let changed = last_broadcast.as_ref()
                        != Some(&(info.available.clone(), info.total.clone()));
                    if changed {
                        last_broadcast = Some((info.available.clone(), info.total.clone()));
                        link.dirty.lock().insert(self.node_id);
                    }
                    self.broadcast_changes();
                }
            }
        }
    }

    /// Sends the entries that changed to every other node (head only).
    fn broadcast_changes(&self) {
        let Some(link) = &self.link else { return };
        let dirty: Vec<NodeId> = link.dirty.lock().drain().collect();
        if dirty.is_empty() {
            return;
        }
        let nodes: Vec<NodeInfo> = dirty.iter().filter_map(|id| self.node_info(id)).collect();
        let view = Body::ClusterView(ClusterInfo { nodes, delta: true });
        let st = self.state.lock();
        for c in st.clients.values().filter(|c| c.node.is_some()) {
            c.writer.send(Envelope {
                id: 0,
                body: Some(view.clone()),
            });
        }
    }

    /// One node's entry, from the node table and the view (head only).
    fn node_info(&self, id: &NodeId) -> Option<NodeInfo> {
        let entry = self.control.node(id)?;
        let view = self.link.as_ref()?.view.lock();
        let n = view.get(id);
        Some(NodeInfo {
            node_id: id.0.to_vec(),
            address: entry.address,
            alive: entry.alive,
            total: n
                .map(|n| n.total.to_units())
                .unwrap_or_else(|| entry.total.to_units()),
            available: n.map(|n| n.available.to_units()).unwrap_or_default(),
            hostname: entry.hostname,
            is_head: entry.is_head,
            ip: entry.ip,
            version: n.map_or(0, |n| n.version),
            pending: n.map(|n| n.pending.clone()).unwrap_or_default(),
            metrics_port: u32::from(entry.metrics_port),
        })
    }

    /// Another node joins through connection `client` (head only).
    pub(crate) fn register_node(
        &self,
        client: u64,
        req: u64,
        r: RegisterNode,
        writer: &FrameWriter,
    ) {
        let Some(info) = r.node.filter(|_| self.is_head()) else {
            let message = "only the head registers nodes".to_string();
            writer.reply(req, Body::ErrorReply(ErrorReply { message }));
            return;
        };
        let Some(id) = NodeId::from_bytes(&info.node_id) else {
            let message = "RegisterNode names no valid node id".to_string();
            writer.reply(req, Body::ErrorReply(ErrorReply { message }));
            return;
        };
        if self.control.node(&id).is_some_and(|n| !n.alive) {
            let message = format!(
                "node {} was declared dead; start it again to join as a new node",
                id.hex()
            );
            writer.reply(req, Body::ErrorReply(ErrorReply { message }));
            return;
        }
        self.control.register_node(NodeEntry {
            node_id: id,
            address: info.address.clone(),
            hostname: info.hostname.clone(),
            is_head: false,
            alive: true,
            total: oxray_common::ResourceSet::from_units(info.total.iter()),
            ip: info.ip.clone(),
            metrics_port: u16::try_from(info.metrics_port).unwrap_or(0),
        });
        if let Some(link) = &self.link {
            link.view.lock().update(id, view_of(&info));
        }
        if let Some(c) = self.state.lock().clients.get_mut(&client) {
            c.node = Some(id);
        }
        if let Some(link) = &self.link {
            link.last_heard.lock().insert(id, std::time::Instant::now());
        }
        writer.reply(req, Body::ClusterView(self.cluster_info()));
        if let Some(link) = &self.link {
            link.mark_dirty(id);
        }
        let mut st = self.state.lock();
        self.dispatch(&mut st);
    }

    /// A node's resources changed (head only).
    pub(crate) fn resource_report(&self, r: ResourceReport) {
        let (Some(link), Some(id)) = (&self.link, NodeId::from_bytes(&r.node_id)) else {
            return;
        };
        match link.last_heard.lock().get_mut(&id) {
            Some(at) => *at = std::time::Instant::now(),
            None => return, // declared dead: its reports change nothing
        }
        let Some(known) = link.view.lock().get(&id).cloned() else {
            return;
        };
        let available = oxray_common::ResourceSet::from_units(r.available.iter());
        let total = oxray_common::ResourceSet::from_units(r.total.iter());
        let changed = known.available != available || known.total != total;
        // A report also ends what was counted there since the last one:
        // requests waiting for that may go now (no news for other nodes).
        let had_debit = known.debit.is_some();
        let node = NodeView {
            available,
            total,
            version: r.version,
            debit: None,
            pending: r.pending,
            ..known
        };
        if link.view.lock().update(id, node) && (changed || had_debit) {
            if changed {
                link.mark_dirty(id);
            }
            let mut st = self.state.lock();
            self.dispatch(&mut st);
        }
    }

    /// The connection of node `id` closed: it is dead (head only).
    pub(crate) fn node_gone(&self, st: &mut State, id: NodeId) {
        self.control.mark_node_dead(&id);
        if let Some(link) = &self.link {
            link.last_heard.lock().remove(&id);
            link.view.lock().mark_dead(&id);
            link.mark_dirty(id);
        }
        self.dispatch(st);
        let me = self.me();
        // Not under the state lock, which the caller holds.
        tokio::spawn(async move { me.announce_deaths() });
    }

    /// Acts on the nodes the view saw die: pulls from them stop, copies
    /// taken from them go, and this node's processes hear of it (their
    /// calls to workers there fail, and owners rebuild lost objects).
    pub(crate) fn announce_deaths(&self) {
        let Some(link) = &self.link else { return };
        let deaths = link.view.lock().take_deaths();
        if deaths.is_empty() {
            return;
        }
        let (node_ids, addresses): (Vec<Vec<u8>>, Vec<String>) = deaths
            .into_iter()
            .map(|(id, address)| (id.0.to_vec(), address))
            .unzip();
        self.sources_died(&addresses);
        if self.is_head() {
            self.placement_groups_lost_nodes(&node_ids);
        }
        let body = Body::NodesRemoved(NodesRemoved {
            addresses,
            node_ids,
        });
        let st = self.state.lock();
        for c in st.clients.values().filter(|c| c.is_local_process()) {
            c.writer.send(Envelope {
                id: 0,
                body: Some(body.clone()),
            });
        }
    }

    /// On a node that is not the head, sends the control service's
    /// requests to the head and relays its reply; returns the other
    /// messages for this node to handle.
    pub(crate) fn forward_to_head(
        &self,
        req: u64,
        body: Body,
        writer: &FrameWriter,
    ) -> Option<Body> {
        let Some(head) = self.head() else {
            return Some(body);
        };
        let for_head = matches!(
            body,
            Body::KvPut(_)
                | Body::KvGet(_)
                | Body::KvDelete(_)
                | Body::KvKeys(_)
                | Body::CreateActor(_)
                | Body::GetActorInfo(_)
                | Body::KillActor(_)
                | Body::ActorExiting(_)
                | Body::ListActors(_)
                | Body::ClusterInfoRequest(_)
                | Body::CreatePlacementGroup(_)
                | Body::GetPlacementGroup(_)
                | Body::RemovePlacementGroup(_)
                | Body::PlacementGroupList(_)
        );
        if !for_head {
            return Some(body);
        }
        if req == 0 {
            head.send(body);
            return None;
        }
        let writer = writer.clone();
        head.call_with(body, move |reply| {
            let reply = reply.unwrap_or_else(|| {
                Body::ErrorReply(ErrorReply {
                    message: "the head of the cluster is unreachable".into(),
                })
            });
            writer.reply(req, reply);
        });
        None
    }

    /// Requests wait here while the view says no other node has room; the
    /// view may be behind (what was sent to a node counts there for a
    /// moment), so look again shortly.
    pub(crate) fn recheck_pending_later(&self, st: &mut State) {
        let Some(link) = &self.link else { return };
        // Requests no node can ever serve wait for a node to join, which
        // brings a new view anyway.
        if st.pending.iter().all(|p| p.warned) || link.recheck_armed.swap(true, Ordering::Relaxed) {
            return;
        }
        let me = self.me();
        tokio::spawn(async move {
            tokio::time::sleep(RECHECK).await;
            if let Some(link) = &me.link {
                link.recheck_armed.store(false, Ordering::Relaxed);
            }
            let mut st = me.state.lock();
            me.dispatch(&mut st);
        });
    }

    /// Where a pending lease request goes, by the cluster's view.
    pub(crate) fn placement(&self, st: &State, p: &PendingLease) -> Decision {
        let Some(link) = &self.link else {
            return Decision::Local;
        };
        let mut view = link.view.lock();
        view.set_available(self.node_id, st.ledger.available().clone());
        let decision = match view.prefer(&p.preferred, &p.shape, p.strategy.as_ref(), p.spilled) {
            Some(d) => d,
            None => view.place(self.node_id, &p.shape, p.strategy.as_ref(), p.spilled),
        };
        if let Decision::Remote { node_id, .. } = &decision {
            // Count it there at once: the next decisions should not pile
            // onto the same node before its next report.
            view.debit(node_id, &p.shape);
        }
        decision
    }

    /// Worker output: to this node's drivers and, on the head, to every
    /// other node but the one it came from (`from`, a node's connection).
    pub(crate) fn relay_lines(&self, l: LogLines, from: Option<u64>) {
        self.to_local_drivers(&l, self.is_head());
        if !self.is_head() {
            return;
        }
        let body = Body::LogLines(l);
        let st = self.state.lock();
        for (_, c) in st
            .clients
            .iter()
            .filter(|(id, c)| c.node.is_some() && Some(**id) != from)
        {
            c.writer.send(Envelope {
                id: 0,
                body: Some(body.clone()),
            });
        }
    }

    /// Worker output to the drivers of this node; printed here when there
    /// are none and `print_if_none` (the head of a standing cluster).
    pub(crate) fn to_local_drivers(&self, l: &LogLines, print_if_none: bool) {
        let st = self.state.lock();
        let mut any = false;
        for d in st.clients.values().filter(|c| c.is_driver()) {
            any = true;
            d.writer.send(Envelope {
                id: 0,
                body: Some(Body::LogLines(l.clone())),
            });
        }
        if !any && print_if_none {
            for line in &l.lines {
                if l.stderr {
                    eprintln!("{line}");
                } else {
                    println!("{line}");
                }
            }
        }
    }
}
