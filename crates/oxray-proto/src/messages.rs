//! The messages. Written as prost derives rather than generated from a
//! `.proto` file, so the build needs no `protoc`; the tags are the contract.
//!
//! Every message, field and variant is documented: ids are raw bytes
//! (16 for nodes, workers, actors and tasks, 20 for objects), resource
//! amounts are fixed-point (1/10000 of a unit), and an empty or zero field
//! means "none" unless its doc says otherwise.

use std::collections::BTreeMap;

use prost::{Message, Oneof};

/// One frame's content: a request id (0 for one-way messages) and a body.
#[derive(Clone, PartialEq, Message)]
pub struct Envelope {
    /// Request id, non-zero and chosen by the caller, echoed by the reply;
    /// 0 for a one-way message.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The message; `None` when absent or of a kind this build does not
    /// know (from a newer peer).
    #[prost(
        oneof = "Body",
        tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75"
    )]
    pub body: Option<Body>,
}

/// Every message kind.
#[derive(Clone, PartialEq, Oneof)]
pub enum Body {
    // --- client <-> node daemon ---------------------------------------------
    /// Request (client -> node daemon), first on the connection; answered by
    /// `Registered`.
    #[prost(message, tag = "2")]
    Register(Register),
    /// Reply to `Register`.
    #[prost(message, tag = "3")]
    Registered(Registered),
    /// Request (submitter -> node daemon): answered by `LeaseGranted`,
    /// `Spillback`, `Unschedulable` or `ErrorReply`.
    #[prost(message, tag = "4")]
    RequestLease(RequestLease),
    /// Reply to `RequestLease`: the worker is the caller's until `ReturnLease`.
    #[prost(message, tag = "5")]
    LeaseGranted(LeaseGranted),
    /// Request (lease holder -> node daemon); `Ack` when the id is non-zero.
    #[prost(message, tag = "6")]
    ReturnLease(ReturnLease),
    /// One-way (worker -> its node daemon).
    #[prost(message, tag = "7")]
    WorkerBlocked(WorkerBlocked),
    /// One-way (worker -> its node daemon).
    #[prost(message, tag = "8")]
    WorkerUnblocked(WorkerUnblocked),
    /// Request (lease holder -> node daemon); `Ack`, or `ErrorReply` without
    /// the lease.
    #[prost(message, tag = "9")]
    KillWorker(KillWorker),
    /// One-way (node daemon -> drivers).
    #[prost(message, tag = "10")]
    Warning(Warning),
    /// One-way: worker output relayed by node daemons (through the head) to
    /// drivers.
    #[prost(message, tag = "11")]
    LogLines(LogLines),
    /// Request (the driver that started the cluster -> node daemon); `Ack` or
    /// `ErrorReply`.
    #[prost(message, tag = "12")]
    ShutdownCluster(ShutdownCluster),
    /// Reply: success, nothing more to say.
    #[prost(message, tag = "13")]
    Ack(Ack),
    /// Reply: the request failed (also the refusal of a `Hello`).
    #[prost(message, tag = "14")]
    ErrorReply(ErrorReply),
    // --- client <-> control service -----------------------------------------
    /// Request (-> control service); `Ack`.
    #[prost(message, tag = "15")]
    KvPut(KvPut),
    /// Request (-> control service); `KvValue`.
    #[prost(message, tag = "16")]
    KvGet(KvGet),
    /// Reply to `KvGet`.
    #[prost(message, tag = "17")]
    KvValue(KvValue),
    /// Request (-> control service); `ClusterInfo`.
    #[prost(message, tag = "18")]
    ClusterInfoRequest(ClusterInfoRequest),
    /// Reply to `ClusterInfoRequest`: the node table.
    #[prost(message, tag = "19")]
    ClusterInfo(ClusterInfo),
    // --- core worker <-> core worker ----------------------------------------
    /// Request (submitter -> leased worker): run a task; `TaskReply`.
    #[prost(message, tag = "20")]
    PushTask(TaskSpec),
    /// Reply to `PushTask`.
    #[prost(message, tag = "21")]
    TaskReply(TaskReply),
    /// One-way (submitter -> the worker running the task).
    #[prost(message, tag = "22")]
    CancelTask(CancelTask),
    /// Request (borrower -> owner's core worker); `ObjectReply`.
    #[prost(message, tag = "23")]
    GetObject(GetObject),
    /// Reply to `GetObject`.
    #[prost(message, tag = "24")]
    ObjectReply(ObjectReply),
    /// One-way (node daemon -> lease holders): give idle leases back.
    #[prost(message, tag = "25")]
    LeaseWanted(LeaseWanted),
    // --- actors: client <-> control service ---------------------------------
    /// Request (-> control service); `ActorInfo` or `ErrorReply`.
    #[prost(message, tag = "26")]
    CreateActor(CreateActor),
    /// Reply to `CreateActor` and `GetActorInfo`.
    #[prost(message, tag = "27")]
    ActorInfo(ActorInfo),
    /// Request (-> control service); `ActorInfo` or `ErrorReply`.
    #[prost(message, tag = "28")]
    GetActorInfo(GetActorInfo),
    /// Request (-> control service); `Ack`.
    #[prost(message, tag = "29")]
    KillActor(KillActor),
    /// Request or one-way (actor's worker -> control service); `Ack` when the
    /// id is non-zero.
    #[prost(message, tag = "30")]
    ActorExiting(ActorExiting),
    /// Request with no actors (-> control service); the reply is the same
    /// variant, filled.
    #[prost(message, tag = "31")]
    ListActors(ListActors),
    // --- shared-memory object store: client <-> node daemon ----------------
    /// Request (client -> node daemon); `StoreReply`.
    #[prost(message, tag = "32")]
    StoreCreate(StoreCreate),
    /// Reply to `StoreCreate` and `StoreGet`.
    #[prost(message, tag = "33")]
    StoreReply(StoreReply),
    /// One-way (creator -> node daemon): the object is written and now
    /// immutable.
    #[prost(message, tag = "34")]
    StoreSeal(StoreObject),
    /// Request (client -> node daemon): pins the object for this connection;
    /// `StoreReply`.
    #[prost(message, tag = "35")]
    StoreGet(StoreObject),
    /// One-way (client -> node daemon): drops this connection's pin.
    #[prost(message, tag = "36")]
    StoreRelease(StoreObject),
    /// One-way (owner -> node daemon): frees the object here and on nodes
    /// holding copies.
    #[prost(message, tag = "37")]
    StoreDelete(StoreObject),
    /// Request (-> node daemon); `StoreStats`.
    #[prost(message, tag = "38")]
    StoreStatsRequest(StoreStatsRequest),
    /// Reply to `StoreStatsRequest`.
    #[prost(message, tag = "39")]
    StoreStats(StoreStats),
    // --- reference counting: borrower -> lender ----------------------------
    /// One-way (borrower -> lender's core worker).
    #[prost(message, tag = "40")]
    ReleaseLent(ReleaseLent),
    // --- state listing -----------------------------------------------------
    /// Request (-> node daemon); `ClientList`.
    #[prost(message, tag = "41")]
    ListClients(ListClients),
    /// Reply to `ListClients`.
    #[prost(message, tag = "42")]
    ClientList(ClientList),
    /// Request (-> core worker); `TaskList`.
    #[prost(message, tag = "43")]
    ListTasks(ListTasks),
    /// Reply to `ListTasks`.
    #[prost(message, tag = "44")]
    TaskList(TaskList),
    // --- TCP connections: the first frame proves the cluster token ---------
    /// First frame of every TCP connection (dialer -> listener).
    #[prost(message, tag = "45")]
    Hello(Hello),
    /// Reply to an accepted `Hello`.
    #[prost(message, tag = "46")]
    Welcome(Welcome),
    // --- node daemon <-> head ----------------------------------------------
    /// Request (node daemon -> head); answered by a whole `ClusterView`.
    #[prost(message, tag = "47")]
    RegisterNode(RegisterNode),
    /// One-way (node daemon -> head): also its heartbeat.
    #[prost(message, tag = "48")]
    ResourceReport(ResourceReport),
    /// Reply to `RegisterNode`, then one-way (head -> node daemons) at every
    /// change.
    #[prost(message, tag = "49")]
    ClusterView(ClusterInfo),
    /// One-way (node daemon -> head).
    #[prost(message, tag = "50")]
    ClientGone(ClientGone),
    /// Request (node daemon -> head); `JobIdReply`.
    #[prost(message, tag = "51")]
    AllocateJobId(AllocateJobId),
    /// Reply to `AllocateJobId`.
    #[prost(message, tag = "52")]
    JobIdReply(JobIdReply),
    // --- scheduling across nodes -------------------------------------------
    /// Reply to `RequestLease`: ask the named node instead.
    #[prost(message, tag = "53")]
    Spillback(Spillback),
    // --- objects across nodes: node daemon <-> node daemon -----------------
    /// Request (node daemon -> node daemon, bulk connection); `Chunk`.
    #[prost(message, tag = "54")]
    ReadChunk(ReadChunk),
    /// Reply to `ReadChunk`; with `raw`, the bytes follow the frame.
    #[prost(message, tag = "55")]
    Chunk(Chunk),
    // --- placement groups: client <-> control service ----------------------
    /// Request (-> control service); `PlacementGroupInfo` or `ErrorReply`.
    #[prost(message, tag = "56")]
    CreatePlacementGroup(CreatePlacementGroup),
    /// Reply to `CreatePlacementGroup` and `GetPlacementGroup`.
    #[prost(message, tag = "57")]
    PlacementGroupInfo(PlacementGroupInfo),
    /// Request (-> control service); `PlacementGroupInfo` or `ErrorReply`.
    #[prost(message, tag = "58")]
    GetPlacementGroup(GetPlacementGroup),
    /// Request (-> control service); `Ack` when the id is non-zero.
    #[prost(message, tag = "59")]
    RemovePlacementGroup(RemovePlacementGroup),
    /// Request with no groups (-> control service); the reply is the same
    /// variant, filled.
    #[prost(message, tag = "60")]
    PlacementGroupList(PlacementGroupList),
    // --- placement groups: control service -> node daemon -------------------
    /// Request; `Ack`, or `ErrorReply` when they do not fit.
    #[prost(message, tag = "61")]
    ReserveBundles(ReserveBundles),
    /// Request or one-way; `Ack` when the id is non-zero.
    #[prost(message, tag = "62")]
    ReturnBundles(ReturnBundles),
    /// Reply to a [`RequestLease`] that no node can ever serve as asked
    /// (hard node affinity to a node that is gone).
    #[prost(message, tag = "63")]
    Unschedulable(ErrorReply),
    /// Nodes the cluster declared dead (node daemon -> its clients).
    #[prost(message, tag = "64")]
    NodesRemoved(NodesRemoved),
    /// A whole copy of object `id` now lives on the node at `source`
    /// (reader -> owner): the owner can fall back on it.
    #[prost(message, tag = "65")]
    ObjectLocation(StoreObject),
    /// The primary of object `id` died with its node: keep this node's
    /// copy as the primary (owner -> node daemon; `Ack`, or an error when
    /// the copy is gone).
    #[prost(message, tag = "66")]
    AdoptCopy(StoreObject),
    /// Processes that exited (head -> every node daemon -> its processes):
    /// daemons free the objects they owned, processes take back the holds
    /// they had lent them.
    #[prost(message, tag = "67")]
    ProcessesGone(ProcessesGone),
    /// One value yielded by a streaming generator task (worker -> the
    /// task's caller); `Ack` once the caller takes it, held back while the
    /// consumer is too far behind (Ray's generator backpressure).
    #[prost(message, tag = "68")]
    GeneratorItem(GeneratorItem),
    /// Request (-> control service); `KvValue` with the value removed
    /// (`found` false when there was none).
    #[prost(message, tag = "69")]
    KvDelete(KvGet),
    /// Request (-> control service); `KvKeyList`.
    #[prost(message, tag = "70")]
    KvKeys(KvKeys),
    /// Reply to `KvKeys`.
    #[prost(message, tag = "71")]
    KvKeyList(KvKeyList),
    /// Request (-> a node daemon); `LogFileList`: the node's log files.
    #[prost(message, tag = "72")]
    ListLogFiles(ListLogFiles),
    /// Reply to `ListLogFiles`.
    #[prost(message, tag = "73")]
    LogFileList(LogFileList),
    /// Request (-> a node daemon); `LogChunk` (`missing` when there is no
    /// such file), or an error for a name that is not a log file's.
    #[prost(message, tag = "74")]
    ReadLogFile(ReadLogFile),
    /// Reply to `ReadLogFile`.
    #[prost(message, tag = "75")]
    LogChunk(LogChunk),
}

