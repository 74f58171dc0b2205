"""`RayBackend`: joblib's multiprocessing backend, with its pool of
processes replaced by an `oxray.util.multiprocessing.Pool` of actors."""

from joblib._parallel_backends import FallbackToBackend, MultiprocessingBackend, SequentialBackend

import oxray
from oxray.util.multiprocessing import Pool


def _cluster_cpus():
    """The cluster's CPUs, starting (or connecting to, with RAY_ADDRESS) a
    cluster first when none runs, as Ray's backend does for n_jobs=-1."""
    if not oxray.is_initialized():
        oxray.init()
    return int(oxray.cluster_resources().get("CPU", 0))


class RayBackend(MultiprocessingBackend):
    """joblib's "ray" backend: each `Parallel` call runs its batches on a
    pool of `n_jobs` actors (`n_jobs=-1`: one per cluster CPU).
    `ray_remote_args` (given to `parallel_backend` or to `Parallel`) are
    the actors' options (`num_cpus`, `resources`, ...).

    Arguments and results travel through the object store, so joblib's
    memmapping options (`max_nbytes`, `mmap_mode`, `temp_folder`) have no
    effect."""

    def __init__(self, nesting_level=None, inner_max_num_threads=None, ray_remote_args=None, **kwargs):
        self.ray_remote_args = ray_remote_args
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads, **kwargs)

    def effective_n_jobs(self, n_jobs):
        """How many calls run at once: `n_jobs`, or the cluster's CPUs for
        -1."""
        eff_n_jobs = super().effective_n_jobs(n_jobs)
        if n_jobs == -1:
            eff_n_jobs = _cluster_cpus()
        return eff_n_jobs

    def configure(self, n_jobs=1, parallel=None, prefer=None, require=None, ray_remote_args=None,
                  **memmapping_pool_kwargs):
        """Starts the pool for one `Parallel` call; returns its size."""
        if n_jobs == -1:
            n_jobs = _cluster_cpus()
        n_jobs = self.effective_n_jobs(n_jobs)
        if n_jobs == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        cpus = _cluster_cpus()
        if cpus < n_jobs:
            # As Ray's Pool: actors beyond the cluster's CPUs would never
            # start, and the batches sent to them never run.
            raise ValueError(
                f"Tried to start a pool with {n_jobs} processes on an existing ray cluster, but there are "
                f"only {cpus} CPUs in the ray cluster."
            )
        remote_args = ray_remote_args if ray_remote_args is not None else self.ray_remote_args
        self._pool = Pool(n_jobs, ray_remote_args=remote_args)
        self.parallel = parallel
        return n_jobs
