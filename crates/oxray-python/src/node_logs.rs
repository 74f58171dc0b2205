//! The log files of the cluster's nodes: any node's through its daemon,
//! and a session directory's on this machine directly, with the same rules
//! (`oxray_node::log_files`). `oxray.util.state.logs` reads logs with these.

use std::path::Path;

use oxray_node::log_files::{LogFileError, LogFiles};
use oxray_proto::{LogChunk, LogFile};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::PyCoreError;
use crate::runtime::connected;

/// A listing as Python takes it: `(name, size in bytes, modified: seconds
/// since the epoch)` tuples.
fn listing(files: Vec<LogFile>) -> Vec<(String, u64, f64)> {
    files
        .into_iter()
        .map(|f| (f.name, f.size, f.modified_us as f64 / 1e6))
        .collect()
}

/// A chunk as Python takes it: `(data, the file's size, its inode)`.
fn chunk(py: Python<'_>, c: LogChunk) -> (Py<PyBytes>, u64, u64) {
    (PyBytes::new(py, &c.data).unbind(), c.size, c.inode)
}

/// The log files of the node whose daemon is at `node_address` (its
/// `address` in the node table; "" for this process's node).
#[pyfunction]
#[pyo3(signature = (node_address=""))]
fn node_log_files(py: Python<'_>, node_address: &str) -> PyResult<Vec<(String, u64, f64)>> {
    let core = connected()?;
    let files = py
        .allow_threads(|| core.node_log_files(node_address))
        .map_err(PyCoreError)?;
    Ok(listing(files))
}

/// Up to `length` bytes (4 MiB at most) of the log file `name` of the node
/// at `node_address`, from `offset`: `(data, the file's size, its inode)`.
/// FileNotFoundError when the node has no such file; ValueError for a name
/// that is not a log file's.
#[pyfunction]
fn read_node_log(
    py: Python<'_>,
    node_address: &str,
    name: &str,
    offset: u64,
    length: u64,
) -> PyResult<(Py<PyBytes>, u64, u64)> {
    let core = connected()?;
    let c = py
        .allow_threads(|| core.read_node_log(node_address, name, offset, length))
        .map_err(PyCoreError)?;
    if c.missing {
        return Err(PyFileNotFoundError::new_err(format!(
            "no log file {name:?} on the node at {node_address}"
        )));
    }
    Ok(chunk(py, c))
}

/// The log files of the session directory `session_dir` (a node of this
/// machine), read directly.
#[pyfunction]
fn session_log_files(py: Python<'_>, session_dir: &str) -> Vec<(String, u64, f64)> {
    let files = LogFiles::new(Path::new(session_dir));
    listing(py.allow_threads(|| files.list()))
}

/// [`read_node_log`] for the session directory `session_dir`, read
/// directly.
#[pyfunction]
fn read_session_log(
    py: Python<'_>,
    session_dir: &str,
    name: &str,
    offset: u64,
    length: u64,
) -> PyResult<(Py<PyBytes>, u64, u64)> {
    let files = LogFiles::new(Path::new(session_dir));
    match py.allow_threads(|| files.read(name, offset, length)) {
        Ok(c) => Ok(chunk(py, c)),
        Err(e @ LogFileError::Missing { .. }) => Err(PyFileNotFoundError::new_err(e.to_string())),
        Err(e @ LogFileError::NotAName(_)) => Err(PyValueError::new_err(e.to_string())),
        Err(e @ LogFileError::Io { .. }) => Err(PyOSError::new_err(e.to_string())),
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(node_log_files, m)?)?;
    m.add_function(wrap_pyfunction!(read_node_log, m)?)?;
    m.add_function(wrap_pyfunction!(session_log_files, m)?)?;
    m.add_function(wrap_pyfunction!(read_session_log, m)?)?;
    Ok(())
}
