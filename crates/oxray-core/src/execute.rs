//! The serving side of a core worker: tasks pushed by callers wait here for
//! the language's execution loop, and object requests from borrowers are
//! answered once the value exists.

use std::collections::VecDeque;
use std::sync::Arc;

use oxray_common::{ObjectId, TaskId};
use oxray_proto::frame::{FrameReader, FrameWriter};
use oxray_proto::*;
use parking_lot::Mutex;
use tokio::net::UnixListener;
use tokio::sync::Notify;

use crate::core::Inner;
use crate::objects::{error_object, ObjectKind};
use crate::store::Lookup;

/// A task pushed to this worker, waiting to run.
pub struct IncomingTask {
    /// What to run.
    pub spec: TaskSpec,
    request: u64,
    writer: FrameWriter,
    /// References taken on the refs lent with the task, given back when it
    /// is done.
    held: Vec<ObjectId>,
    /// When it was handed to the language to run (µs since the epoch).
    started_us: u64,
}

impl IncomingTask {
    /// What the worker holds for the task, `{resource: amount}`.
    pub fn assigned_resources(&self) -> std::collections::BTreeMap<String, f64> {
        let units = ResourceAmounts::decode_units(&self.spec.resources);
        oxray_common::ResourceSet::from_units(units.iter())
            .iter()
            .map(|(name, amount)| (name.to_string(), amount.as_f64()))
            .collect()
    }

    /// The task's id.
    pub fn task_id(&self) -> TaskId {
        TaskId::from_bytes(&self.spec.task_id).unwrap_or_default()
    }
}

type CancelHook = Arc<dyn Fn(TaskId) + Send + Sync>;

/// Tasks waiting to run, and the one running.
#[derive(Default)]
pub(crate) struct ExecState {
    queue: Mutex<Queue>,
    /// Wakes callers waiting in `next_task`.
    arrived: Notify,
    current: Mutex<Option<TaskId>>,
    /// The running task was cancelled: a `get` or `wait` it is blocked in
    /// returns `Interrupted` (KeyboardInterrupt in Python).
    cancelled: std::sync::atomic::AtomicBool,
    hook: Mutex<Option<CancelHook>>,
    /// The running task is blocked in `get`/`wait`: plain tasks pushed now
    /// go back to their caller at once instead of waiting behind it.
    blocked: std::sync::atomic::AtomicBool,
    /// Write end of a pipe that wakes an event loop when a task arrives
    /// (async actors poll the queue from their loop, not a thread).
    notify: Mutex<Option<std::os::fd::OwnedFd>>,
    /// When the tasks run here ran (for `list_tasks` and `timeline()`).
    pub(crate) ran: crate::task_log::RanTasks,
}

/// The queue was closed: the worker is shutting down.
struct Closed;

#[derive(Default)]
struct Queue {
    tasks: VecDeque<IncomingTask>,
    closed: bool,
}

impl ExecState {
    /// The task running now, if any.
    pub(crate) fn current_task(&self) -> Option<TaskId> {
        *self.current.lock()
    }

    /// Marks `task` cancelled if it is the one running; false otherwise.
    fn mark_cancelled(&self, task: TaskId) -> bool {
        let current = self.current.lock();
        let running = *current == Some(task);
        if running {
            self.cancelled
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        running
    }

    /// Whether the running task was cancelled (see `cancelled`).
    pub(crate) fn current_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set_cancel_hook(&self, hook: Box<dyn Fn(TaskId) + Send + Sync>) {
        *self.hook.lock() = Some(Arc::from(hook));
    }

    fn push(&self, task: IncomingTask) {
        self.queue.lock().tasks.push_back(task);
        self.arrived.notify_one();
        if let Some(fd) = &*self.notify.lock() {
            // A full pipe already has a wake-up pending: ignore EAGAIN.
            let _ = rustix::io::write(fd, &[1u8]);
        }
    }

    /// A file descriptor that becomes readable whenever a task arrives.
    pub(crate) fn notify_fd(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        let (read, write) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::NONBLOCK | rustix::pipe::PipeFlags::CLOEXEC,
        )?;
        *self.notify.lock() = Some(write);
        Ok(read)
    }

    /// The next queued task, without waiting; marks it running. `Err`
    /// once closed.
    fn pop(&self) -> Result<Option<IncomingTask>, Closed> {
        let mut q = self.queue.lock();
        if q.closed {
            return Err(Closed);
        }
        let Some(mut task) = q.tasks.pop_front() else {
            return Ok(None);
        };
        task.started_us = crate::task_log::unix_micros();
        let mut current = self.current.lock();
        *current = Some(task.task_id());
        // Under the same lock a cancel checks `current` with, so a cancel
        // of the previous task cannot mark this one.
        self.cancelled
            .store(false, std::sync::atomic::Ordering::Relaxed);
        drop(current);
        Ok(Some(task))
    }

