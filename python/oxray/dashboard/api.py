"""The dashboard's JSON routes, shaped as Ray's dashboard answers them.

- `GET /api/v0/{actors,tasks,nodes,objects,workers,jobs,placement_groups}`
  with `limit`, `detail` and the repeated `filter_keys` /
  `filter_predicates` / `filter_values`: Ray's envelope
  `{"result": true, "msg": "", "data": {"result": ListApiResponse}}`.
- `GET /api/v0/{tasks,actors,objects}/summarize`, `GET /api/v0/tasks/timeline`
  (Chrome trace events; `download=1` as an attachment).
- `GET /api/v0/logs` (a node's log files by category, as `oxray logs`
  lists them) and
  `GET /api/v0/logs/file?filename=...|pid=...&suffix=out|err&lines=N&format=text|leading_1`,
  both with `node_id` for any node of the cluster (read through its daemon).
- `GET /api/version`: Ray's Jobs API version answer.
- oxray's own: `GET /api/cluster_status` (the overview) and `GET /api/logs`
  (log files with sizes).

Reads of cluster state block, so they run on a small thread pool.
"""

import asyncio
import functools
import inspect
import json
import os
import time

from aiohttp import web

import oxray
from oxray.exceptions import RayError
from oxray.dashboard import appkeys as keys
from oxray.dashboard import logs as _logs
from oxray.dashboard import queries
from oxray.job_submission.models import API_VERSION

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def _dumps(value):
    return json.dumps(value, default=str)


def reply(result, msg="", success=True, status=200):
    """Ray's REST envelope: `{"result": success, "msg": msg, "data": {"result": result}}`."""
    return web.json_response({"result": success, "msg": msg, "data": {"result": result}}, status=status,
                             dumps=_dumps)


def error(msg, status):
    """The envelope of a failed request."""
    return web.json_response({"result": False, "msg": msg, "data": {}}, status=status, dumps=_dumps)


def to_bool(text, default=False):
    """A query parameter as a bool (Ray's spellings); ValueError otherwise."""
    if text is None:
        return default
    low = str(text).strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"invalid boolean value {text!r}: use true/1 or false/0")


def list_options(query):
    """(limit, detail, filters) from a request's query, as Ray's
    `options_from_req`; ValueError for bad values."""
    raw_limit = query.get("limit")
    try:
        limit = 100 if raw_limit is None else int(raw_limit)
    except ValueError:
        raise ValueError(f"limit must be an integer, got {raw_limit!r}") from None
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    if limit > queries.MAX_LIMIT:
        raise ValueError(f"Given limit {limit} exceeds the supported limit {queries.MAX_LIMIT}. Use a lower limit.")
    detail = to_bool(query.get("detail"), False)
    filters = queries.parse_filters(query.getall("filter_keys", []), query.getall("filter_predicates", []),
                                    query.getall("filter_values", []))
    return limit, detail, filters


