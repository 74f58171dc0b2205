//! The messages. Written as prost derives rather than generated from a
//! `.proto` file, so the build needs no `protoc`; the tags are the contract.
//!
//! Every message is documented; fields are where their name does not say
//! it all. (The `missing_docs` lint is off here until every field is.)
#![allow(missing_docs)]

use std::collections::BTreeMap;

use prost::{Message, Oneof};

/// One frame's content: a request id (0 for one-way messages) and a body.
#[derive(Clone, PartialEq, Message)]
pub struct Envelope {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(
        oneof = "Body",
        tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66"
    )]
    pub body: Option<Body>,
}

/// Every message kind.
#[derive(Clone, PartialEq, Oneof)]
pub enum Body {
    // --- client <-> node daemon ---------------------------------------------
    #[prost(message, tag = "2")]
    Register(Register),
    #[prost(message, tag = "3")]
    Registered(Registered),
    #[prost(message, tag = "4")]
    RequestLease(RequestLease),
    #[prost(message, tag = "5")]
    LeaseGranted(LeaseGranted),
    #[prost(message, tag = "6")]
    ReturnLease(ReturnLease),
    #[prost(message, tag = "7")]
    WorkerBlocked(WorkerBlocked),
    #[prost(message, tag = "8")]
    WorkerUnblocked(WorkerUnblocked),
    #[prost(message, tag = "9")]
    KillWorker(KillWorker),
    #[prost(message, tag = "10")]
    Warning(Warning),
    #[prost(message, tag = "11")]
    LogLines(LogLines),
    #[prost(message, tag = "12")]
    ShutdownCluster(ShutdownCluster),
    #[prost(message, tag = "13")]
    Ack(Ack),
    #[prost(message, tag = "14")]
    ErrorReply(ErrorReply),
    // --- client <-> control service -----------------------------------------
    #[prost(message, tag = "15")]
    KvPut(KvPut),
    #[prost(message, tag = "16")]
    KvGet(KvGet),
    #[prost(message, tag = "17")]
    KvValue(KvValue),
    #[prost(message, tag = "18")]
    ClusterInfoRequest(ClusterInfoRequest),
    #[prost(message, tag = "19")]
    ClusterInfo(ClusterInfo),
    // --- core worker <-> core worker ----------------------------------------
    #[prost(message, tag = "20")]
    PushTask(TaskSpec),
    #[prost(message, tag = "21")]
    TaskReply(TaskReply),
    #[prost(message, tag = "22")]
    CancelTask(CancelTask),
    #[prost(message, tag = "23")]
    GetObject(GetObject),
    #[prost(message, tag = "24")]
    ObjectReply(ObjectReply),
    #[prost(message, tag = "25")]
    LeaseWanted(LeaseWanted),
    // --- actors: client <-> control service ---------------------------------
    #[prost(message, tag = "26")]
    CreateActor(CreateActor),
    #[prost(message, tag = "27")]
    ActorInfo(ActorInfo),
    #[prost(message, tag = "28")]
    GetActorInfo(GetActorInfo),
    #[prost(message, tag = "29")]
    KillActor(KillActor),
    #[prost(message, tag = "30")]
    ActorExiting(ActorExiting),
    #[prost(message, tag = "31")]
    ListActors(ListActors),
    // --- shared-memory object store: client <-> node daemon ----------------
    #[prost(message, tag = "32")]
    StoreCreate(StoreCreate),
    #[prost(message, tag = "33")]
    StoreReply(StoreReply),
    #[prost(message, tag = "34")]
    StoreSeal(StoreObject),
    #[prost(message, tag = "35")]
    StoreGet(StoreObject),
    #[prost(message, tag = "36")]
    StoreRelease(StoreObject),
    #[prost(message, tag = "37")]
    StoreDelete(StoreObject),
    #[prost(message, tag = "38")]
    StoreStatsRequest(StoreStatsRequest),
    #[prost(message, tag = "39")]
    StoreStats(StoreStats),
    // --- reference counting: borrower -> lender ----------------------------
    #[prost(message, tag = "40")]
    ReleaseLent(ReleaseLent),
    // --- state listing -----------------------------------------------------
    #[prost(message, tag = "41")]
    ListClients(ListClients),
    #[prost(message, tag = "42")]
    ClientList(ClientList),
    #[prost(message, tag = "43")]
    ListTasks(ListTasks),
    #[prost(message, tag = "44")]
    TaskList(TaskList),
    // --- TCP connections: the first frame proves the cluster token ---------
    #[prost(message, tag = "45")]
    Hello(Hello),
    #[prost(message, tag = "46")]
    Welcome(Welcome),
    // --- node daemon <-> head ----------------------------------------------
    #[prost(message, tag = "47")]
    RegisterNode(RegisterNode),
    #[prost(message, tag = "48")]
    ResourceReport(ResourceReport),
    #[prost(message, tag = "49")]
    ClusterView(ClusterInfo),
    #[prost(message, tag = "50")]
    ClientGone(ClientGone),
    #[prost(message, tag = "51")]
    AllocateJobId(AllocateJobId),
    #[prost(message, tag = "52")]
    JobIdReply(JobIdReply),
    // --- scheduling across nodes -------------------------------------------
    #[prost(message, tag = "53")]
    Spillback(Spillback),
    // --- objects across nodes: node daemon <-> node daemon -----------------
    #[prost(message, tag = "54")]
    ReadChunk(ReadChunk),
    #[prost(message, tag = "55")]
    Chunk(Chunk),
    // --- placement groups: client <-> control service ----------------------
    #[prost(message, tag = "56")]
    CreatePlacementGroup(CreatePlacementGroup),
    #[prost(message, tag = "57")]
    PlacementGroupInfo(PlacementGroupInfo),
    #[prost(message, tag = "58")]
    GetPlacementGroup(GetPlacementGroup),
    #[prost(message, tag = "59")]
    RemovePlacementGroup(RemovePlacementGroup),
    #[prost(message, tag = "60")]
    PlacementGroupList(PlacementGroupList),
    // --- placement groups: control service -> node daemon -------------------
    #[prost(message, tag = "61")]
    ReserveBundles(ReserveBundles),
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
}