/// The protocol version spoken; a peer of another version is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// First frame on every TCP connection: the cluster token and the
/// protocol version. Nothing else is read before it is checked.
#[derive(Clone, PartialEq, Message)]
pub struct Hello {
    /// The cluster token, compared in constant time; a wrong one closes the
    /// connection.
    #[prost(string, tag = "1")]
    pub token: String,
    /// The dialer's [`PROTOCOL_VERSION`]; any other than the listener's is
    /// refused.
    #[prost(uint32, tag = "2")]
    pub version: u32,
}

/// Reply to an accepted [`Hello`].
#[derive(Clone, PartialEq, Message)]
pub struct Welcome {
    /// The listener's [`PROTOCOL_VERSION`].
    #[prost(uint32, tag = "1")]
    pub version: u32,
}

/// A node daemon joins the cluster (sent to the head's control service).
#[derive(Clone, PartialEq, Message)]
pub struct RegisterNode {
    /// The joining node: its id, address, IP and resources.
    #[prost(message, optional, tag = "1")]
    pub node: Option<NodeInfo>,
}

/// A node's resources available now; `version` grows with every report so
/// that a late report never overwrites a newer one.
#[derive(Clone, PartialEq, Message)]
pub struct ResourceReport {
    /// The reporting node (16-byte node id).
    #[prost(bytes = "vec", tag = "1")]
    pub node_id: Vec<u8>,
    /// Orders the reports of one node: the head drops one older than what it
    /// has.
    #[prost(uint64, tag = "2")]
    pub version: u64,
    /// Resources free now, by name, in fixed-point units (1/10000 of a unit).
    #[prost(btree_map = "string, int64", tag = "3")]
    pub available: BTreeMap<String, i64>,
    /// All the node's resources, by name, in fixed-point units.
    #[prost(btree_map = "string, int64", tag = "4")]
    pub total: BTreeMap<String, i64>,
    /// Lease requests waiting there, by shape.
    #[prost(message, repeated, tag = "5")]
    pub pending: Vec<Demand>,
}

/// A process registered with a node daemon disconnected (sent to the head:
/// the actors it owned die with it).
#[derive(Clone, PartialEq, Message)]
pub struct ClientGone {
    /// The process's core-worker address, as its actors record their owner.
    #[prost(string, tag = "1")]
    pub address: String,
}

/// Asks the head for a new job id (a driver registered on another node).
#[derive(Clone, PartialEq, Message)]
pub struct AllocateJobId {}

/// Reply to [`AllocateJobId`].
#[derive(Clone, PartialEq, Message)]
pub struct JobIdReply {
    /// The new job's id, unique in the cluster.
    #[prost(uint32, tag = "1")]
    pub job_id: u32,
}

