//! Values in the node's shared-memory store, as Python sees them: written
//! once on `put` (with the GIL released), read through `SharedBuffer`s,
//! read-only buffers over the store's memory that keep the object pinned
//! while any view of them (a numpy array, a memoryview) lives.

use bytes::Bytes;
use oxray_common::ObjectId;
use oxray_core::{layout, shared_marker, CoreWorker, Mapped, Object, ObjectRefMsg};
use pyo3::prelude::*;

use crate::buffer::{BytesOwner, BytesView, ExportedBytes};
use crate::error::PyCoreError;
use crate::runtime::{core, current_generation};

/// Values up to this size travel inline in messages; larger ones go to the
/// shared store.
pub(crate) const INLINE_LIMIT: usize = 100 * 1024;

/// One object of the shared store, pinned while Python sees it (the
/// bytes of a `SharedBuffer`).
pub(crate) struct SharedObject {
    id: ObjectId,
    ptr: usize,
    len: usize,
    generation: u64,
    /// The mapping `ptr` points into: kept alive by every view of it, so an
    /// array read before `shutdown()` (or before a new `init()`) stays valid
    /// and unchanged.
    _mapping: std::sync::Arc<oxray_core::Region>,
}

impl BytesOwner for SharedObject {
    fn as_ptr(&self) -> *const u8 {
        self.ptr as *const u8
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl Drop for SharedObject {
    fn drop(&mut self) {
        if self.generation == current_generation() {
            if let Some(c) = core() {
                c.store_release(self.id);
            }
        }
    }
}

impl SharedObject {
    /// The object as a Python `SharedBuffer`.
    pub(crate) fn into_python(self, py: Python<'_>) -> PyResult<PyObject> {
        ExportedBytes::wrap(py, Box::new(self))
    }
}

/// Makes the `oxray._native.SharedBuffer` type.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    ExportedBytes::register(m, c"oxray._native.SharedBuffer")
}

/// Maps the shared object `id` (pinned) as a `SharedBuffer`.
/// The object may live on another node (`location`, from its marker): the
/// node's daemon then pulls a copy first.
pub(crate) fn map_shared(
    py: Python<'_>,
    core: &CoreWorker,
    id: ObjectId,
    location: &str,
    via: &str,
) -> Result<SharedObject, PyCoreError> {
    let Mapped {
        region,
        offset,
        size,
    } = py.allow_threads(|| core.store_get(id, location, via))?;
    // SAFETY: the object is sealed and now pinned by this process.
    let bytes = unsafe { region.slice(offset, size) };
    Ok(SharedObject {
        id,
        ptr: bytes.as_ptr() as usize,
        len: size as usize,
        generation: current_generation(),
        _mapping: region.clone(),
    })
}

/// A pickled value (`main` plus out-of-band `buffers`) as an object: inline
/// when small, else written into the shared store under `id`, owned by
/// `owner` (empty: this process).
pub(crate) fn encode_value(
    py: Python<'_>,
    core: &CoreWorker,
    id: ObjectId,
    owner: &str,
    main: &[u8],
    buffers: &[Bound<'_, PyAny>],
    nested: Vec<ObjectRefMsg>,
) -> PyResult<Object> {
    if buffers.is_empty() && main.len() <= INLINE_LIMIT {
        return Ok(Object {
            data: Bytes::copy_from_slice(main),
            metadata: Bytes::from_static(b"P"),
            nested,
        });
    }
    let views: Vec<BytesView<'_>> = buffers
        .iter()
        .map(BytesView::get)
        .collect::<PyResult<_>>()?;
    let lens: Vec<usize> = views.iter().map(BytesView::len).collect();
    let plan = layout::plan(main.len(), &lens);
    let sources: Vec<(usize, usize)> = views
        .iter()
        .map(|b| (b.as_ptr() as usize, b.len()))
        .collect();
    let copy_into = |out: &mut [u8]| {
        layout::write_head(&plan, main, &lens, out);
        for ((src, len), at) in sources.iter().zip(&plan.buffer_offsets) {
            // SAFETY: each source is a live, contiguous Python buffer of `len`
            // bytes (held by `views`), and `out` has room by the plan.
            unsafe {
                std::ptr::copy_nonoverlapping(*src as *const u8, out[*at..].as_mut_ptr(), *len)
            };
        }
    };
    if plan.size <= INLINE_LIMIT {
        let mut out = vec![0u8; plan.size];
        copy_into(&mut out);
        return Ok(Object {
            data: Bytes::from(out),
            metadata: Bytes::from_static(b"B"),
            nested,
        });
    }
    let size = plan.size as u64;
    let slot = py
        .allow_threads(|| core.store_create(id, size, owner))
        .map_err(PyCoreError)?;
    if let Some(Mapped { region, offset, .. }) = slot {
        py.allow_threads(|| {
            region.populate(offset, size);
            // SAFETY: the range was just allocated to us and is unsealed.
            copy_into(unsafe { region.slice_mut(offset, size) });
        });
        core.store_seal(id);
    }
    drop(views);
    Ok(shared_marker(&id, b'B', nested, core.node_address()))
}
