//! What an object's metadata byte means, and the error objects the runtime
//! makes itself (a crashed worker, a cancelled task, a lost object).

use bytes::Bytes;
use oxray_proto::Object;

/// How to read an object's `data`. Stored as the first byte of `metadata`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ObjectKind {
    /// A pickled Python value.
    Pickled = b'P',
    /// A pickled `RayTaskError` raised by user code.
    TaskError = b'T',
    /// The worker running the task died (UTF-8 message).
    WorkerCrashed = b'W',
    /// The task was cancelled (UTF-8 message).
    Cancelled = b'C',
    /// The object cannot be fetched any more (UTF-8 message).
    Lost = b'L',
    /// The runtime itself failed (UTF-8 message).
    SystemError = b'S',
    /// The actor is dead (UTF-8 message).
    ActorDied = b'A',
    /// The actor died because `__init__` raised (a pickled `RayTaskError`).
    ActorInitFailed = b'D',
    /// The value lives in the node's shared-memory store; the metadata's
    /// second byte says how to read it there.
    Shared = b'X',
    /// The task can never be scheduled as asked (UTF-8 message).
    Unschedulable = b'U',
    /// The object's owner process is gone (UTF-8 message).
    OwnerDied = b'O',
    /// The object was lost and cannot be rebuilt (UTF-8: Ray's reason
    /// name, a newline, the message).
    ReconstructionFailed = b'R',
}

impl ObjectKind {
    /// The kind recorded in `object`'s metadata (pickled when unmarked).
    pub fn of(object: &Object) -> Self {
        match object.metadata.first() {
            Some(b'T') => Self::TaskError,
            Some(b'W') => Self::WorkerCrashed,
            Some(b'C') => Self::Cancelled,
            Some(b'L') => Self::Lost,
            Some(b'S') => Self::SystemError,
            Some(b'A') => Self::ActorDied,
            Some(b'D') => Self::ActorInitFailed,
            Some(b'X') => Self::Shared,
            Some(b'U') => Self::Unschedulable,
            Some(b'O') => Self::OwnerDied,
            Some(b'R') => Self::ReconstructionFailed,
            _ => Self::Pickled,
        }
    }

    /// Whether objects of this kind make `get` raise.
    pub fn is_error(self) -> bool {
        !matches!(self, Self::Pickled | Self::Shared)
    }
}

/// An error object of `kind` carrying a message for the user.
pub fn error_object(kind: ObjectKind, message: impl Into<String>) -> Object {
    Object {
        data: Bytes::from(message.into().into_bytes()),
        metadata: Bytes::from_static(match kind {
            ObjectKind::Pickled => b"P",
            ObjectKind::TaskError => b"T",
            ObjectKind::WorkerCrashed => b"W",
            ObjectKind::Cancelled => b"C",
            ObjectKind::Lost => b"L",
            ObjectKind::SystemError => b"S",
            ObjectKind::ActorDied => b"A",
            ObjectKind::ActorInitFailed => b"D",
            ObjectKind::Shared => b"X",
            ObjectKind::Unschedulable => b"U",
            ObjectKind::OwnerDied => b"O",
            ObjectKind::ReconstructionFailed => b"R",
        }),
        nested: Vec::new(),
    }
}

/// A marker for the value `id` stored in the shared store of the node at
/// `location` (its daemon's address; empty on a single-node cluster), read
/// as `kind` there. The marker carries both, so whoever receives it (a task
/// argument, a fetched copy) can map the value, pulling it to its own node
/// first when it lives on another.
pub fn shared_marker(
    id: &oxray_common::ObjectId,
    kind: u8,
    nested: Vec<oxray_proto::ObjectRefMsg>,
    location: &str,
) -> Object {
    let mut data = Vec::with_capacity(id.as_bytes().len() + location.len());
    data.extend_from_slice(id.as_bytes());
    data.extend_from_slice(location.as_bytes());
    Object {
        data: Bytes::from(data),
        metadata: Bytes::from(vec![b'X', kind]),
        nested,
    }
}

/// The object id and node address a shared-memory marker carries.
pub fn marker_parts(marker: &Object) -> Option<(oxray_common::ObjectId, &str)> {
    const ID_LEN: usize = std::mem::size_of::<oxray_common::ObjectId>();
    if ObjectKind::of(marker) != ObjectKind::Shared || marker.data.len() < ID_LEN {
        return None;
    }
    let id = oxray_common::ObjectId::from_bytes(&marker.data[..ID_LEN])?;
    let location = std::str::from_utf8(&marker.data[ID_LEN..]).ok()?;
    Some((id, location))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in [
            ObjectKind::WorkerCrashed,
            ObjectKind::Cancelled,
            ObjectKind::Lost,
            ObjectKind::SystemError,
        ] {
            let o = error_object(kind, "boom");
            assert_eq!(ObjectKind::of(&o), kind);
            assert!(kind.is_error());
        }
        let plain = Object {
            data: Bytes::new(),
            metadata: Bytes::new(),
            nested: vec![],
        };
        assert_eq!(ObjectKind::of(&plain), ObjectKind::Pickled);
    }

    #[test]
    fn markers_carry_id_and_location() {
        let id = oxray_common::ObjectId::for_task(&oxray_common::TaskId::nth([1; 8], 2), 3);
        let m = shared_marker(&id, b'B', vec![], "tcp:10.0.0.1:7|unix:/d.sock");
        assert_eq!(ObjectKind::of(&m), ObjectKind::Shared);
        assert_eq!(marker_parts(&m), Some((id, "tcp:10.0.0.1:7|unix:/d.sock")));
        assert_eq!(
            marker_parts(&shared_marker(&id, b'B', vec![], "")),
            Some((id, ""))
        );
        let pickled = Object {
            data: Bytes::from(vec![7u8; 64]),
            metadata: Bytes::from_static(b"P"),
            nested: vec![],
        };
        assert_eq!(
            marker_parts(&pickled),
            None,
            "only markers name a shared copy"
        );
    }
}