/// Reply to a [`RequestLease`] that another node should serve: ask there.
#[derive(Clone, PartialEq, Message)]
pub struct Spillback {
    /// The node to ask (16-byte node id).
    #[prost(bytes = "vec", tag = "1")]
    pub node_id: Vec<u8>,
    /// The node daemon's address.
    #[prost(string, tag = "2")]
    pub address: String,
}

/// Read `len` bytes at `offset` of a sealed object of the node's store (a
/// pull by another node). The first read pins the object for the reader's
/// connection until it reads the last byte or disconnects.
#[derive(Clone, PartialEq, Message)]
pub struct ReadChunk {
    /// The object (20-byte object id).
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// Where the chunk starts in the object, in bytes (0: the first chunk).
    #[prost(uint64, tag = "2")]
    pub offset: u64,
    /// Most bytes wanted; the reply stops at the object's end.
    #[prost(uint64, tag = "3")]
    pub len: u64,
    /// The reader's node daemon address: it keeps a copy, deleted when the
    /// primary copy is.
    #[prost(string, tag = "4")]
    pub reader: String,
    /// Bulk stream: the reply is a [`Chunk`] frame without data, followed
    /// by the data itself as raw bytes on the connection.
    #[prost(bool, tag = "5")]
    pub raw: bool,
    /// Serve it from here, without redirecting to a copy (the copy could
    /// not be read).
    #[prost(bool, tag = "6")]
    pub direct: bool,
}

/// Reply to [`ReadChunk`].
#[derive(Clone, PartialEq, Message)]
pub struct Chunk {
    /// The object's whole size.
    #[prost(uint64, tag = "1")]
    pub total: u64,
    /// The bytes of a non-raw reply; empty in a bulk stream (nodes now serve
    /// only those).
    #[prost(bytes = "bytes", tag = "2")]
    pub data: bytes::Bytes,
    /// Why the object cannot be read (empty on success).
    #[prost(string, tag = "3")]
    pub error: String,
    /// Read it from this node instead, which holds a whole copy (only in
    /// answer to a first chunk; no bytes follow).
    #[prost(string, tag = "4")]
    pub redirect: String,
}

/// How a task or actor chooses its node.
#[derive(Clone, PartialEq, Message)]
pub struct SchedulingStrategy {
    /// `DEFAULT`, `SPREAD`, `NODE_AFFINITY` or `PLACEMENT_GROUP`.
    #[prost(string, tag = "1")]
    pub kind: String,
    /// The node, for `NODE_AFFINITY`.
    #[prost(bytes = "vec", tag = "2")]
    pub node_id: Vec<u8>,
    /// `NODE_AFFINITY`: run elsewhere when that node cannot.
    #[prost(bool, tag = "3")]
    pub soft: bool,
}

/// One bundle of a placement group.
#[derive(Clone, PartialEq, Message)]
pub struct Bundle {
    /// Its resource shape, by name, in fixed-point units (1/10000 of a unit).
    #[prost(btree_map = "string, int64", tag = "1")]
    pub resources: BTreeMap<String, i64>,
    /// Where it is reserved (empty while pending).
    #[prost(bytes = "vec", tag = "2")]
    pub node_id: Vec<u8>,
    /// Its position in the group.
    #[prost(uint32, tag = "3")]
    pub index: u32,
}

/// Reserve some bundles of a group on this node, all or none: the
/// resources leave the node's pool and come back as the group's own
/// (`CPU_group_<index>_<pg>` and `CPU_group_<pg>`, as in Ray).
#[derive(Clone, PartialEq, Message)]
pub struct ReserveBundles {
    /// The group.
    #[prost(bytes = "vec", tag = "1")]
    pub pg_id: Vec<u8>,
    /// The bundles this node is to hold, with their `index` in the group.
    #[prost(message, repeated, tag = "2")]
    pub bundles: Vec<Bundle>,
}

/// Give back every bundle of a group reserved on this node; workers using
/// them are stopped.
#[derive(Clone, PartialEq, Message)]
pub struct ReturnBundles {
    /// The group.
    #[prost(bytes = "vec", tag = "1")]
    pub pg_id: Vec<u8>,
}

/// Reserve a placement group.
#[derive(Clone, PartialEq, Message)]
pub struct CreatePlacementGroup {
    /// The group's id, chosen by the creator.
    #[prost(bytes = "vec", tag = "1")]
    pub pg_id: Vec<u8>,
    /// The bundles, in order; their `node_id` is empty.
    #[prost(message, repeated, tag = "2")]
    pub bundles: Vec<Bundle>,
    /// `PACK`, `SPREAD`, `STRICT_PACK` or `STRICT_SPREAD`.
    #[prost(string, tag = "3")]
    pub strategy: String,
    /// A name to look it up by (empty: anonymous).
    #[prost(string, tag = "4")]
    pub name: String,
    /// The namespace `name` lives in.
    #[prost(string, tag = "5")]
    pub namespace: String,
    /// Outlives its creator (`lifetime="detached"`).
    #[prost(bool, tag = "6")]
    pub detached: bool,
    /// The creator's address: a non-detached group goes with it.
    #[prost(string, tag = "7")]
    pub owner: String,
}

/// A placement group's state.
#[derive(Clone, PartialEq, Message)]
pub struct PlacementGroupInfo {
    /// The group's id.
    #[prost(bytes = "vec", tag = "1")]
    pub pg_id: Vec<u8>,
    /// `PENDING`, `CREATED` or `REMOVED`.
    #[prost(string, tag = "2")]
    pub state: String,
    /// Its bundles, in order, each with the node it is reserved on.
    #[prost(message, repeated, tag = "3")]
    pub bundles: Vec<Bundle>,
    /// As in [`CreatePlacementGroup::strategy`].
    #[prost(string, tag = "4")]
    pub strategy: String,
    /// Its name (empty: anonymous).
    #[prost(string, tag = "5")]
    pub name: String,
    /// The namespace `name` lives in.
    #[prost(string, tag = "6")]
    pub namespace: String,
    /// Outlives its creator.
    #[prost(bool, tag = "7")]
    pub detached: bool,
}

/// Look a placement group up by id (or name); with `wait`, the reply
/// comes once it is created or removed.
#[derive(Clone, PartialEq, Message)]
pub struct GetPlacementGroup {
    /// The group (empty: look it up by `name`).
    #[prost(bytes = "vec", tag = "1")]
    pub pg_id: Vec<u8>,
    /// The group's name, when `pg_id` is empty.
    #[prost(string, tag = "2")]
    pub name: String,
    /// The namespace `name` lives in.
    #[prost(string, tag = "3")]
    pub namespace: String,
    /// Reply only once the group is no longer `PENDING`.
    #[prost(bool, tag = "4")]
    pub wait: bool,
}

/// Remove a placement group: its resources return, its workers end.
#[derive(Clone, PartialEq, Message)]
pub struct RemovePlacementGroup {
    /// The group.
    #[prost(bytes = "vec", tag = "1")]
    pub pg_id: Vec<u8>,
}

/// Every placement group (reply to an empty one: the request).
#[derive(Clone, PartialEq, Message)]
pub struct PlacementGroupList {
    /// The groups (empty in the request).
    #[prost(message, repeated, tag = "1")]
    pub groups: Vec<PlacementGroupInfo>,
}

/// What kind of process registers with a node daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum ClientKind {
    /// A user program that called `init`.
    Driver = 0,
    /// A worker process the daemon started.
    Worker = 1,
}

