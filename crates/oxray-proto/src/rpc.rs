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

/// Who waits for a reply.
enum Waiter {
    Channel(oneshot::Sender<Body>),
    /// Runs on the connection's reader task; `None` when the peer is gone.
    Callback(Box<dyn FnOnce(Option<Body>) + Send>),
}

type Pending = Arc<Mutex<Option<HashMap<u64, Waiter>>>>;

/// One side of a request/reply connection.
#[derive(Debug)]
pub struct RpcPeer {
    writer: FrameWriter,
    next_id: AtomicU64,
    pending: Pending,
    peer: String,
    /// Runs callbacks of calls that fail before they are sent, so that they
    /// never run inside the caller (which may hold its own locks).
    runtime: tokio::runtime::Handle,
    /// Becomes true when the connection is gone.
    gone: tokio::sync::watch::Receiver<bool>,
    gone_tx: Arc<tokio::sync::watch::Sender<bool>>,
    /// The reader task, stopped by [`RpcPeer::disconnect`].
    reader_task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Waiter::Channel(_) => "Channel",
            Waiter::Callback(_) => "Callback",
        })
    }
}

impl RpcPeer {
    /// Connects to a Unix socket at `path`.
    pub async fn connect_unix(
        path: &str,
    ) -> Result<(Arc<Self>, mpsc::UnboundedReceiver<Envelope>)> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| Error::Connection {
                peer: path.to_string(),
                source,
            })?;
        let (r, w) = stream.into_split();
        Ok(Self::start_with(r, FrameWriter::unix(w), path.to_string()))
    }

    /// Connects over TCP to `host:port` and proves the cluster `token`
    /// before anything else is sent.
    pub async fn connect_tcp(
        addr: &str,
        token: &str,
    ) -> Result<(Arc<Self>, mpsc::UnboundedReceiver<Envelope>)> {
        let (reader, writer) = crate::transport::dial_tcp(addr, token).await?;
        Ok(Self::start_reader(reader, writer, addr.to_string()))
    }

    /// Starts the reader task over an established stream. Messages that are
    /// not replies go to the returned inbox, which closes when the peer does.
    pub fn start<R, W>(r: R, w: W, peer: String) -> (Arc<Self>, mpsc::UnboundedReceiver<Envelope>)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        Self::start_with(r, FrameWriter::spawn(w), peer)
    }

    /// Like [`RpcPeer::start`], over an existing writer.
    pub fn start_with<R>(
        r: R,
        writer: FrameWriter,
        peer: String,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Envelope>)
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        Self::start_reader(FrameReader::new(r), writer, peer)
    }

    /// Like [`RpcPeer::start_with`], over a reader already in use.
    pub fn start_reader<R>(
        mut reader: FrameReader<R>,
        writer: FrameWriter,
        peer: String,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Envelope>)
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let (inbox_tx, inbox_rx) = mpsc::unbounded_channel();
        let (gone_tx, gone) = tokio::sync::watch::channel(false);
        let gone_tx = Arc::new(gone_tx);
        let task = {
            let (pending, gone_tx) = (pending.clone(), gone_tx.clone());
            tokio::spawn(async move {
                while let Some(env) = reader.next().await {
                    let waiter = if env.id != 0 {
                        pending.lock().as_mut().and_then(|p| p.remove(&env.id))
                    } else {
                        None
                    };
                    match (waiter, env.body) {
                        (Some(Waiter::Channel(tx)), Some(body)) => {
                            let _ = tx.send(body);
                        }
                        (Some(Waiter::Callback(cb)), body) => cb(body),
                        (None, body) => {
                            let _ = inbox_tx.send(Envelope { id: env.id, body });
                        }
                        (Some(Waiter::Channel(_)), None) => {}
                    }
                }
                fail_waiting(&pending, &gone_tx);
            })
        };
        let this = Arc::new(Self {
            writer,
            next_id: AtomicU64::new(1),
            pending,
            peer,
            runtime: tokio::runtime::Handle::current(),
            gone,
            gone_tx,
            reader_task: task.abort_handle(),
        });
        (this, inbox_rx)
    }

    /// Gives up on the peer (its host was declared dead, though the
    /// connection may still look open): every call waiting for a reply
    /// fails now, as if the connection had closed, and later calls fail.
    pub fn disconnect(&self) {
        self.reader_task.abort();
        fail_waiting(&self.pending, &self.gone_tx);
    }

    /// Resolves once the connection is gone.
    pub async fn closed(&self) {
        let mut gone = self.gone.clone();
        let _ = gone.wait_for(|g| *g).await;
    }

    /// The address this peer was reached at.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Sends a request and returns a receiver for its reply, without waiting.
    pub fn start_call(&self, body: Body) -> Result<oneshot::Receiver<Body>> {
        let (tx, rx) = oneshot::channel();
        self.send_request(body, Waiter::Channel(tx))?;
        Ok(rx)
    }

    /// Sends a request; `on_reply` runs on the connection's reader task with
    /// the reply, or with `None` if the connection closes first (also when
    /// it is closed already).
    pub fn call_with(&self, body: Body, on_reply: impl FnOnce(Option<Body>) + Send + 'static) {
        let mut cb: Option<Box<dyn FnOnce(Option<Body>) + Send>> = Some(Box::new(on_reply));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let registered = match self.pending.lock().as_mut() {
            Some(p) => {
                p.insert(id, Waiter::Callback(cb.take().expect("set")));
                true
            }
            None => false,
        };
        if !registered {
            let cb = cb.take().expect("set");
            self.runtime.spawn(async move { cb(None) });
            return;
        }
        if !self.writer.send(Envelope {
            id,
            body: Some(body),
        }) {
            let waiter = self.pending.lock().as_mut().and_then(|p| p.remove(&id));
            if let Some(Waiter::Callback(cb)) = waiter {
                self.runtime.spawn(async move { cb(None) });
            }
        }
    }

    /// Registers `waiter` and sends the request; returns its id.
    fn send_request(&self, body: Body, waiter: Waiter) -> Result<u64> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        match self.pending.lock().as_mut() {
            Some(p) => p.insert(id, waiter),
            None => return Err(self.closed_error()),
        };
        if !self.writer.send(Envelope {
            id,
            body: Some(body),
        }) {
            return Err(self.closed_error());
        }
        Ok(id)
    }

    /// [`RpcPeer::call`], failing after `limit` without an answer (the
    /// waiter is dropped then, so a peer that never answers holds nothing).
    pub async fn call_within(&self, body: Body, limit: std::time::Duration) -> Result<Body> {
        let (tx, rx) = oneshot::channel();
        let id = self.send_request(body, Waiter::Channel(tx))?;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(Body::ErrorReply(e))) => Err(Error::Rejected(e.message)),
            Ok(Ok(body)) => Ok(body),
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => {
                if let Some(p) = self.pending.lock().as_mut() {
                    p.remove(&id);
                }
                Err(Error::Connection {
                    peer: self.peer.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "no answer within {}s; is its process running and reachable?",
                            limit.as_secs_f64()
                        ),
                    ),
                })
            }
        }
    }

    /// Sends a request and waits for its reply. An [`Body::ErrorReply`] from
    /// the peer becomes [`Error::Rejected`].
    pub async fn call(&self, body: Body) -> Result<Body> {
        let rx = self.start_call(body)?;
        match rx.await {
            Ok(Body::ErrorReply(e)) => Err(Error::Rejected(e.message)),
            Ok(body) => Ok(body),
            Err(_) => Err(self.closed_error()),
        }
    }

    /// Sends a one-way message.
    pub fn send(&self, body: Body) -> bool {
        self.writer.send(Envelope {
            id: 0,
            body: Some(body),
        })
    }

    /// Replies to a request the peer sent us.
    pub fn reply(&self, id: u64, body: Body) -> bool {
        self.writer.reply(id, body)
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.pending.lock().is_none() || self.writer.is_closed()
    }

    fn closed_error(&self) -> Error {
        Error::Connection {
            peer: self.peer.clone(),
            source: std::io::Error::new(std::io::ErrorKind::BrokenPipe, "connection closed"),
        }
    }
}

