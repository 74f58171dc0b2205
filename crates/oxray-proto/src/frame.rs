//! Length-prefixed frames: a 4-byte big-endian length, then one encoded
//! [`Envelope`].
//!
//! Writes go through a [`FrameWriter`]: a channel drained by one task that
//! packs every queued message into one buffer and writes it with one syscall,
//! so a burst of small messages costs one write, not one each.

use bytes::{BufMut, BytesMut};
use futures::StreamExt;
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use crate::messages::{Body, Envelope};

/// The largest frame accepted (objects travel inline until the shared store
/// takes them).
pub const MAX_FRAME: usize = u32::MAX as usize;

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
    tx: mpsc::UnboundedSender<Envelope>,
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
        Self { tx }
    }

    /// Queues an envelope; returns false when the connection is gone.
    pub fn send(&self, env: Envelope) -> bool {
        self.tx.send(env).is_ok()
    }

    /// Queues a reply to request `id`.
    pub fn reply(&self, id: u64, body: Body) -> bool {
        self.send(Envelope { id, body: Some(body) })
    }

    /// Whether the writer task has stopped (peer gone).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The receiving side of a connection.
pub struct FrameReader<R> {
    inner: FramedRead<R, LengthDelimitedCodec>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps the read half of a stream.
    pub fn new(source: R) -> Self {
        let codec = LengthDelimitedCodec::builder()
            .max_frame_length(MAX_FRAME)
            .new_codec();
        Self {
            inner: FramedRead::with_capacity(source, codec, 64 * 1024),
        }
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
                Body::Warning(Warning { text: format!("w{i}") })
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
        assert!(reader.next().await.is_none(), "stream ends when writer drops");
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
    async fn garbage_ends_the_stream() {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        a.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
        let mut reader = FrameReader::new(b);
        assert!(reader.next().await.is_none());
    }
}
