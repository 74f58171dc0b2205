//! Module functions over the process's one core worker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use oxray_common::{ActorId, Error, NodeId, ObjectId, ResourceSet, WorkerId};
use oxray_core::{
    ActorCallRequest, ActorCreateRequest, ActorInfo, ActorState, CoreWorker, IncomingTask, Mode,
    Object, ObjectKind, ObjectRefMsg, Options, Placement, TaskRequest, WaitLimit,
};
use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use crate::error::{PyCoreError, PyResult as CoreResult};
use crate::object_ref::ObjectRef;
use crate::shared::{encode_value, map_shared};

static CORE: RwLock<Option<Arc<CoreWorker>>> = RwLock::new(None);
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The connected core worker, if any.
pub(crate) fn core() -> Option<Arc<CoreWorker>> {
    CORE.read().clone()
}

/// Bumped at each connect, so refs from an earlier session never touch the
/// counts of a later one.
pub(crate) fn current_generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

pub(crate) fn connected() -> CoreResult<Arc<CoreWorker>> {
    core().ok_or(PyCoreError(Error::NotInitialized))
}

/// A value as Python sees it: (data, metadata, nested refs). `data` is
/// bytes, or a SharedBuffer for a value in the shared store.
type PyObjectParts = (PyObject, Py<PyBytes>, Vec<(Py<PyBytes>, String)>);

/// A serialized value from Python: (pickle stream, out-of-band buffers,
/// metadata, nested refs).
pub(crate) type PySerialized<'py> = (
    Bound<'py, PyBytes>,
    Vec<Bound<'py, PyAny>>,
    Bound<'py, PyBytes>,
    Vec<(Vec<u8>, String)>,
);

fn nested_refs(nested: Vec<(Vec<u8>, String)>) -> Vec<ObjectRefMsg> {
    nested
        .into_iter()
        .map(|(id, owner)| ObjectRefMsg {
            id,
            owner,
            lender: String::new(),
        })
        .collect()
}

/// Turns a serialized value into an object stored under `id`: errors and
/// small values inline, large ones in the shared store, on behalf of
/// `owner` (empty: this process).
pub(crate) fn encode(
    py: Python<'_>,
    core: &CoreWorker,
    id: ObjectId,
    owner: &str,
    value: PySerialized<'_>,
) -> PyResult<Object> {
    let (main, buffers, metadata, nested) = value;
    if metadata.as_bytes() != b"P" {
        return Ok(Object {
            data: Bytes::copy_from_slice(main.as_bytes()),
            metadata: Bytes::copy_from_slice(metadata.as_bytes()),
            nested: nested_refs(nested),
        });
    }
    encode_value(
        py,
        core,
        id,
        owner,
        main.as_bytes(),
        &buffers,
        nested_refs(nested),
    )
}

/// How many times a reader asks for a lost copy to be rebuilt before it
/// gives up (each rebuild may land on a node that dies in turn).
const RECOVERY_ATTEMPTS: usize = 4;

/// The parts of a value for Python. A shared-memory copy is mapped; when it
/// cannot be read (its node died), the owner rebuilds it, asked directly
/// or through `via` (who handed us the value).
fn from_object(py: Python<'_>, core: &CoreWorker, o: &Object, via: &str) -> PyObjectParts {
    let mut current = std::borrow::Cow::Borrowed(o);
    let mut attempts = 0;
    loop {
        match object_parts(py, core, &current, via, attempts < RECOVERY_ATTEMPTS) {
            Ok(parts) => return parts,
            Err((id, location)) => {
                attempts += 1;
                let fresh = py.allow_threads(|| core.recover(id, &location, via));
                current = std::borrow::Cow::Owned((*fresh).clone());
            }
        }
    }
}

/// The parts of `o`; with `recoverable`, a shared copy on another node
/// that cannot be read is returned as `Err((id, location))` instead of
/// an error value.
fn object_parts(
    py: Python<'_>,
    core: &CoreWorker,
    o: &Object,
    via: &str,
    recoverable: bool,
) -> Result<PyObjectParts, (ObjectId, String)> {
    let nested = o
        .nested
        .iter()
        .map(|r| (PyBytes::new(py, &r.id).unbind(), r.owner.clone()))
        .collect();
    if o.metadata.first() == Some(&b'X') {
        let mapped = oxray_core::marker_parts(o)
            .ok_or_else(|| PyCoreError(Error::InvalidArgument("bad shared-object marker".into())))
            .and_then(|(id, location)| map_shared(py, core, id, location, via));
        return match mapped {
            Ok(object) => Ok(match object.into_python(py) {
                Ok(b) => (b, PyBytes::new(py, &o.metadata[1..]).unbind(), nested),
                Err(e) => (
                    PyBytes::new(py, e.to_string().as_bytes())
                        .into_any()
                        .unbind(),
                    PyBytes::new(py, b"S").unbind(),
                    nested,
                ),
            }),
            Err(e) => match (&e.0, oxray_core::marker_parts(o)) {
                (Error::ObjectLost { .. }, Some((id, location)))
                    if recoverable && !location.is_empty() =>
                {
                    Err((id, location.to_string()))
                }
                _ => Ok(lost_parts(py, &e.0.to_string(), nested)),
            },
        };
    }
    Ok((
        PyBytes::new(py, &o.data).into_any().unbind(),
        PyBytes::new(py, &o.metadata).unbind(),
        nested,
    ))
}