/// First message on a daemon connection.
#[derive(Clone, PartialEq, Message)]
pub struct Register {
    /// A [`ClientKind`]; unknown values count as a driver.
    #[prost(enumeration = "ClientKind", tag = "1")]
    pub kind: i32,
    /// The process's 16-byte worker id (a worker's is the one its daemon
    /// started it with).
    #[prost(bytes = "vec", tag = "2")]
    pub worker_id: Vec<u8>,
    /// The process's pid.
    #[prost(uint32, tag = "3")]
    pub pid: u32,
    /// Where this process's core worker listens for pushed tasks and object
    /// requests.
    #[prost(string, tag = "4")]
    pub address: String,
    /// Whether the daemon should stop the whole cluster when this driver goes
    /// (the embedded local cluster started by `init()`).
    #[prost(bool, tag = "5")]
    pub owns_cluster: bool,
}

/// Reply to [`Register`].
#[derive(Clone, PartialEq, Message)]
pub struct Registered {
    /// The daemon's node (16-byte node id).
    #[prost(bytes = "vec", tag = "1")]
    pub node_id: Vec<u8>,
    /// The driver's new job id (0 for a worker: tasks carry theirs).
    #[prost(uint32, tag = "2")]
    pub job_id: u32,
    /// The node's session directory, where its sockets and files live.
    #[prost(string, tag = "3")]
    pub session_dir: String,
    /// The node's shared-memory store file, to map.
    #[prost(string, tag = "4")]
    pub store_path: String,
    /// The node daemon's address for other nodes (`tcp:IP:PORT|unix:PATH`;
    /// empty on a single-node cluster). Shared-memory markers carry it.
    #[prost(string, tag = "5")]
    pub node_address: String,
    /// The IP this node's processes listen on for other nodes (empty on a
    /// single-node cluster).
    #[prost(string, tag = "6")]
    pub node_ip: String,
    /// The cluster token, which this process proves to its TCP peers.
    #[prost(string, tag = "7")]
    pub token: String,
}

/// Ask for a worker that fits `resources`, to push tasks to directly.
#[derive(Clone, PartialEq, Message)]
pub struct RequestLease {
    /// The shape to reserve, by name, in fixed-point units (1/10000 of a unit).
    #[prost(btree_map = "string, int64", tag = "1")]
    pub resources: BTreeMap<String, i64>,
    /// What the lease is for, e.g. the function name; used in warnings.
    #[prost(string, tag = "2")]
    pub description: String,
    /// How to choose the node (none: the default strategy).
    #[prost(message, optional, tag = "3")]
    pub strategy: Option<SchedulingStrategy>,
    /// Sent to this node by another one's spillback: grant here, or queue,
    /// but never spill again.
    #[prost(bool, tag = "4")]
    pub spilled: bool,
    /// The node daemon holding the first queued task's large arguments:
    /// placed there when it fits now (data locality).
    #[prost(string, tag = "5")]
    pub preferred: String,
    /// Asked by the head for an actor it manages: the lease outlives the
    /// connection that asked (the head may restart and reattach), and
    /// ends when the head returns it.
    #[prost(bool, tag = "6")]
    pub for_actor: bool,
    /// The code environment of the tasks it runs (a hash of their
    /// runtime_env's packages; 0: none). A worker that ran tasks of one
    /// environment serves only leases of that environment afterwards, so
    /// environments never mix in one process.
    #[prost(uint64, tag = "7")]
    pub env_key: u64,
}

/// A granted lease: a worker reserved for the requester.
#[derive(Clone, PartialEq, Message)]
pub struct LeaseGranted {
    /// Names the lease in `ReturnLease`; unique in the cluster.
    #[prost(uint64, tag = "1")]
    pub lease_id: u64,
    /// The leased worker (16-byte worker id).
    #[prost(bytes = "vec", tag = "2")]
    pub worker_id: Vec<u8>,
    /// Where the worker's core worker listens: push tasks there.
    #[prost(string, tag = "3")]
    pub address: String,
    /// Indices of the node's GPUs the lease holds (empty: none).
    #[prost(uint32, repeated, tag = "4")]
    pub gpu_ids: Vec<u32>,
    /// The worker's pid.
    #[prost(uint32, tag = "5")]
    pub pid: u32,
}

/// Give a lease back; optionally have the daemon kill its worker.
#[derive(Clone, PartialEq, Message)]
pub struct ReturnLease {
    /// From [`LeaseGranted::lease_id`].
    #[prost(uint64, tag = "1")]
    pub lease_id: u64,
    /// Kill the worker rather than put it back in the idle pool (its state is
    /// unknown).
    #[prost(bool, tag = "2")]
    pub kill_worker: bool,
}

/// Sent by the daemon to lease holders when a request is waiting for
/// resources: idle leases should come back now.
#[derive(Clone, PartialEq, Message)]
pub struct LeaseWanted {}

/// A worker is blocked in `get`: its CPUs may be lent out.
#[derive(Clone, PartialEq, Message)]
pub struct WorkerBlocked {}

/// A blocked worker resumes: it takes its CPUs back.
#[derive(Clone, PartialEq, Message)]
pub struct WorkerUnblocked {}

/// Kill a worker process (forced cancellation).
#[derive(Clone, PartialEq, Message)]
pub struct KillWorker {
    /// The worker (16-byte worker id); the sender must hold its lease.
    #[prost(bytes = "vec", tag = "1")]
    pub worker_id: Vec<u8>,
}

/// A warning for the driver to print.
#[derive(Clone, PartialEq, Message)]
pub struct Warning {
    /// The message, as printed.
    #[prost(string, tag = "1")]
    pub text: String,
}

/// Lines a worker printed, forwarded to drivers.
#[derive(Clone, PartialEq, Message)]
pub struct LogLines {
    /// The pid of the worker that printed them.
    #[prost(uint32, tag = "1")]
    pub pid: u32,
    /// Printed to stderr (false: stdout).
    #[prost(bool, tag = "2")]
    pub stderr: bool,
    /// The lines, without newlines (on a multi-node cluster, the node's IP
    /// joins their `(... pid=N)` prefix).
    #[prost(string, repeated, tag = "3")]
    pub lines: Vec<String>,
}

/// Stop every process of the cluster.
#[derive(Clone, PartialEq, Message)]
pub struct ShutdownCluster {}

/// Empty success reply.
#[derive(Clone, PartialEq, Message)]
pub struct Ack {}

/// Failure reply, with a message for the user.
#[derive(Clone, PartialEq, Message)]
pub struct ErrorReply {
    /// What went wrong, worded for the user.
    #[prost(string, tag = "1")]
    pub message: String,
}

/// Store a value in the control service's key-value table.
#[derive(Clone, PartialEq, Message)]
pub struct KvPut {
    /// The table the key lives in.
    #[prost(string, tag = "1")]
    pub namespace: String,
    /// The key; an existing value is replaced.
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    /// The value.
    #[prost(bytes = "vec", tag = "3")]
    pub value: Vec<u8>,
}

/// Read a value from the key-value table.
#[derive(Clone, PartialEq, Message)]
pub struct KvGet {
    /// The table the key lives in.
    #[prost(string, tag = "1")]
    pub namespace: String,
    /// The key.
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
}

/// List the keys of a namespace of the key-value table that start with
/// `prefix`.
#[derive(Clone, PartialEq, Message)]
pub struct KvKeys {
    /// The table.
    #[prost(string, tag = "1")]
    pub namespace: String,
    /// What the keys start with (empty: all).
    #[prost(bytes = "vec", tag = "2")]
    pub prefix: Vec<u8>,
}

/// Reply to [`KvKeys`].
#[derive(Clone, PartialEq, Message)]
pub struct KvKeyList {
    /// The keys, in no particular order.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub keys: Vec<Vec<u8>>,
}

/// Ask a node daemon for its log files: its workers' (`logs/` of its
/// session directory) and its own output.
#[derive(Clone, PartialEq, Message)]
pub struct ListLogFiles {}

