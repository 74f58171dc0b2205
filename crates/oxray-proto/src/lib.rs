//! oxray's wire protocol: prost messages in length-prefixed frames over Unix
//! sockets (TCP later, for other nodes).
//!
//! Every message travels in an [`Envelope`]. A request carries a non-zero
//! `id` and its reply echoes it; unsolicited messages (log lines, warnings)
//! carry id 0. [`rpc::RpcPeer`] pairs requests with replies.

pub mod messages;
pub mod frame;
pub mod rpc;

pub use messages::*;