/// An `ObjectLostError` value saying `why`.
fn lost_parts(py: Python<'_>, why: &str, nested: Vec<(Py<PyBytes>, String)>) -> PyObjectParts {
    (
        PyBytes::new(py, why.as_bytes()).into_any().unbind(),
        PyBytes::new(py, b"L").unbind(),
        nested,
    )
}

fn ids_of(refs: &[Py<ObjectRef>], py: Python<'_>) -> Vec<ObjectId> {
    refs.iter().map(|r| r.bind(py).get().id).collect()
}

pub(crate) fn timeout_of(timeout: Option<f64>) -> CoreResult<Option<Duration>> {
    match timeout {
        Some(t) if t.is_nan() || t < 0.0 => Err(PyCoreError(Error::InvalidArgument(format!(
            "timeout must be None or a non-negative number, got {t}"
        )))),
        Some(t) => Ok(Some(Duration::from_secs_f64(t.min(1e9)))),
        None => Ok(None),
    }
}

/// Runs a blocking wait with the GIL released. Signal handlers run every
/// tenth of a second meanwhile, so Ctrl-C (or whatever a handler raises)
/// ends the wait with that exception, as it does in Ray.
pub(crate) fn interruptible<T: Send>(
    py: Python<'_>,
    timeout: Option<Duration>,
    call: impl FnOnce(WaitLimit<'_>) -> oxray_common::Result<T> + Send,
) -> PyResult<T> {
    let raised: parking_lot::Mutex<Option<PyErr>> = parking_lot::Mutex::new(None);
    let check = || {
        Python::with_gil(|py| match py.check_signals() {
            Ok(()) => false,
            Err(e) => {
                *raised.lock() = Some(e);
                true
            }
        })
    };
    match py.allow_threads(|| {
        call(WaitLimit {
            timeout,
            interrupted: &check,
        })
    }) {
        Err(Error::Interrupted) => Err(raised
            .lock()
            .take()
            .unwrap_or_else(|| PyCoreError(Error::Interrupted).into())),
        other => Ok(other.map_err(PyCoreError)?),
    }
}

/// Connects this process's core worker to a node daemon; returns the
/// runtime context as a dict.
#[pyfunction]
#[pyo3(signature = (daemon_socket, mode, worker_id, owns_cluster, listen_path, node_ip=None, log_to_driver=true))]
#[allow(clippy::too_many_arguments)]
fn connect(
    py: Python<'_>,
    daemon_socket: String,
    mode: &str,
    worker_id: &str,
    owns_cluster: bool,
    listen_path: String,
    node_ip: Option<String>,
    log_to_driver: bool,
) -> PyResult<PyObject> {
    let mode = match mode {
        "driver" => Mode::Driver,
        "worker" => Mode::Worker,
        other => {
            return Err(
                PyCoreError(Error::InvalidArgument(format!("unknown mode '{other}'"))).into(),
            )
        }
    };
    let worker_id = WorkerId::from_hex(worker_id).ok_or_else(|| {
        PyCoreError(Error::InvalidArgument(format!(
            "bad worker id '{worker_id}'"
        )))
    })?;
    let opts = Options {
        daemon_socket,
        mode,
        worker_id,
        owns_cluster,
        listen_path,
        node_ip,
        log_to_driver,
    };
    let core = py
        .allow_threads(|| CoreWorker::connect(opts))
        .map_err(PyCoreError)?;
    GENERATION.fetch_add(1, Ordering::Relaxed);
    *CORE.write() = Some(Arc::new(core));
    context(py)
}

/// Disconnects (stopping the cluster when `stop_cluster`).
#[pyfunction]
#[pyo3(signature = (stop_cluster=false))]
fn shutdown(py: Python<'_>, stop_cluster: bool) {
    let core = CORE.write().take();
    GENERATION.fetch_add(1, Ordering::Relaxed);
    if let Some(core) = core {
        py.allow_threads(|| core.shutdown(stop_cluster));
    }
}

/// Whether a core worker is connected.
#[pyfunction]
fn is_connected() -> bool {
    CORE.read().is_some()
}

/// The runtime context: ids of this job, node, worker and current task.
#[pyfunction]
fn context(py: Python<'_>) -> PyResult<PyObject> {
    let c = connected()?.context();
    let d = PyDict::new(py);
    d.set_item("worker_id", c.worker_id.hex())?;
    d.set_item("node_id", c.node_id.hex())?;
    d.set_item("job_id", c.job_id)?;
    d.set_item("address", c.address)?;
    d.set_item("session_dir", c.session_dir)?;
    d.set_item("task_id", c.current_task.map(|t| t.hex()))?;
    Ok(d.into_any().unbind())
}

/// A `scheduling_strategy` as Python passes it: `None`, or
/// `(kind, node id in hex, soft)`.
fn placement_of(placement: Option<(String, String, bool)>) -> CoreResult<Placement> {
    let Some((kind, node, soft)) = placement else {
        return Ok(Placement::default());
    };
    let node_id = if node.is_empty() {
        Vec::new()
    } else {
        NodeId::from_hex(&node)
            .ok_or_else(|| {
                PyCoreError(Error::InvalidArgument(format!("'{node}' is not a node id")))
            })?
            .0
            .to_vec()
    };
    Ok(Placement {
        kind,
        node_id,
        soft,
    })
}

/// Submits a task; returns one ref per return value.
#[pyfunction]
#[pyo3(signature = (function_id, function_name, args, ref_args, num_returns, resources, max_retries, retry_exceptions, namespace, nested, placement=None, placement_group=None, env_vars=None, max_calls=0, returns_kind=0, backpressure=-1, env_key=0))]
#[allow(clippy::too_many_arguments)]
fn submit_task(
    py: Python<'_>,
    function_id: Vec<u8>,
    function_name: String,
    args: &[u8],
    ref_args: Vec<Py<ObjectRef>>,
    num_returns: u32,
    resources: Vec<(String, f64)>,
    max_retries: i32,
    retry_exceptions: &[u8],
    namespace: String,
    nested: Vec<(Vec<u8>, String)>,
    placement: Option<(String, String, bool)>,
    placement_group: Option<(Vec<u8>, bool)>,
    env_vars: Option<Vec<(String, String)>>,
    max_calls: u32,
    returns_kind: i32,
    backpressure: i64,
    env_key: u64,
) -> PyResult<Vec<ObjectRef>> {
    let core = connected()?;
    let placement = placement_of(placement)?;
    let resources = ResourceSet::from_f64(resources.iter().map(|(k, v)| (k.as_str(), *v)))
        .map_err(PyCoreError)?;
    let req = TaskRequest {
        function_id,
        function_name,
        args: Bytes::copy_from_slice(args),
        ref_args: ids_of(&ref_args, py),
        num_returns,
        resources,
        max_retries,
        retry_exceptions: Bytes::copy_from_slice(retry_exceptions),
        namespace,
        args_nested: nested_refs(nested),
        placement,
        placement_group: placement_group.unwrap_or_default(),
        env_vars: env_vars.unwrap_or_default().into_iter().collect(),
        max_calls,
        yields: crate::generators::yields(returns_kind, backpressure)?,
        env_key,
    };
    let ids = core.submit_task(req).map_err(PyCoreError)?;
    let owner = core.address().to_string();
    Ok(ids
        .into_iter()
        .map(|id| ObjectRef::adopt(id, owner.clone()))
        .collect())
}

fn actor_id_of(bytes: &[u8]) -> CoreResult<ActorId> {
    ActorId::from_bytes(bytes).ok_or_else(|| {
        PyCoreError(Error::InvalidArgument(format!(
            "bad actor id of {} bytes",
            bytes.len()
        )))
    })
}

fn actor_info_dict(py: Python<'_>, info: &ActorInfo) -> PyResult<PyObject> {
    let d = PyDict::new(py);
    let state = match ActorState::try_from(info.state) {
        Ok(ActorState::Pending) => "PENDING_CREATION",
        Ok(ActorState::Alive) => "ALIVE",
        Ok(ActorState::Restarting) => "RESTARTING",
        _ => "DEAD",
    };
    d.set_item("actor_id", PyBytes::new(py, &info.actor_id))?;
    d.set_item("state", state)?;
    d.set_item("name", &info.name)?;
    d.set_item("namespace", &info.namespace)?;
    d.set_item("class_name", &info.class_name)?;
    d.set_item("pid", info.pid)?;
    d.set_item("num_restarts", info.num_restarts)?;
    d.set_item("node_id", hex_of(&info.node_id))?;
    d.set_item("death_message", &info.death_message)?;
    d.set_item("handle", PyBytes::new(py, &info.handle))?;
    Ok(d.into_any().unbind())
}

/// Registers an actor; returns its info (an existing one's with
/// `get_if_exists`).
#[pyfunction]
#[pyo3(signature = (actor_id, class_id, class_name, args, ref_args, resources, name, namespace, detached, max_restarts, max_concurrency, get_if_exists, handle, nested, placement=None, placement_group=None, env_vars=Vec::new()))]
#[allow(clippy::too_many_arguments)]
fn create_actor(
    py: Python<'_>,
    actor_id: &[u8],
    class_id: Vec<u8>,
    class_name: String,
    args: &[u8],
    ref_args: Vec<Py<ObjectRef>>,
    resources: Vec<(String, f64)>,
    name: String,
    namespace: String,
    detached: bool,
    max_restarts: i32,
    max_concurrency: u32,
    get_if_exists: bool,
    handle: Vec<u8>,
    nested: Vec<(Vec<u8>, String)>,
    placement: Option<(String, String, bool)>,
    placement_group: Option<(Vec<u8>, bool)>,
    env_vars: Vec<(String, String)>,
) -> PyResult<PyObject> {
    let core = connected()?;
    let placement = placement_of(placement)?;
    let resources = ResourceSet::from_f64(resources.iter().map(|(k, v)| (k.as_str(), *v)))
        .map_err(PyCoreError)?;
    let req = ActorCreateRequest {
        actor_id: actor_id_of(actor_id)?,
        class_id,
        class_name,
        args: Bytes::copy_from_slice(args),
        ref_args: ids_of(&ref_args, py),
        resources,
        name,
        namespace,
        detached,
        max_restarts,
        max_concurrency,
        get_if_exists,
        handle,
        args_nested: nested_refs(nested),
        placement,
        placement_group: placement_group.unwrap_or_default(),
        env_vars: env_vars.into_iter().collect(),
    };
    let info = py
        .allow_threads(|| core.create_actor(req))
        .map_err(PyCoreError)?;
    actor_info_dict(py, &info)
}

/// Calls a method on an actor; returns one ref per return value.
#[pyfunction]
#[pyo3(signature = (actor_id, method_name, function_name, args, ref_args, num_returns, max_task_retries, nested, retry_exceptions=b"".as_slice(), max_pending_calls=0, class_name=String::new(), returns_kind=0, backpressure=-1))]
#[allow(clippy::too_many_arguments)]
fn submit_actor_task(
    py: Python<'_>,
    actor_id: &[u8],
    method_name: String,
    function_name: String,
    args: &[u8],
    ref_args: Vec<Py<ObjectRef>>,
    num_returns: u32,
    max_task_retries: i32,
    nested: Vec<(Vec<u8>, String)>,
    retry_exceptions: &[u8],
    max_pending_calls: u32,
    class_name: String,
    returns_kind: i32,
    backpressure: i64,
) -> PyResult<Vec<ObjectRef>> {
    let core = connected()?;
    let req = ActorCallRequest {
        actor_id: actor_id_of(actor_id)?,
        method_name,
        function_name,
        args: Bytes::copy_from_slice(args),
        ref_args: ids_of(&ref_args, py),
        num_returns,
        max_task_retries,
        args_nested: nested_refs(nested),
        retry_exceptions: Bytes::copy_from_slice(retry_exceptions),
        max_pending_calls,
        class_name,
        yields: crate::generators::yields(returns_kind, backpressure)?,
    };
    let ids = core.submit_actor_task(req).map_err(PyCoreError)?;
    let owner = core.address().to_string();
    Ok(ids
        .into_iter()
        .map(|id| ObjectRef::adopt(id, owner.clone()))
        .collect())
}

/// Kills an actor.
#[pyfunction]
fn kill_actor(py: Python<'_>, actor_id: &[u8], no_restart: bool) -> PyResult<()> {
    let core = connected()?;
    let id = actor_id_of(actor_id)?;
    Ok(py
        .allow_threads(|| core.kill_actor(id, no_restart))
        .map_err(PyCoreError)?)
}

/// An actor's info, by id (bytes) or else by name and namespace.
#[pyfunction]
#[pyo3(signature = (actor_id=None, name=String::new(), namespace=String::new()))]
fn actor_info(
    py: Python<'_>,
    actor_id: Option<Vec<u8>>,
    name: String,
    namespace: String,
) -> PyResult<PyObject> {
    let core = connected()?;
    let id = match actor_id {
        Some(b) => Some(actor_id_of(&b)?),
        None => None,
    };
    let info = py
        .allow_threads(|| core.actor_info(id, &name, &namespace))
        .map_err(PyCoreError)?;
    actor_info_dict(py, &info)
}

/// Every actor of the cluster.
#[pyfunction]
fn list_actors(py: Python<'_>) -> PyResult<Vec<PyObject>> {
    let core = connected()?;
    let infos = py
        .allow_threads(|| core.list_actors())
        .map_err(PyCoreError)?;
    infos.iter().map(|i| actor_info_dict(py, i)).collect()
}

/// Every task on this node: pending, running and recently finished, each
/// as a dict of bytes ids and strings.
#[pyfunction]
fn list_tasks(py: Python<'_>) -> PyResult<Vec<PyObject>> {
    let core = connected()?;
    let tasks = py
        .allow_threads(|| core.list_tasks())
        .map_err(PyCoreError)?;
    tasks
        .iter()
        .map(|t| {
            let d = PyDict::new(py);
            d.set_item("task_id", PyBytes::new(py, &t.task_id))?;
            d.set_item("name", &t.name)?;
            d.set_item("state", &t.state)?;
            d.set_item("type", &t.kind)?;
            d.set_item("worker_id", PyBytes::new(py, &t.worker_id))?;
            d.set_item("node_id", PyBytes::new(py, &t.node_id))?;
            d.set_item("actor_id", PyBytes::new(py, &t.actor_id))?;
            d.set_item("error_type", &t.error_type)?;
            d.set_item("attempt_number", t.attempt)?;
            d.set_item("job_id", t.job_id)?;
            d.set_item("creation_time_us", t.creation_time_us)?;
            d.set_item("start_time_us", t.start_time_us)?;
            d.set_item("end_time_us", t.end_time_us)?;
            d.set_item("worker_pid", t.worker_pid)?;
            d.set_item("error_message", &t.error_message)?;
            Ok(d.into_any().unbind())
        })
        .collect()
}

/// Records that this worker's actor ends itself.
#[pyfunction]
fn actor_exiting(py: Python<'_>, actor_id: &[u8]) -> PyResult<()> {
    let core = connected()?;
    let id = actor_id_of(actor_id)?;
    Ok(py
        .allow_threads(|| core.actor_exiting(id))
        .map_err(PyCoreError)?)
}

/// Stores a serialized value `(main, buffers, metadata, nested)`; returns
/// its ref.
#[pyfunction]
fn put(py: Python<'_>, value: PySerialized<'_>) -> PyResult<ObjectRef> {
    let core = connected()?;
    let id = core.new_put_id();
    let object = encode(py, &core, id, "", value)?;
    core.put_with_id(id, object).map_err(PyCoreError)?;
    Ok(ObjectRef::adopt(id, core.address().to_string()))
}

/// Waits for the values of `refs`; returns `[(data, metadata, nested)]`.
#[pyfunction]
#[pyo3(signature = (refs, timeout=None))]
fn get(
    py: Python<'_>,
    refs: Vec<Py<ObjectRef>>,
    timeout: Option<f64>,
) -> PyResult<Vec<PyObjectParts>> {
    let core = connected()?;
    let ids = ids_of(&refs, py);
    let timeout = timeout_of(timeout)?;
    let values = interruptible(py, timeout, |limit| core.get(&ids, limit))?;
    Ok(values
        .iter()
        .map(|o| from_object(py, &core, o, ""))
        .collect())
}

/// Waits until `num_returns` of `refs` (a list of unique ObjectRefs) are
/// ready; returns `(ready, not_ready)`, each in input order, with at most
/// `num_returns` ready.
#[pyfunction]
#[pyo3(signature = (refs, num_returns, timeout=None, fetch_local=false))]
fn wait<'py>(
    py: Python<'py>,
    refs: &Bound<'py, PyList>,
    num_returns: usize,
    timeout: Option<f64>,
    fetch_local: bool,
) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
    let core = connected()?;
    let mut ids = Vec::with_capacity(refs.len());
    let mut seen = std::collections::HashSet::with_capacity(refs.len());
    for item in refs.iter() {
        let r = item.downcast::<ObjectRef>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "wait() expected a list of ObjectRef, got list containing {}",
                item.get_type()
            ))
        })?;
        let id = r.get().id;
        if !seen.insert(id) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "Wait requires a list of unique object refs.",
            ));
        }
        ids.push(id);
    }
    let timeout = timeout_of(timeout)?;
    let flags = interruptible(py, timeout, |limit| core.wait(&ids, num_returns, limit))?;
    let (ready, not_ready) = (PyList::empty(py), PyList::empty(py));
    let mut taken = 0;
    let mut ready_ids = Vec::new();
    for ((item, ok), id) in refs.iter().zip(flags).zip(&ids) {
        if ok && taken < num_returns {
            taken += 1;
            ready.append(item)?;
            ready_ids.push(*id);
        } else {
            not_ready.append(item)?;
        }
    }
    if fetch_local && !ready_ids.is_empty() {
        py.allow_threads(|| core.fetch_local(&ready_ids));
    }
    Ok((ready, not_ready))
}

