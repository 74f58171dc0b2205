//! The one mapping from the core's errors to Python exceptions (the classes
//! live in `oxray.exceptions`).

use oxray_common::Error;
use pyo3::exceptions::{PyConnectionError, PyKeyboardInterrupt, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// A core error on its way to Python.
pub struct PyCoreError(pub Error);

impl From<Error> for PyCoreError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

fn oxray_exception(py: Python<'_>, class: &str, message: String) -> PyErr {
    match py.import("oxray.exceptions").and_then(|m| m.getattr(class)) {
        Ok(cls) => match cls.call1((message.clone(),)) {
            Ok(instance) => PyErr::from_value(instance),
            Err(e) => e,
        },
        Err(_) => PyRuntimeError::new_err(message),
    }
}

impl From<PyCoreError> for PyErr {
    fn from(err: PyCoreError) -> PyErr {
        let message = err.0.to_string();
        Python::with_gil(|py| match err.0 {
            Error::Timeout(_) => oxray_exception(py, "GetTimeoutError", message),
            Error::Interrupted => PyKeyboardInterrupt::new_err(message),
            Error::InvalidResource { .. } | Error::InvalidArgument(_) => {
                PyValueError::new_err(message)
            }
            Error::NotInitialized => oxray_exception(py, "RaySystemError", message),
            Error::ObjectLost { .. } => oxray_exception(py, "ObjectLostError", message),
            Error::ObjectStoreFull(_) => oxray_exception(py, "ObjectStoreFullError", message),
            Error::PendingCallsLimitExceeded { .. } => {
                oxray_exception(py, "PendingCallsLimitExceeded", message)
            }
            Error::Unauthorized { .. } => PyConnectionError::new_err(message),
            Error::DaemonDied(_)
            | Error::Connection { .. }
            | Error::Protocol { .. }
            | Error::Rejected(_)
            | Error::CallerGone { .. } => oxray_exception(py, "RaySystemError", message),
        })
    }
}

/// Results whose errors become Python exceptions.
pub(crate) type PyResult<T> = Result<T, PyCoreError>;
