//! Connections to other core workers, one per address, made on first use.

use std::collections::HashMap;
use std::sync::Arc;

use oxray_common::{Error, Result};
use oxray_proto::rpc::RpcPeer;
use parking_lot::Mutex;

/// Open connections by address (`unix:/path`).
#[derive(Default)]
pub struct PeerPool {
    peers: Mutex<HashMap<String, Arc<RpcPeer>>>,
}

impl PeerPool {
    /// The connection to `address`, opening it if needed.
    pub async fn get(&self, address: &str) -> Result<Arc<RpcPeer>> {
        if let Some(p) = self.peers.lock().get(address) {
            if !p.is_closed() {
                return Ok(p.clone());
            }
        }
        let path = address.strip_prefix("unix:").ok_or_else(|| Error::Protocol {
            peer: address.to_string(),
            reason: "only unix: addresses are supported on a single node".into(),
        })?;
        let (peer, _inbox) = RpcPeer::connect_unix(path).await?;
        self.peers.lock().insert(address.to_string(), peer.clone());
        Ok(peer)
    }

    /// Closes every connection.
    pub fn clear(&self) {
        self.peers.lock().clear();
    }
}