async def run_blocking(request, fn, *args, **kwargs):
    """`fn(*args, **kwargs)` on the app's thread pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[keys.EXECUTOR], functools.partial(fn, *args, **kwargs))


def submitted_jobs(ctx, jobs_module):
    """Jobs from the job submission module (`jobs.list_jobs(ctx)`), or []."""
    if jobs_module is None or not hasattr(jobs_module, "list_jobs"):
        return []
    result = jobs_module.list_jobs(ctx)
    if inspect.isawaitable(result):
        result = asyncio.run(result)
    return [dict(j) for j in result or []]


def _list_handler(resource):
    async def handle(request):
        """Lists one resource."""
        try:
            limit, detail, filters = list_options(request.query)
        except ValueError as e:
            return error(str(e), 400)
        ctx = request.app[keys.CTX]
        warnings = []
        try:
            subs = None
            if resource == "jobs":
                try:
                    subs = await run_blocking(request, submitted_jobs, ctx, request.app[keys.JOBS])
                except Exception as e:  # the driver jobs can still be shown
                    warnings.append(f"submitted jobs are missing: {type(e).__name__}: {e}")
            result = await run_blocking(request, queries.list_response, resource, limit, detail, filters, subs)
        except ValueError as e:
            return error(str(e), 400)
        except Exception as e:  # the cluster did not answer
            return error(f"{type(e).__name__}: {e}", 500)
        if warnings:
            result["warnings"] = warnings
        return reply(result)

    handle.__doc__ = f"`GET /api/v0/{resource}`: Ray's list response."
    return handle


def _summary_handler(resource):
    async def handle(request):
        """Summarizes one resource."""
        try:
            filters = queries.parse_filters(request.query.getall("filter_keys", []),
                                            request.query.getall("filter_predicates", []),
                                            request.query.getall("filter_values", []))
            result = await run_blocking(request, queries.summary_response, resource, filters)
        except ValueError as e:
            return error(str(e), 400)
        return reply(result)

    handle.__doc__ = f"`GET /api/v0/{resource}/summarize`: Ray's summary response."
    return handle


def _timeline_events(job_id):
    events = oxray.timeline()
    if job_id:
        events = [e for e in events if (e.get("args") or {}).get("job_id") == job_id]
    return events


async def timeline(request):
    """`GET /api/v0/tasks/timeline[?job_id=..][&download=1]`: the Chrome
    trace events of `oxray.timeline()`."""
    job_id = request.query.get("job_id")
    events = await run_blocking(request, _timeline_events, job_id)
    headers = None
    if request.query.get("download") == "1":
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        headers = {"Content-Disposition": f'attachment; filename="timeline-{job_id or "all"}-{stamp}.json"'}
    return web.Response(text=_dumps(events), content_type="application/json", headers=headers)


async def cluster_status(request):
    """`GET /api/cluster_status`: nodes, resource use, object store and
    counts by state (the overview page), plus which optional modules run."""
    try:
        status = await run_blocking(request, queries.cluster_status)
    except Exception as e:
        return error(f"{type(e).__name__}: {e}", 500)
    status["features"] = {"jobs": request.app[keys.JOBS] is not None,
                          "metrics": request.app[keys.METRICS] is not None,
                          "auth": request.app[keys.CTX].token is not None}
    return reply(status)


async def version(request):
    """`GET /api/version`: as Ray's (`version`: the Jobs API's, "4";
    `ray_version`: the Ray version oxray follows; `ray_commit`;
    `session_name`), plus `oxray_version`."""
    from oxray._private.ray_compat import ray_version

    ctx = request.app[keys.CTX]
    return web.json_response({"version": API_VERSION, "ray_version": ray_version(), "ray_commit": "",
                              "session_name": os.path.basename(ctx.session_dir.rstrip("/")),
                              "oxray_version": getattr(oxray, "__version__", None)})


def _log_node(request):
    """The node whose logs a request asks for (`node_id`, a prefix will do;
    the dashboard's own node without one); ValueError for an unknown one."""
    return _logs.node(request.query.get("node_id"))


async def _read_logs(request, read, *args):
    """`read(node, *args)` on the requested node, off the event loop: its
    result, or the error response (400 for a bad request, 404 for a missing
    file, 502 when the node does not answer)."""
    def run():
        return read(_log_node(request), *args)

    try:
        return await run_blocking(request, run), None
    except FileNotFoundError as e:
        return None, error(str(e), 404)
    except ValueError as e:
        return None, error(str(e), 400)
    except (OSError, RayError) as e:
        return None, error(f"the node did not answer: {e}", 502)


async def list_logs(request):
    """`GET /api/v0/logs[?node_id=..][&glob=..]`: a node's log names by
    category, as Ray's."""
    import fnmatch

    pattern = request.query.get("glob", "*")
    cats, failed = await _read_logs(request, _logs.categorized)
    if failed is not None:
        return failed
    return reply({k: [f for f in v if fnmatch.fnmatch(f, pattern)] for k, v in cats.items()})


async def log_files(request):
    """`GET /api/logs[?node_id=..]`: every log file of a node with its
    category, size and time (and a worker's pid and stream)."""
    files, failed = await _read_logs(request, _logs.list_files)
    return failed if failed is not None else reply(files)


async def log_file(request):
    """`GET /api/v0/logs/file`: the tail of one log file of a node
    (`node_id`; the dashboard's own without one): `filename`, or a worker's
    by `pid` with `suffix`, `lines` lines (default 1000). As Ray's, the
    default `format=leading_1` puts "1" before the text; `format=text`
    sends the text alone."""
    query = request.query
    try:
        filename = query.get("filename")
        if not filename and query.get("pid"):
            pid = int(query["pid"])
            suffix = query.get("suffix", "out")
            if suffix not in ("out", "err"):
                raise ValueError("suffix must be out or err")
            filename = f"worker-{pid}.{suffix}"
        if not filename:
            raise ValueError("give a filename, or a worker's pid")
        lines = int(query.get("lines", _logs.DEFAULT_LINES))
        fmt = query.get("format", "leading_1")
        if fmt not in ("text", "leading_1"):
            raise ValueError(f"Unsupported format: {fmt}, use 'text' or 'leading_1'")
    except ValueError as e:
        return error(str(e), 400)
    text, failed = await _read_logs(request, _logs.tail, filename, lines)
    if failed is not None:
        return failed
    return web.Response(text=("1" + text) if fmt == "leading_1" else text, content_type="text/plain")


def add_routes(app, add_get):
    """Adds the JSON routes through `add_get(path, handler)` (which skips a
    path another module already serves)."""
    for resource in queries.RESOURCES:
        add_get(f"/api/v0/{resource}", _list_handler(resource))
    for resource in ("tasks", "actors", "objects"):
        add_get(f"/api/v0/{resource}/summarize", _summary_handler(resource))
    add_get("/api/v0/tasks/timeline", timeline)
    add_get("/api/v0/logs", list_logs)
    add_get("/api/v0/logs/file", log_file)
    add_get("/api/logs", log_files)
    add_get("/api/cluster_status", cluster_status)
    add_get("/api/version", version)
