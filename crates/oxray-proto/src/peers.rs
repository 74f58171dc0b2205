//! Connections to other processes (core workers, other nodes' daemons),
//! one per address, made on first use: over the Unix socket on this host,
//! over token-authenticated TCP to other hosts.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use oxray_common::Result;
use parking_lot::Mutex;

use crate::rpc::RpcPeer;
use crate::transport::Dialer;
use crate::Body;

/// What to do with a message a peer sends unasked (not a reply).
pub type InboxHandler = Box<dyn Fn(Body) + Send + Sync>;

/// Open connections by address.
#[derive(Default)]
pub struct PeerPool {
    peers: Mutex<HashMap<String, Arc<RpcPeer>>>,
    dialer: Dialer,
    on_message: OnceLock<InboxHandler>,
}

impl PeerPool {
    /// A pool that connects with `dialer`.
    pub fn new(dialer: Dialer) -> Self {
        Self {
            peers: Mutex::default(),
            dialer,
            on_message: OnceLock::new(),
        }
    }

    /// Sets what handles messages peers send unasked (a node daemon's
    /// `LeaseWanted`, for instance).
    pub fn set_inbox_handler(&self, handler: InboxHandler) {
        let _ = self.on_message.set(handler);
    }

    /// The connection to `address`, opening it if needed.
    pub async fn get(self: &Arc<Self>, address: &str) -> Result<Arc<RpcPeer>> {
        if let Some(p) = self.peers.lock().get(address) {
            if !p.is_closed() {
                return Ok(p.clone());
            }
        }
        let (peer, mut inbox) = self.dialer.connect(address).await?;
        self.peers.lock().insert(address.to_string(), peer.clone());
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(env) = inbox.recv().await {
                let Some(pool) = pool.upgrade() else { return };
                if let (Some(body), Some(handler)) = (env.body, pool.on_message.get()) {
                    handler(body);
                }
            }
        });
        Ok(peer)
    }

    /// The dialer connections are made with.
    pub fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    /// Gives up on the connection to `address` (its host is dead): calls
    /// waiting on it fail now; the next [`PeerPool::get`] dials again.
    pub fn disconnect(&self, address: &str) {
        if let Some(peer) = self.peers.lock().remove(address) {
            peer.disconnect();
        }
    }

    /// Closes every connection.
    pub fn clear(&self) {
        self.peers.lock().clear();
    }
}
