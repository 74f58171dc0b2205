//! The buffer protocol in stable-ABI terms, so that the extension builds as
//! one abi3 wheel for every CPython from 3.9 on.
//!
//! `Py_buffer`, `PyObject_GetBuffer` and `PyBuffer_Release` joined the
//! limited API only in 3.11 (unchanged since 3.3, which is why they could),
//! and `PyType_FromSpec` accepts the `Py_bf_getbuffer` slot since 3.9; pyo3
//! offers neither below 3.11, so this module declares them itself:
//! [`BytesView`] reads a Python object's bytes (an out-of-band pickle
//! buffer), and [`ExportedBytes`] makes Python objects whose buffer is
//! memory that Rust owns (the shared store's).

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi::{self, PyObject, Py_ssize_t};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyType;

/// CPython's `Py_buffer`, field for field.
#[repr(C)]
struct RawBuffer {
    buf: *mut c_void,
    obj: *mut PyObject,
    len: Py_ssize_t,
    itemsize: Py_ssize_t,
    readonly: c_int,
    ndim: c_int,
    format: *mut c_char,
    shape: *mut Py_ssize_t,
    strides: *mut Py_ssize_t,
    suboffsets: *mut Py_ssize_t,
    internal: *mut c_void,
}

extern "C" {
    fn PyObject_GetBuffer(obj: *mut PyObject, view: *mut RawBuffer, flags: c_int) -> c_int;
    fn PyBuffer_Release(view: *mut RawBuffer);
}

/// A contiguous buffer: what an exporter must give for `PyBUF_SIMPLE`.
const PYBUF_SIMPLE: c_int = 0;
const PYBUF_WRITABLE: c_int = 0x0001;
const PYBUF_FORMAT: c_int = 0x0004;
const PYBUF_ND: c_int = 0x0008;
const PYBUF_STRIDES: c_int = 0x0010 | PYBUF_ND;

/// A read-only, contiguous view of a Python object's bytes, released when
/// dropped; tied to the GIL token it was taken with, so it is released
/// with the GIL held.
pub(crate) struct BytesView<'py> {
    // Boxed: CPython may keep pointers into the struct (shape, strides).
    view: Box<RawBuffer>,
    _gil: std::marker::PhantomData<Python<'py>>,
}

impl<'py> BytesView<'py> {
    /// The bytes of `obj`; BufferError when it has none or they are not
    /// contiguous.
    pub(crate) fn get(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        let mut view = Box::new(RawBuffer {
            buf: ptr::null_mut(),
            obj: ptr::null_mut(),
            len: 0,
            itemsize: 0,
            readonly: 0,
            ndim: 0,
            format: ptr::null_mut(),
            shape: ptr::null_mut(),
            strides: ptr::null_mut(),
            suboffsets: ptr::null_mut(),
            internal: ptr::null_mut(),
        });
        // SAFETY: `view` is a valid Py_buffer to fill; the GIL is held.
        if unsafe { PyObject_GetBuffer(obj.as_ptr(), &mut *view, PYBUF_SIMPLE) } != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(Self {
            view,
            _gil: std::marker::PhantomData,
        })
    }

    /// Where the bytes start.
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.view.buf as *const u8
    }

    /// How many bytes there are.
    pub(crate) fn len(&self) -> usize {
        self.view.len as usize
    }
}

impl Drop for BytesView<'_> {
    fn drop(&mut self) {
        // SAFETY: the view was filled by PyObject_GetBuffer and is released
        // once; the caller holds the GIL.
        unsafe { PyBuffer_Release(&mut *self.view) };
    }
}

/// Memory that Rust owns, exported read-only through the buffer protocol
/// by [`ExportedBytes`]; dropped when the last Python view of it goes.
pub(crate) trait BytesOwner: Send + 'static {
    /// Where the bytes start; valid while `self` lives.
    fn as_ptr(&self) -> *const u8;
    /// How many bytes there are.
    fn len(&self) -> usize;
}

/// The instance layout: the object header, then the owner of the bytes.
#[repr(C)]
struct ExportedObject {
    header: PyObject,
    owner: *mut Exported,
}

/// What an instance owns: the bytes, with the shape and strides the buffer
/// protocol points at.
struct Exported {
    owner: Box<dyn BytesOwner>,
    len: Py_ssize_t,
    itemsize: Py_ssize_t,
}

/// A Python type whose instances export bytes owned by Rust, read-only.
pub(crate) struct ExportedBytes;

static TYPE: GILOnceCell<Py<PyType>> = GILOnceCell::new();

