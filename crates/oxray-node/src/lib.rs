//! The node daemon: one per node. It accounts for the node's resources,
//! grants *leases* on worker processes to callers (who then push tasks to
//! the worker directly, never through here), keeps a pool of Python workers
//! started ahead of need, and forwards worker output to drivers.
//!
//! On the head node the same process also serves the control service
//! ([`oxray_control::ControlService`]), as a separate component.

mod actors;
mod cluster;
pub mod config;
pub mod daemon;
mod head_journal;
mod health;
pub mod ledger;
pub mod log_files;
mod metrics;
mod placement_groups;
pub mod pool;
pub mod scheduling;
mod store_service;
mod transfer;

pub use config::{ClusterConfig, NodeConfig};
pub use daemon::run;

/// Errors that stop the node daemon from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The daemon's socket could not be bound.
    #[error("cannot listen on {path}: {source}; is another daemon using this session directory?")]
    Bind {
        /// The socket's path, or the TCP address.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The shared-memory store could not be created.
    #[error(
        "cannot create the object store at {path}: {source}; check the free space of /dev/shm"
    )]
    Store {
        /// The store's file.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The head of the cluster could not be joined.
    #[error("cannot join the cluster's head at {head}: {reason}")]
    Join {
        /// The head's address.
        head: String,
        /// Why it failed.
        reason: String,
    },
    /// The head's journal could not be opened or read.
    #[error(transparent)]
    Journal(#[from] oxray_control::JournalError),
    /// The async runtime could not start.
    #[error("cannot start the daemon's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}
