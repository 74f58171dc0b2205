//! Length-prefixed frames: a 4-byte big-endian length, then one encoded
//! [`Envelope`].
//!
//! Writes go through a [`FrameWriter`]. On a socket
//! ([`FrameWriter::unix`], [`FrameWriter::tcp`]) the sending thread writes the frame itself when
//! nothing is queued (no hop to another thread on the task path), and a
//! background task drains whatever the socket could not take at once. Over
//! any other stream ([`FrameWriter::spawn`]) a task packs every queued
//! message into one buffer and writes it with one syscall.

use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use futures::StreamExt;
use parking_lot::Mutex;
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use crate::messages::{Body, Envelope};

/// The largest frame accepted unless `OXRAY_MAX_FRAME_BYTES` says
/// otherwise. Values over 100 KiB travel through the shared store and
/// objects between nodes as bulk streams, so frames stay far below it; the
/// limit keeps a 4-byte length from making a process reserve gigabytes.
pub const DEFAULT_MAX_FRAME: usize = 512 << 20;

/// The largest frame this process accepts (see [`DEFAULT_MAX_FRAME`]).
pub fn max_frame() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::env::var("OXRAY_MAX_FRAME_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n: &usize| *n >= 1 << 20)
            .unwrap_or(DEFAULT_MAX_FRAME)
    })
}

/// The largest first frame of a TCP connection, read before the peer has
/// proved the cluster token: a stranger cannot make us reserve more.
pub const MAX_HELLO_FRAME: usize = 4096;

/// The write half of a socket a sending thread can write to directly.
#[derive(Debug)]
pub enum WriteHalf {
    /// A Unix socket's (same host).
    Unix(tokio::net::unix::OwnedWriteHalf),
    /// A TCP socket's (other hosts).
    Tcp(tokio::net::tcp::OwnedWriteHalf),
}

impl WriteHalf {
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            WriteHalf::Unix(h) => h.try_write(buf),
            WriteHalf::Tcp(h) => h.try_write(buf),
        }
    }

    async fn writable(&self) -> std::io::Result<()> {
        match self {
            WriteHalf::Unix(h) => h.writable().await,
            WriteHalf::Tcp(h) => h.writable().await,
        }
    }
}

/// The read buffer a connection starts with (it grows for larger frames).
const READ_BUFFER: usize = 16 * 1024;

/// Most bytes packed into one write before flushing.
const WRITE_BATCH: usize = 1 << 20;

/// Appends one framed envelope to `buf`.
pub fn encode_frame(env: &Envelope, buf: &mut BytesMut) {
    let len = env.encoded_len();
    buf.reserve(4 + len);
    buf.put_u32(len as u32);
    env.encode(buf).expect("reserved enough space");
}

/// The sending side of a connection. Cheap to clone; sends never block.
#[derive(Clone, Debug)]
pub struct FrameWriter {
    inner: Arc<Sink>,
}

#[derive(Debug)]
enum Sink {
    Queued(mpsc::UnboundedSender<Envelope>),
    Direct(DirectSink),
}

/// A socket written by the sending thread, with a task for leftovers.
#[derive(Debug)]
struct DirectSink {
    half: WriteHalf,
    pending: Mutex<Pending>,
    wake: Arc<Notify>,
}

impl Drop for DirectSink {
    fn drop(&mut self) {
        // Let the drain task see that the writer is gone and end.
        self.wake.notify_one();
    }
}

#[derive(Debug, Default)]
struct Pending {
    bytes: BytesMut,
    closed: bool,
}

