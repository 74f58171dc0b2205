"""joblib on oxray (Ray's `ray.util.joblib`): after `register_ray()`,
`with joblib.parallel_backend("ray"): Parallel(n_jobs=...)(...)` runs the
calls in the cluster's workers, through an `oxray.util.multiprocessing.Pool`
of `n_jobs` actors."""


def register_ray():
    """Registers the "ray" backend with joblib (joblib must be installed)."""
    try:
        from joblib.parallel import register_parallel_backend

        from oxray.util.joblib.ray_backend import RayBackend
    except ImportError:
        raise ImportError(
            "To use the ray backend you must install joblib. Try running 'pip install joblib'."
        ) from None
    register_parallel_backend("ray", RayBackend)


__all__ = ["register_ray"]
