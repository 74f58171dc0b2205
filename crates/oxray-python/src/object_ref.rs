//! `ObjectRef`: a Python handle on an object. Creating one counts a
//! reference in the core worker; garbage-collecting it drops the reference.

use std::cell::RefCell;

use oxray_common::ObjectId;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::runtime::{core, current_generation};

thread_local! {
    /// Refs pickled on this thread since `begin_ref_capture`, so that the
    /// serializer can list the refs nested in a value.
    static CAPTURED: RefCell<Option<Vec<(ObjectId, String)>>> = const { RefCell::new(None) };
}

/// A reference to an object in the cluster (a task's return value or a
/// `put` value).
#[pyclass(module = "oxray", frozen, weakref)]
pub struct ObjectRef {
    pub id: ObjectId,
    pub owner: String,
    generation: u64,
}

impl ObjectRef {
    /// Wraps an id whose reference the core already counted.
    pub fn adopt(id: ObjectId, owner: String) -> Self {
        Self {
            id,
            owner,
            generation: current_generation(),
        }
    }

    /// Wraps an id, counting a new reference.
    pub fn counted(id: ObjectId, owner: String) -> Self {
        if let Some(c) = core() {
            c.add_ref(id, &owner);
        }
        Self::adopt(id, owner)
    }
}

#[pymethods]
impl ObjectRef {
    /// Rebuilds a ref from its pickled form (`binary()`, owner address).
    #[staticmethod]
    fn _rebuild(id: &[u8], owner: String) -> PyResult<Self> {
        let id = ObjectId::from_bytes(id).ok_or_else(|| {
            PyValueError::new_err(format!(
                "an ObjectRef id has {} bytes, got {}",
                ObjectId::LEN,
                id.len()
            ))
        })?;
        Ok(Self::counted(id, owner))
    }

    /// The id as a hex string.
    fn hex(&self) -> String {
        self.id.hex()
    }

    /// The id as bytes.
    fn binary<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.id.as_bytes())
    }

    /// The hex id of the task that created this object.
    fn task_id(&self) -> String {
        self.id.task_id().hex()
    }

    /// Address of the process that owns the object.
    fn owner_address(&self) -> &str {
        &self.owner
    }

    /// A `concurrent.futures.Future` resolved with the value.
    fn future(slf: &Bound<'_, Self>) -> PyResult<PyObject> {
        let py = slf.py();
        let helper = py.import("oxray._private.worker")?.getattr("_ref_future")?;
        Ok(helper.call1((slf,))?.unbind())
    }

    /// An asyncio `Future` resolved with the value.
    #[pyo3(signature = (_internal=false))]
    fn as_future(slf: &Bound<'_, Self>, _internal: bool) -> PyResult<PyObject> {
        let py = slf.py();
        let helper = py
            .import("oxray._private.worker")?
            .getattr("_ref_as_future")?;
        Ok(helper.call1((slf,))?.unbind())
    }

    /// `await ref` in asyncio.
    fn __await__(slf: &Bound<'_, Self>) -> PyResult<PyObject> {
        let py = slf.py();
        let helper = py.import("oxray._private.worker")?.getattr("_ref_await")?;
        Ok(helper.call1((slf,))?.unbind())
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .downcast::<ObjectRef>()
            .is_ok_and(|o| o.get().id == self.id)
    }

    fn __hash__(&self) -> u64 {
        u64::from_le_bytes(self.id.0[12..20].try_into().expect("8 bytes"))
    }

    fn __repr__(&self) -> String {
        format!("ObjectRef({})", self.id.hex())
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let me = slf.get();
        // Pickled into a value the runtime stores: the value holds it (see
        // `begin_ref_capture`). Pickled anywhere else: it escapes.
        let captured = CAPTURED.with(|c| match c.borrow_mut().as_mut() {
            Some(list) => {
                list.push((me.id, me.owner.clone()));
                true
            }
            None => false,
        });
        if !captured {
            if let Some(c) = core() {
                c.mark_escaped(&me.id);
            }
        }
        let rebuild = slf.get_type().getattr("_rebuild")?;
        let args = (PyBytes::new(py, me.id.as_bytes()), me.owner.clone());
        PyTuple::new(py, [rebuild.into_any(), args.into_pyobject(py)?.into_any()])
    }
}

impl Drop for ObjectRef {
    fn drop(&mut self) {
        if self.generation == current_generation() {
            if let Some(c) = core() {
                c.release_ref(&self.id);
            }
        }
    }
}

/// Starts recording the refs pickled on this thread.
#[pyfunction]
fn begin_ref_capture() {
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
}

/// Stops recording; returns `[(id_bytes, owner)]` pickled since the start.
#[pyfunction]
fn end_ref_capture(py: Python<'_>) -> Vec<(Py<PyBytes>, String)> {
    let list = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    list.into_iter()
        .map(|(id, owner)| (PyBytes::new(py, id.as_bytes()).unbind(), owner))
        .collect()
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(begin_ref_capture, m)?)?;
    m.add_function(wrap_pyfunction!(end_ref_capture, m)?)?;
    Ok(())
}
