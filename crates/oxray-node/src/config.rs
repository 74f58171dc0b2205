//! How a node daemon is set up.

use std::path::PathBuf;

use oxray_common::ResourceSet;

/// Settings of one node daemon.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Directory for this session's sockets and logs.
    pub session_dir: PathBuf,
    /// The Unix socket this daemon listens on.
    pub socket_path: PathBuf,
    /// What the node offers (CPU, GPU, memory, custom).
    pub resources: ResourceSet,
    /// The Python interpreter that runs workers.
    pub python: String,
    /// The module a worker runs (`python -m <module>`).
    pub worker_module: String,
    /// The module of the template process that forks workers ready-made
    /// (`None`: start each worker as a new interpreter).
    pub zygote_module: Option<String>,
    /// Workers to start before anyone asks.
    pub prestart_workers: usize,
    /// Most workers starting at once.
    pub max_starting_workers: usize,
    /// Stop the cluster when this process exits (the driver that ran `init`).
    pub owner_pid: Option<u32>,
    /// Size of the shared-memory object store, in bytes.
    pub object_store_memory: u64,
    /// The shared-memory file of the store (in /dev/shm).
    pub store_path: PathBuf,
    /// Where objects are spilled when the store is full, and where those
    /// that cannot fit in it live.
    pub spill_dir: PathBuf,
    /// Part of a multi-node cluster (`None`: a single-node cluster, Unix
    /// sockets only, no port open).
    pub cluster: Option<ClusterConfig>,
    /// Serve `GET /healthz` over HTTP on this port (of the node's IP).
    pub health_port: Option<u16>,
    /// Serve Prometheus metrics (`GET /metrics`) on this port of the
    /// node's IP (0: any free one). `None`: on a multi-node cluster, any
    /// free port; on a single-node cluster, none (it opens no port).
    pub metrics_port: Option<u16>,
}

/// How a node takes part in a multi-node cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The IP this node's processes listen on (and other nodes reach).
    pub node_ip: String,
    /// The daemon's TCP port (0: any free one).
    pub port: u16,
    /// The head's `IP:PORT` when this node joins one; `None` on the head,
    /// which serves the control service.
    pub head: Option<String>,
    /// The secret every TCP connection proves first.
    pub token: String,
    /// The head's journal file: its tables survive a restart of the head
    /// started again with the same file (`None`: kept in memory only).
    pub journal: Option<PathBuf>,
}
