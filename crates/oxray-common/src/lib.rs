//! Types shared by every oxray component: identifiers, resource sets and the
//! error enum that crosses component boundaries.
//!
//! Nothing here knows about Python, sockets or processes.

pub mod error;
pub mod ids;
pub mod resources;

pub use error::{Error, Result};
pub use ids::{ActorId, NodeId, ObjectId, TaskId, WorkerId};
pub use resources::{FixedAmount, ResourceSet};
