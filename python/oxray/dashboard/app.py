"""`create_app(ctx)`: the dashboard's aiohttp application, with the state
pages and JSON routes, the job routes of `oxray.dashboard.jobs` and the
metrics routes of `oxray.dashboard.metrics` when those modules exist,
token checks (`auth`) and security headers on every response."""

import sys
import traceback
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from oxray.dashboard import api, auth, pages
from oxray.dashboard import appkeys as keys

#: Sent with every response: only this site's scripts and styles, never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                                "form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@web.middleware
async def security_headers(request, handler):
    """Adds SECURITY_HEADERS (and no caching of API answers)."""
    try:
        response = await handler(request)
    except web.HTTPException as e:
        response = e
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


def _optional_module(name):
    """`oxray.dashboard.<name>`, or None when it does not exist (a module
    that exists but fails to import is reported on stderr)."""
    try:
        return __import__(f"oxray.dashboard.{name}", fromlist=[name])
    except ImportError as e:
        if getattr(e, "name", None) != f"oxray.dashboard.{name}":
            print(f"oxray dashboard: the {name} module failed to import:\n{traceback.format_exc()}",
                  file=sys.stderr, flush=True)
        return None


def _getter_once(app):
    """`add_get(path, handler)` that leaves a path another module (jobs,
    metrics) already serves to that module."""
    def add_get(path, handler):
        """Serves GET `path` with `handler` unless another module does."""
        for resource in app.router.resources():
            if resource.canonical == path and any(r.method in ("GET", "*") for r in resource):
                return
        app.router.add_get(path, handler)

    return add_get


def create_app(ctx):
    """The dashboard application for `ctx` (a `DashboardContext`). The
    process must be connected to the cluster (`oxray.init(address=...)`)
    before requests arrive."""
    app = web.Application(middlewares=[security_headers, auth.middleware(ctx)])
    app[keys.CTX] = ctx
    app[keys.EXECUTOR] = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dashboard-state")
    jobs = _optional_module("jobs")
    metrics = _optional_module("metrics")
    app[keys.JOBS] = jobs
    app[keys.METRICS] = metrics
    if jobs is not None:
        jobs.add_routes(app, ctx)
    if metrics is not None:
        metrics.add_routes(app, ctx)
    add_get = _getter_once(app)
    app.router.add_post("/login", auth.login)
    api.add_routes(app, add_get)
    # A module may list its own pages, as (path, title) in NAV, for the navigation bar.
    extra_nav = [*getattr(jobs, "NAV", ()), *getattr(metrics, "NAV", ())]
    pages.add_routes(app, add_get, extra_nav)

    async def stop_executor(app):
        """Lets the state-reading threads go with the app."""
        app[keys.EXECUTOR].shutdown(wait=False)

    app.on_cleanup.append(stop_executor)
    return app