/// The protocol version spoken; a peer of another version is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// First frame on every TCP connection: the cluster token and the
/// protocol version. Nothing else is read before it is checked.
#[derive(Clone, PartialEq, Message)]
pub struct Hello {
    #[prost(string, tag = "1")]
    pub token: String,
    #[prost(uint32, tag = "2")]
    pub version: u32,
}

/// Reply to an accepted [`Hello`].
#[derive(Clone, PartialEq, Message)]
pub struct Welcome {
    #[prost(uint32, tag = "1")]
    pub version: u32,
}

/// A node daemon joins the cluster (sent to the head's control service).
#[derive(Clone, PartialEq, Message)]
pub struct RegisterNode {
    #[prost(message, optional, tag = "1")]
    pub node: Option<NodeInfo>,
}

/// A node's resources available now; `version` grows with every report so
/// that a late report never overwrites a newer one.
#[derive(Clone, PartialEq, Message)]
pub struct ResourceReport {
    #[prost(bytes = "vec", tag = "1")]
    pub node_id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub version: u64,
    #[prost(btree_map = "string, int64", tag = "3")]
    pub available: BTreeMap<String, i64>,
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
    #[prost(string, tag = "1")]
    pub address: String,
}

/// Asks the head for a new job id (a driver registered on another node).
#[derive(Clone, PartialEq, Message)]
pub struct AllocateJobId {}

/// Reply to [`AllocateJobId`].
#[derive(Clone, PartialEq, Message)]
pub struct JobIdReply {
    #[prost(uint32, tag = "1")]
    pub job_id: u32,
}

/// Reply to a [`RequestLease`] that another node should serve: ask there.
#[derive(Clone, PartialEq, Message)]
pub struct Spillback {
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
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub offset: u64,
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
    #[prost(bytes = "vec", tag = "1")]
    pub pg_id: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub bundles: Vec<Bundle>,
}

/// Give back every bundle of a group reserved on this node; workers using
/// them are stopped.
#[derive(Clone, PartialEq, Message)]
pub struct ReturnBundles {
    #[prost(bytes = "vec", tag = "1")]
    pub pg_id: Vec<u8>,
}