    /// The next queued task, without waiting; marks it running.
    pub(crate) fn try_pop(&self) -> Option<IncomingTask> {
        self.pop().ok().flatten()
    }

    /// Stops handing out tasks; blocked `next_task` calls return `None`.
    pub(crate) fn close(&self) {
        self.queue.lock().closed = true;
        self.arrived.notify_waiters();
    }

    /// Takes every queued plain task (not actor calls, whose order matters).
    fn take_plain_tasks(&self) -> Vec<IncomingTask> {
        let mut q = self.queue.lock();
        let (plain, keep): (VecDeque<IncomingTask>, VecDeque<IncomingTask>) =
            q.tasks.drain(..).partition(|t| t.spec.actor_id.is_empty());
        q.tasks = keep;
        plain.into()
    }

    fn take_queued(&self, id: &TaskId) -> Option<IncomingTask> {
        let mut q = self.queue.lock();
        let pos = q.tasks.iter().position(|t| t.task_id() == *id)?;
        q.tasks.remove(pos)
    }
}

impl Inner {
    /// Accepts connections from callers and borrowers on this host.
    pub(crate) async fn serve(self: Arc<Self>, listener: UnixListener) {
        while let Ok((stream, _)) = listener.accept().await {
            if !oxray_proto::transport::same_user(&stream) {
                continue;
            }
            let (r, w) = stream.into_split();
            tokio::spawn(
                self.clone()
                    .serve_connection(FrameReader::new(r), FrameWriter::unix(w)),
            );
        }
    }

    /// Accepts connections from other hosts, each once it proved `token`.
    pub(crate) async fn serve_tcp(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        token: String,
    ) {
        let token: Arc<str> = Arc::from(token);
        while let Ok((stream, _)) = listener.accept().await {
            let (me, token) = (self.clone(), token.clone());
            tokio::spawn(async move {
                if let Some((reader, writer)) =
                    oxray_proto::transport::accept_tcp(stream, &token).await
                {
                    me.serve_connection(reader, writer).await;
                }
            });
        }
    }

    async fn serve_connection<R: tokio::io::AsyncRead + Unpin>(
        self: Arc<Self>,
        mut reader: FrameReader<R>,
        writer: FrameWriter,
    ) {
        while let Some(env) = reader.next().await {
            if let Some(body) = env.body {
                self.handle_peer_message(env.id, body, &writer);
            }
        }
    }

    fn handle_peer_message(self: &Arc<Self>, request: u64, body: Body, writer: &FrameWriter) {
        match body {
            Body::PushTask(spec) => {
                let mut held = self.hold_refs(&spec.args_nested);
                for arg in &spec.resolved_args {
                    held.extend(self.hold_refs(&arg.nested));
                }
                let task = IncomingTask {
                    spec,
                    request,
                    writer: writer.clone(),
                    held,
                    started_us: 0,
                };
                if task.spec.actor_id.is_empty()
                    && self.exec.blocked.load(std::sync::atomic::Ordering::SeqCst)
                {
                    self.bounce(task);
                } else {
                    self.exec.push(task)
                }
            }
            Body::GeneratorItem(item) => self.on_generator_item(item, request, writer),
            Body::ListTasks(_) => {
                writer.reply(request, Body::TaskList(self.task_list()));
            }
            Body::ReleaseLent(r) => {
                if let Some(id) = ObjectId::from_bytes(&r.id) {
                    self.loan_returned(&r.borrower, id, r.count);
                }
            }
            Body::ObjectLocation(o) => {
                if let Some(id) = ObjectId::from_bytes(&o.id) {
                    self.copy_reported(id, o.source);
                }
            }
            Body::CancelTask(c) => {
                let Some(task_id) = TaskId::from_bytes(&c.task_id) else {
                    return;
                };
                if self.submitted(task_id) {
                    // A borrower cancels a task this process owns.
                    self.cancel_task(task_id, c.force, c.recursive);
                    return;
                }
                if c.recursive {
                    self.cancel_children(task_id, c.force);
                }
                if let Some(task) = self.exec.take_queued(&task_id) {
                    let message = format!("Task '{}' was cancelled.", task.spec.function_name);
                    let returns = (0..task.spec.num_returns)
                        .map(|_| error_object(ObjectKind::Cancelled, message.clone()))
                        .collect();
                    self.complete_task(&task, returns, false, None);
                } else if self.exec.mark_cancelled(task_id) {
                    let hook = self.exec.hook.lock().clone();
                    if let Some(hook) = hook {
                        hook(task_id);
                    }
                }
            }
            Body::GetObject(g) => {
                let Some(id) = ObjectId::from_bytes(&g.id) else {
                    let error = "GetObject names no valid object id".to_string();
                    writer.reply(request, object_reply(Err(error)));
                    return;
                };
                if !g.lost_location.is_empty() {
                    // A borrower could not read our copy there: rebuild.
                    let (writer, me) = (writer.clone(), self.clone());
                    self.handle.spawn(async move {
                        let object = me
                            .clone()
                            .recover_lost(id, g.lost_location, String::new())
                            .await;
                        writer.reply(request, object_reply(Ok(me.lend(&object, &g.reader))));
                    });
                    return;
                }
                if let Lookup::Absent = self.store.lookup(&id) {
                    let error = format!(
                        "Object {} is lost: its owner at {} no longer holds it.",
                        id.hex(),
                        self.address
                    );
                    writer.reply(request, object_reply(Err(error)));
                    return;
                }
                let writer = writer.clone();
                let me = self.clone();
                let reader = g.reader;
                self.store.on_ready(
                    id,
                    Box::new(move |o| {
                        // A borrower reads it: an error it holds is handled.
                        me.mark_read(&[id], std::slice::from_ref(o));
                        writer.reply(request, object_reply(Ok(me.lend(o, &reader))));
                    }),
                );
            }
            other => {
                writer.reply(
                    request,
                    Body::ErrorReply(ErrorReply {
                        message: format!("a core worker does not handle {other:?}"),
                    }),
                );
            }
        }
    }