/// One log file of a node.
#[derive(Clone, PartialEq, Message)]
pub struct LogFile {
    /// The file's name, as [`ReadLogFile`] takes it.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its size in bytes.
    #[prost(uint64, tag = "2")]
    pub size: u64,
    /// When it was last written, in microseconds since the Unix epoch.
    #[prost(uint64, tag = "3")]
    pub modified_us: u64,
}

/// Reply to [`ListLogFiles`].
#[derive(Clone, PartialEq, Message)]
pub struct LogFileList {
    /// The files, in no particular order.
    #[prost(message, repeated, tag = "1")]
    pub files: Vec<LogFile>,
}

/// Read part of one of a node's log files.
#[derive(Clone, PartialEq, Message)]
pub struct ReadLogFile {
    /// The file, by the name [`LogFileList`] gives (a name, never a path).
    #[prost(string, tag = "1")]
    pub name: String,
    /// Where to start, in bytes from the start of the file.
    #[prost(uint64, tag = "2")]
    pub offset: u64,
    /// At most this many bytes (the daemon caps it too).
    #[prost(uint64, tag = "3")]
    pub length: u64,
}

/// Reply to [`ReadLogFile`].
#[derive(Clone, PartialEq, Message)]
pub struct LogChunk {
    /// The bytes read from `offset` (empty past the end).
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
    /// The file's size when it was read.
    #[prost(uint64, tag = "2")]
    pub size: u64,
    /// The file's inode: a new one means the file was rotated.
    #[prost(uint64, tag = "3")]
    pub inode: u64,
    /// There is no such log file (now: a file being rotated may be back
    /// in a moment); the other fields are empty.
    #[prost(bool, tag = "4")]
    pub missing: bool,
}

/// Reply to [`KvGet`].
#[derive(Clone, PartialEq, Message)]
pub struct KvValue {
    /// Whether the key exists (`value` is empty when not).
    #[prost(bool, tag = "1")]
    pub found: bool,
    /// The value.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// Ask for the node table.
#[derive(Clone, PartialEq, Message)]
pub struct ClusterInfoRequest {}

/// One node of the cluster.
#[derive(Clone, PartialEq, Message)]
pub struct NodeInfo {
    /// The node (16-byte node id).
    #[prost(bytes = "vec", tag = "1")]
    pub node_id: Vec<u8>,
    /// Its node daemon's address (`tcp:IP:PORT|unix:PATH`, or `unix:PATH`
    /// alone).
    #[prost(string, tag = "2")]
    pub address: String,
    /// False once the head declared it dead.
    #[prost(bool, tag = "3")]
    pub alive: bool,
    /// All its resources, by name, in fixed-point units (1/10000 of a unit).
    #[prost(btree_map = "string, int64", tag = "4")]
    pub total: BTreeMap<String, i64>,
    /// Its free resources, in the same units.
    #[prost(btree_map = "string, int64", tag = "5")]
    pub available: BTreeMap<String, i64>,
    /// Its host's name, for listings.
    #[prost(string, tag = "6")]
    pub hostname: String,
    /// Whether it serves the control service.
    #[prost(bool, tag = "7")]
    pub is_head: bool,
    /// The IP its processes listen on for other nodes (empty on a single-node
    /// cluster).
    #[prost(string, tag = "8")]
    pub ip: String,
    /// Version of `available` (see [`ResourceReport`]).
    #[prost(uint64, tag = "9")]
    pub version: u64,
    /// Lease requests waiting on this node, by shape.
    #[prost(message, repeated, tag = "10")]
    pub pending: Vec<Demand>,
    /// The port of its Prometheus endpoint on `ip` (0: none).
    #[prost(uint32, tag = "11")]
    pub metrics_port: u32,
}

/// Requests of one resource shape waiting for resources.
#[derive(Clone, PartialEq, Message)]
pub struct Demand {
    /// The shape, by name, in fixed-point units (1/10000 of a unit).
    #[prost(btree_map = "string, int64", tag = "1")]
    pub resources: BTreeMap<String, i64>,
    /// How many requests of that shape wait.
    #[prost(uint32, tag = "2")]
    pub count: u32,
}

/// Reply to [`ClusterInfoRequest`].
#[derive(Clone, PartialEq, Message)]
pub struct ClusterInfo {
    /// The nodes, dead ones included (`alive` false).
    #[prost(message, repeated, tag = "1")]
    pub nodes: Vec<NodeInfo>,
    /// Only the nodes that changed since the last view sent (the others
    /// are as they were).
    #[prost(bool, tag = "2")]
    pub delta: bool,
}

/// A reference to an object, with the address of the process that owns it.
#[derive(Clone, PartialEq, Eq, Hash, Message)]
pub struct ObjectRefMsg {
    /// The object (20-byte object id).
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// The owner's core-worker address, where `GetObject` goes.
    #[prost(string, tag = "2")]
    pub owner: String,
    /// The process that shipped this ref to us and holds it for us until
    /// we release it (empty when nobody lent it).
    #[prost(string, tag = "3")]
    pub lender: String,
}

/// A serialized value. `metadata` says how to read `data` (a pickled Python
/// value, or one of the error kinds); `nested` lists refs found inside it.
#[derive(Clone, PartialEq, Message)]
pub struct Object {
    /// The bytes, read as `metadata` says.
    #[prost(bytes = "bytes", tag = "1")]
    pub data: bytes::Bytes,
    /// Its first byte says what `data` holds (`P` or empty: a pickle; `X`: a
    /// shared-memory marker; others: error kinds).
    #[prost(bytes = "bytes", tag = "2")]
    pub metadata: bytes::Bytes,
    /// Refs pickled inside `data`: the receiver holds them while it keeps the
    /// value.
    #[prost(message, repeated, tag = "3")]
    pub nested: Vec<ObjectRefMsg>,
}

/// A task pushed straight to a leased worker.
#[derive(Clone, PartialEq, Message)]
pub struct TaskSpec {
    /// The task (16-byte task id).
    #[prost(bytes = "vec", tag = "1")]
    pub task_id: Vec<u8>,
    /// The job that submitted it.
    #[prost(uint32, tag = "2")]
    pub job_id: u32,
    /// Content hash of the pickled function, a key in the control service's
    /// function table.
    #[prost(bytes = "vec", tag = "3")]
    pub function_id: Vec<u8>,
    /// The function's qualified name (for an actor creation, the class's), for
    /// errors and listings.
    #[prost(string, tag = "4")]
    pub function_name: String,
    /// The pickled `(args, kwargs)`, with top-level refs replaced by slots.
    #[prost(bytes = "bytes", tag = "5")]
    pub args: bytes::Bytes,
    /// The values of the top-level ref arguments, in slot order.
    #[prost(message, repeated, tag = "6")]
    pub resolved_args: Vec<Object>,
    /// How many objects it returns.
    #[prost(uint32, tag = "7")]
    pub num_returns: u32,
    /// Pickled `retry_exceptions` option (empty: never retry on exceptions).
    #[prost(bytes = "bytes", tag = "8")]
    pub retry_exceptions: bytes::Bytes,
    /// Indices of the GPUs the worker's lease holds, set by the submitter from
    /// the lease.
    #[prost(uint32, repeated, tag = "9")]
    pub gpu_ids: Vec<u32>,
    /// 0 at the first run, bumped at each retry; an actor creation carries its
    /// incarnation.
    #[prost(uint32, tag = "10")]
    pub attempt: u32,
    /// The caller's address: owner of the returned objects.
    #[prost(string, tag = "11")]
    pub owner: String,
    /// The actor this task creates or runs on (empty for plain tasks).
    #[prost(bytes = "vec", tag = "12")]
    pub actor_id: Vec<u8>,
    /// The method to call, for actor tasks.
    #[prost(string, tag = "13")]
    pub method_name: String,
    /// Whether this task creates the actor (runs `__init__`).
    #[prost(bool, tag = "14")]
    pub actor_creation: bool,
    /// Calls an actor runs at once (creation tasks only).
    #[prost(uint32, tag = "15")]
    pub max_concurrency: u32,
    /// The namespace of the job that submitted the task.
    #[prost(string, tag = "16")]
    pub namespace: String,
    /// Refs nested inside the pickled arguments.
    #[prost(message, repeated, tag = "17")]
    pub args_nested: Vec<ObjectRefMsg>,
    /// The placement group it runs in (empty: none).
    #[prost(bytes = "vec", tag = "18")]
    pub placement_group_id: Vec<u8>,
    /// Tasks it submits run in the same placement group by default.
    #[prost(bool, tag = "19")]
    pub capture_child_tasks: bool,
    /// Environment variables the task (or actor) runs with: its
    /// `runtime_env["env_vars"]` merged over its submitter's.
    #[prost(btree_map = "string, string", tag = "20")]
    pub env_vars: BTreeMap<String, String>,
    /// What the worker holds for it: an encoded [`ResourceAmounts`], set
    /// when pushed (encoded once per resource shape, decoded only when
    /// `get_assigned_resources()` asks).
    #[prost(bytes = "bytes", tag = "21")]
    pub resources: bytes::Bytes,
    /// What a generator function's values become: see [`ReturnsKind`].
    #[prost(enumeration = "ReturnsKind", tag = "22")]
    pub returns_kind: i32,
    /// When it was submitted, in microseconds since the Unix epoch.
    #[prost(uint64, tag = "23")]
    pub created_us: u64,
}

/// What the values a task's function yields become.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum ReturnsKind {
    /// `num_returns` objects, the function's result (split when above one).
    Fixed = 0,
    /// Each yielded value is reported to the caller as it is produced
    /// ([`GeneratorItem`]); the task's one return says how it ended.
    Streaming = 1,
    /// The yielded values are stored and the one return lists their refs
    /// (Ray's `num_returns="dynamic"`).
    Dynamic = 2,
}

