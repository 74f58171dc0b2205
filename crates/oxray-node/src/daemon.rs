//! The daemon's event handling: client connections, lease requests and the
//! worker pool's life cycle.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use oxray_common::{ActorId, NodeId, ResourceSet, WorkerId};
use oxray_control::{ActorDirectory, ControlService, NodeEntry};
use oxray_proto::frame::{FrameReader, FrameWriter};
use oxray_proto::*;
use parking_lot::Mutex;
use tokio::io::AsyncRead;
use tokio::net::UnixListener;
use tokio::sync::Notify;

use crate::cluster::ClusterLink;
use crate::scheduling::Decision;

use crate::config::NodeConfig;
use crate::ledger::{Allocation, ResourceLedger};
use crate::log_files::{LogFileError, LogFiles};
use crate::pool::{kill_pid, pid_alive, spawn_worker, WorkerEvents, Zygote};
use crate::NodeError;

/// Consecutive start-up failures after which pending leases fail instead of
/// starting yet another worker.
const MAX_FAILED_STARTS: u32 = 3;
/// How long a forked worker may take to register.
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The answer to a request naming an actor the directory does not know.
fn unknown_actor() -> Body {
    Body::ErrorReply(ErrorReply {
        message: "no such actor: the request names an actor this cluster does not know".into(),
    })
}

/// Returns when process `pid` has exited. Watched through a pidfd, which
/// names that process and no later one that reuses its pid; kernels
/// without pidfds fall back to checking the pid.
async fn owner_exit(pid: u32) {
    let fd = rustix::process::Pid::from_raw(pid as i32)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    // SAFETY: the AsyncFd owns the pidfd, which stays open (and the same
    // descriptor) until the AsyncFd is dropped.
    let watched = fd.and_then(|fd| unsafe { tokio::io::unix::AsyncFd::register(fd) }.ok());
    match watched {
        // A pidfd turns readable when its process exits.
        Some(fd) => drop(fd.readable().await),
        None => {
            while pid_alive(pid) {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Runs a node daemon (with the control service) until the cluster is shut
/// down. Blocks the calling thread.
pub fn run(config: NodeConfig) -> Result<(), NodeError> {
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NodeError::Runtime)?;
    runtime.block_on(serve(config))
}

async fn serve(config: NodeConfig) -> Result<(), NodeError> {
    // Bind under a temporary name and rename once listening, so that the
    // socket's path appears only when connections can succeed.
    let staging = config.socket_path.with_extension("staging");
    let _ = std::fs::remove_file(&staging);
    let socket_path = config.socket_path.clone();
    let bind_error = |source| NodeError::Bind {
        path: socket_path.display().to_string(),
        source,
    };
    let listener = UnixListener::bind(&staging).map_err(bind_error)?;
    // On a multi-node cluster the daemon also listens on TCP, and its
    // address (written next to the socket) names both.
    let tcp = match &config.cluster {
        Some(c) => {
            let tcp = tokio::net::TcpListener::bind((c.node_ip.as_str(), c.port))
                .await
                .map_err(|source| NodeError::Bind {
                    path: format!("{}:{}", c.node_ip, c.port),
                    source,
                })?;
            let port = tcp.local_addr().map_err(NodeError::Runtime)?.port();
            let address = transport::Address {
                tcp: Some(format!("{}:{port}", c.node_ip)),
                unix: Some(config.socket_path.display().to_string()),
            };
            Some((tcp, address.format()))
        }
        None => None,
    };
    let region = oxray_store::Region::create(&config.store_path, config.object_store_memory)
        .map_err(|source| NodeError::Store {
            path: config.store_path.display().to_string(),
            source,
        })?;
    let store = oxray_store::ObjectTable::new(
        Arc::new(region),
        oxray_store::SpillDir::new(&config.spill_dir),
    );
    let address = tcp.as_ref().map_or_else(
        || format!("unix:{}", config.socket_path.display()),
        |(_, a)| a.clone(),
    );
    let journal_path = config
        .cluster
        .as_ref()
        .filter(|c| c.head.is_none())
        .and_then(|c| c.journal.clone());
    let (control, journal, recovered) = match journal_path {
        Some(path) => {
            let (control, journal, recovered) = crate::head_journal::open(&path)?;
            (control, Some(journal), Some(recovered))
        }
        None => (ControlService::in_memory(), None, None),
    };
    // Bound before the node registers, which publishes the port.
    let metrics_listener = match config.metrics_port.or(config.cluster.as_ref().map(|_| 0)) {
        Some(port) => {
            let ip = config
                .cluster
                .as_ref()
                .map_or("127.0.0.1", |c| c.node_ip.as_str());
            Some(crate::health::bind(ip, port, "metrics endpoint").await?)
        }
        None => None,
    };
    let node = Node::new(config, store, address, control, journal);
    if let Some(listener) = metrics_listener {
        let _ = node
            .metrics_port
            .set(listener.local_addr().map_or(0, |a| a.port()));
        node.serve_http(listener);
    }
    if node.is_head() {
        node.control.register_node(NodeEntry {
            node_id: node.node_id,
            address: node.address.clone(),
            hostname: hostname(),
            is_head: true,
            alive: true,
            total: node.config.resources.clone(),
            ip: node.ip().to_string(),
            metrics_port: node.metrics_port(),
        });
    }
    if let Some(link) = &node.link {
        link.seed_view(node.node_id, node.self_info(true));
    }
    if let Some((tcp, _)) = tcp {
        tokio::spawn(node.clone().accept_tcp(tcp));
        if let Err(e) = node.clone().join_cluster().await {
            // Refused or unreachable: leave nothing behind.
            let _ = std::fs::remove_file(&staging);
            let _ = std::fs::remove_file(&node.config.store_path);
            return Err(e);
        }
    }
    if let (Some(journal), Some(recovered)) = (node.journal.clone(), recovered) {
        node.restore(recovered);
        tokio::spawn(node.clone().flush_journal(journal));
    }
    if let Some(port) = node.config.health_port {
        let ip = node
            .config
            .cluster
            .as_ref()
            .map_or("127.0.0.1", |c| c.node_ip.as_str())
            .to_string();
        node.serve_http(crate::health::bind(&ip, port, "health endpoint").await?);
    }
    // Written before the socket appears, so whoever waits for the socket
    // finds the address.
    let _ = std::fs::write(node.config.session_dir.join("node_address"), &node.address);
    let _ = std::fs::write(node.config.session_dir.join("node_id"), node.node_id.hex());
    std::fs::rename(&staging, &node.config.socket_path).map_err(bind_error)?;
    if let Some(module) = node.config.zygote_module.clone() {
        let events: Arc<dyn WorkerEvents> = node.clone();
        match Zygote::start(&node.config, &module, events) {
            Ok(z) => *node.zygote.lock() = Some(z),
            Err(e) => {
                tracing::warn!("no worker template process ({e}); starting workers one by one")
            }
        }
    }
    {
        let mut st = node.state.lock();
        for _ in 0..node.config.prestart_workers {
            node.start_worker(&mut st);
        }
    }
    if let Some(owner) = node.config.owner_pid {
        let n = node.clone();
        tokio::spawn(async move {
            owner_exit(owner).await;
            n.shutdown();
        });
    }
    let stop = node.stopped.clone();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(NodeError::Runtime)?;
    loop {
        tokio::select! {
            _ = terminate.recv() => node.shutdown(),
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    if !transport::same_user(&stream) {
                        continue;
                    }
                    // The kernel's word on who connected: the only pid this
                    // daemon will ever signal for the client.
                    let pid = stream.peer_cred().ok().and_then(|c| c.pid()).map_or(0, |p| p as u32);
                    let (r, w) = stream.into_split();
                    tokio::spawn(node.clone().handle_connection(FrameReader::new(r), FrameWriter::unix(w), pid));
                }
            }
            _ = stop.notified() => break,
        }
    }
    let _ = std::fs::remove_file(&node.config.socket_path);
    let _ = std::fs::remove_file(&node.config.store_path);
    let _ = std::fs::remove_dir_all(&node.config.spill_dir);
    // Let queued replies (the shutdown Ack) reach their sockets.
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(())
}

/// A node talks to many processes and nodes: take the hard limit on open
/// files rather than the (often 1,024) soft one.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
}

