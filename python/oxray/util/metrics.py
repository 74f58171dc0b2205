"""Users' own metrics, as Ray's `ray.util.metrics`: `Counter`, `Gauge` and
`Histogram`, recorded in any task, actor or driver and served by the head's
dashboard at `/metrics` in Prometheus' format (named `ray_<name>`, counters
`ray_<name>_total`, as Ray exports them)."""

import re
import warnings

from oxray._private.metrics_export import REGISTRY

# Prometheus' metric name rule (as Ray checks it).
_VALID_METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class Metric:
    """What `Counter`, `Gauge` and `Histogram` share: a name, a description,
    tag keys, and default tags."""

    _kind = None

    def __init__(self, name, description="", tag_keys=None):
        if len(name) == 0:
            raise ValueError("Empty name is not allowed. Please provide a metric name.")
        self._discard_metric = not _VALID_METRIC_NAME_RE.match(name)
        if self._discard_metric:
            warnings.warn(
                f"Invalid metric name: {name}. Metric will be discarded and data will not be collected or "
                "published. Metric names can only contain letters, numbers, _, and :. Metric names cannot "
                "start with numbers.", UserWarning, stacklevel=3,
            )
        self._name = name
        self._description = description
        self._default_tags = {}
        self._tag_keys = tag_keys or tuple()
        if not isinstance(self._tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(self._tag_keys)}")
        for key in self._tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"Tag keys must be str, got {type(key)}.")

    def set_default_tags(self, default_tags):
        """Tags used when a record names none; returns the metric itself."""
        for key, value in default_tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key}.")
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str, got {type(value)}.")
        self._default_tags = default_tags
        return self

    def _record(self, value, tags=None, boundaries=None):
        if self._discard_metric:
            return
        if tags:
            for v in tags.values():
                if not isinstance(v, str):
                    raise TypeError(f"Tag values must be str, got {type(v)}.")
            final = {**self._default_tags, **tags}
        else:
            final = self._default_tags
        missing = [key for key in self._tag_keys if key not in final]
        if missing:
            raise ValueError(f"Missing value for tag key(s): {','.join(missing)}.")
        unknown = [key for key in final if key not in self._tag_keys]
        if unknown:
            raise ValueError(f"Unrecognized tag key(s): {','.join(unknown)}.")
        REGISTRY.record(self._kind, self._name, self._description, self._tag_keys, boundaries, final, value)

    @property
    def info(self):
        """The metric's name, description, tag keys and default tags."""
        return {"name": self._name, "description": self._description, "tag_keys": self._tag_keys,
                "default_tags": self._default_tags}

    def __reduce__(self):
        return self.__class__, (self._name, self._description, self._tag_keys)


def _check_number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"value must be int or float, got {type(value)}.")


class Counter(Metric):
    """A cumulative metric that only goes up (Prometheus' counter)."""

    _kind = "counter"

    def inc(self, value=1.0, tags=None):
        """Adds `value` (default 1, must be > 0)."""
        _check_number(value)
        if value <= 0:
            raise ValueError(f"value must be >0, got {value}")
        self._record(value, tags)


class Gauge(Metric):
    """The last value recorded (Prometheus' gauge)."""

    _kind = "gauge"

    def set(self, value, tags=None):
        """Sets the gauge to `value` (None: no-op)."""
        if value is None:
            return
        _check_number(value)
        self._record(value, tags)


class Histogram(Metric):
    """Counts of values in buckets (Prometheus' histogram)."""

    _kind = "histogram"

    def __init__(self, name, description="", boundaries=None, tag_keys=None):
        super().__init__(name, description, tag_keys)
        if boundaries is None or len(boundaries) == 0:
            raise ValueError(
                "boundaries argument should be provided when using the Histogram class. e.g., "
                'Histogram("name", boundaries=[1.0, 2.0])'
            )
        for i, boundary in enumerate(boundaries):
            if boundary <= 0:
                raise ValueError(
                    f"Invalid `boundaries` argument at index {i}, {boundaries}. Use positive values for the "
                    "arguments."
                )
        self.boundaries = sorted(boundaries)

    def observe(self, value, tags=None):
        """Adds `value` to its bucket."""
        _check_number(value)
        self._record(value, tags, self.boundaries)

    @property
    def info(self):
        """As `Metric.info`, with the boundaries."""
        return {**super().info, "boundaries": self.boundaries}

    def __reduce__(self):
        return Histogram, (self._name, self._description, self.boundaries, self._tag_keys)


__all__ = ["Counter", "Gauge", "Histogram"]
