//! `oxray._native`: the Python face of the core worker. This crate only
//! converts between Python and Rust types and maps errors; the runtime is in
//! `oxray-core`.

mod buffer;
mod command;
mod error;
mod generators;
mod node_logs;
mod object_ref;
mod placement;
mod runtime;
mod shared;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<object_ref::ObjectRef>()?;
    m.add_class::<runtime::Task>()?;
    shared::register(m)?;
    object_ref::register(m)?;
    runtime::register(m)?;
    placement::register(m)?;
    generators::register(m)?;
    command::register(m)?;
    node_logs::register(m)?;
    Ok(())
}