pub(crate) fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

pub(crate) struct Client {
    /// Its process id, from the socket's peer credentials (0 over TCP).
    pub pid: u32,
    /// Where its core worker listens.
    address: String,
    pub writer: FrameWriter,
    kind: ClientKind,
    worker_id: Option<WorkerId>,
    owns_cluster: bool,
    /// Whether it sent `Register` (a driver or worker of this node); other
    /// connections are peers: other nodes and their processes.
    registered: bool,
    /// The node daemon behind this connection, when another node joined
    /// the cluster through it (head only).
    pub node: Option<NodeId>,
}

impl Client {
    /// Whether worker output goes to it.
    pub(crate) fn is_driver(&self) -> bool {
        self.registered && self.kind == ClientKind::Driver
    }

    /// Whether it is a driver or worker of this node.
    pub(crate) fn is_local_process(&self) -> bool {
        self.registered
    }

    /// Where its core worker listens (empty for other nodes' connections).
    pub(crate) fn address(&self) -> &str {
        &self.address
    }
}

pub(crate) struct Worker {
    pub pid: u32,
    pub address: String,
    pub registered: bool,
    pub lease: Option<u64>,
    /// The actor this worker hosts, if any.
    pub actor: Option<ActorId>,
    /// The GPUs it held last, once it held any: it may have set up CUDA
    /// for them, so it serves only leases of those same GPUs from then on
    /// (a CPU task would inherit its CUDA state; as in Ray).
    pub held_gpus: Option<Vec<u32>>,
    /// The code environment of the tasks it ran (0: none yet): modules of a
    /// runtime_env's packages may stay loaded, so it serves only leases of
    /// that environment from then on.
    pub code_env: u64,
    /// Since when it is idle (None while leased or starting).
    pub idle_since: Option<std::time::Instant>,
}

impl Worker {
    /// A worker just started (`pid` 0 until a forked one registers).
    fn starting(pid: u32) -> Self {
        Worker {
            pid,
            address: String::new(),
            registered: false,
            lease: None,
            actor: None,
            held_gpus: None,
            code_env: 0,
            idle_since: None,
        }
    }
}

/// How long an idle worker tied to GPUs or a code environment is kept
/// while the pool is above one worker per CPU: Ray's
/// `RAY_idle_worker_killing_time_threshold_ms` when set, else 10 s.
fn idle_worker_retire_after() -> Duration {
    static AFTER: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *AFTER.get_or_init(|| {
        std::env::var("RAY_idle_worker_killing_time_threshold_ms")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Duration::from_secs(10), Duration::from_millis)
    })
}

pub(crate) struct Lease {
    holder: u64,
    worker: WorkerId,
    alloc: Allocation,
    /// The code environment of its tasks (0: none).
    env_key: u64,
}

/// Who waits for a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Requester {
    /// A client's `RequestLease` (reply to `request` on `client`).
    Client { client: u64, request: u64 },
    /// The control service, to start an actor.
    Actor(ActorId),
}

impl Requester {
    fn client(&self) -> Option<u64> {
        match self {
            Requester::Client { client, .. } => Some(*client),
            Requester::Actor(_) => None,
        }
    }
}

pub(crate) struct PendingLease {
    pub requester: Requester,
    pub shape: ResourceSet,
    pub description: String,
    pub warned: bool,
    pub strategy: Option<SchedulingStrategy>,
    /// Sent here by another node: served here, never spilled again.
    pub spilled: bool,
    /// The node daemon holding the task's large arguments (may be empty).
    pub preferred: String,
    /// For an actor the head manages on this node: the lease belongs to no
    /// connection (it outlives a restart of the head).
    pub for_actor: bool,
    /// The code environment of its tasks (0: none); see [`Worker::code_env`].
    pub env_key: u64,
}