    /// Blocks until a task arrives; marks it as the running task. The
    /// waiting thread drives the event loop, so the push that brings the
    /// task wakes this thread directly.
    pub(crate) fn next_task(&self) -> Option<IncomingTask> {
        match self.exec.pop() {
            Ok(Some(task)) => return Some(task),
            Ok(None) => {}
            Err(Closed) => return None,
        }
        let arrival = async {
            loop {
                let arrived = self.exec.arrived.notified();
                tokio::pin!(arrived);
                arrived.as_mut().enable();
                match self.exec.pop() {
                    Ok(Some(task)) => return Some(task),
                    Ok(None) => {}
                    Err(Closed) => return None,
                }
                arrived.await;
            }
        };
        self.driver.block_on(arrival).ok().flatten()
    }

    fn release_held(&self, task: &IncomingTask) {
        for id in &task.held {
            self.release_ref(id);
        }
    }

    /// The running task blocks (or unblocks): while blocked, hand back the
    /// tasks queued behind it and those pushed meanwhile, so that they run
    /// on another worker instead of waiting (or deadlocking).
    pub(crate) fn set_blocked(&self, blocked: bool) {
        self.exec
            .blocked
            .store(blocked, std::sync::atomic::Ordering::SeqCst);
        if blocked {
            for task in self.exec.take_plain_tasks() {
                self.bounce(task);
            }
        }
    }

    fn bounce(&self, task: IncomingTask) {
        self.release_held(&task);
        task.writer.reply(
            task.request,
            Body::TaskReply(TaskReply {
                task_id: task.spec.task_id.clone(),
                returns: Vec::new(),
                retryable: false,
                bounced: true,
            }),
        );
    }

    /// Replies to the task's caller and clears the running task; `error`
    /// is what a failed task raised, kept for `list_tasks`.
    pub(crate) fn complete_task(
        &self,
        task: &IncomingTask,
        returns: Vec<Object>,
        retryable: bool,
        error: Option<&str>,
    ) {
        self.release_held(task);
        {
            let mut cur = self.exec.current.lock();
            if *cur == Some(task.task_id()) {
                *cur = None;
            }
        }
        if task.started_us > 0 {
            self.exec.ran.record(&task.spec, task.started_us, error);
        }
        task.writer.reply(
            task.request,
            Body::TaskReply(TaskReply {
                task_id: task.spec.task_id.clone(),
                returns,
                retryable,
                bounced: false,
            }),
        );
    }
}

/// The answer to a `GetObject`: the value, or why there is none.
fn object_reply(value: Result<Object, String>) -> Body {
    Body::ObjectReply(match value {
        Ok(object) => ObjectReply {
            object: Some(object),
            error: String::new(),
        },
        Err(error) => ObjectReply {
            object: None,
            error,
        },
    })
}
