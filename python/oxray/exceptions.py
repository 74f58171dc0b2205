"""Exceptions raised by oxray, with Ray's names and hierarchy."""

import os


class RayError(Exception):
    """Base class of every error oxray raises for a cluster-side failure."""


class RaySystemError(RayError):
    """The runtime itself failed (a daemon died, a connection broke)."""

    def __init__(self, client_exc, traceback_str=None):
        super().__init__(client_exc)
        self.client_exc = client_exc
        self.traceback_str = traceback_str

    def __str__(self):
        s = f"System error: {self.client_exc}"
        if self.traceback_str:
            s += f"\ntraceback: {self.traceback_str}"
        return s


class RayTaskError(RayError):
    """A task raised an exception. `get` raises an instance that is also an
    instance of the original exception's class (see `as_instanceof_cause`)."""

    def __init__(self, function_name, traceback_str, cause, proctitle=None, pid=None, ip=None):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.proctitle = proctitle or f"oxray::{function_name}"
        self.pid = pid if pid is not None else os.getpid()
        self.ip = ip or "127.0.0.1"
        super().__init__(function_name, traceback_str, cause, self.proctitle, self.pid, self.ip)

    def __reduce__(self):
        return (
            RayTaskError,
            (self.function_name, self.traceback_str, self.cause, self.proctitle, self.pid, self.ip),
        )

    def __str__(self):
        lines = self.traceback_str.strip().split("\n")
        out = [f"{self.proctitle}() (pid={self.pid}, ip={self.ip})"]
        for line in lines:
            if line.startswith("Traceback "):
                continue
            out.append(line)
        return "\n".join(out)

    def as_instanceof_cause(self):
        """An exception that is both a RayTaskError and an instance of the
        cause's class, so `except ValueError` catches a remote ValueError."""
        cause_cls = type(self.cause)
        if self.cause is None or issubclass(RayTaskError, cause_cls):
            return self
        if issubclass(cause_cls, RayError) and isinstance(self.cause, RayTaskError):
            return self.cause
        error_msg = str(self)
        base = self

        class cls(RayTaskError, cause_cls):
            def __init__(self, cause):
                self.cause = cause
                self.args = (cause,)
                self.function_name = base.function_name
                self.traceback_str = base.traceback_str
                self.proctitle = base.proctitle
                self.pid = base.pid
                self.ip = base.ip

            def __getattr__(self, name):
                return getattr(self.cause, name)

            def __str__(self):
                return error_msg

            def __reduce__(self):
                return (_rebuild_task_error, (base,))

        name = f"RayTaskError({cause_cls.__name__})"
        cls.__name__ = name
        cls.__qualname__ = name
        try:
            return cls(self.cause)
        except Exception:  # a cause class whose __init__ rejects this
            return self


def _rebuild_task_error(base):
    return base.as_instanceof_cause()


class WorkerCrashedError(RayError):
    """The worker running the task died unexpectedly."""

    def __str__(self):
        return str(self.args[0]) if self.args else "The worker died unexpectedly while executing this task."


class TaskCancelledError(RayError):
    """The task was cancelled with `cancel`."""

    def __init__(self, task_id=None, error_message=None):
        self.task_id = task_id
        self.error_message = error_message
        super().__init__(task_id, error_message)

    def __str__(self):
        if self.error_message:
            return self.error_message
        return f"Task {self.task_id} was cancelled." if self.task_id else "This task or its dependency was cancelled."


class RayActorError(RayError):
    """An actor died or could not be reached."""

    def __init__(self, cause=None, error_msg="The actor died unexpectedly before finishing this task."):
        self.cause = cause
        self.error_msg = error_msg
        super().__init__(error_msg)

    def __str__(self):
        return self.error_msg


class ActorDiedError(RayActorError):
    """The actor is dead."""


class ActorUnavailableError(RayActorError):
    """The actor is temporarily unreachable."""


class ObjectLostError(RayError):
    """An object's value can no longer be fetched."""

    def __str__(self):
        return str(self.args[0]) if self.args else "The object was lost."


class ObjectFetchTimedOutError(ObjectLostError):
    """Fetching an object from another node timed out."""


class OwnerDiedError(ObjectLostError):
    """The process that owned the object died."""


class ObjectReconstructionFailedError(ObjectLostError):
    """An object was lost and cannot be rebuilt from its lineage.

    `reason` is Ray's error-type name: `OBJECT_UNRECONSTRUCTABLE_PUT` (made
    by `put`), `OBJECT_UNRECONSTRUCTABLE_RETRIES_DISABLED` (its task has
    `max_retries=0`) or `OBJECT_UNRECONSTRUCTABLE_MAX_ATTEMPTS_EXCEEDED`."""

    def __init__(self, message="", reason=None):
        super().__init__(message)
        self.reason = reason


class ObjectReconstructionFailedMaxAttemptsExceededError(ObjectReconstructionFailedError):
    """The task that made a lost object used up its retries."""


class ObjectReconstructionFailedLineageEvictedError(ObjectReconstructionFailedError):
    """The lineage of a lost object is gone."""


class ReferenceCountingAssertionError(ObjectLostError):
    """An object was freed while a reference to it was still in use."""


class GetTimeoutError(RayError, TimeoutError):
    """`get` ran past its timeout."""


RayTimeoutError = GetTimeoutError
"""The walkthrough's older name of GetTimeoutError."""


class ObjectStoreFullError(RayError):
    """The object store is full and nothing could be freed or spilled."""


class OutOfMemoryError(RayError):
    """A node ran out of memory."""


class OutOfDiskError(RayError):
    """A node ran out of disk for spilling."""


class PendingCallsLimitExceeded(RayError):
    """Too many calls are queued on an actor."""


class LocalRayletDiedError(RayError):
    """The local node daemon died."""


class NodeDiedError(RayError):
    """A node of the cluster died."""


class CrossLanguageError(RayError):
    """An error from another language's worker."""


class RuntimeEnvSetupError(RayError):
    """A runtime environment could not be set up."""


class TaskUnschedulableError(RayError):
    """The task can never be scheduled."""


class ActorUnschedulableError(RayError):
    """The actor can never be scheduled."""


class TaskPlacementGroupRemoved(RayError):
    """The task's placement group was removed."""


class ActorPlacementGroupRemoved(RayError):
    """The actor's placement group was removed."""


class AsyncioActorExit(RayError):
    """Raised to end an async actor."""


RAY_EXCEPTION_TYPES = [
    RayError,
    RayTaskError,
    WorkerCrashedError,
    RayActorError,
    ObjectStoreFullError,
    ObjectLostError,
    GetTimeoutError,
    TaskCancelledError,
]