pub(crate) struct State {
    pub workers: HashMap<WorkerId, Worker>,
    pub pending: VecDeque<PendingLease>,
    next_client: u64,
    pub clients: HashMap<u64, Client>,
    idle: VecDeque<WorkerId>,
    starting: usize,
    failed_starts: u32,
    last_start_error: String,
    next_lease: u64,
    leases: HashMap<u64, Lease>,
    pub ledger: ResourceLedger,
    pub(crate) shutting_down: bool,
    pub actors: ActorDirectory,
    pub actor_waiters: HashMap<ActorId, Vec<ActorWaiter>>,
    /// Placement-group bundles reserved on this node.
    pub bundles: crate::placement_groups::HeldBundles,
    /// Infeasible shapes already reported, by requesting connection.
    warned_shapes:
        std::collections::HashSet<(Option<u64>, std::collections::BTreeMap<String, i64>)>,
}

impl State {
    /// The lease requests waiting here, by shape.
    pub(crate) fn demands(&self) -> Vec<Demand> {
        let mut by_shape: std::collections::BTreeMap<std::collections::BTreeMap<String, i64>, u32> =
            Default::default();
        for p in &self.pending {
            *by_shape.entry(p.shape.to_units()).or_default() += 1;
        }
        by_shape
            .into_iter()
            .map(|(resources, count)| Demand { resources, count })
            .collect()
    }

    /// Every lease with what it holds.
    pub(crate) fn lease_allocations(&self) -> impl Iterator<Item = (u64, &Allocation)> {
        self.leases.iter().map(|(id, l)| (*id, &l.alloc))
    }
}

/// A `GetActorInfo` with `wait`, answered when the actor is ready or dead.
pub(crate) struct ActorWaiter {
    pub writer: FrameWriter,
    pub request: u64,
    pub min_incarnation: u32,
}

pub(crate) struct Node {
    pub config: NodeConfig,
    pub node_id: NodeId,
    /// Where other nodes reach this daemon (its Unix socket on a
    /// single-node cluster).
    pub address: String,
    /// The node's part in a multi-node cluster.
    pub link: Option<ClusterLink>,
    pub control: ControlService,
    /// The head's journal, when its tables survive a restart.
    pub journal: Option<Arc<oxray_control::Journal>>,
    /// Changes waiting to be written there.
    pub(crate) journal_queue: crate::head_journal::PendingWrites,
    pub state: Mutex<State>,
    /// The node's shared-memory object store.
    pub store: Mutex<oxray_store::ObjectTable>,
    /// Objects moving between this node and others.
    pub(crate) transfers: crate::transfer::Transfers,
    /// The cluster's placement groups (head only).
    pub(crate) placement_groups: Mutex<crate::placement_groups::PlacementGroups>,
    /// The template process that forks workers, when there is one.
    zygote: Mutex<Option<Arc<Zygote>>>,
    /// The port of its Prometheus endpoint, once bound.
    pub(crate) metrics_port: std::sync::OnceLock<u16>,
    /// The last CPU counters read, for the utilization between scrapes.
    pub(crate) cpu_sample: Mutex<Option<crate::metrics::CpuSample>>,
    stopped: Arc<Notify>,
    /// A timer to retire idle tied workers is set.
    retire_armed: std::sync::atomic::AtomicBool,
    me: std::sync::Weak<Node>,
}

impl Node {
    /// A strong handle on this node, for spawned tasks.
    pub(crate) fn me(&self) -> Arc<Node> {
        self.me.upgrade().expect("the node outlives its tasks")
    }
}

impl Node {
    fn new(
        config: NodeConfig,
        store: oxray_store::ObjectTable,
        address: String,
        control: ControlService,
        journal: Option<Arc<oxray_control::Journal>>,
    ) -> Arc<Self> {
        let ledger = ResourceLedger::new(config.resources.clone());
        let link = config.cluster.clone().map(ClusterLink::new);
        let node_id = NodeId::random();
        // Callers hold leases of several nodes at once: start this node's
        // lease ids at a random point (40 random bits above a 24-bit
        // counter), so that ids of different nodes never meet.
        let first_lease =
            (u64::from_le_bytes(node_id.0[..8].try_into().expect("8 bytes")) >> 24 << 24) | 1;
        Arc::new_cyclic(|me| Node {
            node_id,
            address,
            link,
            control,
            journal,
            journal_queue: Default::default(),
            state: Mutex::new(State {
                next_client: 1,
                clients: HashMap::new(),
                workers: HashMap::new(),
                idle: VecDeque::new(),
                starting: 0,
                failed_starts: 0,
                last_start_error: String::new(),
                next_lease: first_lease,
                leases: HashMap::new(),
                pending: VecDeque::new(),
                ledger,
                shutting_down: false,
                actors: ActorDirectory::default(),
                actor_waiters: HashMap::new(),
                bundles: Default::default(),
                warned_shapes: Default::default(),
            }),
            placement_groups: Default::default(),
            store: Mutex::new(store),
            transfers: Default::default(),
            zygote: Mutex::new(None),
            metrics_port: std::sync::OnceLock::new(),
            cpu_sample: Mutex::new(None),
            stopped: Arc::new(Notify::new()),
            retire_armed: std::sync::atomic::AtomicBool::new(false),
            me: me.clone(),
            config,
        })
    }

    /// Serves one connection: a process of this node, another node, or a
    /// process of another node.
    /// Serves one connection. `pid` is the peer's process id as the
    /// kernel reports it (Unix sockets; 0 over TCP): a pid a client claims
    /// is never used.
    pub(crate) async fn handle_connection<R: AsyncRead + Unpin>(
        self: Arc<Self>,
        mut reader: FrameReader<R>,
        writer: FrameWriter,
        pid: u32,
    ) {
        let client_id = {
            let mut st = self.state.lock();
            let id = st.next_client;
            st.next_client += 1;
            st.clients.insert(
                id,
                Client {
                    pid,
                    address: String::new(),
                    writer: writer.clone(),
                    kind: ClientKind::Driver,
                    worker_id: None,
                    owns_cluster: false,
                    registered: false,
                    node: None,
                },
            );
            id
        };
        while let Some(env) = reader.next().await {
            match env.body {
                // A bulk read writes raw bytes on this connection: nothing
                // else may be read or sent until it is done.
                Some(Body::ReadChunk(r)) if r.raw => {
                    let connected = self.serve_raw_chunk(client_id, env.id, r, &writer).await;
                    if !connected {
                        break;
                    }
                }
                Some(body) => self.handle_message(client_id, env.id, body, &writer),
                // A request of a kind this build does not know (a newer
                // peer's) is refused, not left unanswered.
                None if env.id != 0 => {
                    let message = "the node daemon does not know this request: it runs an older oxray than the caller; run the same oxray version on every node".to_string();
                    writer.reply(env.id, Body::ErrorReply(ErrorReply { message }));
                }
                None => {}
            }
        }
        self.client_gone(client_id);
    }