fn call_logging_errors(callback: PyObject) {
    Python::with_gil(|py| {
        if let Err(e) = callback.call0(py) {
            e.print(py);
        }
    })
}

/// Python work handed to the callback thread.
type Job = Box<dyn FnOnce() + Send>;

/// A thread for callbacks that would block the event loop (or wait for the
/// GIL under the core's locks) if they ran where they arise: reading a
/// shared-memory object asks the node daemon to pin it.
fn off_loop_callbacks() -> &'static std::sync::mpsc::Sender<Job> {
    static SENDER: std::sync::OnceLock<std::sync::mpsc::Sender<Job>> = std::sync::OnceLock::new();
    SENDER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("oxray-callbacks".into())
            .spawn(move || rx.into_iter().for_each(|job| job()))
            .expect("cannot start the callback thread");
        tx
    })
}

/// Hands the worker output relayed to this driver to `callback(pid, stderr,
/// lines)` (on the callback thread, in order) instead of printing it;
/// `None` prints it again.
#[pyfunction]
#[pyo3(signature = (callback=None))]
fn set_log_sink(callback: Option<PyObject>) -> PyResult<()> {
    let core = connected()?;
    let sink = callback.map(|callback| {
        let callback = Arc::new(callback);
        Arc::new(move |lines: oxray_core::LogLines| {
            let callback = callback.clone();
            let _ = off_loop_callbacks().send(Box::new(move || {
                Python::with_gil(|py| {
                    if let Err(e) = callback.call1(py, (lines.pid, lines.stderr, lines.lines)) {
                        e.print(py);
                    }
                })
            }));
        }) as oxray_core::LogSink
    });
    core.set_log_sink(sink);
    Ok(())
}