/// One value a streaming generator task yielded.
#[derive(Clone, PartialEq, Message)]
pub struct GeneratorItem {
    /// The generator task.
    #[prost(bytes = "vec", tag = "1")]
    pub task_id: Vec<u8>,
    /// The value's position in the stream, from 0; its object id is the
    /// task's return `index + 2` (return 1 is the task's own).
    #[prost(uint32, tag = "2")]
    pub index: u32,
    /// The value (inline, or a marker of its shared-memory copy).
    #[prost(message, optional, tag = "3")]
    pub object: Option<Object>,
}

/// The outcome of a task: one object per return, or error objects.
#[derive(Clone, PartialEq, Message)]
pub struct TaskReply {
    /// The task, as in its [`TaskSpec`].
    #[prost(bytes = "vec", tag = "1")]
    pub task_id: Vec<u8>,
    /// One object per return value, in order (error objects when the task
    /// failed).
    #[prost(message, repeated, tag = "2")]
    pub returns: Vec<Object>,
    /// The task raised an exception that `retry_exceptions` allows retrying.
    #[prost(bool, tag = "3")]
    pub retryable: bool,
    /// The task never started: the worker blocked on an earlier task and
    /// handed it back to run elsewhere.
    #[prost(bool, tag = "4")]
    pub bounced: bool,
}

/// When a task ran on the worker that answers a [`ListTasks`], for
/// `list_tasks` and `timeline()` (kept by the worker, so the task path
/// sends nothing for them).
#[derive(Clone, PartialEq, Message)]
pub struct RunRecord {
    /// The task (16-byte task id).
    #[prost(bytes = "vec", tag = "1")]
    pub task_id: Vec<u8>,
    /// Its attempt.
    #[prost(uint32, tag = "2")]
    pub attempt: u32,
    /// When it started, in microseconds since the Unix epoch.
    #[prost(uint64, tag = "3")]
    pub started_us: u64,
    /// When it finished (0: it is running).
    #[prost(uint64, tag = "4")]
    pub ended_us: u64,
    /// What it raised, with the traceback (empty when it succeeded).
    #[prost(string, tag = "5")]
    pub error_message: String,
}

/// Cancel a task pushed earlier.
#[derive(Clone, PartialEq, Message)]
pub struct CancelTask {
    /// The task.
    #[prost(bytes = "vec", tag = "1")]
    pub task_id: Vec<u8>,
    /// With `recursive`: kill the children's workers (the task's own forced
    /// cancel is a `KillWorker`).
    #[prost(bool, tag = "2")]
    pub force: bool,
    /// Also cancel the tasks it submitted.
    #[prost(bool, tag = "3")]
    pub recursive: bool,
}

/// Ask an owner for an object's value; the reply waits until it exists.
#[derive(Clone, PartialEq, Message)]
pub struct GetObject {
    /// The object (20-byte object id).
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// The node whose shared-memory copy could not be read (its daemon
    /// address): the owner rebuilds the object if that was its copy, and
    /// replies with the new one. Empty for a plain fetch.
    #[prost(string, tag = "2")]
    pub lost_location: String,
    /// The fetching process's address: the holds lent with the reply are
    /// recorded against it, and taken back if it exits without returning
    /// them.
    #[prost(string, tag = "3")]
    pub reader: String,
}

/// Resource amounts, by name, in units of 1/10,000.
#[derive(Clone, PartialEq, Message)]
pub struct ResourceAmounts {
    /// Resource name to units.
    #[prost(btree_map = "string, int64", tag = "1")]
    pub units: BTreeMap<String, i64>,
}

impl ResourceAmounts {
    /// `units` encoded, as [`TaskSpec::resources`] carries them.
    pub fn encode_units(units: BTreeMap<String, i64>) -> bytes::Bytes {
        Self { units }.encode_to_vec().into()
    }

    /// The units of an encoded `ResourceAmounts` (none when malformed).
    pub fn decode_units(encoded: &[u8]) -> BTreeMap<String, i64> {
        Self::decode(encoded).map(|a| a.units).unwrap_or_default()
    }
}

/// Processes that exited, anywhere in the cluster.
#[derive(Clone, PartialEq, Message)]
pub struct ProcessesGone {
    /// Their core-worker addresses.
    #[prost(string, repeated, tag = "1")]
    pub addresses: Vec<String>,
}

/// Nodes declared dead: clients fail the calls in flight to their workers
/// and owners rebuild the objects whose only copy was there.
#[derive(Clone, PartialEq, Message)]
pub struct NodesRemoved {
    /// Their daemons' addresses (what shared-memory markers carry).
    #[prost(string, repeated, tag = "1")]
    pub addresses: Vec<String>,
    /// Their 16-byte node ids, in the order of `addresses`.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub node_ids: Vec<Vec<u8>>,
}

/// Reply to [`GetObject`].
#[derive(Clone, PartialEq, Message)]
pub struct ObjectReply {
    /// The value (a shared-memory marker for one held in a node's store);
    /// absent on error.
    #[prost(message, optional, tag = "1")]
    pub object: Option<Object>,
    /// Why the object cannot be had, when `object` is absent.
    #[prost(string, tag = "2")]
    pub error: String,
}

/// Life-cycle states of an actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum ActorState {
    /// Waiting for a worker, or running `__init__`.
    Pending = 0,
    /// Ready for calls at `address`.
    Alive = 1,
    /// Its worker died; a new one is being started.
    Restarting = 2,
    /// Gone for good; `death_message` says why.
    Dead = 3,
}

