"""Ray's Jobs REST API on the dashboard (Ray's `job_head.py`; its
`GET /api/version` is served by `api.py`, with or without this module):

    GET    /api/packages/{protocol}/{package_name}     200 when the package is in the cluster, else 404
    PUT    /api/packages/{protocol}/{package_name}     uploads a package (the body: its zip)
    POST   /api/jobs/                                  JobSubmitRequest -> {"submission_id", "job_id"}
    GET    /api/jobs/                                  [JobDetails]
    GET    /api/jobs/{job_or_submission_id}            JobDetails
    GET    /api/jobs/{job_or_submission_id}/logs       {"logs": "..."}
    GET    /api/jobs/{job_or_submission_id}/logs/tail  a websocket: the logs as text messages, live
    POST   /api/jobs/{job_or_submission_id}/stop       {"stopped": bool}
    DELETE /api/jobs/{job_or_submission_id}            {"deleted": bool}

Errors answer as Ray's: plain text, 400 for a bad request, 404 for an
unknown job, 500 otherwise. The dashboard's auth middleware asks for the
cluster token on each of them. The jobs themselves are run by
`job_manager.JobManager`; `list_jobs(ctx)` gives the dashboard's jobs
page its rows.
"""

import asyncio
import json
import traceback
import urllib.parse

from aiohttp import web

from oxray.dashboard import job_manager
from oxray.job_submission.models import JobSubmitRequest, strip_none

#: The key of the app's JobManager.
MANAGER_KEY = web.AppKey("oxray_job_manager", object)


def list_jobs(ctx):
    """The submitted jobs of the dashboard's cluster, as dicts shaped like
    Ray's JobDetails, oldest first (blocking: reads the KV store)."""
    return job_manager.list_jobs(ctx)


def add_routes(app, ctx):
    """Registers the Jobs API on `app` (routes another module registered
    already are left to it), with a JobManager for `ctx`'s cluster that
    starts and stops with the app."""
    manager = job_manager.JobManager(ctx)
    app[MANAGER_KEY] = manager

    async def on_startup(_app):
        await manager.start()

    async def on_cleanup(_app):
        await manager.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    taken = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    routes = Routes(manager, ctx)
    for method, path, handler in (
        ("GET", "/api/packages/{protocol}/{package_name}", routes.get_package),
        ("PUT", "/api/packages/{protocol}/{package_name}", routes.upload_package),
        ("POST", "/api/jobs/", routes.submit),
        ("POST", "/api/jobs", routes.submit),
        ("GET", "/api/jobs/", routes.list),
        ("GET", "/api/jobs", routes.list),
        ("GET", "/api/jobs/{job_or_submission_id}", routes.info),
        ("DELETE", "/api/jobs/{job_or_submission_id}", routes.delete),
        ("POST", "/api/jobs/{job_or_submission_id}/stop", routes.stop),
        ("GET", "/api/jobs/{job_or_submission_id}/logs", routes.logs),
        ("GET", "/api/jobs/{job_or_submission_id}/logs/tail", routes.tail),
    ):
        if (method, path) not in taken:
            app.router.add_route(method, path, _same_origin(handler))
            taken.add((method, path))
    return manager


def _same_origin(handler):
    """`handler`, refusing (403) requests that a web page of another site
    made: a browser names that page in `Origin`. (API clients send no
    Origin; this keeps a page from submitting jobs, or reading their logs
    over a websocket, through a dashboard that has no token.)"""

    async def checked(request):
        origin = request.headers.get("Origin")
        if origin is not None and urllib.parse.urlsplit(origin).netloc.lower() != (request.host or "").lower():
            return web.Response(text=f"Cross-origin request refused (Origin: {origin})", status=403)
        return await handler(request)

    checked.__doc__ = handler.__doc__
    return checked


def _json(data, status=200):
    return web.Response(text=json.dumps(data), content_type="application/json", status=status)


