"""The constants of Ray's `ray._private.ray_constants` that libraries built
on Ray core read (reachable as `ray._private.ray_constants` and
`ray.ray_constants` under `oxray.install_as_ray()`), with Ray's values, and
its `env_*` helpers. Constants of Ray's components oxray does not run
(dashboard, Redis, autoscaler) keep Ray's values so that code reading them
still works; oxray itself does not act on them."""

import os


def env_integer(key, default):
    """The integer in environment variable `key`, else `default`."""
    if key in os.environ:
        value = os.environ[key]
        if value.isdigit():
            return int(value)
        raise ValueError(f"Found {key} in environment, but value must be an integer. Got: {value}.")
    return default


def env_float(key, default):
    """The float in environment variable `key`, else `default`."""
    if key in os.environ:
        value = os.environ[key]
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"Found {key} in environment, but value must be a float. Got: {value}.") from None
    return default


def env_bool(key, default):
    """The boolean in environment variable `key` ("true"/"1" are true),
    else `default`."""
    if key in os.environ:
        return os.environ[key].lower() in ("true", "1")
    return default


def env_set_by_user(key):
    """Whether the user set environment variable `key`."""
    return key in os.environ


# Ids.
ID_SIZE = 28

# Addresses and environment variables of the cluster.
DEFAULT_PORT = 6379
RAY_ADDRESS_ENVIRONMENT_VARIABLE = "RAY_ADDRESS"
RAY_NAMESPACE_ENVIRONMENT_VARIABLE = "RAY_NAMESPACE"
RAY_RUNTIME_ENV_ENVIRONMENT_VARIABLE = "RAY_RUNTIME_ENV"
RAY_RUNTIME_ENV_HOOK = "RAY_RUNTIME_ENV_HOOK"
RAY_START_HOOK = "RAY_START_HOOK"
RAY_JOB_SUBMIT_HOOK = "RAY_JOB_SUBMIT_HOOK"
RESOURCES_ENVIRONMENT_VARIABLE = "RAY_OVERRIDE_RESOURCES"
LABELS_ENVIRONMENT_VARIABLE = "RAY_OVERRIDE_LABELS"
NOSET_CUDA_VISIBLE_DEVICES_ENV_VAR = "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"
RAY_OVERRIDE_DASHBOARD_URL = "RAY_OVERRIDE_DASHBOARD_URL"

# Redis (oxray runs none; libraries still pass these to init).
REDIS_DEFAULT_USERNAME = ""
REDIS_DEFAULT_PASSWORD = ""

# Dashboard (oxray has none yet).
DEFAULT_DASHBOARD_IP = "127.0.0.1"
DEFAULT_DASHBOARD_PORT = 8265
DASHBOARD_ADDRESS = "dashboard"
DEFAULT_DASHBOARD_AGENT_LISTEN_PORT = 52365

# Object store sizing.
DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES = env_integer("RAY_DEFAULT_OBJECT_STORE_MAX_MEMORY_BYTES", 200 * 10**9)
DEFAULT_OBJECT_STORE_MEMORY_PROPORTION = env_float("RAY_DEFAULT_OBJECT_STORE_MEMORY_PROPORTION", 0.3)
OBJECT_STORE_MINIMUM_MEMORY_BYTES = 75 * 1024 * 1024
REQUIRE_SHM_SIZE_THRESHOLD = 10**10
MAC_DEGRADED_PERF_MMAP_SIZE_LIMIT = 2 * 2**30
CALLER_MEMORY_USAGE_PER_OBJECT_REF = 3000

# Resources.
MAX_RESOURCE_QUANTITY = 100e12
MIN_RESOURCE_GRANULARITY = 0.0001
NODE_ID_PREFIX = "node:"
HEAD_NODE_RESOURCE_NAME = NODE_ID_PREFIX + "__internal_head__"

# Actor and task defaults.
DEFAULT_ACTOR_METHOD_CPU_SIMPLE = 1
DEFAULT_ACTOR_CREATION_CPU_SIMPLE = 0
DEFAULT_ACTOR_METHOD_CPU_SPECIFIED = 0
DEFAULT_ACTOR_CREATION_CPU_SPECIFIED = 1
DEFAULT_ACTOR_METHOD_NUM_RETURN_VALS = 1
DEFAULT_TASK_MAX_RETRIES = 3
FUNCTION_SIZE_WARN_THRESHOLD = 10**7
FUNCTION_SIZE_ERROR_THRESHOLD = env_integer("FUNCTION_SIZE_ERROR_THRESHOLD", 10**8)
DUPLICATE_REMOTE_FUNCTION_THRESHOLD = 100

# Logging.
LOGGER_FORMAT = "%(asctime)s\t%(levelname)s %(filename)s:%(lineno)s -- %(message)s"
LOGGER_LEVEL = os.environ.get("RAY_LOGGER_LEVEL", "info")
LOGGER_LEVEL_CHOICES = ["debug", "info", "warning", "error", "critical"]
LOGGING_ROTATE_BYTES = 512 * 1024 * 1024
LOGGING_ROTATE_BACKUP_COUNT = 5
RAY_LOG_TO_DRIVER = env_bool("RAY_LOG_TO_DRIVER", True)
RAY_DEDUP_LOGS = env_bool("RAY_DEDUP_LOGS", True)

# Kinds of processes and errors, as Ray names them in its logs and events.
PROCESS_TYPE_WORKER = "worker"
PROCESS_TYPE_RAYLET = "raylet"
PROCESS_TYPE_GCS_SERVER = "gcs_server"
PROCESS_TYPE_DASHBOARD = "dashboard"
WORKER_DIED_PUSH_ERROR = "worker_died"
WORKER_CRASH_PUSH_ERROR = "worker_crash"
REMOVED_NODE_ERROR = "node_removed"

# Object metadata tags.
OBJECT_METADATA_TYPE_CROSS_LANGUAGE = b"XLANG"
OBJECT_METADATA_TYPE_PYTHON = b"PYTHON"
OBJECT_METADATA_TYPE_RAW = b"RAW"
OBJECT_METADATA_TYPE_ACTOR_HANDLE = b"ACTOR_HANDLE"

MAX_APPLICATION_ERROR_LENGTH = env_integer("RAY_MAX_APPLICATION_ERROR_LENGTH", 500)
