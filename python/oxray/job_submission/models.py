"""The data of Ray's Jobs API, shared by the client (`sdk`) and the
dashboard's job server: `JobStatus`, `JobInfo`, `JobDetails` (with
`DriverInfo`, `JobType`), the request `JobSubmitRequest`, and Ray's
status messages. Standard library only: the client needs no web
framework, and pydantic is not required (`JobDetails` is a dataclass
with pydantic's `dict()` / `json()`)."""

import dataclasses
import enum
import json
from typing import Any, Dict, Optional, Union

#: Ray's version of the Jobs REST API (`GET /api/version`'s "version").
API_VERSION = "4"
#: The metadata keys the job manager sets for every job's driver (Ray's).
JOB_ID_METADATA_KEY = "job_submission_id"
JOB_NAME_METADATA_KEY = "job_name"
#: The per-job log file, in the head's logs directory (Ray's name).
JOB_LOGS_PATH_TEMPLATE = "job-driver-{submission_id}.log"


class JobStatus(str, enum.Enum):
    """The status of a submitted job (Ray's `JobStatus`)."""

    #: The job has not started yet (its driver is being set up).
    PENDING = "PENDING"
    #: The job's driver is running.
    RUNNING = "RUNNING"
    #: The job was intentionally stopped by the user.
    STOPPED = "STOPPED"
    #: The job's driver exited with code 0.
    SUCCEEDED = "SUCCEEDED"
    #: The job's driver failed (or could not be started).
    FAILED = "FAILED"

    def __str__(self):
        return f"{self.value}"

    def is_terminal(self):
        """Whether this status can no longer change (STOPPED, SUCCEEDED,
        FAILED)."""
        return self.value in {"STOPPED", "SUCCEEDED", "FAILED"}


class JobErrorType(str, enum.Enum):
    """Why a job failed (the `error_type` of a FAILED job, as Ray's)."""

    #: The entrypoint command exited with a non-zero code.
    JOB_ENTRYPOINT_COMMAND_ERROR = "JOB_ENTRYPOINT_COMMAND_ERROR"
    #: The entrypoint command could not be started.
    JOB_ENTRYPOINT_COMMAND_START_ERROR = "JOB_ENTRYPOINT_COMMAND_START_ERROR"
    #: The resources for the entrypoint never became available in time.
    JOB_SUPERVISOR_ACTOR_START_TIMEOUT = "JOB_SUPERVISOR_ACTOR_START_TIMEOUT"
    #: The job's runtime_env could not be set up for its driver.
    RUNTIME_ENV_SETUP_FAILURE = "RUNTIME_ENV_SETUP_FAILURE"
    #: The process watching the driver (the dashboard) lost it.
    JOB_SUPERVISOR_ACTOR_DIED = "JOB_SUPERVISOR_ACTOR_DIED"

    def __str__(self):
        return f"{self.value}"


class JobType(str, enum.Enum):
    """Whether a job was submitted through the Jobs API or started by a
    driver script (Ray's `JobType`)."""

    SUBMISSION = "SUBMISSION"
    DRIVER = "DRIVER"

    def __str__(self):
        return f"{self.value}"


def _default_message(status, info):
    """Ray's message for a status when none is given."""
    if status == JobStatus.PENDING:
        message = "Job has not started yet."
        if any([
            (info.entrypoint_num_cpus or 0) > 0,
            (info.entrypoint_num_gpus or 0) > 0,
            (info.entrypoint_memory or 0) > 0,
            info.entrypoint_resources not in (None, {}),
        ]):
            message += " It may be waiting for resources (CPUs, GPUs, memory, custom resources) to become available."
        if info.runtime_env not in (None, {}):
            message += " It may be waiting for the runtime environment to be set up."
        return message
    return {
        JobStatus.RUNNING: "Job is currently running.",
        JobStatus.STOPPED: "Job was intentionally stopped.",
        JobStatus.SUCCEEDED: "Job finished successfully.",
        JobStatus.FAILED: "Job failed.",
    }[status]


@dataclasses.dataclass
class JobInfo:
    """What the cluster records about a submitted job (Ray's `JobInfo`).
    Times are Unix timestamps in milliseconds."""

    status: JobStatus
    entrypoint: str
    message: Optional[str] = None
    error_type: Optional[str] = None
    start_time: Optional[int] = None
    end_time: Optional[int] = None
    metadata: Optional[Dict[str, str]] = None
    runtime_env: Optional[Dict[str, Any]] = None
    entrypoint_num_cpus: Optional[Union[int, float]] = None
    entrypoint_num_gpus: Optional[Union[int, float]] = None
    entrypoint_memory: Optional[int] = None
    entrypoint_resources: Optional[Dict[str, float]] = None
    driver_agent_http_address: Optional[str] = None
    driver_node_id: Optional[str] = None
    driver_exit_code: Optional[int] = None

    def __post_init__(self):
        if isinstance(self.status, str):
            self.status = JobStatus(self.status)
        if self.message is None:
            self.message = _default_message(self.status, self)

    def to_json(self):
        """A JSON-serializable dict (runtime_env as the string
        `runtime_env_json`, as Ray stores it)."""
        out = dataclasses.asdict(self)
        out["status"] = str(out["status"])
        runtime_env = out.pop("runtime_env")
        if runtime_env is not None:
            out["runtime_env_json"] = json.dumps(runtime_env)
        return out

    @classmethod
    def from_json(cls, json_dict):
        """The JobInfo of a `to_json` dict (unknown keys are ignored)."""
        data = dict(json_dict)
        if data.get("runtime_env_json") is not None:
            data["runtime_env"] = json.loads(data["runtime_env_json"])
        data.pop("runtime_env_json", None)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclasses.dataclass