/// Calls `hook(data, metadata)` for each error value this process owns that
/// is dropped without anyone reading it; on the callback thread, so that
/// the drop (under the core's locks, or on the event loop) never waits for
/// the GIL.
#[pyfunction]
fn set_unhandled_error_hook(hook: PyObject) -> PyResult<()> {
    let core = connected()?;
    let hook = Arc::new(hook);
    core.set_unhandled_error_hook(Arc::new(move |object: Arc<Object>| {
        let hook = hook.clone();
        let _ = off_loop_callbacks().send(Box::new(move || {
            Python::with_gil(|py| {
                let data = PyBytes::new(py, &object.data);
                let metadata = PyBytes::new(py, &object.metadata);
                if let Err(e) = hook.call1(py, (data, metadata)) {
                    e.print(py);
                }
            })
        }));
    }));
    Ok(())
}

/// Calls `callback()` once `r` is available here: at once on the event
/// loop for a value held in this process, on a separate thread for one in
/// the shared store (reading it needs the loop).
#[pyfunction]
fn on_ready(r: Py<ObjectRef>, callback: PyObject, py: Python<'_>) -> PyResult<()> {
    let core = connected()?;
    let id = r.bind(py).get().id;
    core.on_ready(
        id,
        Box::new(move |object| {
            if ObjectKind::of(object) == ObjectKind::Shared {
                let _ = off_loop_callbacks().send(Box::new(move || call_logging_errors(callback)));
            } else {
                call_logging_errors(callback);
            }
        }),
    );
    Ok(())
}

