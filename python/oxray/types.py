"""`oxray.types`, as Ray's `ray.types`: the type of object references."""

from oxray._native import ObjectRef

__all__ = ["ObjectRef"]
