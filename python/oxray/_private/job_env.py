"""The driver side of job submission: what `init` does differently in the
driver of a job submitted through the Jobs API.

The job manager (oxray.dashboard.job_manager) starts the driver with the
job's config in `RAY_JOB_CONFIG_JSON_ENV_VAR` (Ray's variable: a JSON
object with the job's `runtime_env` and `metadata`). `init` merges that
runtime_env with its own, as Ray's does, so that every task and actor of
the job runs in it; and once connected the driver records its job id and
pid in the cluster's KV store for the job manager (`JobDetails.job_id`,
`driver_info`).

Also here: `EntrypointHolder`, the actor that holds a job's
`entrypoint_num_cpus`/`gpus`/`memory`/`resources` while its driver runs
(the part of Ray's supervisor actor that reserves them)."""

import copy
import json
import os

#: Ray's variable carrying a submitted job's config to its driver.
JOB_CONFIG_ENV_VAR = "RAY_JOB_CONFIG_JSON_ENV_VAR"
#: Set to "1", `init`'s runtime_env overrides the job's on conflicts (Ray's).
OVERRIDE_ENV_VAR = "RAY_OVERRIDE_JOB_RUNTIME_ENV"
#: The KV namespace of the job manager's records.
KV_NAMESPACE = "jobs"
#: The KV key where a job's driver records itself.
DRIVER_KEY = "driver_{submission_id}"
#: The metadata key naming the submission (Ray's JOB_ID_METADATA_KEY).
SUBMISSION_ID_KEY = "job_submission_id"


def merge_runtime_env(parent, child, override=False):
    """Ray's `_merge_runtime_env`: the job's runtime_env (`parent`) with
    `init`'s (`child`) field by field and variable by variable; None when
    both set the same field or variable and `override` is false."""
    parent = copy.deepcopy(dict(parent or {}))
    child = copy.deepcopy(dict(child or {}))
    parent_vars = parent.pop("env_vars", None) or {}
    child_vars = child.pop("env_vars", None) or {}
    if not override:
        if set(parent) & set(child) or set(parent_vars) & set(child_vars):
            return None
    parent.update(child)
    parent_vars.update(child_vars)
    if parent_vars:
        parent["env_vars"] = parent_vars
    return parent


def apply_injected(runtime_env, job_config):
    """`(runtime_env, job_config)` for `init` in this process: unchanged
    outside a submitted job's driver; in one, the job's runtime_env merged
    with `runtime_env` and the job's metadata added to `job_config` (the
    job's own config when `init` got none)."""
    raw = os.environ.get(JOB_CONFIG_ENV_VAR)
    if not raw:
        return runtime_env, job_config
    from oxray.job_config import JobConfig

    injected = JobConfig.from_json(json.loads(raw))
    merged = merge_runtime_env(injected.runtime_env, runtime_env,
                               override=os.environ.get(OVERRIDE_ENV_VAR) == "1")
    if merged is None:
        raise ValueError(
            f"Failed to merge the Job's runtime env {injected.runtime_env} with a ray.init's runtime env "
            f"{runtime_env} because of a conflict. Specifying the same runtime_env fields or the same "
            f"environment variable keys is not allowed. Use {OVERRIDE_ENV_VAR}=1 to instruct Ray to combine "
            "Job and Driver's runtime environment in the event of a conflict."
        )
    if job_config is None:
        job_config = injected
    else:
        for key, value in injected.metadata.items():
            job_config.set_metadata(key, value)
    return (merged or None), job_config


def record_driver(job_config):
    """Called by `init` once connected: a submitted job's driver tells the
    job manager its job id and pid (nothing happens in other drivers)."""
    submission_id = (getattr(job_config, "metadata", None) or {}).get(SUBMISSION_ID_KEY)
    if not submission_id or not os.environ.get(JOB_CONFIG_ENV_VAR):
        return
    from oxray import _native
    from oxray.runtime_context import job_id_hex

    record = {"id": job_id_hex(_native.context()["job_id"]), "pid": str(os.getpid())}
    _native.kv_put(KV_NAMESPACE, DRIVER_KEY.format(submission_id=submission_id).encode(),
                   json.dumps(record).encode())


class EntrypointHolder:
    """An actor (made with the job's entrypoint resources) whose only task
    is to hold them while the job's driver runs; `gpu_ids` tells the job
    manager which GPUs the driver may use."""

    def gpu_ids(self):
        """The ids of the GPUs this actor holds."""
        import oxray

        return [str(i) for i in oxray.get_gpu_ids()]
