"""The keys under which the dashboard's app keeps what its routes share
(`request.app[CTX]`, ...)."""

from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Optional

from aiohttp import web

from oxray.dashboard.context import DashboardContext

#: The `DashboardContext` the app serves.
CTX = web.AppKey("oxray_ctx", DashboardContext)
#: The thread pool that runs blocking reads of cluster state.
EXECUTOR = web.AppKey("oxray_executor", ThreadPoolExecutor)
#: The job submission module (`oxray.dashboard.jobs`), or None.
JOBS = web.AppKey("oxray_jobs", Optional[ModuleType])
#: The metrics module (`oxray.dashboard.metrics`), or None.
METRICS = web.AppKey("oxray_metrics", Optional[ModuleType])