class Routes:
    """The handlers of the Jobs API for one JobManager."""

    def __init__(self, manager, ctx):
        self.manager = manager
        self.ctx = ctx

    @staticmethod
    def _package_uri(request):
        from oxray._private import runtime_env_packages

        uri = f"{request.match_info['protocol']}://{request.match_info['package_name']}"
        if not runtime_env_packages.is_package_uri(uri):
            raise web.HTTPBadRequest(text=f"{uri} is not a package URI oxray serves (gcs://_ray_pkg_<sha1>.zip)")
        return uri

    async def get_package(self, request):
        """`GET /api/packages/...`: 200 when the package is uploaded, 404
        otherwise."""
        from oxray._private import runtime_env_packages

        uri = self._package_uri(request)
        if not await self.manager._call(runtime_env_packages.package_exists, uri):
            return web.Response(text=f"Package {uri} does not exist", status=404)
        return web.Response()

    async def upload_package(self, request):
        """`PUT /api/packages/...`: stores the body (a zip) as the package."""
        from oxray._private import runtime_env_packages

        uri = self._package_uri(request)
        chunks, size = [], 0
        async for chunk in request.content.iter_chunked(1 << 20):
            size += len(chunk)
            if size >= runtime_env_packages.MAX_PACKAGE_BYTES:
                return web.Response(text=f"Package {uri} exceeds the maximum package size", status=413)
            chunks.append(chunk)
        try:
            await asyncio.get_running_loop().run_in_executor(None, runtime_env_packages.store_package, uri,
                                                             b"".join(chunks))
        except Exception:
            return web.Response(text=traceback.format_exc(), status=500)
        return web.Response()

    async def submit(self, request):
        """`POST /api/jobs/`: starts a job; answers its submission id."""
        if request.content_type != "application/json":
            return web.Response(text="POST /api/jobs/ takes a JSON body (Content-Type: application/json)", status=400)
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise TypeError(f"the request must be a JSON object, got {type(body).__name__}")
            submit_request = JobSubmitRequest(**strip_none(body))
        except Exception:
            return web.Response(text=traceback.format_exc(), status=400)
        try:
            submission_id = await self.manager.submit(submit_request)
        except (TypeError, ValueError):
            return web.Response(text=traceback.format_exc(), status=400)
        except Exception:
            return web.Response(text=traceback.format_exc(), status=500)
        return _json({"job_id": submission_id, "submission_id": submission_id})

    async def list(self, request):
        """`GET /api/jobs/`: every submitted job, as JobDetails."""
        return _json([d.dict() for d in await self.manager.list()])

    async def _find(self, request):
        job_id = request.match_info["job_or_submission_id"]
        found = await self.manager.find(job_id)
        if found is None:
            raise _not_found_error(job_id)
        return found

    async def info(self, request):
        """`GET /api/jobs/{id}`: one job's JobDetails."""
        submission_id, record = await self._find(request)
        return _json((await self.manager.details(submission_id, record)).dict())

    async def _act(self, request, action, answer):
        """Runs `action(submission_id)` on the job the request names and
        answers `{answer: result}` (500 with the traceback if it fails)."""
        submission_id, _ = await self._find(request)
        try:
            done = await action(submission_id)
        except Exception:
            return web.Response(text=traceback.format_exc(), status=500)
        return _json({answer: done})

    async def stop(self, request):
        """`POST /api/jobs/{id}/stop`: asks the job to stop."""
        return await self._act(request, self.manager.stop, "stopped")

    async def delete(self, request):
        """`DELETE /api/jobs/{id}`: forgets a finished job."""
        return await self._act(request, self.manager.delete, "deleted")

    async def logs(self, request):
        """`GET /api/jobs/{id}/logs`: the job's output so far."""
        submission_id, _ = await self._find(request)
        text = await asyncio.get_running_loop().run_in_executor(None, self.manager.read_logs, submission_id)
        return _json({"logs": text})

    async def tail(self, request):
        """`GET /api/jobs/{id}/logs/tail`: a websocket sending the job's
        output as text messages as the driver writes it; closed once the
        job has finished and all of it was sent."""
        submission_id, _ = await self._find(request)
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        def gone():
            transport = request.transport
            return ws.closed or transport is None or transport.is_closing()

        try:
            async for text in self.manager.tail(submission_id, gone):
                await ws.send_str(text)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            if not ws.closed:
                await ws.close()
        return ws


def _not_found_error(job_id):
    return web.HTTPNotFound(text=f"Job {job_id} does not exist")
