//! Placement groups: conversions between Python values and the core's
//! placement-group requests.

use oxray_common::ResourceSet;
use oxray_core::{Bundle, CreatePlacementGroup, PlacementGroupInfo};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::error::PyCoreError;
use crate::object_ref::ObjectRef;
use crate::runtime::{connected, encode, hex_of, units_dict, PySerialized};

fn info_dict(py: Python<'_>, info: PlacementGroupInfo) -> PyResult<PyObject> {
    let d = PyDict::new(py);
    d.set_item("placement_group_id", hex_of(&info.pg_id))?;
    d.set_item("state", info.state)?;
    d.set_item("strategy", info.strategy)?;
    d.set_item("name", info.name)?;
    d.set_item("namespace", info.namespace)?;
    d.set_item("detached", info.detached)?;
    let bundles = PyList::empty(py);
    let nodes = PyList::empty(py);
    for b in &info.bundles {
        bundles.append(units_dict(py, &b.resources)?)?;
        nodes.append(if b.node_id.is_empty() {
            None
        } else {
            Some(hex_of(&b.node_id))
        })?;
    }
    d.set_item("bundles", bundles)?;
    d.set_item("bundles_to_node_id", nodes)?;
    Ok(d.into_any().unbind())
}

/// Registers a placement group of `bundles` (lists of (resource, amount)).
#[pyfunction]
#[pyo3(signature = (pg_id, bundles, strategy, name, namespace, detached))]
fn create_placement_group(
    py: Python<'_>,
    pg_id: Vec<u8>,
    bundles: Vec<Vec<(String, f64)>>,
    strategy: String,
    name: String,
    namespace: String,
    detached: bool,
) -> PyResult<PyObject> {
    let core = connected()?;
    let mut wire = Vec::with_capacity(bundles.len());
    for b in bundles {
        let set =
            ResourceSet::from_f64(b.iter().map(|(k, v)| (k.as_str(), *v))).map_err(PyCoreError)?;
        wire.push(Bundle {
            resources: set.to_units(),
            ..Default::default()
        });
    }
    let request = CreatePlacementGroup {
        pg_id,
        bundles: wire,
        strategy,
        name,
        namespace,
        detached,
        owner: String::new(),
    };
    let info = py
        .allow_threads(|| core.create_placement_group(request))
        .map_err(PyCoreError)?;
    info_dict(py, info)
}

/// A placement group's state, by id (or by name when `pg_id` is empty).
#[pyfunction]
#[pyo3(signature = (pg_id, name="", namespace=""))]
fn placement_group_info(
    py: Python<'_>,
    pg_id: Vec<u8>,
    name: &str,
    namespace: &str,
) -> PyResult<PyObject> {
    let core = connected()?;
    let info = py
        .allow_threads(|| core.placement_group(&pg_id, name, namespace))
        .map_err(PyCoreError)?;
    info_dict(py, info)
}

/// Removes a placement group.
#[pyfunction]
fn remove_placement_group(py: Python<'_>, pg_id: Vec<u8>) -> PyResult<()> {
    let core = connected()?;
    Ok(py
        .allow_threads(|| core.remove_placement_group(&pg_id))
        .map_err(PyCoreError)?)
}

/// Every placement group of the cluster.
#[pyfunction]
fn list_placement_groups(py: Python<'_>) -> PyResult<Vec<PyObject>> {
    let core = connected()?;
    let groups = py
        .allow_threads(|| core.list_placement_groups())
        .map_err(PyCoreError)?;
    groups.into_iter().map(|g| info_dict(py, g)).collect()
}

/// A ref that becomes `value` (serialized as for `put`) once the group is
/// created.
#[pyfunction]
fn placement_group_ready(
    py: Python<'_>,
    pg_id: Vec<u8>,
    value: PySerialized<'_>,
) -> PyResult<ObjectRef> {
    let core = connected()?;
    let object = encode(py, &core, core.new_put_id(), "", value)?;
    let id = core
        .placement_group_ready(&pg_id, object)
        .map_err(PyCoreError)?;
    Ok(ObjectRef::adopt(id, core.address().to_string()))
}

/// Adds this file's functions to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(create_placement_group, m)?)?;
    m.add_function(wrap_pyfunction!(placement_group_info, m)?)?;
    m.add_function(wrap_pyfunction!(remove_placement_group, m)?)?;
    m.add_function(wrap_pyfunction!(list_placement_groups, m)?)?;
    m.add_function(wrap_pyfunction!(placement_group_ready, m)?)?;
    Ok(())
}
