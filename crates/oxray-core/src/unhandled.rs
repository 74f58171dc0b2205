//! Errors nobody looked at: a task's error value that is freed (or arrives
//! after its refs were dropped) without a `get` or a task reading it is
//! reported once, as Ray reports "Unhandled error"s.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use oxray_common::ObjectId;
use oxray_proto::Object;
use parking_lot::Mutex;

use crate::core::Inner;
use crate::objects::ObjectKind;

/// What is told of an error value dropped unread.
pub type UnhandledHook = Arc<dyn Fn(Arc<Object>) + Send + Sync>;

/// The error values this process owns that nobody read yet.
#[derive(Default)]
pub(crate) struct UnreadErrors {
    ids: Mutex<HashSet<ObjectId>>,
    /// `ids.len()`, read without the lock on the paths every value takes.
    count: AtomicUsize,
    hook: Mutex<Option<UnhandledHook>>,
}

/// Whether an error of this kind is the user's to handle (a cancellation
/// is the user's own doing; runtime failures are reported where they occur).
fn reportable(kind: ObjectKind) -> bool {
    matches!(
        kind,
        ObjectKind::TaskError
            | ObjectKind::WorkerCrashed
            | ObjectKind::ActorDied
            | ObjectKind::ActorInitFailed
    )
}

impl UnreadErrors {
    fn hook(&self) -> Option<UnhandledHook> {
        self.hook.lock().clone()
    }

    fn forget(&self, id: &ObjectId) -> bool {
        let mut ids = self.ids.lock();
        let was = ids.remove(id);
        self.count.store(ids.len(), Ordering::Relaxed);
        was
    }
}

impl Inner {
    /// Sets what to call with an error value dropped unread.
    pub(crate) fn set_unhandled_hook(&self, hook: UnhandledHook) {
        *self.unread.hook.lock() = Some(hook);
    }

    /// A task's return `id` is about to be stored as `object` (of `kind`): when it is a
    /// reportable error, it counts as unread until read. Returns a copy to
    /// report should storing it fail (its refs are gone already).
    pub(crate) fn note_returned(
        &self,
        id: ObjectId,
        kind: ObjectKind,
        object: &Object,
    ) -> Option<Arc<Object>> {
        if !reportable(kind) || self.unread.hook.lock().is_none() {
            return None;
        }
        let mut ids = self.unread.ids.lock();
        ids.insert(id);
        self.unread.count.store(ids.len(), Ordering::Relaxed);
        Some(Arc::new(object.clone()))
    }

    /// The return `id` noted by [`Inner::note_returned`] could not be
    /// stored: nobody holds a ref to it any more, so nobody will read it.
    pub(crate) fn returned_unreferenced(&self, id: ObjectId, object: Arc<Object>) {
        if self.unread.forget(&id) && matches!(self.store.lookup(&id), crate::store::Lookup::Absent)
        {
            if let Some(hook) = self.unread.hook() {
                hook(object);
            }
        }
    }

    /// `values` (of `ids`) were read, here or by a borrower that asked
    /// for them: their errors are handled.
    pub(crate) fn mark_read(&self, ids: &[ObjectId], values: &[Arc<Object>]) {
        if self.unread.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        for (id, value) in ids.iter().zip(values) {
            if ObjectKind::of(value).is_error() {
                self.unread.forget(id);
            }
        }
    }

    /// The owned value `value` of `id` was freed: report it if it is an
    /// error nobody read.
    pub(crate) fn freed_value(&self, id: &ObjectId, value: &Arc<Object>) {
        if self.unread.count.load(Ordering::Relaxed) == 0 || !self.unread.forget(id) {
            return;
        }
        if let Some(hook) = self.unread.hook() {
            hook(value.clone());
        }
    }
}