    /// Lists or reads this node's log files, off the async threads: a read
    /// may touch the disk.
    fn serve_log_files(&self, req: u64, body: Body, writer: &FrameWriter) {
        let files = LogFiles::new(&self.config.session_dir);
        let writer = writer.clone();
        tokio::task::spawn_blocking(move || {
            let reply = match body {
                Body::ReadLogFile(r) => match files.read(&r.name, r.offset, r.length) {
                    Ok(chunk) => Body::LogChunk(chunk),
                    Err(LogFileError::Missing { .. }) => Body::LogChunk(LogChunk {
                        missing: true,
                        ..Default::default()
                    }),
                    Err(e) => Body::ErrorReply(ErrorReply {
                        message: e.to_string(),
                    }),
                },
                _ => Body::LogFileList(LogFileList {
                    files: files.list(),
                }),
            };
            writer.reply(req, reply);
        });
    }

    fn handle_message(&self, client: u64, req: u64, body: Body, writer: &FrameWriter) {
        // On a node that is not the head, the control service's requests
        // go to the head.
        let body = match self.forward_to_head(req, body, writer) {
            Some(body) => body,
            None => return,
        };
        match body {
            Body::Register(r) => self.register(client, req, r, writer),
            Body::RequestLease(r) => {
                let mut st = self.state.lock();
                st.pending.push_back(PendingLease {
                    requester: Requester::Client {
                        client,
                        request: req,
                    },
                    shape: ResourceSet::from_units(r.resources.iter()),
                    description: r.description,
                    warned: false,
                    strategy: r.strategy,
                    spilled: r.spilled,
                    preferred: r.preferred,
                    for_actor: r.for_actor,
                    env_key: r.env_key,
                });
                self.dispatch(&mut st);
            }
            Body::RegisterNode(r) => self.register_node(client, req, r, writer),
            Body::ResourceReport(r) => self.resource_report(r),
            Body::ClientGone(g) => {
                let mut st = self.state.lock();
                self.owner_gone(&mut st, &g.address);
                drop(st);
                self.placement_groups_of_gone_owner(&g.address);
                // Every other node hears of it too.
                self.processes_gone(vec![g.address]);
            }
            Body::CreatePlacementGroup(c) => self.create_placement_group(req, c, writer),
            Body::GetPlacementGroup(g) => self.get_placement_group(req, g, writer),
            Body::RemovePlacementGroup(r) => {
                self.remove_placement_group(&r.pg_id);
                if req != 0 {
                    writer.reply(req, Body::Ack(Ack {}));
                }
            }
            Body::PlacementGroupList(_) => {
                writer.reply(req, Body::PlacementGroupList(self.list_placement_groups()));
            }
            Body::ReserveBundles(r) => {
                let reply = match self.reserve_bundles(r) {
                    Ok(()) => Body::Ack(Ack {}),
                    Err(message) => Body::ErrorReply(ErrorReply { message }),
                };
                writer.reply(req, reply);
            }
            Body::ReturnBundles(r) => {
                self.return_bundles(&r.pg_id);
                if req != 0 {
                    writer.reply(req, Body::Ack(Ack {}));
                }
            }
            Body::AllocateJobId(_) => {
                writer.reply(
                    req,
                    Body::JobIdReply(JobIdReply {
                        job_id: self.control.next_job_id(),
                    }),
                );
            }
            Body::ReadChunk(_) => {
                let message = "chunks are read as bulk streams (ReadChunk.raw)".to_string();
                writer.reply(req, Body::ErrorReply(ErrorReply { message }));
            }
            Body::LogLines(l) => self.relay_lines(l, Some(client)),
            Body::ReturnLease(r) => {
                let mut st = self.state.lock();
                self.end_lease(&mut st, r.lease_id, r.kill_worker);
                self.dispatch(&mut st);
                if req != 0 {
                    writer.reply(req, Body::Ack(Ack {}));
                }
            }
            Body::WorkerBlocked(_) | Body::WorkerUnblocked(_) => {
                let blocked = matches!(body, Body::WorkerBlocked(_));
                let mut st = self.state.lock();
                let lease_id = st
                    .clients
                    .get(&client)
                    .and_then(|c| c.worker_id)
                    .and_then(|w| st.workers.get(&w))
                    .and_then(|w| w.lease);
                if let Some(lease_id) = lease_id {
                    let State { leases, ledger, .. } = &mut *st;
                    if let Some(lease) = leases.get_mut(&lease_id) {
                        if blocked {
                            ledger.lend_cpu(&mut lease.alloc);
                        } else {
                            ledger.reclaim_cpu(&mut lease.alloc);
                        }
                    }
                    if blocked {
                        self.dispatch(&mut st);
                    }
                }
            }
            Body::KillWorker(k) => {
                // Only the holder of a worker's lease may kill it (forced
                // cancellation of its own task).
                let st = self.state.lock();
                let worker = WorkerId::from_bytes(&k.worker_id).and_then(|id| st.workers.get(&id));
                let held = worker
                    .and_then(|w| w.lease)
                    .and_then(|l| st.leases.get(&l))
                    .is_some_and(|l| l.holder == client);
                match worker {
                    Some(w) if held => {
                        kill_pid(w.pid);
                        writer.reply(req, Body::Ack(Ack {}));
                    }
                    _ => {
                        let message = "refused to kill a worker this connection holds no lease on"
                            .to_string();
                        writer.reply(req, Body::ErrorReply(ErrorReply { message }));
                    }
                }
            }
            Body::ShutdownCluster(_) => {
                // Only the driver that started this cluster ends it this way;
                // a standing cluster is stopped with `oxray stop`.
                let owner = self
                    .state
                    .lock()
                    .clients
                    .get(&client)
                    .is_some_and(|c| c.owns_cluster);
                if owner {
                    writer.reply(req, Body::Ack(Ack {}));
                    self.shutdown();
                } else {
                    let message =
                        "only the process that started this cluster may shut it down; stop it with `oxray stop`".to_string();
                    writer.reply(req, Body::ErrorReply(ErrorReply { message }));
                }
            }
            Body::KvPut(p) => {
                self.control.kv_put(&p.namespace, &p.key, p.value);
                writer.reply(req, Body::Ack(Ack {}));
            }
            Body::ListLogFiles(_) | Body::ReadLogFile(_) => self.serve_log_files(req, body, writer),
            Body::KvKeys(k) => {
                let keys = self.control.kv_keys(&k.namespace, &k.prefix);
                writer.reply(req, Body::KvKeyList(KvKeyList { keys }));
            }
            Body::KvDelete(g) => {
                writer.reply(req, kv_value(self.control.kv_delete(&g.namespace, &g.key)));
            }
            Body::KvGet(g) => {
                writer.reply(req, kv_value(self.control.kv_get(&g.namespace, &g.key)));
            }
            Body::CreateActor(c) => self.create_actor(req, c, writer),
            Body::GetActorInfo(g) => self.get_actor_info(req, g, writer),
            Body::KillActor(k) => {
                let reply = if self.kill_actor(k) {
                    Body::Ack(Ack {})
                } else {
                    unknown_actor()
                };
                writer.reply(req, reply);
            }
            Body::ActorExiting(e) => {
                let known = self.actor_exiting(e);
                if req != 0 {
                    writer.reply(
                        req,
                        if known {
                            Body::Ack(Ack {})
                        } else {
                            unknown_actor()
                        },
                    );
                }
            }
            Body::ListActors(_) => {
                writer.reply(req, Body::ListActors(self.list_actors()));
            }
            Body::ListClients(_) => {
                let st = self.state.lock();
                let clients = st
                    .clients
                    .values()
                    .filter(|c| !c.address.is_empty())
                    .map(|c| ClientEntry {
                        address: c.address.clone(),
                        pid: c.pid,
                        worker_id: c.worker_id.map(|w| w.0.to_vec()).unwrap_or_default(),
                        kind: c.kind as i32,
                    })
                    .collect();
                writer.reply(req, Body::ClientList(ClientList { clients }));
            }
            Body::StoreCreate(_)
            | Body::StoreGet(_)
            | Body::StoreSeal(_)
            | Body::StoreRelease(_)
            | Body::StoreDelete(_)
            | Body::StoreStatsRequest(_) => self.handle_store(client, req, body, writer),
            Body::AdoptCopy(o) => {
                let reply = match oxray_common::ObjectId::from_bytes(&o.id) {
                    Some(id) if self.adopt_copy(id) => Body::Ack(Ack {}),
                    _ => Body::ErrorReply(ErrorReply {
                        message: format!("node {} holds no copy of that object", self.address),
                    }),
                };
                writer.reply(req, reply);
            }
            Body::ClusterInfoRequest(_) => {
                writer.reply(req, Body::ClusterInfo(self.cluster_info()));
            }
            other => {
                writer.reply(
                    req,
                    Body::ErrorReply(ErrorReply {
                        message: format!("the node daemon does not handle {other:?}"),
                    }),
                );
            }
        }
    }