impl FrameWriter {
    /// Spawns the task that writes queued envelopes to `sink`.
    pub fn spawn<W: AsyncWrite + Unpin + Send + 'static>(mut sink: W) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Envelope>();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            while let Some(env) = rx.recv().await {
                encode_frame(&env, &mut buf);
                while buf.len() < WRITE_BATCH {
                    match rx.try_recv() {
                        Ok(env) => encode_frame(&env, &mut buf),
                        Err(_) => break,
                    }
                }
                if sink.write_all(&buf).await.is_err() {
                    break;
                }
                buf.clear();
                if buf.capacity() > 4 * WRITE_BATCH {
                    buf = BytesMut::with_capacity(64 * 1024);
                }
            }
            let _ = sink.shutdown().await;
        });
        Self {
            inner: Arc::new(Sink::Queued(tx)),
        }
    }

    /// A writer for a Unix socket that writes from the sending thread.
    pub fn unix(half: tokio::net::unix::OwnedWriteHalf) -> Self {
        Self::direct(WriteHalf::Unix(half))
    }

    /// A writer for a TCP socket that writes from the sending thread.
    pub fn tcp(half: tokio::net::tcp::OwnedWriteHalf) -> Self {
        Self::direct(WriteHalf::Tcp(half))
    }

    fn direct(half: WriteHalf) -> Self {
        let wake = Arc::new(Notify::new());
        let inner = Arc::new(Sink::Direct(DirectSink {
            half,
            pending: Mutex::new(Pending::default()),
            wake: wake.clone(),
        }));
        let task = Arc::downgrade(&inner);
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                // Hold the writer only while draining, so that dropping every
                // handle closes the socket.
                let Some(sink) = task.upgrade() else { return };
                let Sink::Direct(d) = &*sink else { return };
                if !d.drain().await {
                    return;
                }
            }
        });
        Self { inner }
    }

    /// Queues an envelope; returns false when the connection is gone.
    pub fn send(&self, env: Envelope) -> bool {
        match &*self.inner {
            Sink::Queued(tx) => tx.send(env).is_ok(),
            Sink::Direct(d) => d.send(&env),
        }
    }

    /// Queues a reply to request `id`.
    pub fn reply(&self, id: u64, body: Body) -> bool {
        self.send(Envelope {
            id,
            body: Some(body),
        })
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        match &*self.inner {
            Sink::Queued(tx) => tx.is_closed(),
            Sink::Direct(d) => d.pending.lock().closed,
        }
    }

    /// Writes `data` as raw bytes after everything queued so far, straight
    /// from the caller's memory (no copy into a frame): the bulk stream of
    /// an object transfer. Only for socket writers; the caller must not
    /// send anything else on this connection until it returns.
    pub async fn write_raw(&self, data: &[u8]) -> std::io::Result<()> {
        let Sink::Direct(d) = &*self.inner else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "raw writes need a socket writer",
            ));
        };
        if !d.drain().await {
            return Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "connection closed",
            ));
        }
        let mut pos = 0;
        while pos < data.len() {
            match d.half.try_write(&data[pos..]) {
                Ok(n) => pos += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => d.half.writable().await?,
                Err(e) => {
                    d.pending.lock().closed = true;
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

impl DirectSink {
    fn send(&self, env: &Envelope) -> bool {
        let mut p = self.pending.lock();
        if p.closed {
            return false;
        }
        let was_empty = p.bytes.is_empty();
        encode_frame(env, &mut p.bytes);
        if !was_empty {
            return true; // the drain task owns the queue and was woken
        }
        match self.half.try_write(&p.bytes) {
            Ok(n) => p.bytes.advance(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                p.closed = true;
                return false;
            }
        }
        if !p.bytes.is_empty() {
            self.wake.notify_one();
        } else if p.bytes.capacity() > 4 * WRITE_BATCH {
            p.bytes = BytesMut::new();
        }
        true
    }

    /// Writes out everything pending; false once the socket is broken.
    async fn drain(&self) -> bool {
        loop {
            {
                let mut p = self.pending.lock();
                if p.bytes.is_empty() {
                    return true;
                }
                match self.half.try_write(&p.bytes) {
                    Ok(n) => {
                        p.bytes.advance(n);
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        p.closed = true;
                        return false;
                    }
                }
            }
            if self.half.writable().await.is_err() {
                self.pending.lock().closed = true;
                return false;
            }
        }
    }
}

/// The raw frames of `source`, as every [`FrameReader`] cuts them: a
/// 4-byte big-endian length, then that many bytes. A length over `max` is
/// an error before anything is reserved for it, so a peer can make the
/// reader buffer at most about `max` bytes. Each frame holds one encoded
/// [`Envelope`] (see [`encode_frame`]).
pub fn framed_read<R: AsyncRead>(source: R, max: usize) -> FramedRead<R, LengthDelimitedCodec> {
    let codec = LengthDelimitedCodec::builder()
        .length_field_length(4)
        .big_endian()
        .max_frame_length(max)
        .new_codec();
    FramedRead::with_capacity(source, codec, READ_BUFFER)
}

/// The receiving side of a connection.
pub struct FrameReader<R> {
    inner: FramedRead<R, LengthDelimitedCodec>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps the read half of a stream.
    pub fn new(source: R) -> Self {
        Self::with_max_frame(source, max_frame())
    }

    /// Wraps the read half of a stream, refusing frames over `max` bytes.
    pub fn with_max_frame(source: R, max: usize) -> Self {
        Self {
            inner: framed_read(source, max),
        }
    }

    /// Changes the largest frame accepted from now on.
    pub fn set_max_frame(&mut self, max: usize) {
        self.inner.decoder_mut().set_max_frame_length(max);
    }

    /// The next envelope; `None` at end of stream or on a broken frame.
    pub async fn next(&mut self) -> Option<Envelope> {
        let frame = self.inner.next().await?.ok()?;
        match Envelope::decode(frame.freeze()) {
            Ok(env) => Some(env),
            Err(err) => {
                tracing::warn!("dropping connection after undecodable frame: {err}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Ack, Warning};

    #[tokio::test]
    async fn frames_round_trip_in_order_and_batch() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let writer = FrameWriter::spawn(a);
        for i in 1..=100u64 {
            let body = if i % 2 == 0 {
                Body::Ack(Ack {})
            } else {
                Body::Warning(Warning {
                    text: format!("w{i}"),
                })
            };
            assert!(writer.reply(i, body));
        }
        let mut reader = FrameReader::new(b);
        for i in 1..=100u64 {
            let env = reader.next().await.expect("frame");
            assert_eq!(env.id, i);
            match env.body.unwrap() {
                Body::Ack(_) => assert_eq!(i % 2, 0),
                Body::Warning(w) => assert_eq!(w.text, format!("w{i}")),
                other => panic!("unexpected {other:?}"),
            }
        }
        drop(writer);
        assert!(
            reader.next().await.is_none(),
            "stream ends when writer drops"
        );
    }

    #[tokio::test]
    async fn direct_unix_writer_keeps_order_under_backpressure() {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let (_ar, aw) = a.into_split();
        let writer = FrameWriter::unix(aw);
        let text = "y".repeat(300_000);
        let sender = {
            let writer = writer.clone();
            let text = text.clone();
            std::thread::spawn(move || {
                for i in 1..=50u64 {
                    assert!(writer.reply(
                        i,
                        Body::Warning(Warning {
                            text: format!("{i}{text}")
                        })
                    ));
                }
            })
        };
        let mut reader = FrameReader::new(b);
        for i in 1..=50u64 {
            let env = reader.next().await.expect("frame");
            assert_eq!(env.id, i);
            match env.body.unwrap() {
                Body::Warning(w) => {
                    assert!(w.text.starts_with(&i.to_string()) && w.text.len() > 300_000)
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        sender.join().unwrap();
    }

    #[tokio::test]
    async fn large_frame_survives() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let writer = FrameWriter::spawn(a);
        let text = "x".repeat(10 << 20);
        writer.reply(7, Body::Warning(Warning { text: text.clone() }));
        let mut reader = FrameReader::new(b);
        let env = reader.next().await.unwrap();
        assert_eq!(env.body, Some(Body::Warning(Warning { text })));
    }

    #[tokio::test]
    async fn an_oversized_length_ends_the_stream_without_reserving_it() {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let mut reader = FrameReader::new(b);
        assert!(reader.next().await.is_none());
    }

    #[tokio::test]
    async fn garbage_ends_the_stream() {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        a.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
        let mut reader = FrameReader::new(b);
        assert!(reader.next().await.is_none());
    }
}