/// Cancels the task that produces `r`.
#[pyfunction]
#[pyo3(signature = (r, force=false, recursive=true))]
fn cancel(r: Py<ObjectRef>, force: bool, recursive: bool, py: Python<'_>) -> PyResult<()> {
    let core = connected()?;
    let r = r.bind(py).get();
    Ok(core
        .cancel(&r.id, &r.owner, force, recursive)
        .map_err(PyCoreError)?)
}

/// Stores a value in the control service's key-value table.
#[pyfunction]
fn kv_put(py: Python<'_>, namespace: &str, key: &[u8], value: Vec<u8>) -> PyResult<()> {
    let core = connected()?;
    Ok(py
        .allow_threads(|| core.kv_put(namespace, key, value))
        .map_err(PyCoreError)?)
}

/// Reads a value from the control service's key-value table.
#[pyfunction]
fn kv_get(py: Python<'_>, namespace: &str, key: &[u8]) -> PyResult<Option<Py<PyBytes>>> {
    let core = connected()?;
    let v = py
        .allow_threads(|| core.kv_get(namespace, key))
        .map_err(PyCoreError)?;
    Ok(v.map(|v| PyBytes::new(py, &v).unbind()))
}

/// Removes a key from the control service's key-value table; returns
/// whether it was there.
#[pyfunction]
fn kv_del(py: Python<'_>, namespace: &str, key: &[u8]) -> PyResult<bool> {
    let core = connected()?;
    Ok(py
        .allow_threads(|| core.kv_delete(namespace, key))
        .map_err(PyCoreError)?)
}