/// Register an actor and have the control service start it.
#[derive(Clone, PartialEq, Message)]
pub struct CreateActor {
    /// The creation task (class, constructor arguments).
    #[prost(message, optional, tag = "1")]
    pub spec: Option<TaskSpec>,
    /// What its worker holds while it lives, by name, in fixed-point units
    /// (1/10000 of a unit).
    #[prost(btree_map = "string, int64", tag = "2")]
    pub resources: BTreeMap<String, i64>,
    /// A name to look it up by (empty: anonymous).
    #[prost(string, tag = "3")]
    pub name: String,
    /// The namespace `name` lives in.
    #[prost(string, tag = "4")]
    pub namespace: String,
    /// Outlives its owner (`lifetime="detached"`).
    #[prost(bool, tag = "5")]
    pub detached: bool,
    /// Restarts after a crash; -1 restarts forever.
    #[prost(int32, tag = "6")]
    pub max_restarts: i32,
    /// Return the existing actor of that name instead of failing.
    #[prost(bool, tag = "7")]
    pub get_if_exists: bool,
    /// What `get_actor` needs to rebuild a handle (pickled by the caller).
    #[prost(bytes = "vec", tag = "8")]
    pub handle: Vec<u8>,
    /// The class's name, for listings and errors.
    #[prost(string, tag = "9")]
    pub class_name: String,
    /// How the actor picks its node.
    #[prost(message, optional, tag = "10")]
    pub strategy: Option<SchedulingStrategy>,
}

/// An actor's state, as the control service knows it.
#[derive(Clone, PartialEq, Message)]
pub struct ActorInfo {
    /// The actor (16-byte actor id).
    #[prost(bytes = "vec", tag = "1")]
    pub actor_id: Vec<u8>,
    /// An [`ActorState`].
    #[prost(enumeration = "ActorState", tag = "2")]
    pub state: i32,
    /// Its worker's core-worker address, where calls go (empty unless alive).
    #[prost(string, tag = "3")]
    pub address: String,
    /// Bumped at every (re)start.
    #[prost(uint32, tag = "4")]
    pub incarnation: u32,
    /// Why it died (empty unless dead).
    #[prost(string, tag = "5")]
    pub death_message: String,
    /// The error `__init__` raised, when that is why the actor died.
    #[prost(message, optional, tag = "6")]
    pub death_error: Option<Object>,
    /// As in [`CreateActor::handle`].
    #[prost(bytes = "vec", tag = "7")]
    pub handle: Vec<u8>,
    /// Its name (empty: anonymous).
    #[prost(string, tag = "8")]
    pub name: String,
    /// The namespace `name` lives in.
    #[prost(string, tag = "9")]
    pub namespace: String,
    /// The class's name.
    #[prost(string, tag = "10")]
    pub class_name: String,
    /// Its worker's pid (0 before its first start).
    #[prost(uint32, tag = "11")]
    pub pid: u32,
    /// How many times it was restarted after a crash.
    #[prost(uint32, tag = "12")]
    pub num_restarts: u32,
    /// The node it runs on (empty while pending).
    #[prost(bytes = "vec", tag = "13")]
    pub node_id: Vec<u8>,
}

/// Look an actor up by id, or by name when `actor_id` is empty. With
/// `wait`, the reply comes once the actor is alive at an incarnation of at
/// least `min_incarnation`, or dead.
#[derive(Clone, PartialEq, Message)]
pub struct GetActorInfo {
    /// The actor (empty: look it up by `name`).
    #[prost(bytes = "vec", tag = "1")]
    pub actor_id: Vec<u8>,
    /// The actor's name, when `actor_id` is empty.
    #[prost(string, tag = "2")]
    pub name: String,
    /// The namespace `name` lives in.
    #[prost(string, tag = "3")]
    pub namespace: String,
    /// Reply only once it is alive (at `min_incarnation` or later) or dead.
    #[prost(bool, tag = "4")]
    pub wait: bool,
    /// With `wait`, the oldest incarnation that will do (0: any).
    #[prost(uint32, tag = "5")]
    pub min_incarnation: u32,
}

/// Kill an actor's process.
#[derive(Clone, PartialEq, Message)]
pub struct KillActor {
    /// The actor.
    #[prost(bytes = "vec", tag = "1")]
    pub actor_id: Vec<u8>,
    /// Leave it dead; otherwise it restarts if `max_restarts` allows.
    #[prost(bool, tag = "2")]
    pub no_restart: bool,
}

/// Sent by an actor's worker that ends itself (`exit_actor`).
#[derive(Clone, PartialEq, Message)]
pub struct ActorExiting {
    /// The actor.
    #[prost(bytes = "vec", tag = "1")]
    pub actor_id: Vec<u8>,
}

/// List every actor; the reply is one `ClusterInfo`-like list.
#[derive(Clone, PartialEq, Message)]
pub struct ListActors {
    /// The actors (empty in the request).
    #[prost(message, repeated, tag = "1")]
    pub actors: Vec<ActorInfo>,
}

/// Reserve room in the node's store for a new object.
#[derive(Clone, PartialEq, Message)]
pub struct StoreCreate {
    /// The object (20-byte object id).
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// Bytes to reserve.
    #[prost(uint64, tag = "2")]
    pub size: u64,
    /// The object's owner (its core-worker address; empty: the caller):
    /// the store frees the object when that process exits.
    #[prost(string, tag = "3")]
    pub owner: String,
}

/// Names one object of the store.
#[derive(Clone, PartialEq, Message)]
pub struct StoreObject {
    /// The object (20-byte object id).
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// A node daemon's address (empty: this node). `StoreGet`: where to
    /// pull the object from when this node lacks it. `StoreDelete`: the
    /// node holding the primary, told too. `ObjectLocation`: the node
    /// holding the copy.
    #[prost(string, tag = "2")]
    pub source: String,
}

/// How a store request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum StoreFailure {
    /// It did not fail.
    None = 0,
    /// Nothing more could be freed or spilled, and the disk fallback
    /// failed too.
    Full = 1,
    /// Larger than the whole store.
    TooLarge = 2,
    /// Not in the store.
    NotFound = 3,
    /// A spill file could not be written or read.
    Spill = 4,
}

/// Reply to [`StoreCreate`] and `StoreGet`: where the object's bytes are.
#[derive(Clone, PartialEq, Message)]
pub struct StoreReply {
    /// Where the object's bytes start in the store's shared-memory file.
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    /// The object's size, in bytes.
    #[prost(uint64, tag = "2")]
    pub size: u64,
    /// For a create: the object exists already (objects are immutable).
    #[prost(bool, tag = "3")]
    pub exists: bool,
    /// A [`StoreFailure`] (`None` on success).
    #[prost(enumeration = "StoreFailure", tag = "4")]
    pub failure: i32,
    /// The failure, worded for the user (empty on success).
    #[prost(string, tag = "5")]
    pub error: String,
    /// The object lives in a file of its own on disk (it did not fit in
    /// memory): map this path from its start rather than the store's
    /// file at `offset`. Empty for objects in shared memory.
    #[prost(string, tag = "6")]
    pub file: String,
}

/// Ask for the store's usage and objects.
#[derive(Clone, PartialEq, Message)]
pub struct StoreStatsRequest {
    /// Only the totals: the reply lists no object (an overview that only
    /// counts them).
    #[prost(bool, tag = "1")]
    pub totals_only: bool,
}

/// One object in the store.
#[derive(Clone, PartialEq, Message)]
pub struct StoreEntry {
    /// The object (20-byte object id).
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// Its size, in bytes.
    #[prost(uint64, tag = "2")]
    pub size: u64,
    /// How many clients hold it (0: it may be evicted).
    #[prost(uint32, tag = "3")]
    pub pins: u32,
    /// On disk rather than in memory.
    #[prost(bool, tag = "4")]
    pub spilled: bool,
    /// Pid of the process that created it.
    #[prost(uint32, tag = "5")]
    pub creator_pid: u32,
    /// Its owner's address (empty: not recorded).
    #[prost(string, tag = "6")]
    pub owner: String,
    /// Its owner's pid, when the owner is a process of this node (0: not
    /// known here).
    #[prost(uint32, tag = "7")]
    pub owner_pid: u32,
}

