"""Where the values of `oxray.util.metrics` go: each process aggregates its
own (counter sums, last gauge values, histogram buckets) and writes them to
the cluster's key-value table every few seconds, one key per process and
metric; the head's dashboard serves them to Prometheus with the cluster's
own metrics (`oxray.dashboard.metrics`)."""

import json
import os
import threading
import time

from oxray import _native

# In memory only at the head (never journaled): see the control store's
# EPHEMERAL_PREFIX.
KV_NAMESPACE = "~metrics"
# How often a process writes its metrics (Ray's metrics_report_interval_ms).
REPORT_INTERVAL_S = float(os.environ.get("OXRAY_METRICS_REPORT_INTERVAL_S", "2"))
# Unchanged metrics are written again this often, so that readers can tell
# a quiet process from one that was killed (older entries are dropped).
REFRESH_S = 30.0
STALE_S = 4 * REFRESH_S


class _Series:
    """One metric's aggregated values in this process, by tag set."""

    def __init__(self, kind, name, description, tag_keys, boundaries):
        self.kind = kind
        self.name = name
        self.description = description
        self.tag_keys = list(tag_keys)
        self.boundaries = list(boundaries) if boundaries else None
        self.values = {}

    def record(self, tags, value):
        key = tuple(sorted(tags.items()))
        if self.kind == "counter":
            self.values[key] = self.values.get(key, 0.0) + value
        elif self.kind == "gauge":
            self.values[key] = float(value)
        else:
            counts, total, n = self.values.get(key) or ([0] * (len(self.boundaries) + 1), 0.0, 0)
            index = next((i for i, b in enumerate(self.boundaries) if value <= b), len(self.boundaries))
            counts[index] += 1
            self.values[key] = (counts, total + value, n + 1)

    def to_json(self):
        return {
            "name": self.name, "kind": self.kind, "description": self.description,
            "tag_keys": self.tag_keys, "boundaries": self.boundaries,
            "series": [{"tags": dict(key), "value": value} for key, value in self.values.items()],
        }


class _Registry:
    """This process's metrics, written to the cluster by a background
    thread when they changed."""

    def __init__(self):
        self._lock = threading.Lock()
        self._series = {}
        self._dirty = set()
        self._thread = None

    def record(self, kind, name, description, tag_keys, boundaries, tags, value):
        with self._lock:
            series = self._series.get(name)
            if series is None:
                series = self._series[name] = _Series(kind, name, description, tag_keys, boundaries)
            series.record(tags, value)
            self._dirty.add(name)
            if self._thread is None:
                self._thread = threading.Thread(target=self._report_forever, name="oxray-metrics", daemon=True)
                self._thread.start()

    def _report_forever(self):
        last_refresh = time.monotonic()
        while True:
            time.sleep(REPORT_INTERVAL_S)
            if time.monotonic() - last_refresh >= REFRESH_S:
                last_refresh = time.monotonic()
                with self._lock:
                    self._dirty.update(self._series)
            self.flush()

    def flush(self):
        """Writes the metrics that changed since the last flush."""
        with self._lock:
            changed = [self._series[name].to_json() for name in self._dirty]
            self._dirty.clear()
        if not changed or not _native.is_connected():
            return
        me = _process_label()
        now = time.time()
        for entry in changed:
            entry["process"] = me
            entry["updated"] = now
            try:
                _native.kv_put(KV_NAMESPACE, f"{me['WorkerId']}:{entry['name']}".encode(),
                               json.dumps(entry).encode())
            except Exception:  # the cluster is gone: nothing left to report to
                return

    def forget(self):
        """Removes this process's metrics from the cluster (at a clean
        exit: its series end with it, as in Ray)."""
        with self._lock:
            names = list(self._series)
            self._series.clear()
            self._dirty.clear()
        if not names or not _native.is_connected():
            return
        worker = _native.context()["worker_id"]
        for name in names:
            try:
                _native.kv_del(KV_NAMESPACE, f"{worker}:{name}".encode())
            except Exception:  # the cluster is gone with them
                return


def _process_label():
    context = _native.context()
    ip = os.environ.get("OXRAY_NODE_IP") or "127.0.0.1"
    return {"WorkerId": context["worker_id"], "NodeAddress": ip, "NodeId": context["node_id"]}


REGISTRY = _Registry()


def read_all():
    """Every process's reported metrics (for the dashboard): a list of the
    entries `_Series.to_json` wrote, with their `process` labels. Entries
    of processes silent for long (killed ones) are dropped."""
    out = []
    now = time.time()
    for key in _native.kv_keys(KV_NAMESPACE):
        blob = _native.kv_get(KV_NAMESPACE, key)
        try:
            entry = json.loads(blob) if blob else None
        except ValueError:
            entry = None
        if entry is None or now - entry.get("updated", 0) > STALE_S:
            _native.kv_del(KV_NAMESPACE, key)
            continue
        out.append(entry)
    return out