impl ExportedBytes {
    /// Creates the type `module.name` (once) and adds it to `m`.
    pub(crate) fn register(
        m: &Bound<'_, PyModule>,
        qualified: &'static std::ffi::CStr,
    ) -> PyResult<()> {
        let py = m.py();
        let ty = TYPE.get_or_try_init(py, || {
            let slot = |slot, pfunc: *mut c_void| ffi::PyType_Slot { slot, pfunc };
            let mut slots = [
                slot(ffi::Py_bf_getbuffer, get_buffer as *mut c_void),
                slot(ffi::Py_tp_dealloc, dealloc as *mut c_void),
                slot(ffi::Py_tp_new, refuse_new as *mut c_void),
                slot(ffi::Py_mp_length, length as *mut c_void),
                slot(0, ptr::null_mut()),
            ];
            let mut spec = ffi::PyType_Spec {
                name: qualified.as_ptr(),
                basicsize: std::mem::size_of::<ExportedObject>() as c_int,
                itemsize: 0,
                flags: ffi::Py_TPFLAGS_DEFAULT as _,
                slots: slots.as_mut_ptr(),
            };
            // SAFETY: a complete spec. Before 3.12 the type keeps pointing at
            // `spec.name`, which is why `qualified` is 'static; the slots
            // are copied.
            let raw = unsafe { ffi::PyType_FromSpec(&mut spec) };
            // SAFETY: a new reference, or null with an exception set.
            unsafe { Bound::from_owned_ptr_or_err(py, raw) }
                .and_then(|t| Ok(t.downcast_into::<PyType>()?.unbind()))
        })?;
        let name = qualified.to_str().unwrap_or_default();
        let short = name.rsplit('.').next().unwrap_or(name);
        m.add(short, ty.bind(py))
    }

    /// A new instance exporting the bytes `owner` holds.
    pub(crate) fn wrap(py: Python<'_>, owner: Box<dyn BytesOwner>) -> PyResult<Py<PyAny>> {
        let ty = TYPE
            .get(py)
            .ok_or_else(|| PyTypeError::new_err("the exported-bytes type is not registered"))?;
        let len = owner.len() as Py_ssize_t;
        let exported = Box::new(Exported {
            owner,
            len,
            itemsize: 1,
        });
        // SAFETY: allocates an instance of our heap type (which takes a
        // reference to the type); its `owner` is set before it is seen.
        unsafe {
            let raw = ffi::PyType_GenericAlloc(ty.as_ptr() as *mut ffi::PyTypeObject, 0);
            let obj = Bound::from_owned_ptr_or_err(py, raw)?;
            (*(raw as *mut ExportedObject)).owner = Box::into_raw(exported);
            Ok(obj.unbind())
        }
    }
}

/// `bf_getbuffer`: the owner's bytes, read-only, as unsigned bytes.
unsafe extern "C" fn get_buffer(obj: *mut PyObject, view: *mut RawBuffer, flags: c_int) -> c_int {
    // Called with the GIL held: the error is set directly (nothing here may
    // panic across the C boundary).
    let fail = |message: &std::ffi::CStr| {
        ffi::PyErr_SetString(ffi::PyExc_BufferError, message.as_ptr());
        -1
    };
    if view.is_null() {
        return fail(c"View is null");
    }
    (*view).obj = ptr::null_mut();
    if flags & PYBUF_WRITABLE == PYBUF_WRITABLE {
        return fail(c"objects in the oxray object store are read-only");
    }
    let exported = (*(obj as *mut ExportedObject)).owner;
    if exported.is_null() {
        return fail(c"this buffer holds no memory");
    }
    let me = &*exported;
    ffi::Py_INCREF(obj);
    (*view).obj = obj;
    (*view).buf = me.owner.as_ptr() as *mut c_void;
    (*view).len = me.len;
    (*view).readonly = 1;
    (*view).itemsize = 1;
    (*view).format = if flags & PYBUF_FORMAT == PYBUF_FORMAT {
        c"B".as_ptr() as *mut c_char
    } else {
        ptr::null_mut()
    };
    (*view).ndim = 1;
    (*view).shape = if flags & PYBUF_ND == PYBUF_ND {
        &me.len as *const Py_ssize_t as *mut Py_ssize_t
    } else {
        ptr::null_mut()
    };
    (*view).strides = if flags & PYBUF_STRIDES == PYBUF_STRIDES {
        &me.itemsize as *const Py_ssize_t as *mut Py_ssize_t
    } else {
        ptr::null_mut()
    };
    (*view).suboffsets = ptr::null_mut();
    (*view).internal = ptr::null_mut();
    0
}

/// `mp_length`: the number of bytes.
unsafe extern "C" fn length(obj: *mut PyObject) -> Py_ssize_t {
    let exported = (*(obj as *mut ExportedObject)).owner;
    if exported.is_null() {
        0
    } else {
        (*exported).len
    }
}

/// `tp_new`: instances come from Rust only.
unsafe extern "C" fn refuse_new(
    _ty: *mut ffi::PyTypeObject,
    _args: *mut PyObject,
    _kwargs: *mut PyObject,
) -> *mut PyObject {
    ffi::PyErr_SetString(
        ffi::PyExc_TypeError,
        c"buffers of the object store are made by oxray, not constructed".as_ptr(),
    );
    ptr::null_mut()
}

/// `tp_dealloc`: drops the owner (unpinning the object), frees the
/// instance and its reference to the type.
unsafe extern "C" fn dealloc(obj: *mut PyObject) {
    let exported = std::mem::replace(&mut (*(obj as *mut ExportedObject)).owner, ptr::null_mut());
    if !exported.is_null() {
        drop(Box::from_raw(exported));
    }
    let ty = ffi::Py_TYPE(obj);
    let free = ffi::PyType_GetSlot(ty, ffi::Py_tp_free);
    if !free.is_null() {
        let free: ffi::freefunc = std::mem::transmute(free);
        free(obj as *mut c_void);
    }
    ffi::Py_DECREF(ty as *mut PyObject);
}