/// The store's usage and objects.
#[derive(Clone, PartialEq, Message)]
pub struct StoreStats {
    /// The store's size, in bytes.
    #[prost(uint64, tag = "1")]
    pub capacity: u64,
    /// Bytes allocated in memory.
    #[prost(uint64, tag = "2")]
    pub used: u64,
    /// Bytes of objects clients hold.
    #[prost(uint64, tag = "3")]
    pub pinned_bytes: u64,
    /// Bytes of objects on disk.
    #[prost(uint64, tag = "4")]
    pub spilled_bytes: u64,
    /// Objects on disk.
    #[prost(uint32, tag = "5")]
    pub spilled_objects: u32,
    /// Every object, in memory or spilled.
    #[prost(message, repeated, tag = "6")]
    pub objects: Vec<StoreEntry>,
    /// Where spilled objects are written.
    #[prost(string, tag = "7")]
    pub spill_dir: String,
    /// Bytes this node sent to other nodes' pulls since it started.
    #[prost(uint64, tag = "8")]
    pub bytes_served: u64,
    /// How many objects the store holds (listed in `objects` unless the
    /// request asked for the totals only).
    #[prost(uint32, tag = "9")]
    pub num_objects: u32,
}

/// A borrower gives back `count` holds its lender kept on an object for it.
#[derive(Clone, PartialEq, Message)]
pub struct ReleaseLent {
    /// The object (20-byte object id).
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// How many holds to drop.
    #[prost(uint32, tag = "2")]
    pub count: u32,
    /// The process giving them back (its address): the lender stops
    /// counting them as lent there.
    #[prost(string, tag = "3")]
    pub borrower: String,
}

/// Asks a node daemon for the processes registered with it.
#[derive(Clone, PartialEq, Message)]
pub struct ListClients {}

/// Reply to [`ListClients`].
#[derive(Clone, PartialEq, Message)]
pub struct ClientList {
    /// The processes that registered an address.
    #[prost(message, repeated, tag = "1")]
    pub clients: Vec<ClientEntry>,
}

/// A driver or worker registered with a node daemon.
#[derive(Clone, PartialEq, Message)]
pub struct ClientEntry {
    /// Where its core worker listens.
    #[prost(string, tag = "1")]
    pub address: String,
    /// Its pid.
    #[prost(uint32, tag = "2")]
    pub pid: u32,
    /// Its 16-byte worker id (empty when it gave none).
    #[prost(bytes = "vec", tag = "3")]
    pub worker_id: Vec<u8>,
    /// A [`ClientKind`].
    #[prost(enumeration = "ClientKind", tag = "4")]
    pub kind: i32,
}

/// Asks a core worker for the tasks it owns and the ones it runs.
#[derive(Clone, PartialEq, Message)]
pub struct ListTasks {}

/// Reply to [`ListTasks`].
#[derive(Clone, PartialEq, Message)]
pub struct TaskList {
    /// Tasks this process submitted: pending, in flight, or finished lately.
    #[prost(message, repeated, tag = "1")]
    pub tasks: Vec<TaskEntry>,
    /// Ids of the tasks this process is running now.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub running: Vec<Vec<u8>>,
    /// The answering process's worker id.
    #[prost(bytes = "vec", tag = "3")]
    pub worker_id: Vec<u8>,
    /// The node the answering process runs on.
    #[prost(bytes = "vec", tag = "4")]
    pub node_id: Vec<u8>,
    /// The tasks it ran lately, and the one it runs, with their times.
    #[prost(message, repeated, tag = "5")]
    pub ran: Vec<RunRecord>,
    /// The answering process's pid.
    #[prost(uint32, tag = "6")]
    pub pid: u32,
}

/// One task, as its owner sees it.
#[derive(Clone, PartialEq, Message)]
pub struct TaskEntry {
    /// The task (16-byte task id).
    #[prost(bytes = "vec", tag = "1")]
    pub task_id: Vec<u8>,
    /// The function's or method's qualified name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Ray's task state name: `PENDING_ARGS_AVAIL`, `PENDING_NODE_ASSIGNMENT`,
    /// `SUBMITTED_TO_WORKER`, `RUNNING`, `FINISHED` or `FAILED`.
    #[prost(string, tag = "3")]
    pub state: String,
    /// `NORMAL_TASK` or `ACTOR_TASK`.
    #[prost(string, tag = "4")]
    pub kind: String,
    /// The worker it was pushed to, when known.
    #[prost(bytes = "vec", tag = "5")]
    pub worker_id: Vec<u8>,
    /// The actor, for actor tasks (empty otherwise).
    #[prost(bytes = "vec", tag = "6")]
    pub actor_id: Vec<u8>,
    /// Why it failed (`TASK_EXECUTION_EXCEPTION`, `WORKER_DIED`, ...).
    #[prost(string, tag = "7")]
    pub error_type: String,
    /// 0 at the first run, bumped at each retry.
    #[prost(uint32, tag = "8")]
    pub attempt: u32,
    /// The job that submitted it.
    #[prost(uint32, tag = "9")]
    pub job_id: u32,
    /// The node it runs (or ran) on, when known.
    #[prost(bytes = "vec", tag = "10")]
    pub node_id: Vec<u8>,
    /// When it was submitted (microseconds since the Unix epoch).
    #[prost(uint64, tag = "11")]
    pub creation_time_us: u64,
    /// When it started running (0: not yet, or unknown).
    #[prost(uint64, tag = "12")]
    pub start_time_us: u64,
    /// When it finished (0: not yet, or unknown).
    #[prost(uint64, tag = "13")]
    pub end_time_us: u64,
    /// The process that ran it (0: unknown).
    #[prost(uint32, tag = "14")]
    pub worker_pid: u32,
    /// What it raised, with the traceback, as the worker that ran it
    /// reported (empty when it succeeded or it is not known).
    #[prost(string, tag = "15")]
    pub error_message: String,
}

/// One actor as the head's journal keeps it, to survive a restart of the
/// head (not sent over the wire).
#[derive(Clone, PartialEq, Message)]
pub struct ActorJournalEntry {
    /// The state callers are told.
    #[prost(message, optional, tag = "1")]
    pub info: Option<ActorInfo>,
    /// The creation task, run again at each restart.
    #[prost(message, optional, tag = "2")]
    pub spec: Option<TaskSpec>,
    /// Its resource shape, in fixed-point units.
    #[prost(btree_map = "string, int64", tag = "3")]
    pub resources: BTreeMap<String, i64>,
    /// Outlives its owner.
    #[prost(bool, tag = "4")]
    pub detached: bool,
    /// Restarts allowed after crashes; -1 for no limit.
    #[prost(int32, tag = "5")]
    pub max_restarts: i32,
    /// How it picks its node, at every start.
    #[prost(message, optional, tag = "6")]
    pub strategy: Option<SchedulingStrategy>,
    /// The creator's core-worker address: a non-detached actor dies with it.
    #[prost(string, tag = "7")]
    pub owner: String,
    /// When it runs on another node than the head: that node daemon's
    /// address, and the lease of its worker there.
    #[prost(string, tag = "8")]
    pub remote_node: String,
    /// That worker's lease id there (0 with no `remote_node`).
    #[prost(uint64, tag = "9")]
    pub remote_lease: u64,
}

/// One placement group as the head's journal keeps it (not sent over the
/// wire).
#[derive(Clone, PartialEq, Message)]
pub struct PlacementGroupJournalEntry {
    /// The state callers are told.
    #[prost(message, optional, tag = "1")]
    pub info: Option<PlacementGroupInfo>,
    /// The process that created it (a non-detached group goes with it).
    #[prost(string, tag = "2")]
    pub owner: String,
}
