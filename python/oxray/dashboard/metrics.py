"""The head's Prometheus endpoint (`GET /metrics`): the cluster's task and
actor counts under Ray's names (`ray_tasks{State=...}`,
`ray_actors{State=...}`), node counts, and every process's
`oxray.util.metrics`; and `GET /api/prometheus/sd`, Prometheus' HTTP
service discovery of every node's own endpoint (host CPU, memory, object
store and resources, served by the node daemons)."""

import asyncio
from collections import Counter as Tally

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from oxray import _native
from oxray._private import metrics_export


class _ClusterCollector:
    """Reads the cluster at each scrape (nothing is kept between them)."""

    def collect(self):
        from oxray.util import state

        tasks = Tally(
            (t.state, t.func_or_class_name or t.name, t.job_id or "", str(int((t.attempt_number or 0) > 0)))
            for t in state.list_tasks(limit=None, raise_on_missing_output=False)
        )
        family = GaugeMetricFamily("ray_tasks", "Tasks by state, as the processes that own them report",
                                   labels=["State", "Name", "JobId", "IsRetry"])
        for labels, count in sorted(tasks.items()):
            family.add_metric(list(labels), count)
        yield family

        actors = Tally((a.state, a.class_name) for a in state.list_actors(limit=None, raise_on_missing_output=False))
        family = GaugeMetricFamily("ray_actors", "Actors by state", labels=["State", "Name"])
        for labels, count in sorted(actors.items()):
            family.add_metric(list(labels), count)
        yield family

        nodes = _native.cluster_info()
        family = GaugeMetricFamily("ray_cluster_active_nodes", "Live nodes of the cluster", labels=["node_type"])
        family.add_metric(["head"], sum(1 for n in nodes if n["alive"] and n["is_head"]))
        family.add_metric(["worker"], sum(1 for n in nodes if n["alive"] and not n["is_head"]))
        yield family
        yield from _user_metrics(metrics_export.read_all())


def _user_metrics(entries):
    """The families of users' metrics, one per name, a series per process
    and tag set (labelled with the process, as Ray labels them)."""
    families = {}
    for entry in entries:
        name, kind = entry["name"], entry["kind"]
        labels = list(entry["tag_keys"]) + ["WorkerId", "NodeAddress"]
        family = families.get(name)
        if family is None:
            full = f"ray_{name}"
            if kind == "counter":
                family = CounterMetricFamily(full, entry["description"], labels=labels)
            elif kind == "gauge":
                family = GaugeMetricFamily(full, entry["description"], labels=labels)
            else:
                family = HistogramMetricFamily(full, entry["description"], labels=labels)
            families[name] = family
        process = [entry["process"]["WorkerId"], entry["process"]["NodeAddress"]]
        for series in entry["series"]:
            values = [series["tags"].get(key, "") for key in entry["tag_keys"]] + process
            if kind == "histogram" and isinstance(family, HistogramMetricFamily):
                counts, total, _ = series["value"]
                running, buckets = 0, []
                for bound, count in zip(entry["boundaries"] + ["+Inf"], counts):
                    running += count
                    buckets.append((str(bound), running))
                family.add_metric(values, buckets, total)
            elif kind != "histogram":
                family.add_metric(values, series["value"])
    return families.values()


def render():
    """The head's metrics in Prometheus' text format."""
    registry = CollectorRegistry()
    registry.register(_ClusterCollector())
    return generate_latest(registry)


def service_discovery(host):
    """Prometheus' HTTP service discovery: every node's metrics endpoint and
    this dashboard's own (`host`, as the scraper reached it)."""
    targets = [f"{n['ip']}:{n['metrics_port']}" for n in _native.cluster_info()
               if n["alive"] and n["metrics_port"]]
    return [{"labels": {"job": "ray"}, "targets": [host, *targets]}]


async def _metrics(request):
    body = await asyncio.get_running_loop().run_in_executor(None, render)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _sd(request):
    targets = await asyncio.get_running_loop().run_in_executor(None, service_discovery, request.host)
    return web.json_response(targets)


def add_routes(app, ctx):
    """Registers `/metrics` and `/api/prometheus/sd` on the dashboard."""
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/api/prometheus/sd", _sd)