class DriverInfo:
    """The driver process of a job (Ray's `DriverInfo`): its job id, the IP
    of its node and its pid (a string, as Ray's)."""

    id: str
    node_ip_address: str
    pid: str

    def dict(self):
        """This driver as a plain dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class JobDetails:
    """A job with its driver and submission (Ray's `JobDetails`, the rows
    of `list_jobs` and `get_job_info`). `job_id` is the id of the driver's
    job (`get_runtime_context().get_job_id()`) once the driver has
    connected, `submission_id` the Jobs API's id."""

    type: JobType
    status: JobStatus
    entrypoint: str
    job_id: Optional[str] = None
    submission_id: Optional[str] = None
    driver_info: Optional[DriverInfo] = None
    message: Optional[str] = None
    error_type: Optional[str] = None
    start_time: Optional[int] = None
    end_time: Optional[int] = None
    metadata: Optional[Dict[str, str]] = None
    runtime_env: Optional[Dict[str, Any]] = None
    driver_agent_http_address: Optional[str] = None
    driver_node_id: Optional[str] = None
    driver_exit_code: Optional[int] = None
    entrypoint_num_cpus: Optional[Union[int, float]] = None
    entrypoint_num_gpus: Optional[Union[int, float]] = None
    entrypoint_memory: Optional[int] = None
    entrypoint_resources: Optional[Dict[str, float]] = None

    def __post_init__(self):
        if isinstance(self.type, str):
            self.type = JobType(self.type.upper())
        if isinstance(self.status, str):
            self.status = JobStatus(self.status)
        if isinstance(self.driver_info, dict):
            self.driver_info = DriverInfo(**{k: self.driver_info.get(k) for k in ("id", "node_ip_address", "pid")})

    @classmethod
    def from_json(cls, json_dict):
        """The JobDetails of a JSON dict (unknown keys are ignored, as
        pydantic does)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json_dict.items() if k in names})

    def dict(self):
        """A JSON-serializable dict (pydantic's `.dict()`, enums as their
        string values)."""
        out = dataclasses.asdict(self)
        out["type"] = str(self.type)
        out["status"] = str(self.status)
        return out

    model_dump = dict

    def json(self):
        """This job as a JSON string."""
        return json.dumps(self.dict())


@dataclasses.dataclass
class JobSubmitRequest:
    """The body of `POST /api/jobs/` (Ray's `JobSubmitRequest`); raises
    TypeError for a field of the wrong type, as Ray's."""

    entrypoint: str
    submission_id: Optional[str] = None
    job_id: Optional[str] = None  # deprecated: submission_id
    runtime_env: Optional[Dict[str, Any]] = None
    metadata: Optional[Dict[str, str]] = None
    entrypoint_num_cpus: Optional[Union[int, float]] = None
    entrypoint_num_gpus: Optional[Union[int, float]] = None
    entrypoint_memory: Optional[int] = None
    entrypoint_resources: Optional[Dict[str, float]] = None

    def __post_init__(self):
        def number(value):
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        if not isinstance(self.entrypoint, str):
            raise TypeError(f"entrypoint must be a string, got {type(self.entrypoint)}")
        for name in ("submission_id", "job_id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string if provided, got {type(value)}")
        if self.runtime_env is not None:
            if not isinstance(self.runtime_env, dict):
                raise TypeError(f"runtime_env must be a dict, got {type(self.runtime_env)}")
            for k in self.runtime_env:
                if not isinstance(k, str):
                    raise TypeError(f"runtime_env keys must be strings, got {type(k)}")
        if self.metadata is not None:
            if not isinstance(self.metadata, dict):
                raise TypeError(f"metadata must be a dict, got {type(self.metadata)}")
            for k, v in self.metadata.items():
                if not isinstance(k, str):
                    raise TypeError(f"metadata keys must be strings, got {type(k)}")
                if not isinstance(v, str):
                    raise TypeError(f"metadata values must be strings, got {type(v)}")
        for name in ("entrypoint_num_cpus", "entrypoint_num_gpus"):
            value = getattr(self, name)
            if value is not None and not number(value):
                raise TypeError(f"{name} must be a number, got {type(value)}")
        if self.entrypoint_memory is not None and (
                not isinstance(self.entrypoint_memory, int) or isinstance(self.entrypoint_memory, bool)):
            raise TypeError(f"entrypoint_memory must be an integer, got {type(self.entrypoint_memory)}")
        if self.entrypoint_resources is not None:
            if not isinstance(self.entrypoint_resources, dict):
                raise TypeError(f"entrypoint_resources must be a dict, got {type(self.entrypoint_resources)}")
            for k, v in self.entrypoint_resources.items():
                if not isinstance(k, str):
                    raise TypeError(f"entrypoint_resources keys must be strings, got {type(k)}")
                if not number(v):
                    raise TypeError(f"entrypoint_resources values must be numbers, got {type(v)}")


def strip_none(data):
    """`data` without the keys whose value is None (Ray sends and accepts
    requests so, for compatibility between versions)."""
    return {k: v for k, v in data.items() if v is not None}
