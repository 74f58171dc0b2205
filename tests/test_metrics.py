"""Prometheus metrics: every node's endpoint (host, object store and
resources), the head's cluster metrics, and users' own `Counter`, `Gauge`
and `Histogram` from tasks and actors, under Ray's names."""

import re
import urllib.request

import numpy as np
import pytest

import oxray
from oxray import _native
from oxray.util.metrics import Counter, Gauge, Histogram
from conftest import wait_for


def _scrape(port, host="127.0.0.1"):
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()


def _value(text, name, **labels):
    """The value of the first sample of `name` whose labels include
    `labels` (label order does not matter)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, value = line.rsplit(" ", 1)
        found = dict(part.split("=", 1) for part in re.findall(r'[A-Za-z_]+="[^"]*"', head))
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(value)
    raise AssertionError(f"no sample {name} {labels} in:\n{text}")


def test_metric_arguments_are_checked_as_in_ray():
    with pytest.raises(ValueError, match="Empty name"):
        Counter("")
    with pytest.raises(TypeError, match="tuple"):
        Counter("requests", tag_keys=["route"])
    with pytest.raises(ValueError, match="boundaries"):
        Histogram("latency")
    with pytest.raises(ValueError, match="positive"):
        Histogram("latency", boundaries=[0, 1])
    counter = Counter("requests", tag_keys=("route",))
    assert counter.set_default_tags({"route": "/"}) is counter
    with pytest.raises(ValueError, match="Unrecognized tag key"):
        counter.set_default_tags({"other": "x"})
    with pytest.raises(ValueError, match=">0"):
        counter.inc(0)
    with pytest.raises(ValueError, match="Missing value for tag key"):
        Counter("needs_tags", tag_keys=("a",)).inc()
    with pytest.warns(UserWarning, match="Invalid metric name"):
        Gauge("1starts_with_a_digit").set(3)  # discarded, as in Ray
    assert Histogram("h", boundaries=[2, 1]).info["boundaries"] == [1, 2]


def test_a_node_serves_its_metrics(shutdown_only):
    oxray.init(num_cpus=2, _metrics_export_port=0)
    (node,) = _native.cluster_info()
    assert node["metrics_port"] > 0
    before = _value(_scrape(node["metrics_port"]), "ray_object_store_memory", Location="MMAP_SHM")
    ref = oxray.put(np.zeros(10 << 20, dtype=np.uint8))
    text = _scrape(node["metrics_port"])
    assert _value(text, "ray_object_store_memory", Location="MMAP_SHM") >= before + (10 << 20)
    assert _value(text, "ray_node_mem_total") > 0
    assert 0 <= _value(text, "ray_node_cpu_utilization") <= 100
    assert 'ray_resources{' in text and 'Name="CPU"' in text
    del ref


def test_a_single_node_cluster_opens_no_port_unless_asked(shutdown_only):
    oxray.init(num_cpus=1)
    assert [n["metrics_port"] for n in _native.cluster_info()] == [0]


def test_the_head_serves_cluster_and_user_metrics(shutdown_only):
    from oxray.dashboard import metrics

    oxray.init(num_cpus=2, _metrics_export_port=0)

    @oxray.remote
    class Service:
        def __init__(self):
            self.requests = Counter("requests_served", "Requests served.", tag_keys=("route",))
            self.depth = Gauge("queue_depth", "Queue depth.")
            self.latency = Histogram("latency_ms", "Latency.", boundaries=[1, 10], tag_keys=("route",))

        def serve(self, n):
            for i in range(n):
                self.requests.inc(tags={"route": "/a"})
                self.latency.observe(5 if i % 2 else 50, tags={"route": "/a"})
            self.depth.set(n)
            return n

    @oxray.remote(max_retries=0)
    def fails():
        raise ValueError("no")

    service = Service.remote()
    assert oxray.get(service.serve.remote(4)) == 4
    with pytest.raises(ValueError):
        oxray.get(fails.remote())
    Gauge("driver_gauge", "Set in the driver.").set(7)

    def scraped():
        text = metrics.render().decode()
        return text if "ray_requests_served_total" in text and "ray_driver_gauge" in text else None

    assert wait_for(scraped, timeout=15)
    text = scraped()
    assert _value(text, "ray_requests_served_total", route="/a") == 4
    assert _value(text, "ray_queue_depth") == 4
    assert _value(text, "ray_latency_ms_bucket", route="/a", le="1") == 0
    assert _value(text, "ray_latency_ms_bucket", route="/a", le="10") == 2
    assert _value(text, "ray_latency_ms_count", route="/a") == 4
    assert _value(text, "ray_latency_ms_sum", route="/a") == 110
    assert _value(text, "ray_driver_gauge") == 7
    assert _value(text, "ray_actors", Name="Service", State="ALIVE") == 1
    assert _value(text, "ray_tasks", Name="fails", State="FAILED", IsRetry="0") == 1

    (node,) = _native.cluster_info()
    (group,) = metrics.service_discovery("127.0.0.1:8265")
    assert group["targets"] == ["127.0.0.1:8265", f"127.0.0.1:{node['metrics_port']}"]


def test_every_node_of_a_cluster_serves_metrics(make_cluster):
    make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    nodes = [n for n in _native.cluster_info() if n["alive"]]
    assert len(nodes) == 2 and all(n["metrics_port"] > 0 for n in nodes)
    for n in nodes:
        assert _value(_scrape(n["metrics_port"], n["ip"]), "ray_node_mem_total") > 0