    fn register(&self, client: u64, req: u64, r: Register, writer: &FrameWriter) {
        let kind = ClientKind::try_from(r.kind).unwrap_or(ClientKind::Driver);
        let worker_id = WorkerId::from_bytes(&r.worker_id);
        let mut st = self.state.lock();
        if let Some(c) = st.clients.get_mut(&client) {
            c.registered = true;
            c.kind = kind;
            c.worker_id = worker_id;
            c.owns_cluster = r.owns_cluster;
            c.address = r.address.clone();
        }
        // The pid to signal is the kernel's (`Client::pid`), not the one
        // the message claims.
        let pid = st.clients.get(&client).map_or(0, |c| c.pid);
        if kind == ClientKind::Worker {
            if let Some(id) = worker_id {
                if let Some(w) = st.workers.get_mut(&id) {
                    if !w.registered {
                        w.registered = true;
                        w.pid = pid;
                        w.address = r.address;
                        w.idle_since = Some(std::time::Instant::now());
                        st.starting = st.starting.saturating_sub(1);
                        st.failed_starts = 0;
                        st.idle.push_back(id);
                    }
                }
            }
        }
        self.dispatch(&mut st);
        drop(st);
        if kind != ClientKind::Driver {
            self.reply_registered(req, 0, writer);
        } else if let Some(head) = self.head() {
            // Job ids are the cluster's: the head hands them out.
            let (me, writer) = (self.me(), writer.clone());
            head.call_with(
                Body::AllocateJobId(AllocateJobId {}),
                move |reply| match reply {
                    Some(Body::JobIdReply(j)) => me.reply_registered(req, j.job_id, &writer),
                    _ => {
                        let message = "the head did not answer the job id request".to_string();
                        writer.reply(req, Body::ErrorReply(ErrorReply { message }));
                    }
                },
            );
        } else {
            self.reply_registered(req, self.control.next_job_id(), writer);
        }
    }

    fn reply_registered(&self, req: u64, job_id: u32, writer: &FrameWriter) {
        let cluster = self.config.cluster.as_ref();
        writer.reply(
            req,
            Body::Registered(Registered {
                node_id: self.node_id.0.to_vec(),
                job_id,
                session_dir: self.config.session_dir.display().to_string(),
                store_path: self.config.store_path.display().to_string(),
                node_address: if cluster.is_some() {
                    self.address.clone()
                } else {
                    String::new()
                },
                node_ip: cluster.map(|c| c.node_ip.clone()).unwrap_or_default(),
                token: cluster.map(|c| c.token.clone()).unwrap_or_default(),
            }),
        );
    }

