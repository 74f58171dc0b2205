//! The `oxray` command inside the extension module: an installed wheel
//! starts its daemon as `python -c ... run_command(args)`, so it ships no
//! separate binary.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// Runs `oxray ARGS...` (as the binary would) in this process, without the
/// GIL; returns when the daemon stops.
#[pyfunction]
fn run_command(py: Python<'_>, args: Vec<String>) -> PyResult<()> {
    oxray_cli::init_logging();
    let argv = std::iter::once("oxray".to_string()).chain(args);
    py.allow_threads(|| oxray_cli::run(argv))
        .map_err(|e| PyRuntimeError::new_err(format!("{e:#}")))
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run_command, m)?)?;
    Ok(())
}
