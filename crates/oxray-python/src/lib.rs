//! `oxray._native`: the Python face of the core worker. This crate only
//! converts between Python and Rust types and maps errors; the runtime is in
//! `oxray-core`.

mod error;
mod object_ref;
mod runtime;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<object_ref::ObjectRef>()?;
    m.add_class::<runtime::Task>()?;
    object_ref::register(m)?;
    runtime::register(m)?;
    Ok(())
}