    pub(crate) fn cluster_info(&self) -> ClusterInfo {
        let st = self.state.lock();
        let view = self.link.as_ref().map(|l| l.view.lock());
        let nodes = self
            .control
            .nodes()
            .into_iter()
            .map(|n| {
                let remote = view.as_ref().and_then(|v| v.get(&n.node_id));
                let available = if n.node_id == self.node_id {
                    st.ledger.available().to_units()
                } else {
                    remote.map(|r| r.available.to_units()).unwrap_or_default()
                };
                NodeInfo {
                    node_id: n.node_id.0.to_vec(),
                    address: n.address,
                    alive: n.alive,
                    total: n.total.to_units(),
                    available,
                    hostname: n.hostname,
                    is_head: n.is_head,
                    ip: n.ip,
                    version: remote.map_or(0, |r| r.version),
                    pending: if n.node_id == self.node_id {
                        st.demands()
                    } else {
                        remote.map(|r| r.pending.clone()).unwrap_or_default()
                    },
                    metrics_port: u32::from(n.metrics_port),
                }
            })
            .collect();
        ClusterInfo {
            nodes,
            delta: false,
        }
    }

    /// Grants whatever pending lease requests fit, starts workers for those
    /// that only lack a worker, and warns about those that can never fit.
    pub(crate) fn dispatch(&self, st: &mut State) {
        if st.shutting_down {
            return;
        }
        let mut waiting = VecDeque::with_capacity(st.pending.len());
        let mut need_workers = 0usize;
        let mut short_of_resources = false;
        while let Some(mut p) = st.pending.pop_front() {
            let writer = match p.requester {
                Requester::Client { client, .. } => match st.clients.get(&client) {
                    Some(c) => Some(c.writer.clone()),
                    None => continue,
                },
                Requester::Actor(id) => {
                    if st
                        .actors
                        .get(&id)
                        .is_none_or(|a| a.state() == ActorState::Dead)
                    {
                        continue;
                    }
                    None
                }
            };
            if self.link.is_some() {
                match self.placement(st, &p) {
                    Decision::Local => {
                        // A spread decision stands: looking again would go
                        // round the nodes once more.
                        if p.strategy.as_ref().is_some_and(|s| s.kind == "SPREAD") {
                            p.spilled = true;
                        }
                    }
                    Decision::Infeasible => {}
                    Decision::Remote { node_id, address } => {
                        match p.requester {
                            Requester::Client { request, .. } => {
                                if let Some(w) = &writer {
                                    w.reply(
                                        request,
                                        Body::Spillback(Spillback {
                                            node_id: node_id.0.to_vec(),
                                            address,
                                        }),
                                    );
                                }
                            }
                            Requester::Actor(id) => {
                                self.place_actor_remotely(id, p, node_id, address)
                            }
                        }
                        continue;
                    }
                    Decision::Fail(message) => {
                        match p.requester {
                            Requester::Client { request, .. } => {
                                if let Some(w) = &writer {
                                    w.reply(request, Body::Unschedulable(ErrorReply { message }));
                                }
                            }
                            Requester::Actor(id) => self.actor_failed(st, id, message),
                        }
                        continue;
                    }
                }
            }
            if !st.ledger.is_feasible(&p.shape) {
                // Once per requester and shape, however many requests wait.
                let first = !p.warned
                    && st
                        .warned_shapes
                        .insert((p.requester.client(), p.shape.to_units()));
                p.warned = true;
                if first {
                    let text = infeasible_warning(&p, st.ledger.total());
                    let owner = match p.requester {
                        Requester::Actor(id) => st.actors.get(&id).and_then(|a| {
                            st.clients
                                .values()
                                .find(|c| c.address == a.owner && !c.address.is_empty())
                        }),
                        Requester::Client { client, .. } => st.clients.get(&client),
                    };
                    if let Some(c) = owner {
                        c.writer.send(Envelope {
                            id: 0,
                            body: Some(Body::Warning(Warning { text })),
                        });
                    }
                }
                waiting.push_back(p);
                continue;
            }
            if st.failed_starts >= MAX_FAILED_STARTS {
                let message = format!(
                    "cannot start a worker process for '{}': the last {} attempts exited during start-up. \
                     Last output of the worker:\n{}",
                    p.description, st.failed_starts, st.last_start_error
                );
                self.refuse(st, &p, writer.as_ref(), message);
                continue;
            }
            if !p.shape.fits_in(st.ledger.available()) {
                short_of_resources = true;
                waiting.push_back(p);
                continue;
            }
            // The GPUs first: they decide which idle worker may take it.
            let Some(alloc) = st.ledger.try_acquire(&p.shape) else {
                short_of_resources = true;
                waiting.push_back(p);
                continue;
            };
            let Some(worker_id) = take_idle(st, &alloc.gpu_ids(), p.env_key) else {
                st.ledger.release(&alloc);
                need_workers += 1;
                waiting.push_back(p);
                continue;
            };
            let lease_id = st.next_lease;
            st.next_lease += 1;
            let gpu_ids = alloc.gpu_ids();
            let holder = match p.requester {
                Requester::Client { .. } if p.for_actor => 0,
                Requester::Client { client, .. } => client,
                // An actor's lease belongs to nobody: the actor ends with
                // its owner through `owner_gone`, wherever the owner runs.
                Requester::Actor(_) => 0,
            };
            st.leases.insert(
                lease_id,
                Lease {
                    holder,
                    worker: worker_id,
                    alloc,
                    env_key: p.env_key,
                },
            );
            self.resources_changed();
            let worker = st
                .workers
                .get_mut(&worker_id)
                .expect("idle workers are known");
            worker.lease = Some(lease_id);
            worker.idle_since = None;
            match p.requester {
                Requester::Client { request, .. } => {
                    let grant = LeaseGranted {
                        lease_id,
                        worker_id: worker_id.0.to_vec(),
                        address: worker.address.clone(),
                        gpu_ids,
                        pid: worker.pid,
                    };
                    if let Some(w) = writer {
                        w.reply(request, Body::LeaseGranted(grant));
                    }
                }
                Requester::Actor(id) => {
                    worker.actor = Some(id);
                    let (address, pid) = (worker.address.clone(), worker.pid);
                    self.start_actor(st, id, address, pid, gpu_ids);
                }
            }
        }
        st.pending = waiting;
        if !st.pending.is_empty() {
            // `oxray status` shows what waits, through the head.
            self.resources_changed();
        }
        self.recheck_pending_later(st);
        let to_start = need_workers
            .saturating_sub(st.starting)
            .min(self.config.max_starting_workers.saturating_sub(st.starting));
        for _ in 0..to_start {
            self.start_worker(st);
        }
        self.retire_tied_idle_workers(st);
        if short_of_resources {
            // Idle leases held elsewhere should come back now.
            let holders: std::collections::HashSet<u64> =
                st.leases.values().map(|l| l.holder).collect();
            self.resources_changed();
            for h in holders {
                if let Some(c) = st.clients.get(&h) {
                    c.writer.send(Envelope {
                        id: 0,
                        body: Some(Body::LeaseWanted(LeaseWanted {})),
                    });
                }
            }
        }
    }

