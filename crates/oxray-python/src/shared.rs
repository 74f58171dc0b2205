//! Values in the node's shared-memory store, as Python sees them: written
//! once on `put` (with the GIL released), read through [`SharedBuffer`], a
//! read-only buffer over the store's memory that keeps the object pinned
//! while any view of it (a numpy array, a memoryview) lives.

use std::ffi::c_int;

use bytes::Bytes;
use oxray_common::ObjectId;
use oxray_core::{layout, shared_marker, CoreWorker, Mapped, Object, ObjectRefMsg};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;

use crate::error::PyCoreError;
use crate::runtime::{core, current_generation};

/// Values up to this size travel inline in messages; larger ones go to the
/// shared store.
pub(crate) const INLINE_LIMIT: usize = 100 * 1024;

/// A read-only view of one object in the shared store.
#[pyclass(module = "oxray._native", frozen)]
pub struct SharedBuffer {
    id: ObjectId,
    ptr: usize,
    len: isize,
    itemsize: isize,
    generation: u64,
    /// The mapping `ptr` points into: kept alive by every view of it, so an
    /// array read before `shutdown()` (or before a new `init()`) stays valid
    /// and unchanged.
    _mapping: std::sync::Arc<oxray_core::Region>,
}

#[pymethods]
impl SharedBuffer {
    /// Number of bytes.
    fn __len__(&self) -> usize {
        self.len as usize
    }

    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("View is null"));
        }
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err(
                "objects in the oxray object store are read-only",
            ));
        }
        let me = slf.get();
        (*view).obj = slf.clone().into_any().into_ptr();
        (*view).buf = me.ptr as *mut std::ffi::c_void;
        (*view).len = me.len;
        (*view).readonly = 1;
        (*view).itemsize = 1;
        (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
            c"B".as_ptr() as *mut _
        } else {
            std::ptr::null_mut()
        };
        (*view).ndim = 1;
        (*view).shape = if flags & ffi::PyBUF_ND == ffi::PyBUF_ND {
            &me.len as *const isize as *mut isize
        } else {
            std::ptr::null_mut()
        };
        (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
            &me.itemsize as *const isize as *mut isize
        } else {
            std::ptr::null_mut()
        };
        (*view).suboffsets = std::ptr::null_mut();
        (*view).internal = std::ptr::null_mut();
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}
}

impl Drop for SharedBuffer {
    fn drop(&mut self) {
        if self.generation == current_generation() {
            if let Some(c) = core() {
                c.store_release(self.id);
            }
        }
    }
}

/// Maps the shared object `id` (pinned) as a [`SharedBuffer`].
/// The object may live on another node (`location`, from its marker): the
/// node's daemon then pulls a copy first.
pub(crate) fn map_shared(
    py: Python<'_>,
    core: &CoreWorker,
    id: ObjectId,
    location: &str,
    via: &str,
) -> Result<SharedBuffer, PyCoreError> {
    let Mapped {
        region,
        offset,
        size,
    } = py.allow_threads(|| core.store_get(id, location, via))?;
    // SAFETY: the object is sealed and now pinned by this process.
    let bytes = unsafe { region.slice(offset, size) };
    Ok(SharedBuffer {
        id,
        ptr: bytes.as_ptr() as usize,
        len: size as isize,
        itemsize: 1,
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
    let views: Vec<PyBuffer<u8>> = buffers.iter().map(PyBuffer::get).collect::<PyResult<_>>()?;
    let lens: Vec<usize> = views.iter().map(|b| b.len_bytes()).collect();
    let plan = layout::plan(main.len(), &lens);
    let sources: Vec<(usize, usize)> = views
        .iter()
        .map(|b| (b.buf_ptr() as usize, b.len_bytes()))
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
