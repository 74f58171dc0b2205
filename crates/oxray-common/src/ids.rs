//! Identifiers of nodes, workers, tasks and objects.
//!
//! Ids are fixed-size byte arrays, printed as lowercase hex. An [`ObjectId`]
//! embeds the [`TaskId`] that created it plus an index, so the object's
//! lineage is visible from its id alone, as in Ray.

use std::fmt;

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length of the id in bytes.
            pub const LEN: usize = $len;

            /// A fresh random id.
            pub fn random() -> Self {
                Self(rand::random())
            }

            /// Parses an id from raw bytes; `None` when the length is wrong.
            pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
                bytes.try_into().ok().map(Self)
            }

            /// Parses an id from its hex form.
            pub fn from_hex(s: &str) -> Option<Self> {
                hex::decode(s).ok().and_then(|b| Self::from_bytes(&b))
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// Lowercase hex, as printed to users.
            pub fn hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.hex())
            }
        }
    };
}

byte_id!(
    /// A node of the cluster (one node daemon).
    NodeId,
    16
);
byte_id!(
    /// A worker or driver process.
    WorkerId,
    16
);
byte_id!(
    /// An actor.
    ActorId,
    16
);
byte_id!(
    /// One task: 8 bytes naming the submitting process, 8 bytes counter.
    TaskId,
    16
);
byte_id!(
    /// One object: the creating task's id plus a 4-byte index.
    ObjectId,
    20
);

/// Bit set in an object index when the object came from `put`, not a return.
pub const PUT_INDEX_BIT: u32 = 1 << 31;

/// The index of the id that stands for an actor's handles: reference counts
/// on it track who holds a handle, so the actor ends with the last one.
pub const ACTOR_HANDLE_INDEX: u32 = u32::MAX;

impl TaskId {
    /// The task id a process uses for work done outside any task (the driver's
    /// top level, a worker between tasks).
    pub fn root_of(worker: &WorkerId) -> Self {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&worker.0[..8]);
        Self(b)
    }

    /// The `n`-th task submitted by the process whose prefix is `prefix`.
    pub fn nth(prefix: [u8; 8], n: u64) -> Self {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&prefix);
        b[8..].copy_from_slice(&n.to_be_bytes());
        Self(b)
    }
}

impl ObjectId {
    /// The `index`-th object of `task` (returns count from 1, puts set
    /// [`PUT_INDEX_BIT`]).
    pub fn for_task(task: &TaskId, index: u32) -> Self {
        let mut b = [0u8; 20];
        b[..16].copy_from_slice(&task.0);
        b[16..].copy_from_slice(&index.to_be_bytes());
        Self(b)
    }

    /// The task that created this object.
    pub fn task_id(&self) -> TaskId {
        TaskId(self.0[..16].try_into().expect("16 bytes"))
    }

    /// The index of this object within its task.
    pub fn index(&self) -> u32 {
        u32::from_be_bytes(self.0[16..].try_into().expect("4 bytes"))
    }

    /// Whether this object was created by `put`.
    pub fn is_put(&self) -> bool {
        self.index() & PUT_INDEX_BIT != 0 && !self.is_actor_handle()
    }

    /// The id whose references are the handles of `actor`.
    pub fn for_actor_handles(actor: &ActorId) -> Self {
        let mut b = [0u8; 20];
        b[..16].copy_from_slice(&actor.0);
        b[16..].copy_from_slice(&ACTOR_HANDLE_INDEX.to_be_bytes());
        Self(b)
    }

    /// The actor whose handles this id counts, if it is such an id.
    pub fn actor_of_handles(&self) -> Option<ActorId> {
        self.is_actor_handle()
            .then(|| ActorId(self.0[..16].try_into().expect("16 bytes")))
    }

    fn is_actor_handle(&self) -> bool {
        self.index() == ACTOR_HANDLE_INDEX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_id_round_trips_task_and_index() {
        let t = TaskId::nth([1; 8], 42);
        let o = ObjectId::for_task(&t, 3);
        assert_eq!(o.task_id(), t);
        assert_eq!(o.index(), 3);
        assert!(!o.is_put());
        let p = ObjectId::for_task(&t, PUT_INDEX_BIT | 1);
        assert!(p.is_put());
    }

    #[test]
    fn actor_handle_ids_name_their_actor() {
        let a = ActorId::random();
        let h = ObjectId::for_actor_handles(&a);
        assert_eq!(h.actor_of_handles(), Some(a));
        assert!(!h.is_put());
        assert_eq!(
            ObjectId::for_task(&TaskId::nth([1; 8], 1), 1).actor_of_handles(),
            None
        );
    }

    #[test]
    fn hex_round_trip() {
        let id = WorkerId::random();
        assert_eq!(WorkerId::from_hex(&id.hex()), Some(id));
        assert_eq!(WorkerId::from_bytes(&[0u8; 3]), None);
    }
}