    /// Retires idle workers tied to GPUs or to a code environment (see
    /// [`take_idle`]) once they have been idle for
    /// [`idle_worker_retire_after`], oldest first, while the pool holds more
    /// workers than the node has CPUs: workers of environments used once do
    /// not pile up, as Ray kills idle workers above its soft limit. Arms a
    /// timer for the next one due.
    fn retire_tied_idle_workers(&self, st: &mut State) {
        let cpus = self.config.resources.get("CPU").as_f64().ceil().max(1.0) as usize;
        let mut excess = st.workers.len().saturating_sub(cpus);
        if excess == 0 {
            return;
        }
        let after = idle_worker_retire_after();
        let now = std::time::Instant::now();
        let mut next_due: Option<Duration> = None;
        let State { idle, workers, .. } = st;
        idle.retain(|id| {
            let Some(w) = workers.get(id) else {
                return true;
            };
            if excess == 0 || (w.held_gpus.is_none() && w.code_env == 0) {
                return true;
            }
            let idle_for = w.idle_since.map_or(Duration::ZERO, |t| now - t);
            if idle_for < after {
                next_due = Some(next_due.map_or(after - idle_for, |d| d.min(after - idle_for)));
                return true;
            }
            // Its exit removes it from the pool, as any worker's.
            kill_pid(w.pid);
            excess -= 1;
            false
        });
        if let Some(due) = next_due.filter(|_| excess > 0) {
            if !self
                .retire_armed
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                let me = self.me();
                tokio::spawn(async move {
                    tokio::time::sleep(due).await;
                    me.retire_armed
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    let mut st = me.state.lock();
                    me.retire_tied_idle_workers(&mut st);
                });
            }
        }
    }

    /// A pending request that can never be served: its requester hears why.
    fn refuse(
        &self,
        st: &mut State,
        p: &PendingLease,
        writer: Option<&FrameWriter>,
        message: String,
    ) {
        match p.requester {
            Requester::Client { request, .. } => {
                if let Some(w) = writer {
                    w.reply(request, Body::ErrorReply(ErrorReply { message }));
                }
            }
            Requester::Actor(id) => self.actor_failed(st, id, message),
        }
    }

    fn start_worker(&self, st: &mut State) {
        let id = WorkerId::random();
        let zygote = self.zygote.lock().clone();
        if zygote.is_some_and(|z| z.fork(id)) {
            // Its pid arrives with its registration.
            st.starting += 1;
            st.workers.insert(id, Worker::starting(0));
            let me = self.me();
            tokio::spawn(async move {
                tokio::time::sleep(WORKER_START_TIMEOUT).await;
                me.start_timed_out(id);
            });
            return;
        }
        let events: Arc<dyn WorkerEvents> = self.me.upgrade().expect("node alive");
        match spawn_worker(&self.config, id, events) {
            Ok(pid) => {
                st.starting += 1;
                st.workers.insert(id, Worker::starting(pid));
            }
            Err(e) => {
                st.failed_starts += 1;
                st.last_start_error = format!("cannot run {}: {e}", self.config.python);
            }
        }
    }

    /// A forked worker that never registered counts as a failed start.
    fn start_timed_out(&self, id: WorkerId) {
        let mut st = self.state.lock();
        if st.workers.get(&id).is_some_and(|w| !w.registered) {
            st.failed_starts += 1;
            st.last_start_error = format!(
                "a worker forked by the template did not register within {WORKER_START_TIMEOUT:?}"
            );
            self.remove_worker(&mut st, id);
            self.dispatch(&mut st);
        }
    }

    pub(crate) fn end_lease(&self, st: &mut State, lease_id: u64, kill: bool) {
        let Some(lease) = st.leases.remove(&lease_id) else {
            return;
        };
        st.ledger.release(&lease.alloc);
        self.resources_changed();
        if let Some(w) = st.workers.get_mut(&lease.worker) {
            w.lease = None;
            if !lease.alloc.gpus.is_empty() {
                w.held_gpus = Some(lease.alloc.gpu_ids());
            }
            if lease.env_key != 0 {
                w.code_env = lease.env_key;
            }
            if kill {
                kill_pid(w.pid);
            } else {
                w.idle_since = Some(std::time::Instant::now());
                st.idle.push_back(lease.worker);
            }
        }
    }

    fn remove_worker(&self, st: &mut State, id: WorkerId) {
        if let Some(w) = st.workers.remove(&id) {
            if !w.registered {
                st.starting = st.starting.saturating_sub(1);
            }
            if let Some(lease) = w.lease.and_then(|l| st.leases.remove(&l)) {
                st.ledger.release(&lease.alloc);
            }
            st.idle.retain(|i| *i != id);
            if let Some(actor) = w.actor {
                self.actor_worker_died(st, actor, w.pid);
            }
        }
    }

    fn client_gone(&self, client: u64) {
        self.store.lock().client_gone(client);
        let mut st = self.state.lock();
        let Some(c) = st.clients.remove(&client) else {
            return;
        };
        if let Some(node) = c.node {
            self.node_gone(&mut st, node);
        }
        if !c.address.is_empty() {
            self.owner_gone(&mut st, &c.address);
            if let Some(head) = self.head() {
                head.send(Body::ClientGone(ClientGone {
                    address: c.address.clone(),
                }));
            }
            let gone = vec![c.address.clone()];
            let me = self.me();
            // Not under the state lock, which this function holds.
            tokio::spawn(async move { me.processes_gone(gone) });
        }
        if c.owns_cluster {
            drop(st);
            self.shutdown();
            return;
        }
        if let Some(id) = c.worker_id.filter(|_| c.kind == ClientKind::Worker) {
            if let Some(w) = st.workers.get(&id) {
                kill_pid(w.pid);
            }
            self.remove_worker(&mut st, id);
        }
        // Workers leased to a process that is gone run work nobody awaits.
        let held: Vec<u64> = st
            .leases
            .iter()
            .filter(|(_, l)| l.holder == client)
            .map(|(id, _)| *id)
            .collect();
        for lease in held {
            self.end_lease(&mut st, lease, true);
        }
        st.pending.retain(|p| p.requester.client() != Some(client));
        st.warned_shapes.retain(|(c, _)| *c != Some(client));
        self.dispatch(&mut st);
        drop(st);
        if !c.address.is_empty() && self.is_head() {
            self.placement_groups_of_gone_owner(&c.address);
        }
    }

    /// Processes that exited, on this node or (as the head relays it) on
    /// another: the objects they owned leave this node's store (and the
    /// copies made of them), this node's processes take back the holds
    /// they had lent them, and the head tells every other node.
    pub(crate) fn processes_gone(&self, addresses: Vec<String>) {
        let owned = self.store.lock().owned_by(&addresses);
        for id in owned {
            self.delete_object(id, String::new());
        }
        let body = Body::ProcessesGone(ProcessesGone { addresses });
        let st = self.state.lock();
        let relay_to_nodes = self.is_head();
        for c in st.clients.values() {
            if c.is_local_process() || (relay_to_nodes && c.node.is_some()) {
                c.writer.send(Envelope {
                    id: 0,
                    body: Some(body.clone()),
                });
            }
        }
    }

    pub(crate) fn shutdown(&self) {
        let mut st = self.state.lock();
        if st.shutting_down {
            return;
        }
        st.shutting_down = true;
        for w in st.workers.values() {
            kill_pid(w.pid);
        }
        if let Some(z) = self.zygote.lock().take() {
            z.stop();
        }
        self.stopped.notify_one();
    }
}

