//! Streaming generators on the caller's side: the values a generator task
//! reports while it runs, handed to the consumer in order.
//!
//! The worker waits for the answer to each report before it goes on, so the
//! values arrive in order and all of them before the task's own reply. Ray's
//! backpressure falls out of that: the answer is held back while the
//! consumer is too many values behind.

use std::collections::HashMap;
use std::sync::Arc;

use oxray_common::{Error, ObjectId, Result, TaskId};
use oxray_proto::frame::FrameWriter;
use oxray_proto::{Ack, Body, GeneratorItem, ReturnsKind};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::core::Inner;
use crate::fetch::WaitLimit;

/// What becomes of the values a task's function yields (Ray's
/// `num_returns="streaming"` or `"dynamic"`).
#[derive(Clone, Copy, Debug)]
pub struct Yields {
    /// Fixed returns, a stream, or a dynamic list.
    pub kind: ReturnsKind,
    /// For a stream: values the producer may run ahead of the consumer
    /// (`<= 0`: no limit).
    pub backpressure: i64,
}

impl Default for Yields {
    fn default() -> Self {
        Self {
            kind: ReturnsKind::Fixed,
            backpressure: -1,
        }
    }
}

/// The object id of the `index`-th value (from 0) of generator task `task`:
/// its return `index + 2`, since return 1 is the task's own.
pub fn item_id(task: &TaskId, index: u32) -> ObjectId {
    ObjectId::for_task(task, index.saturating_add(2))
}

/// What the consumer of a stream gets next.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamNext {
    /// The next value, referenced once for the consumer.
    Item(ObjectId),
    /// The task failed after the values already taken: its return holds
    /// the error, which the consumer sees as the next value.
    Failed,
    /// Every value was taken and the task ended well.
    End,
}

/// The streams of the generator tasks this process submitted.
#[derive(Default)]
pub(crate) struct Streams {
    streams: Mutex<HashMap<TaskId, Stream>>,
}

struct Stream {
    /// How many values the producer may be ahead of the consumer before
    /// its report waits; `None` for no limit.
    backpressure: Option<u32>,
    /// Values received (indices `0..received`).
    received: u32,
    /// Values handed to the consumer (indices `0..consumed`).
    consumed: u32,
    /// `Some(failed)` once the task finished.
    finished: Option<bool>,
    /// Whether the consumer was handed the failure already.
    failure_taken: bool,
    /// Reports whose answers wait for the consumer to catch up.
    held_acks: Vec<(FrameWriter, u64)>,
    /// Wakes a consumer waiting for a value.
    more: Arc<Notify>,
}

impl Stream {
    fn release_acks_if_caught_up(&mut self) {
        let behind = self.received - self.consumed;
        if self.finished.is_some() || self.backpressure.is_none_or(|limit| behind < limit) {
            for (writer, request) in self.held_acks.drain(..) {
                writer.reply(request, Body::Ack(Ack {}));
            }
        }
    }
}

impl Inner {
    /// Starts the stream of task `task` if it is a streaming generator
    /// (before it is submitted).
    pub(crate) fn open_stream(&self, task: TaskId, yields: Yields) {
        if yields.kind != ReturnsKind::Streaming {
            return;
        }
        let backpressure = yields.backpressure;
        let stream = Stream {
            backpressure: u32::try_from(backpressure).ok().filter(|n| *n > 0),
            received: 0,
            consumed: 0,
            finished: None,
            failure_taken: false,
            held_acks: Vec::new(),
            more: Arc::new(Notify::new()),
        };
        self.streams.streams.lock().insert(task, stream);
    }

