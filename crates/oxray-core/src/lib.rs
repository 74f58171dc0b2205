//! The core worker: the part of oxray that lives inside every driver and
//! worker process. It submits tasks straight to leased workers, owns the
//! objects its process creates, counts references, and serves `get`, `put`
//! and `wait`. It knows nothing of Python: the binding crate hands it bytes.
//!
//! All I/O runs on the core worker's own tokio runtime; calls from the
//! embedding language are short, or block only on a condition variable.

mod actor_submit;
mod core;
mod driver;
mod execute;
mod fetch;
pub mod layout;
mod lineage;
mod node_logs;
pub mod objects;
mod placement;
mod recovery;
pub mod refs;
mod shared;
pub mod store;
mod streams;
mod submit;
mod task_log;
mod unhandled;

pub use crate::core::{ContextInfo, CoreWorker, LogSink, Mode, Options, TaskRequest};
pub use actor_submit::{ActorCallRequest, ActorCreateRequest};
pub use execute::IncomingTask;
pub use fetch::WaitLimit;
pub use objects::{error_object, marker_parts, shared_marker, ObjectKind};
pub use oxray_proto::{
    ActorInfo, ActorState, Bundle, CreatePlacementGroup, LogLines, Object, ObjectRefMsg,
    PlacementGroupInfo, ReturnsKind, StoreStats, TaskEntry, TaskSpec,
};
pub use oxray_store::Region;
pub use shared::Mapped;
pub use streams::{item_id, StreamNext, Yields};
pub use submit::Placement;
pub use unhandled::UnhandledHook;
