"""The state the dashboard serves, read from the cluster (blocking calls:
the routes run them on worker threads).

`list_response` answers Ray's `/api/v0/<resource>` lists with Ray's
`ListApiResponse` fields; `summary_response` its `/summarize` routes;
`cluster_status` the overview page."""

import os

from oxray import _native
from oxray.util.state import api as _state_api
from oxray.util.state import filters as _filters
from oxray.util.state import summaries as _summaries
from oxray.util.state.common import SCHEMAS

#: URL resource name -> the state API's resource name.
RESOURCES = {
    "actors": "actors",
    "tasks": "tasks",
    "nodes": "nodes",
    "objects": "objects",
    "workers": "workers",
    "jobs": "jobs",
    "placement_groups": "placement-groups",
}

#: The most rows one request may ask for (Ray's RAY_MAX_LIMIT_FROM_API_SERVER).
MAX_LIMIT = 10_000

_SUMMARIES = {
    "tasks": _summaries.summarize_tasks,
    "actors": _summaries.summarize_actors,
    "objects": _summaries.summarize_objects,
}


def row_dict(schema, raw, detail):
    """One row as Ray's API writes it: every column with `detail`, else
    only the base columns (detail-only columns are left out, as Ray's
    `filter_fields` does)."""
    row = schema.from_dict(raw, detail=True).asdict()
    return {k: row[k] for k in schema.list_columns(detail=detail)}


def _submission_rows(submitted):
    """JobDetails rows from the job manager as JobState dicts (type
    SUBMISSION), keyed by job id where the driver is known."""
    out = []
    for job in submitted or []:
        row = dict(job)
        row.setdefault("type", "SUBMISSION")
        driver = row.get("driver_info") or {}
        if not row.get("job_id") and isinstance(driver, dict) and driver.get("id"):
            row["job_id"] = driver["id"]
        out.append(row)
    return out


def merge_jobs(driver_rows, submitted):
    """Driver jobs (from the state API) and submitted jobs (from
    `jobs.list_jobs`), one row per job: a submitted job's row replaces the
    row of its driver."""
    subs = _submission_rows(submitted)
    claimed = {r["job_id"] for r in subs if r.get("job_id")}
    return [r for r in driver_rows if r.get("job_id") not in claimed] + subs


def parse_filters(keys, predicates, values):
    """Ray's repeated `filter_keys` / `filter_predicates` / `filter_values`
    as (key, predicate, value) tuples."""
    if not (len(keys) == len(predicates) == len(values)):
        raise ValueError("filter_keys, filter_predicates and filter_values must be given as many times each")
    return list(zip(keys, predicates, values))


def list_response(resource, limit, detail, filters, submitted_jobs=None):
    """Ray's ListApiResponse (as a dict) for `resource` (a key of
    RESOURCES). Raises ValueError for a bad filter or limit."""
    name = RESOURCES[resource]
    schema = SCHEMAS[name]
    checked = _filters.check_filters(filters, schema, name.replace("-", " "))
    raw = _state_api._raw(name, include_self=False)
    if resource == "jobs":
        raw = merge_jobs(raw, submitted_jobs)
    rows = [{c: r.get(c) for c in schema.columns()} for r in raw]
    kept, num_filtered = _filters.apply(rows, checked, _state_api._sort_key(name), limit)
    return {
        "total": len(rows),
        "num_after_truncation": len(rows),
        "num_filtered": num_filtered,
        "result": [row_dict(schema, r, detail) for r in kept],
        "partial_failure_warning": "",
        "warnings": None,
    }


def summary_response(resource, filters):
    """Ray's SummaryApiResponse (as a dict) for tasks, actors or objects."""
    summary = _SUMMARIES[resource](filters=filters or None)
    total = sum(len(s.get("summary", {})) for s in summary.values())
    return {
        "total": total,
        "num_after_truncation": total,
        "num_filtered": total,
        "result": {"node_id_to_summary": summary},
        "partial_failure_warning": "",
        "warnings": None,
    }


def _host_memory():
    """(used, total) bytes of this host's memory, from /proc/meminfo."""
    from oxray._private.node import meminfo

    fields = meminfo()
    total = fields.get("MemTotal")
    available = fields.get("MemAvailable", fields.get("MemFree"))
    if total is None or available is None:
        return None
    return {"used": total - available, "total": total}


def _count_by(rows, key):
    counts = {}
    for r in rows:
        counts[r[key]] = counts.get(r[key], 0) + 1
    return counts


def cluster_status():
    """The overview: every node with its resources (total, available,
    used) and object store, this node's host memory, what waits for
    resources, and counts of actors, tasks and placement groups by state."""
    from oxray.util.state import sources

    me = _native.context()
    stores = {n["node_id"]: stats for n, stats in sources.node_stores(objects=False)}
    nodes = []
    for n in _native.cluster_info():
        resources = {}
        for name, total in sorted(n["total"].items()):
            available = n["available"].get(name, 0.0) if n["alive"] else 0.0
            resources[name] = {"total": total, "available": available, "used": max(total - available, 0.0)}
        local = n["node_id"] == me["node_id"]
        store = stores.get(n["node_id"])
        nodes.append({
            "node_id": n["node_id"], "node_ip": n["ip"], "hostname": n["hostname"], "is_head_node": n["is_head"],
            "state": "ALIVE" if n["alive"] else "DEAD", "resources": resources,
            "object_store": ({"used": store["used"], "capacity": store["capacity"],
                              "spilled_bytes": store["spilled_bytes"], "num_objects": store["num_objects"]}
                             if store is not None else None),
            "host_memory": _host_memory() if local else None,
            "pending": [{"shape": dict(shape), "count": count} for shape, count in n.get("pending", [])],
            "is_dashboard_node": local,
        })
    actors = sources.actors()
    tasks = sources.tasks(actors)
    groups = sources.placement_groups()
    return {
        "nodes": nodes,
        "dashboard_node_id": me["node_id"],
        "session_name": os.path.basename(me["session_dir"].rstrip("/")),
        "actors": _count_by(actors, "state"),
        "tasks": _count_by(tasks, "state"),
        "placement_groups": _count_by(groups, "state"),
    }
