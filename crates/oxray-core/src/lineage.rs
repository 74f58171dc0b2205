//! Lineage: what it takes to make an object again.
//!
//! On a multi-node cluster a node can die with the only copy of an object
//! in its shared store. The owner can rebuild such an object by running
//! the task that returned it once more, so it keeps, for each finished
//! task with a return in a shared store, the task's spec and a hold on its
//! arguments (themselves rebuilt the same way when lost). A record goes
//! when the last of the task's returns is freed. Values held inline live
//! in the owner's memory and need no lineage; on a single-node cluster
//! nothing is recorded (a dead node takes every process with it).

use std::collections::HashMap;

use oxray_common::{ObjectId, TaskId};
use oxray_proto::TaskSpec;
use parking_lot::Mutex;

use crate::submit::Key;

/// How to run a finished task again.
pub(crate) struct Record {
    /// The spec as first submitted (arguments unresolved).
    pub spec: TaskSpec,
    pub key: Key,
    /// The top-level ref arguments, in slot order.
    pub ref_args: Vec<ObjectId>,
    /// The references held on its arguments while the record lives.
    pub held: Vec<ObjectId>,
    /// Runs left (`-1`: no limit), shared by failures and rebuilds.
    pub retries_left: i32,
    /// The task's `max_retries`.
    pub max_retries: i32,
    /// Returns still referenced; at zero the record goes.
    pub live: u32,
}

/// Why a lost object cannot be rebuilt, as Ray names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unrebuildable {
    /// Made by `put`: there is no task to run again.
    Put,
    /// Its task has `max_retries=0`.
    RetriesDisabled,
    /// Its task used up its retries.
    MaxAttemptsExceeded,
    /// No record: an actor task's return, or the record is gone.
    NoLineage,
}

impl Unrebuildable {
    /// Ray's error-type name for this reason.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Put => "OBJECT_UNRECONSTRUCTABLE_PUT",
            Self::RetriesDisabled => "OBJECT_UNRECONSTRUCTABLE_RETRIES_DISABLED",
            Self::MaxAttemptsExceeded => "OBJECT_UNRECONSTRUCTABLE_MAX_ATTEMPTS_EXCEEDED",
            Self::NoLineage => "OBJECT_LOST",
        }
    }

    /// What the user reads, and what to do about it.
    pub(crate) fn message(self, id: &ObjectId) -> String {
        let why = match self {
            Self::Put => {
                "it was created by ray.put(), which has no task lineage. To prevent this \
                 error, return the value from a task instead."
            }
            Self::RetriesDisabled => {
                "the task that made it was created with max_retries=0. Consider enabling \
                 retries using `@ray.remote(max_retries=N)`."
            }
            Self::MaxAttemptsExceeded => {
                "the maximum number of task retries has been exceeded. Consider increasing \
                 the number of retries using `@ray.remote(max_retries=N)`."
            }
            Self::NoLineage => {
                "no task can make it again (it was returned by an actor task, or its \
                 lineage is gone)."
            }
        };
        format!(
            "Failed to retrieve object {}. All copies of it were lost with the node that held \
             them, and it cannot be reconstructed because {why}",
            id.hex()
        )
    }
}

/// The lineage records of the tasks this process owns.
#[derive(Default)]
pub(crate) struct LineageTable {
    map: Mutex<HashMap<TaskId, Record>>,
}

impl LineageTable {
    /// Keeps `record` for `task`.
    pub(crate) fn record(&self, task: TaskId, record: Record) {
        self.map.lock().insert(task, record);
    }

    /// Whether any record is kept (so that freeing objects on a
    /// single-node cluster costs nothing).
    pub(crate) fn is_empty(&self) -> bool {
        self.map.lock().is_empty()
    }

    /// The record to rebuild `id` from, taken out of the table (the task
    /// records itself again when it finishes), or why there is none.
    pub(crate) fn take_for_rebuild(
        &self,
        id: &ObjectId,
    ) -> Result<Record, (Unrebuildable, Vec<ObjectId>)> {
        if id.is_put() {
            return Err((Unrebuildable::Put, Vec::new()));
        }
        let Some(record) = self.map.lock().remove(&id.task_id()) else {
            return Err((Unrebuildable::NoLineage, Vec::new()));
        };
        match (record.max_retries, record.retries_left) {
            (0, _) => Err((Unrebuildable::RetriesDisabled, record.held)),
            (_, 0) => Err((Unrebuildable::MaxAttemptsExceeded, record.held)),
            _ => Ok(record),
        }
    }

    /// A return of a task was freed; returns the holds to give back when
    /// it was the task's last live return.
    pub(crate) fn return_freed(&self, id: &ObjectId) -> Option<Vec<ObjectId>> {
        let mut map = self.map.lock();
        let task = id.task_id();
        let record = map.get_mut(&task)?;
        record.live = record.live.saturating_sub(1);
        if record.live > 0 {
            return None;
        }
        map.remove(&task).map(|r| r.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn record(max_retries: i32, retries_left: i32, live: u32) -> Record {
        Record {
            spec: TaskSpec::default(),
            key: Arc::new(Default::default()),
            ref_args: vec![],
            held: vec![ObjectId::for_task(&TaskId::nth([9; 8], 1), 1)],
            retries_left,
            max_retries,
            live,
        }
    }

    #[test]
    fn rebuilds_only_what_retries_allow() {
        let t = LineageTable::default();
        let task = TaskId::nth([1; 8], 1);
        let out = ObjectId::for_task(&task, 1);
        t.record(task, record(3, 2, 1));
        assert!(t.take_for_rebuild(&out).is_ok());
        assert_eq!(
            t.take_for_rebuild(&out).err().map(|e| e.0),
            Some(Unrebuildable::NoLineage),
            "taken while it runs again"
        );
        t.record(task, record(0, 0, 1));
        let (why, held) = t.take_for_rebuild(&out).err().expect("disabled");
        assert_eq!(why, Unrebuildable::RetriesDisabled);
        assert_eq!(held.len(), 1, "the argument holds come back");
        t.record(task, record(2, 0, 1));
        assert_eq!(
            t.take_for_rebuild(&out).err().map(|e| e.0),
            Some(Unrebuildable::MaxAttemptsExceeded)
        );
        let put = ObjectId::for_task(&task, oxray_common::ids::PUT_INDEX_BIT | 1);
        assert_eq!(
            t.take_for_rebuild(&put).err().map(|e| e.0),
            Some(Unrebuildable::Put)
        );
    }

    #[test]
    fn the_record_goes_with_the_last_return() {
        let t = LineageTable::default();
        let task = TaskId::nth([1; 8], 2);
        t.record(task, record(3, 3, 2));
        assert!(t.return_freed(&ObjectId::for_task(&task, 1)).is_none());
        assert_eq!(
            t.return_freed(&ObjectId::for_task(&task, 2))
                .map(|h| h.len()),
            Some(1)
        );
        assert!(t.is_empty());
    }
}