/// Marks the connection gone and fails every call still waiting: channel
/// waiters see their sender dropped, callbacks run with `None`.
fn fail_waiting(pending: &Pending, gone_tx: &tokio::sync::watch::Sender<bool>) {
    let _ = gone_tx.send(true);
    let waiters = pending.lock().take();
    for (_, waiter) in waiters.into_iter().flatten() {
        if let Waiter::Callback(cb) = waiter {
            cb(None);
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
                    server.reply(
                        env.id,
                        Body::KvValue(KvValue {
                            found: true,
                            value: g.key,
                        }),
                    );
                }
            }
        });
        let calls: Vec<_> = (0..10u8)
            .map(|i| {
                client
                    .start_call(Body::KvGet(KvGet {
                        namespace: "n".into(),
                        key: vec![i],
                    }))
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
        assert!(client
            .call(Body::Warning(Warning { text: "x".into() }))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn disconnect_fails_calls_to_a_silent_peer() {
        // The other end stays open but never answers (a frozen host).
        let (a, _b) = tokio::io::duplex(1 << 16);
        let (ar, aw) = tokio::io::split(a);
        let (client, _inbox) = RpcPeer::start(ar, aw, "frozen".into());
        let rx = client.start_call(Body::Ack(Ack {})).unwrap();
        let (tx, called) = oneshot::channel();
        client.call_with(Body::Ack(Ack {}), move |reply| {
            let _ = tx.send(reply.is_none());
        });
        client.disconnect();
        assert!(rx.await.is_err());
        assert!(called.await.unwrap(), "callbacks see the peer gone");
        assert!(client.is_closed());
        client.closed().await;
    }
}
