//! What `list_tasks` reports about this process: the tasks it owns (live
//! ones read from the submitters' own state, so the task path pays nothing
//! for them; finished ones from a bounded log) and the ones it runs.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use oxray_common::{ActorId, Result, TaskId};
use oxray_proto::*;
use parking_lot::Mutex;

use crate::core::Inner;
use crate::objects::ObjectKind;

/// Finished tasks kept per owner for `list_tasks`.
const KEPT_FINISHED: usize = 10_000;
/// How long `list_tasks` waits for each process to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// Task states, named as Ray's state API names them.
pub(crate) mod state {
    pub(crate) const PENDING_ARGS: &str = "PENDING_ARGS_AVAIL";
    pub(crate) const PENDING_NODE: &str = "PENDING_NODE_ASSIGNMENT";
    pub(crate) const SUBMITTED: &str = "SUBMITTED_TO_WORKER";
    pub(crate) const RUNNING: &str = "RUNNING";
    pub(crate) const FINISHED: &str = "FINISHED";
    pub(crate) const FAILED: &str = "FAILED";
}

/// The tasks this process owned that have finished, newest last. Recorded
/// on the task path, so an entry is compact and allocates nothing: ids are
/// fixed-size and each function's name is shared.
#[derive(Default)]
pub(crate) struct FinishedTasks {
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    ring: VecDeque<Finished>,
    /// One copy of each function name seen.
    names: HashSet<Arc<str>>,
}

struct Finished {
    task_id: TaskId,
    created_us: u64,
    actor_id: Option<ActorId>,
    name: Arc<str>,
    /// Empty when the task succeeded.
    error_type: &'static str,
    attempt: u32,
    job_id: u32,
}

impl FinishedTasks {
    /// Records a task whose first return value is `first` (None: it had no
    /// returns).
    pub(crate) fn record(&self, spec: &TaskSpec, first: Option<&Object>) {
        let error_type = match first.map(ObjectKind::of) {
            Some(ObjectKind::TaskError) => "TASK_EXECUTION_EXCEPTION",
            Some(ObjectKind::WorkerCrashed) => "WORKER_DIED",
            Some(ObjectKind::Cancelled) => "TASK_CANCELLED",
            Some(ObjectKind::ActorDied | ObjectKind::ActorInitFailed) => "ACTOR_DIED",
            Some(ObjectKind::Lost) => "OBJECT_LOST",
            Some(ObjectKind::SystemError) => "SYSTEM_ERROR",
            _ => "",
        };
        let mut log = self.log.lock();
        let name = match log.names.get(spec.function_name.as_str()) {
            Some(name) => name.clone(),
            None => {
                let name: Arc<str> = Arc::from(spec.function_name.as_str());
                log.names.insert(name.clone());
                name
            }
        };
        if log.ring.len() == KEPT_FINISHED {
            log.ring.pop_front();
        }
        log.ring.push_back(Finished {
            task_id: TaskId::from_bytes(&spec.task_id).unwrap_or_default(),
            created_us: spec.created_us,
            actor_id: ActorId::from_bytes(&spec.actor_id),
            name,
            error_type,
            attempt: spec.attempt,
            job_id: spec.job_id,
        });
    }

    fn entries(&self) -> Vec<TaskEntry> {
        let log = self.log.lock();
        log.ring
            .iter()
            .map(|f| TaskEntry {
                task_id: f.task_id.0.to_vec(),
                name: f.name.to_string(),
                state: if f.error_type.is_empty() {
                    state::FINISHED
                } else {
                    state::FAILED
                }
                .into(),
                kind: if f.actor_id.is_some() {
                    "ACTOR_TASK"
                } else {
                    "NORMAL_TASK"
                }
                .into(),
                actor_id: f.actor_id.map(|a| a.0.to_vec()).unwrap_or_default(),
                error_type: f.error_type.into(),
                attempt: f.attempt,
                job_id: f.job_id,
                creation_time_us: f.created_us,
                ..Default::default()
            })
            .collect()
    }
}

/// Tasks a worker ran lately with their times, kept where they ran so
/// that the task path sends nothing for them (`list_tasks` gathers them).
const KEPT_RAN: usize = 4096;

/// When the tasks run in this process ran, newest last.
#[derive(Default)]
pub(crate) struct RanTasks {
    ring: Mutex<VecDeque<Ran>>,
}

struct Ran {
    task_id: TaskId,
    attempt: u32,
    started_us: u64,
    ended_us: u64,
    /// What a failed task raised (None when it succeeded).
    error: Option<Box<str>>,
}

/// The most of an error message kept per task: a traceback is read by
/// people, and the ring stays small however large the messages.
const KEPT_ERROR_BYTES: usize = 16 * 1024;

impl RanTasks {
    /// `spec` ran from `started_us` until now, and raised `error` when
    /// it failed.
    pub(crate) fn record(&self, spec: &TaskSpec, started_us: u64, error: Option<&str>) {
        let ran = Ran {
            task_id: TaskId::from_bytes(&spec.task_id).unwrap_or_default(),
            attempt: spec.attempt,
            started_us,
            ended_us: unix_micros(),
            error: error.map(|e| Box::from(truncated(e, KEPT_ERROR_BYTES))),
        };
        let mut ring = self.ring.lock();
        if ring.len() == KEPT_RAN {
            ring.pop_front();
        }
        ring.push_back(ran);
    }