impl WorkerEvents for Node {
    fn on_line(&self, pid: u32, stderr: bool, line: String) {
        let lines = LogLines {
            pid,
            stderr,
            lines: vec![with_ip(&line, self.ip())],
        };
        match self.head() {
            // The head passes them on to the drivers of every other node.
            Some(head) => {
                self.to_local_drivers(&lines, false);
                head.send(Body::LogLines(lines));
            }
            None => self.relay_lines(lines, None),
        }
    }

    fn on_exit(&self, worker: WorkerId, _pid: u32, stderr_tail: String) {
        let mut st = self.state.lock();
        if let Some(w) = st.workers.get(&worker) {
            if !w.registered && !st.shutting_down {
                st.failed_starts += 1;
                st.last_start_error = stderr_tail;
            }
        }
        self.remove_worker(&mut st, worker);
        self.dispatch(&mut st);
    }
}

/// Adds the node's IP to a worker line's `(name pid=N)` prefix, as Ray
/// marks lines from other nodes.
fn with_ip(line: &str, ip: &str) -> String {
    if ip.is_empty() {
        return line.to_string();
    }
    match line.find(") ") {
        Some(end) if line.starts_with('(') && line[..end].contains("pid=") => {
            format!("{}, ip={}{}", &line[..end], ip, &line[end..])
        }
        _ => line.to_string(),
    }
}

fn infeasible_warning(p: &PendingLease, total: &ResourceSet) -> String {
    let asked: Vec<String> = p
        .shape
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.as_f64()))
        .collect();
    format!(
        "Warning: '{}' asks for {{{}}} but no node of this cluster can ever provide it ({}). \
         It stays pending until a node with these resources joins the cluster.",
        p.description,
        asked.join(", "),
        p.shape.shortfall(total).join(", ")
    )
}

/// The reply to a key-value read or delete: the value, if there was one.
fn kv_value(value: Option<Vec<u8>>) -> Body {
    Body::KvValue(KvValue {
        found: value.is_some(),
        value: value.unwrap_or_default(),
    })
}

/// An idle worker for a lease of `gpu_ids` in code environment `env_key`.
/// A worker that held GPUs serves only leases of the same GPUs (its CUDA
/// state is set up for them), and one that ran tasks of a code
/// environment serves only that environment (its modules may stay
/// loaded); a worker already set up for the lease goes first.
fn take_idle(st: &mut State, gpu_ids: &[u32], env_key: u64) -> Option<WorkerId> {
    let (idle, workers) = (&st.idle, &st.workers);
    let fit = |id: &WorkerId| -> Option<u8> {
        let w = workers.get(id)?;
        let gpus = match w.held_gpus.as_deref() {
            None => 0,
            Some(held) if !gpu_ids.is_empty() && held == gpu_ids => 1,
            Some(_) => return None,
        };
        let env = match w.code_env {
            0 => 0,
            e if e == env_key => 1,
            _ => return None,
        };
        Some(gpus + env)
    };
    let mut best: Option<(usize, u8)> = None;
    for (at, id) in idle.iter().enumerate() {
        if let Some(score) = fit(id) {
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((at, score));
            }
        }
    }
    st.idle.remove(best?.0)
}