/// The keys of a namespace of the key-value table starting with `prefix`.
#[pyfunction]
#[pyo3(signature = (namespace, prefix=b"".as_slice()))]
fn kv_keys(py: Python<'_>, namespace: &str, prefix: &[u8]) -> PyResult<Vec<Py<PyBytes>>> {
    let core = connected()?;
    let keys = py
        .allow_threads(|| core.kv_keys(namespace, prefix))
        .map_err(PyCoreError)?;
    Ok(keys.iter().map(|k| PyBytes::new(py, k).unbind()).collect())
}

/// The node table: a dict per node.
#[pyfunction]
fn cluster_info(py: Python<'_>) -> PyResult<PyObject> {
    let core = connected()?;
    let info = py
        .allow_threads(|| core.cluster_info())
        .map_err(PyCoreError)?;
    let list = PyList::empty(py);
    for n in info.nodes {
        let d = PyDict::new(py);
        d.set_item("node_id", hex_of(&n.node_id))?;
        d.set_item("address", n.address)?;
        d.set_item("alive", n.alive)?;
        d.set_item("hostname", n.hostname)?;
        d.set_item("is_head", n.is_head)?;
        d.set_item(
            "ip",
            if n.ip.is_empty() {
                "127.0.0.1".to_string()
            } else {
                n.ip
            },
        )?;
        d.set_item("total", units_dict(py, &n.total)?)?;
        d.set_item("available", units_dict(py, &n.available)?)?;
        let pending = PyList::empty(py);
        for demand in &n.pending {
            pending.append((units_dict(py, &demand.resources)?, demand.count))?;
        }
        d.set_item("pending", pending)?;
        d.set_item("metrics_port", n.metrics_port)?;
        list.append(d)?;
    }
    Ok(list.into_any().unbind())
}

