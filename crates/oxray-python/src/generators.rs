//! Generator tasks from Python: a worker reports each value it yields, and
//! the caller's `ObjectRefGenerator` takes them in order.

use oxray_common::Error;
use oxray_core::{item_id, ReturnsKind, StreamNext, Yields};
use pyo3::prelude::*;

use crate::error::PyCoreError;
use crate::object_ref::ObjectRef;
use crate::runtime::{connected, encode, interruptible, timeout_of, PySerialized, Task};

/// The `Yields` of a submission from Python's `(returns_kind, backpressure)`.
pub(crate) fn yields(returns_kind: i32, backpressure: i64) -> PyResult<Yields> {
    let kind = ReturnsKind::try_from(returns_kind).map_err(|_| {
        PyCoreError(Error::InvalidArgument(format!(
            "unknown returns kind {returns_kind}: 0 (fixed), 1 (streaming) or 2 (dynamic)"
        )))
    })?;
    Ok(Yields { kind, backpressure })
}

/// Sends the `index`-th value (from 0) that the generator task `task`
/// yielded to its caller; returns once the caller took it.
#[pyfunction]
fn report_generator_item(
    task: Py<Task>,
    index: u32,
    value: PySerialized<'_>,
    py: Python<'_>,
) -> PyResult<()> {
    let core = connected()?;
    let task = &task.bind(py).get().task;
    let id = item_id(&task.task_id(), index);
    let object = encode(py, &core, id, &task.spec.owner, value)?;
    Ok(py
        .allow_threads(|| core.report_generator_item(task, index, object))
        .map_err(PyCoreError)?)
}

/// The next value of the stream whose task returns `end` (the generator's
/// own ref): `(True, ref)` for a value, `(True, None)` when the task failed
/// (`end` holds the error), `(False, None)` at the end.
#[pyfunction]
#[pyo3(signature = (end, timeout=None))]
fn stream_next(
    end: Py<ObjectRef>,
    timeout: Option<f64>,
    py: Python<'_>,
) -> PyResult<(bool, Option<ObjectRef>)> {
    let core = connected()?;
    let task = end.get().id.task_id();
    let timeout = timeout_of(timeout)?;
    let next = interruptible(py, timeout, |limit| core.stream_next(task, limit))?;
    Ok(match next {
        StreamNext::Item(id) => (true, Some(ObjectRef::adopt(id, core.address().to_string()))),
        StreamNext::Failed => (true, None),
        StreamNext::End => (false, None),
    })
}

/// Whether the stream whose task returns `end` has its next value (or its
/// end) ready.
#[pyfunction]
fn stream_ready(end: Py<ObjectRef>) -> PyResult<bool> {
    Ok(connected()?.stream_ready(end.get().id.task_id()))
}

/// The consumer dropped the stream whose task returns `end`.
#[pyfunction]
fn close_stream(end: Py<ObjectRef>) {
    if let Ok(core) = connected() {
        core.close_stream(end.get().id.task_id());
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(report_generator_item, m)?)?;
    m.add_function(wrap_pyfunction!(stream_next, m)?)?;
    m.add_function(wrap_pyfunction!(stream_ready, m)?)?;
    m.add_function(wrap_pyfunction!(close_stream, m)?)?;
    Ok(())
}