/// Reserve a placement group.
#[derive(Clone, PartialEq, Message)]
pub struct CreatePlacementGroup {
    #[prost(bytes = "vec", tag = "1")]
    pub pg_id: Vec<u8>,
    #[prost(message, repeated, tag = "2")]
    pub bundles: Vec<Bundle>,
    /// `PACK`, `SPREAD`, `STRICT_PACK` or `STRICT_SPREAD`.
    #[prost(string, tag = "3")]
    pub strategy: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "5")]
    pub namespace: String,
    #[prost(bool, tag = "6")]
    pub detached: bool,
    /// The creator's address: a non-detached group goes with it.
    #[prost(string, tag = "7")]
    pub owner: String,
}

/// A placement group's state.
#[derive(Clone, PartialEq, Message)]
pub struct PlacementGroupInfo {
    #[prost(bytes = "vec", tag = "1")]
    pub pg_id: Vec<u8>,
    /// `PENDING`, `CREATED` or `REMOVED`.
    #[prost(string, tag = "2")]
    pub state: String,
    #[prost(message, repeated, tag = "3")]
    pub bundles: Vec<Bundle>,
    #[prost(string, tag = "4")]
    pub strategy: String,
    #[prost(string, tag = "5")]
    pub name: String,
    #[prost(string, tag = "6")]
    pub namespace: String,
    #[prost(bool, tag = "7")]
    pub detached: bool,
}

/// Look a placement group up by id (or name); with `wait`, the reply
/// comes once it is created or removed.
#[derive(Clone, PartialEq, Message)]
pub struct GetPlacementGroup {
    #[prost(bytes = "vec", tag = "1")]
    pub pg_id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
    #[prost(bool, tag = "4")]
    pub wait: bool,
}

/// Remove a placement group: its resources return, its workers end.
#[derive(Clone, PartialEq, Message)]
pub struct RemovePlacementGroup {
    #[prost(bytes = "vec", tag = "1")]
    pub pg_id: Vec<u8>,
}

/// Every placement group (reply to an empty one: the request).
#[derive(Clone, PartialEq, Message)]
pub struct PlacementGroupList {
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
    #[prost(enumeration = "ClientKind", tag = "1")]
    pub kind: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub worker_id: Vec<u8>,
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
    #[prost(bytes = "vec", tag = "1")]
    pub node_id: Vec<u8>,
    #[prost(uint32, tag = "2")]
    pub job_id: u32,
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
    #[prost(btree_map = "string, int64", tag = "1")]
    pub resources: BTreeMap<String, i64>,
    /// What the lease is for, e.g. the function name; used in warnings.
    #[prost(string, tag = "2")]
    pub description: String,
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
}

/// A granted lease: a worker reserved for the requester.
#[derive(Clone, PartialEq, Message)]
pub struct LeaseGranted {
    #[prost(uint64, tag = "1")]
    pub lease_id: u64,
    #[prost(bytes = "vec", tag = "2")]
    pub worker_id: Vec<u8>,
    #[prost(string, tag = "3")]
    pub address: String,
    #[prost(uint32, repeated, tag = "4")]
    pub gpu_ids: Vec<u32>,
    #[prost(uint32, tag = "5")]
    pub pid: u32,
}

/// Give a lease back; optionally have the daemon kill its worker.
#[derive(Clone, PartialEq, Message)]
pub struct ReturnLease {
    #[prost(uint64, tag = "1")]
    pub lease_id: u64,
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
    #[prost(bytes = "vec", tag = "1")]
    pub worker_id: Vec<u8>,
}

/// A warning for the driver to print.
#[derive(Clone, PartialEq, Message)]
pub struct Warning {
    #[prost(string, tag = "1")]
    pub text: String,
}

/// Lines a worker printed, forwarded to drivers.
#[derive(Clone, PartialEq, Message)]
pub struct LogLines {
    #[prost(uint32, tag = "1")]
    pub pid: u32,
    #[prost(bool, tag = "2")]
    pub stderr: bool,
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
    #[prost(string, tag = "1")]
    pub message: String,
}

/// Store a value in the control service's key-value table.
#[derive(Clone, PartialEq, Message)]
pub struct KvPut {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    pub value: Vec<u8>,
}

/// Read a value from the key-value table.
#[derive(Clone, PartialEq, Message)]
pub struct KvGet {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
}

