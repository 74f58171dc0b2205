//! oxray's wire protocol: prost messages in length-prefixed frames over Unix
//! sockets on one host and token-authenticated TCP between hosts.
//!
//! Every message travels in an [`Envelope`]. A request carries a non-zero
//! `id` and its reply echoes it; unsolicited messages (log lines, warnings)
//! carry id 0. [`rpc::RpcPeer`] pairs requests with replies.

pub mod frame;
pub mod messages;
pub mod peers;
pub mod rpc;
pub mod transport;

pub use messages::*;
