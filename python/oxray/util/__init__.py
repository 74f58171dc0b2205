"""Utilities on top of the core API (Ray's `ray.util`)."""