    /// A value reported by the worker running a generator task. Values of
    /// a stream already closed, or reported again by a retried task, are
    /// dropped (and what they hold freed).
    pub(crate) fn on_generator_item(
        &self,
        item: GeneratorItem,
        request: u64,
        writer: &FrameWriter,
    ) {
        let (Some(task), Some(object)) = (TaskId::from_bytes(&item.task_id), item.object) else {
            writer.reply(request, Body::Ack(Ack {}));
            return;
        };
        let id = item_id(&task, item.index);
        let mut streams = self.streams.streams.lock();
        let wanted = streams
            .get(&task)
            .is_some_and(|s| s.received == item.index && s.finished.is_none());
        if !wanted {
            drop(streams);
            // Stored and released at once: the normal path frees a shared
            // copy and the holds lent with the value.
            self.refs.add(id, &self.address, true);
            self.fulfil_holding(id, object, true);
            self.release_ref(&id);
            writer.reply(request, Body::Ack(Ack {}));
            return;
        }
        // Referenced once for the consumer, and pending, before the
        // consumer can take it.
        self.refs.add(id, &self.address, true);
        self.store.expect(id);
        let stream = streams.get_mut(&task).expect("checked above");
        stream.received += 1;
        stream.held_acks.push((writer.clone(), request));
        stream.release_acks_if_caught_up();
        let more = stream.more.clone();
        drop(streams);
        self.fulfil_holding(id, object, true);
        more.notify_one();
    }

    /// The generator task `task` finished (`failed`: its return is an
    /// error): the consumer sees the end after the values received.
    pub(crate) fn finish_stream(&self, task: TaskId, failed: bool) {
        let mut streams = self.streams.streams.lock();
        if let Some(stream) = streams.get_mut(&task) {
            stream.finished = Some(failed);
            stream.release_acks_if_caught_up();
            stream.more.notify_one();
        }
    }

    /// The next value of the stream of `task`, waiting for it within
    /// `limit` (`Error::Timeout` past it).
    pub(crate) fn stream_next(&self, task: TaskId, limit: WaitLimit<'_>) -> Result<StreamNext> {
        let more = {
            let mut streams = self.streams.streams.lock();
            let Some(stream) = streams.get_mut(&task) else {
                return Ok(StreamNext::End);
            };
            if let Some(next) = Self::take_next(stream, &task) {
                return Ok(next);
            }
            stream.more.clone()
        };
        let mut next = None;
        let arrived = self.lending_cpu(|| {
            self.block_until_notified(&more, limit, || {
                let mut streams = self.streams.streams.lock();
                next = match streams.get_mut(&task) {
                    Some(stream) => Self::take_next(stream, &task),
                    None => Some(StreamNext::End),
                };
                next.is_some()
            })
        })?;
        match next {
            Some(next) if arrived => Ok(next),
            _ => Err(Error::Timeout(
                limit.timeout.unwrap_or_default().as_secs_f64(),
            )),
        }
    }

    fn take_next(stream: &mut Stream, task: &TaskId) -> Option<StreamNext> {
        if stream.consumed < stream.received {
            let id = item_id(task, stream.consumed);
            stream.consumed += 1;
            stream.release_acks_if_caught_up();
            return Some(StreamNext::Item(id));
        }
        match stream.finished {
            Some(true) if !stream.failure_taken => {
                stream.failure_taken = true;
                Some(StreamNext::Failed)
            }
            Some(_) => Some(StreamNext::End),
            None => None,
        }
    }

    /// Whether the next value of the stream of `task` (or its end) can be
    /// taken without waiting.
    pub(crate) fn stream_ready(&self, task: TaskId) -> bool {
        let streams = self.streams.streams.lock();
        streams
            .get(&task)
            .is_none_or(|s| s.consumed < s.received || s.finished.is_some())
    }

    /// The consumer dropped the stream of `task`: values not taken are
    /// freed, and so are those reported later.
    pub(crate) fn close_stream(&self, task: TaskId) {
        let Some(mut stream) = self.streams.streams.lock().remove(&task) else {
            return;
        };
        for index in stream.consumed..stream.received {
            self.release_ref(&item_id(&task, index));
        }
        stream.finished.get_or_insert(false);
        stream.release_acks_if_caught_up();
    }
}
