//! The log files of any node of the cluster, read through its daemon
//! (`oxray.util.state.logs` reads remote nodes' logs with these).

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::{PyCoreError, PyResult};
use crate::runtime::connected;

/// The log files of the node whose daemon is at `node_address` (its
/// `address` in the node table; "" for this process's node), as
/// `(name, size in bytes, modified: seconds since the epoch)` tuples.
#[pyfunction]
#[pyo3(signature = (node_address=""))]
fn node_log_files(py: Python<'_>, node_address: &str) -> PyResult<Vec<(String, u64, f64)>> {
    let core = connected()?;
    let files = py
        .allow_threads(|| core.node_log_files(node_address))
        .map_err(PyCoreError)?;
    Ok(files
        .into_iter()
        .map(|f| (f.name, f.size, f.modified_us as f64 / 1e6))
        .collect())
}

/// Up to `length` bytes (4 MiB at most) of the log file `name` of the node
/// at `node_address`, from `offset`: `(data, the file's size, its inode)`.
/// ValueError for a name that is not one of the node's log files.
#[pyfunction]
fn read_node_log(
    py: Python<'_>,
    node_address: &str,
    name: &str,
    offset: u64,
    length: u64,
) -> PyResult<(Py<PyBytes>, u64, u64)> {
    let core = connected()?;
    let chunk = py
        .allow_threads(|| core.read_node_log(node_address, name, offset, length))
        .map_err(PyCoreError)?;
    Ok((
        PyBytes::new(py, &chunk.data).unbind(),
        chunk.size,
        chunk.inode,
    ))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> pyo3::PyResult<()> {
    m.add_function(wrap_pyfunction!(node_log_files, m)?)?;
    m.add_function(wrap_pyfunction!(read_node_log, m)?)?;
    Ok(())
}