/// Reply to [`KvGet`].
#[derive(Clone, PartialEq, Message)]
pub struct KvValue {
    #[prost(bool, tag = "1")]
    pub found: bool,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// Ask for the node table.
#[derive(Clone, PartialEq, Message)]
pub struct ClusterInfoRequest {}

/// One node of the cluster.
#[derive(Clone, PartialEq, Message)]
pub struct NodeInfo {
    #[prost(bytes = "vec", tag = "1")]
    pub node_id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub address: String,
    #[prost(bool, tag = "3")]
    pub alive: bool,
    #[prost(btree_map = "string, int64", tag = "4")]
    pub total: BTreeMap<String, i64>,
    #[prost(btree_map = "string, int64", tag = "5")]
    pub available: BTreeMap<String, i64>,
    #[prost(string, tag = "6")]
    pub hostname: String,
    #[prost(bool, tag = "7")]
    pub is_head: bool,
    #[prost(string, tag = "8")]
    pub ip: String,
    /// Version of `available` (see [`ResourceReport`]).
    #[prost(uint64, tag = "9")]
    pub version: u64,
    /// Lease requests waiting on this node, by shape.
    #[prost(message, repeated, tag = "10")]
    pub pending: Vec<Demand>,
}

/// Requests of one resource shape waiting for resources.
#[derive(Clone, PartialEq, Message)]
pub struct Demand {
    #[prost(btree_map = "string, int64", tag = "1")]
    pub resources: BTreeMap<String, i64>,
    #[prost(uint32, tag = "2")]
    pub count: u32,
}

/// Reply to [`ClusterInfoRequest`].
#[derive(Clone, PartialEq, Message)]
pub struct ClusterInfo {
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
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
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
    #[prost(bytes = "bytes", tag = "1")]
    pub data: bytes::Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub metadata: bytes::Bytes,
    #[prost(message, repeated, tag = "3")]
    pub nested: Vec<ObjectRefMsg>,
}

/// A task pushed straight to a leased worker.
#[derive(Clone, PartialEq, Message)]
pub struct TaskSpec {
    #[prost(bytes = "vec", tag = "1")]
    pub task_id: Vec<u8>,
    #[prost(uint32, tag = "2")]
    pub job_id: u32,
    /// Content hash of the pickled function, a key in the control service's
    /// function table.
    #[prost(bytes = "vec", tag = "3")]
    pub function_id: Vec<u8>,
    #[prost(string, tag = "4")]
    pub function_name: String,
    /// The pickled `(args, kwargs)`, with top-level refs replaced by slots.
    #[prost(bytes = "bytes", tag = "5")]
    pub args: bytes::Bytes,
    /// The values of the top-level ref arguments, in slot order.
    #[prost(message, repeated, tag = "6")]
    pub resolved_args: Vec<Object>,
    #[prost(uint32, tag = "7")]
    pub num_returns: u32,
    /// Pickled `retry_exceptions` option (empty: never retry on exceptions).
    #[prost(bytes = "bytes", tag = "8")]
    pub retry_exceptions: bytes::Bytes,
    #[prost(uint32, repeated, tag = "9")]
    pub gpu_ids: Vec<u32>,
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
}

/// The outcome of a task: one object per return, or error objects.
#[derive(Clone, PartialEq, Message)]
pub struct TaskReply {
    #[prost(bytes = "vec", tag = "1")]
    pub task_id: Vec<u8>,
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

/// Cancel a task pushed earlier.
#[derive(Clone, PartialEq, Message)]
pub struct CancelTask {
    #[prost(bytes = "vec", tag = "1")]
    pub task_id: Vec<u8>,
    #[prost(bool, tag = "2")]
    pub force: bool,
    #[prost(bool, tag = "3")]
    pub recursive: bool,
}

/// Ask an owner for an object's value; the reply waits until it exists.
#[derive(Clone, PartialEq, Message)]
pub struct GetObject {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// The node whose shared-memory copy could not be read (its daemon
    /// address): the owner rebuilds the object if that was its copy, and
    /// replies with the new one. Empty for a plain fetch.
    #[prost(string, tag = "2")]
    pub lost_location: String,
}

/// Nodes declared dead: clients fail the calls in flight to their workers
/// and owners rebuild the objects whose only copy was there.
#[derive(Clone, PartialEq, Message)]
pub struct NodesRemoved {
    /// Their daemons' addresses (what shared-memory markers carry).
    #[prost(string, repeated, tag = "1")]
    pub addresses: Vec<String>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub node_ids: Vec<Vec<u8>>,
}

/// Reply to [`GetObject`].
#[derive(Clone, PartialEq, Message)]
pub struct ObjectReply {
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
    #[prost(btree_map = "string, int64", tag = "2")]
    pub resources: BTreeMap<String, i64>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub namespace: String,
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
    #[prost(string, tag = "9")]
    pub class_name: String,
    /// How the actor picks its node.
    #[prost(message, optional, tag = "10")]
    pub strategy: Option<SchedulingStrategy>,
}

/// An actor's state, as the control service knows it.
#[derive(Clone, PartialEq, Message)]
pub struct ActorInfo {
    #[prost(bytes = "vec", tag = "1")]
    pub actor_id: Vec<u8>,
    #[prost(enumeration = "ActorState", tag = "2")]
    pub state: i32,
    #[prost(string, tag = "3")]
    pub address: String,
    /// Bumped at every (re)start.
    #[prost(uint32, tag = "4")]
    pub incarnation: u32,
    #[prost(string, tag = "5")]
    pub death_message: String,
    /// The error `__init__` raised, when that is why the actor died.
    #[prost(message, optional, tag = "6")]
    pub death_error: Option<Object>,
    #[prost(bytes = "vec", tag = "7")]
    pub handle: Vec<u8>,
    #[prost(string, tag = "8")]
    pub name: String,
    #[prost(string, tag = "9")]
    pub namespace: String,
    #[prost(string, tag = "10")]
    pub class_name: String,
    #[prost(uint32, tag = "11")]
    pub pid: u32,
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
    #[prost(bytes = "vec", tag = "1")]
    pub actor_id: Vec<u8>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
    #[prost(bool, tag = "4")]
    pub wait: bool,
    #[prost(uint32, tag = "5")]
    pub min_incarnation: u32,
}

/// Kill an actor's process.
#[derive(Clone, PartialEq, Message)]
pub struct KillActor {
    #[prost(bytes = "vec", tag = "1")]
    pub actor_id: Vec<u8>,
    #[prost(bool, tag = "2")]
    pub no_restart: bool,
}

/// Sent by an actor's worker that ends itself (`exit_actor`).
#[derive(Clone, PartialEq, Message)]
pub struct ActorExiting {
    #[prost(bytes = "vec", tag = "1")]
    pub actor_id: Vec<u8>,
}

/// List every actor; the reply is one `ClusterInfo`-like list.
#[derive(Clone, PartialEq, Message)]
pub struct ListActors {
    #[prost(message, repeated, tag = "1")]
    pub actors: Vec<ActorInfo>,
}

/// Reserve room in the node's store for a new object.
#[derive(Clone, PartialEq, Message)]
pub struct StoreCreate {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub size: u64,
}

/// Names one object of the store.
#[derive(Clone, PartialEq, Message)]
pub struct StoreObject {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    /// For a get: the node daemon holding the object when this node may
    /// not (it is pulled from there first). Empty: this node.
    #[prost(string, tag = "2")]
    pub source: String,
}

/// How a store request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum StoreFailure {
    None = 0,
    /// Nothing more could be freed or spilled.
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
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    #[prost(uint64, tag = "2")]
    pub size: u64,
    /// For a create: the object exists already (objects are immutable).
    #[prost(bool, tag = "3")]
    pub exists: bool,
    #[prost(enumeration = "StoreFailure", tag = "4")]
    pub failure: i32,
    #[prost(string, tag = "5")]
    pub error: String,
}

/// Ask for the store's usage and objects.
#[derive(Clone, PartialEq, Message)]
pub struct StoreStatsRequest {}

/// One object in the store.
#[derive(Clone, PartialEq, Message)]
pub struct StoreEntry {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(uint64, tag = "2")]
    pub size: u64,
    #[prost(uint32, tag = "3")]
    pub pins: u32,
    #[prost(bool, tag = "4")]
    pub spilled: bool,
    /// Pid of the process that created it.
    #[prost(uint32, tag = "5")]
    pub creator_pid: u32,
}