pub(crate) fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn units_dict<'py>(
    py: Python<'py>,
    units: &std::collections::BTreeMap<String, i64>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let set = ResourceSet::from_units(units.iter());
    for (k, v) in set.to_f64_map() {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// Number of objects this process holds references to.
#[pyfunction]
fn num_refs() -> PyResult<usize> {
    Ok(connected()?.num_refs())
}

/// Number of values held in this process's in-memory store.
#[pyfunction]
fn num_stored() -> PyResult<usize> {
    Ok(connected()?.num_stored())
}

/// A task pushed to this worker.
#[pyclass(module = "oxray._native", frozen)]
pub struct Task {
    pub(crate) task: IncomingTask,
}

#[pymethods]
impl Task {
    #[getter]
    fn task_id(&self) -> String {
        self.task.task_id().hex()
    }
    #[getter]
    fn function_id<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.task.spec.function_id)
    }
    #[getter]
    fn function_name(&self) -> &str {
        &self.task.spec.function_name
    }
    #[getter]
    fn args<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.task.spec.args)
    }
    #[getter]
    fn resolved_args(&self, py: Python<'_>) -> PyResult<Vec<PyObjectParts>> {
        let core = connected()?;
        Ok(self
            .task
            .spec
            .resolved_args
            .iter()
            .map(|o| from_object(py, &core, o, &self.task.spec.owner))
            .collect())
    }
    #[getter]
    fn num_returns(&self) -> u32 {
        self.task.spec.num_returns
    }
    #[getter]
    fn retry_exceptions<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.task.spec.retry_exceptions)
    }
    #[getter]
    fn placement_group_id<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.task.spec.placement_group_id)
    }
    #[getter]
    fn capture_child_tasks(&self) -> bool {
        self.task.spec.capture_child_tasks
    }
    #[getter]
    fn gpu_ids(&self) -> Vec<u32> {
        self.task.spec.gpu_ids.clone()
    }
    #[getter]
    fn attempt(&self) -> u32 {
        self.task.spec.attempt
    }
    #[getter]
    fn actor_id<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.task.spec.actor_id)
    }
    #[getter]
    fn method_name(&self) -> &str {
        &self.task.spec.method_name
    }
    #[getter]
    fn actor_creation(&self) -> bool {
        self.task.spec.actor_creation
    }
    #[getter]
    fn max_concurrency(&self) -> u32 {
        self.task.spec.max_concurrency
    }
    /// The job that submitted the task.
    #[getter]
    fn job_id(&self) -> u32 {
        self.task.spec.job_id
    }
    /// What the worker holds for the task: `{resource: amount}`.
    #[getter]
    fn assigned_resources(&self) -> std::collections::BTreeMap<String, f64> {
        self.task.assigned_resources()
    }
    /// `(name, value)` pairs of the task's `runtime_env["env_vars"]`;
    /// None when it sets none (the common case, answered cheaply).
    #[getter]
    fn env_vars(&self) -> Option<Vec<(String, String)>> {
        let vars = &self.task.spec.env_vars;
        (!vars.is_empty()).then(|| vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
    /// What the yielded values become: 0 fixed returns, 1 a stream, 2 a
    /// dynamic list (`ReturnsKind`).
    #[getter]
    fn returns_kind(&self) -> i32 {
        self.task.spec.returns_kind
    }

    #[getter]
    fn namespace(&self) -> &str {
        &self.task.spec.namespace
    }
}

/// Blocks until a task is pushed to this worker; `None` after shutdown.
#[pyfunction]
fn next_task(py: Python<'_>) -> PyResult<Option<Task>> {
    let core = connected()?;
    Ok(py
        .allow_threads(|| core.next_task())
        .map(|task| Task { task }))
}

/// The next pushed task if one is queued, without waiting.
#[pyfunction]
fn try_next_task() -> PyResult<Option<Task>> {
    Ok(connected()?.try_next_task().map(|task| Task { task }))
}

/// A file descriptor (the caller owns it) that becomes readable when tasks
/// arrive.
#[pyfunction]
fn task_notify_fd() -> PyResult<i32> {
    use std::os::fd::IntoRawFd;
    let fd = connected()?.task_notify_fd().map_err(PyCoreError)?;
    Ok(fd.into_raw_fd())
}

/// Sends a task's results back to its caller, one serialized value
/// `(main, buffers, metadata, nested)` per return; large ones are written
/// to the shared store here, on the node that ran the task. `error` is
/// what a failed task raised (its traceback), kept for `list_tasks`.
#[pyfunction]
#[pyo3(signature = (task, returns, retryable, error=None))]
fn complete_task(
    task: Py<Task>,
    returns: Vec<PySerialized<'_>>,
    retryable: bool,
    error: Option<String>,
    py: Python<'_>,
) -> PyResult<()> {
    let core = connected()?;
    let task = &task.bind(py).get().task;
    let task_id = task.task_id();
    let objects = returns
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            let id = ObjectId::for_task(&task_id, i as u32 + 1);
            encode(py, &core, id, &task.spec.owner, value)
        })
        .collect::<PyResult<Vec<Object>>>()?;
    core.complete_task(task, objects, retryable, error.as_deref());
    Ok(())
}

