"""Utilities on top of the core API (Ray's `ray.util`): `ActorPool`,
`queue.Queue`, `multiprocessing.Pool` and the state API."""

from oxray.util.actor_pool import ActorPool

__all__ = ["ActorPool"]