/// The store's usage and objects.
#[derive(Clone, PartialEq, Message)]
pub struct StoreStats {
    #[prost(uint64, tag = "1")]
    pub capacity: u64,
    #[prost(uint64, tag = "2")]
    pub used: u64,
    #[prost(uint64, tag = "3")]
    pub pinned_bytes: u64,
    #[prost(uint64, tag = "4")]
    pub spilled_bytes: u64,
    #[prost(uint32, tag = "5")]
    pub spilled_objects: u32,
    #[prost(message, repeated, tag = "6")]
    pub objects: Vec<StoreEntry>,
    #[prost(string, tag = "7")]
    pub spill_dir: String,
    /// Bytes this node sent to other nodes' pulls since it started.
    #[prost(uint64, tag = "8")]
    pub bytes_served: u64,
}

/// A borrower gives back `count` holds its lender kept on an object for it.
#[derive(Clone, PartialEq, Message)]
pub struct ReleaseLent {
    #[prost(bytes = "vec", tag = "1")]
    pub id: Vec<u8>,
    #[prost(uint32, tag = "2")]
    pub count: u32,
}

/// Asks a node daemon for the processes registered with it.
#[derive(Clone, PartialEq, Message)]
pub struct ListClients {}

/// Reply to [`ListClients`].
#[derive(Clone, PartialEq, Message)]
pub struct ClientList {
    #[prost(message, repeated, tag = "1")]
    pub clients: Vec<ClientEntry>,
}