    fn records(&self) -> Vec<RunRecord> {
        self.ring
            .lock()
            .iter()
            .map(|r| RunRecord {
                task_id: r.task_id.0.to_vec(),
                attempt: r.attempt,
                started_us: r.started_us,
                ended_us: r.ended_us,
                error_message: r.error.as_deref().unwrap_or_default().to_string(),
            })
            .collect()
    }
}

/// `text` cut to at most `limit` bytes, on a character boundary, keeping
/// its end (where a traceback names the error).
fn truncated(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// An entry for `spec` in `state`.
pub(crate) fn entry_of(spec: &TaskSpec, state: &str) -> TaskEntry {
    TaskEntry {
        task_id: spec.task_id.clone(),
        name: spec.function_name.clone(),
        state: state.into(),
        kind: if spec.actor_id.is_empty() {
            "NORMAL_TASK"
        } else {
            "ACTOR_TASK"
        }
        .into(),
        actor_id: spec.actor_id.clone(),
        attempt: spec.attempt,
        job_id: spec.job_id,
        creation_time_us: spec.created_us,
        ..Default::default()
    }
}

/// Now, in microseconds since the Unix epoch (the clock task times use).
pub(crate) fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Inner {
    /// This process's answer to [`ListTasks`].
    pub(crate) fn task_list(&self) -> TaskList {
        let mut tasks = self.submit.lock().live_tasks();
        tasks.extend(self.actor_submit.lock().live_calls());
        tasks.extend(self.finished.entries());
        TaskList {
            tasks,
            running: self
                .exec
                .current_task()
                .map(|t| t.0.to_vec())
                .into_iter()
                .collect(),
            worker_id: self.worker_id.0.to_vec(),
            node_id: self.node_id.0.to_vec(),
            ran: self.exec.ran.records(),
            pid: std::process::id(),
        }
    }

    /// The processes registered with every live node of the cluster.
    async fn cluster_clients(self: &Arc<Self>) -> Result<Vec<ClientEntry>> {
        let nodes = match self
            .daemon
            .call(Body::ClusterInfoRequest(ClusterInfoRequest {}))
            .await?
        {
            Body::ClusterInfo(c) => c.nodes,
            other => return Err(crate::core::unexpected(other)),
        };
        let mut clients = match self.daemon.call(Body::ListClients(ListClients {})).await? {
            Body::ClientList(l) => l.clients,
            other => return Err(crate::core::unexpected(other)),
        };
        let others = nodes
            .into_iter()
            .filter(|n| n.alive && n.node_id != self.node_id.0.to_vec())
            .map(|n| {
                let me = self.clone();
                async move {
                    let ask = async {
                        let peer = me.peers.get(&n.address).await.ok()?;
                        match peer.call(Body::ListClients(ListClients {})).await {
                            Ok(Body::ClientList(l)) => Some(l.clients),
                            _ => None,
                        }
                    };
                    tokio::time::timeout(ANSWER_WITHIN, ask)
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or_default()
                }
            });
        clients.extend(
            futures::future::join_all(others)
                .await
                .into_iter()
                .flatten(),
        );
        Ok(clients)
    }

    /// Every task of every process of the cluster: each owner's view, with
    /// the tasks a worker reports running marked `RUNNING` there.
    pub(crate) async fn list_tasks(self: &Arc<Self>) -> Result<Vec<TaskEntry>> {
        let clients = self.cluster_clients().await?;
        let answers = clients.into_iter().map(|c| {
            let me = self.clone();
            async move {
                if me.is_me(&c.address) {
                    return Some(me.task_list());
                }
                let ask = async {
                    let peer = me.peers.get(&c.address).await.ok()?;
                    match peer.call(Body::ListTasks(ListTasks {})).await {
                        Ok(Body::TaskList(l)) => Some(l),
                        _ => None,
                    }
                };
                // A process that exits meanwhile has nothing to report.
                tokio::time::timeout(ANSWER_WITHIN, ask)
                    .await
                    .ok()
                    .flatten()
            }
        });
        let lists: Vec<TaskList> = futures::future::join_all(answers)
            .await
            .into_iter()
            .flatten()
            .collect();
        let running: std::collections::HashMap<TaskId, (Vec<u8>, Vec<u8>)> = lists
            .iter()
            .flat_map(|l| {
                l.running
                    .iter()
                    .filter_map(|t| TaskId::from_bytes(t))
                    .map(|t| (t, (l.worker_id.clone(), l.node_id.clone())))
            })
            .collect();
        // Where and when each attempt ran, from the workers that ran them.
        let ran: std::collections::HashMap<(Vec<u8>, u32), (&RunRecord, &TaskList)> = lists
            .iter()
            .flat_map(|l| {
                l.ran
                    .iter()
                    .map(move |r| ((r.task_id.clone(), r.attempt), (r, l)))
            })
            .collect();
        let mut tasks: Vec<TaskEntry> = lists.iter().flat_map(|l| l.tasks.clone()).collect();
        for t in &mut tasks {
            if let Some((run, worker)) = ran.get(&(t.task_id.clone(), t.attempt)) {
                t.start_time_us = run.started_us;
                t.end_time_us = run.ended_us;
                t.error_message.clone_from(&run.error_message);
                t.worker_pid = worker.pid;
                t.worker_id.clone_from(&worker.worker_id);
                t.node_id.clone_from(&worker.node_id);
            }
            let Some(id) = TaskId::from_bytes(&t.task_id) else {
                continue;
            };
            if let Some((worker, node)) = running.get(&id) {
                t.node_id = node.clone();
                if t.state == state::SUBMITTED {
                    t.state = state::RUNNING.into();
                    t.worker_id = worker.clone();
                }
            }
        }
        Ok(tasks)
    }
}
