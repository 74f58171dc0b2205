//! Request/reply over one connection: [`RpcPeer`] numbers each request and
//! routes the reply with the same id back to the caller; anything else the
//! peer sends arrives on the inbox channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use oxray_common::{Error, Result};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use crate::frame::{FrameReader, FrameWriter};
use crate::messages::{Body, Envelope};

type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Body>>>>>;

/// One side of a request/reply connection.
#[derive(Debug)]
pub struct RpcPeer {
    writer: FrameWriter,
    next_id: AtomicU64,
    pending: Pending,
    peer: String,
}

impl RpcPeer {
    /// Connects to a Unix socket at `path`.
    pub async fn connect_unix(path: &str) -> Result<(Arc<Self>, mpsc::UnboundedReceiver<Envelope>)> {
        let stream = UnixStream::connect(path).await.map_err(|source| Error::Connection {
            peer: path.to_string(),
            source,
        })?;
        let (r, w) = stream.into_split();
        Ok(Self::start(r, w, path.to_string()))
    }

    /// Starts the reader task over an established stream. Messages that are
    /// not replies go to the returned inbox, which closes when the peer does.
    pub fn start<R, W>(r: R, w: W, peer: String) -> (Arc<Self>, mpsc::UnboundedReceiver<Envelope>)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let (inbox_tx, inbox_rx) = mpsc::unbounded_channel();
        let this = Arc::new(Self {
            writer: FrameWriter::spawn(w),
            next_id: AtomicU64::new(1),
            pending: pending.clone(),
            peer,
        });
        tokio::spawn(async move {
            let mut reader = FrameReader::new(r);
            while let Some(env) = reader.next().await {
                let waiter = if env.id != 0 {
                    pending.lock().as_mut().and_then(|p| p.remove(&env.id))
                } else {
                    None
                };
                match (waiter, env.body) {
                    (Some(tx), Some(body)) => {
                        let _ = tx.send(body);
                    }
                    (None, body) => {
                        let _ = inbox_tx.send(Envelope { id: env.id, body });
                    }
                    (Some(_), None) => {}
                }
            }
            // Dropping the senders fails every waiting call.
            pending.lock().take();
        });
        (this, inbox_rx)
    }

    /// The address this peer was reached at.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Sends a request and returns a receiver for its reply, without waiting.
    pub fn start_call(&self, body: Body) -> Result<oneshot::Receiver<Body>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match self.pending.lock().as_mut() {
            Some(p) => p.insert(id, tx),
            None => return Err(self.closed()),
        };
        if !self.writer.send(Envelope { id, body: Some(body) }) {
            return Err(self.closed());
        }
        Ok(rx)
    }

    /// Sends a request and waits for its reply. An [`Body::ErrorReply`] from
    /// the peer becomes [`Error::Rejected`].
    pub async fn call(&self, body: Body) -> Result<Body> {
        let rx = self.start_call(body)?;
        match rx.await {
            Ok(Body::ErrorReply(e)) => Err(Error::Rejected(e.message)),
            Ok(body) => Ok(body),
            Err(_) => Err(self.closed()),
        }
    }

    /// Sends a one-way message.
    pub fn send(&self, body: Body) -> bool {
        self.writer.send(Envelope { id: 0, body: Some(body) })
    }

    /// Replies to a request the peer sent us.
    pub fn reply(&self, id: u64, body: Body) -> bool {
        self.writer.reply(id, body)
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.pending.lock().is_none() || self.writer.is_closed()
    }

    fn closed(&self) -> Error {
        Error::Connection {
            peer: self.peer.clone(),
            source: std::io::Error::new(std::io::ErrorKind::BrokenPipe, "connection closed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Ack, KvGet, KvValue, Warning};

    #[tokio::test]
    async fn replies_route_to_callers_and_others_to_inbox() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (ar, aw) = tokio::io::split(a);
        let (client, _inbox) = RpcPeer::start(ar, aw, "server".into());
        let (br, bw) = tokio::io::split(b);
        let (server, mut server_inbox) = RpcPeer::start(br, bw, "client".into());
        tokio::spawn(async move {
            while let Some(env) = server_inbox.recv().await {
                if let Some(Body::KvGet(g)) = env.body {
                    server.reply(env.id, Body::KvValue(KvValue { found: true, value: g.key }));
                }
            }
        });
        let calls: Vec<_> = (0..10u8)
            .map(|i| {
                client
                    .start_call(Body::KvGet(KvGet { namespace: "n".into(), key: vec![i] }))
                    .unwrap()
            })
            .collect();
        for (i, rx) in calls.into_iter().enumerate() {
            match rx.await.unwrap() {
                Body::KvValue(v) => assert_eq!(v.value, vec![i as u8]),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn pending_calls_fail_when_peer_closes() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (ar, aw) = tokio::io::split(a);
        let (client, _inbox) = RpcPeer::start(ar, aw, "server".into());
        let rx = client.start_call(Body::Ack(Ack {})).unwrap();
        drop(b);
        assert!(rx.await.is_err());
        // Later calls fail at once.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert!(client.call(Body::Warning(Warning { text: "x".into() })).await.is_err());
    }
}