/// The shared store's usage: a dict, with one entry per object unless
/// `objects` is false (`num_objects` counts them either way); of the node
/// whose daemon is at `node_address` ("" for this process's node).
#[pyfunction]
#[pyo3(signature = (node_address="", objects=true))]
fn store_stats(py: Python<'_>, node_address: &str, objects: bool) -> PyResult<PyObject> {
    let core = connected()?;
    let s = py
        .allow_threads(|| core.store_stats(node_address, objects))
        .map_err(PyCoreError)?;
    let d = PyDict::new(py);
    d.set_item("capacity", s.capacity)?;
    d.set_item("used", s.used)?;
    d.set_item("pinned_bytes", s.pinned_bytes)?;
    d.set_item("spilled_bytes", s.spilled_bytes)?;
    d.set_item("spilled_objects", s.spilled_objects)?;
    d.set_item("bytes_served", s.bytes_served)?;
    d.set_item("spill_dir", s.spill_dir)?;
    d.set_item("num_objects", s.num_objects)?;
    let objects = PyList::empty(py);
    for o in s.objects {
        let e = PyDict::new(py);
        e.set_item("object_id", hex_of(&o.id))?;
        e.set_item("size", o.size)?;
        e.set_item("pins", o.pins)?;
        e.set_item("spilled", o.spilled)?;
        e.set_item("creator_pid", o.creator_pid)?;
        e.set_item("owner", o.owner)?;
        e.set_item("owner_pid", o.owner_pid)?;
        objects.append(e)?;
    }
    d.set_item("objects", objects)?;
    Ok(d.into_any().unbind())
}

/// Registers `hook(task_id_hex)`, called to interrupt a running task.
#[pyfunction]
fn set_cancel_hook(hook: PyObject) -> PyResult<()> {
    let core = connected()?;
    core.set_cancel_hook(Box::new(move |task_id| {
        Python::with_gil(|py| {
            if let Err(e) = hook.call1(py, (task_id.hex(),)) {
                e.print(py);
            }
        })
    }));
    Ok(())
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(connect, m)?)?;
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(is_connected, m)?)?;
    m.add_function(wrap_pyfunction!(context, m)?)?;
    m.add_function(wrap_pyfunction!(submit_task, m)?)?;
    m.add_function(wrap_pyfunction!(put, m)?)?;
    m.add_function(wrap_pyfunction!(get, m)?)?;
    m.add_function(wrap_pyfunction!(wait, m)?)?;
    m.add_function(wrap_pyfunction!(on_ready, m)?)?;
    m.add_function(wrap_pyfunction!(cancel, m)?)?;
    m.add_function(wrap_pyfunction!(kv_put, m)?)?;
    m.add_function(wrap_pyfunction!(kv_get, m)?)?;
    m.add_function(wrap_pyfunction!(kv_del, m)?)?;
    m.add_function(wrap_pyfunction!(kv_keys, m)?)?;
    m.add_function(wrap_pyfunction!(cluster_info, m)?)?;
    m.add_function(wrap_pyfunction!(num_refs, m)?)?;
    m.add_function(wrap_pyfunction!(num_stored, m)?)?;
    m.add_function(wrap_pyfunction!(next_task, m)?)?;
    m.add_function(wrap_pyfunction!(try_next_task, m)?)?;
    m.add_function(wrap_pyfunction!(task_notify_fd, m)?)?;
    m.add_function(wrap_pyfunction!(complete_task, m)?)?;
    m.add_function(wrap_pyfunction!(set_cancel_hook, m)?)?;
    m.add_function(wrap_pyfunction!(set_unhandled_error_hook, m)?)?;
    m.add_function(wrap_pyfunction!(set_log_sink, m)?)?;
    m.add_function(wrap_pyfunction!(store_stats, m)?)?;
    m.add_function(wrap_pyfunction!(create_actor, m)?)?;
    m.add_function(wrap_pyfunction!(submit_actor_task, m)?)?;
    m.add_function(wrap_pyfunction!(kill_actor, m)?)?;
    m.add_function(wrap_pyfunction!(actor_info, m)?)?;
    m.add_function(wrap_pyfunction!(list_actors, m)?)?;
    m.add_function(wrap_pyfunction!(list_tasks, m)?)?;
    m.add_function(wrap_pyfunction!(actor_exiting, m)?)?;
    Ok(())
}