/// A driver or worker registered with a node daemon.
#[derive(Clone, PartialEq, Message)]
pub struct ClientEntry {
    /// Where its core worker listens.
    #[prost(string, tag = "1")]
    pub address: String,
    #[prost(uint32, tag = "2")]
    pub pid: u32,
    #[prost(bytes = "vec", tag = "3")]
    pub worker_id: Vec<u8>,
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
    #[prost(bytes = "vec", tag = "3")]
    pub worker_id: Vec<u8>,
    /// The node the answering process runs on.
    #[prost(bytes = "vec", tag = "4")]
    pub node_id: Vec<u8>,
}

/// One task, as its owner sees it.
#[derive(Clone, PartialEq, Message)]
pub struct TaskEntry {
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
    #[prost(bytes = "vec", tag = "6")]
    pub actor_id: Vec<u8>,
    /// Why it failed (`TASK_EXECUTION_EXCEPTION`, `WORKER_DIED`, ...).
    #[prost(string, tag = "7")]
    pub error_type: String,
    #[prost(uint32, tag = "8")]
    pub attempt: u32,
    #[prost(uint32, tag = "9")]
    pub job_id: u32,
    /// The node it runs (or ran) on, when known.
    #[prost(bytes = "vec", tag = "10")]
    pub node_id: Vec<u8>,
}

/// One actor as the head's journal keeps it, to survive a restart of the
/// head (not sent over the wire).
#[derive(Clone, PartialEq, Message)]
pub struct ActorJournalEntry {
    #[prost(message, optional, tag = "1")]
    pub info: Option<ActorInfo>,
    /// The creation task, run again at each restart.
    #[prost(message, optional, tag = "2")]
    pub spec: Option<TaskSpec>,
    /// Its resource shape, in fixed-point units.
    #[prost(btree_map = "string, int64", tag = "3")]
    pub resources: BTreeMap<String, i64>,
    #[prost(bool, tag = "4")]
    pub detached: bool,
    #[prost(int32, tag = "5")]
    pub max_restarts: i32,
    #[prost(message, optional, tag = "6")]
    pub strategy: Option<SchedulingStrategy>,
    #[prost(string, tag = "7")]
    pub owner: String,
    /// When it runs on another node than the head: that node daemon's
    /// address, and the lease of its worker there.
    #[prost(string, tag = "8")]
    pub remote_node: String,
    #[prost(uint64, tag = "9")]
    pub remote_lease: u64,
}

/// One placement group as the head's journal keeps it (not sent over the
/// wire).
#[derive(Clone, PartialEq, Message)]
pub struct PlacementGroupJournalEntry {
    #[prost(message, optional, tag = "1")]
    pub info: Option<PlacementGroupInfo>,
    /// The process that created it (a non-detached group goes with it).
    #[prost(string, tag = "2")]
    pub owner: String,
}
