"""Entry point of a worker process (`python -m oxray._private.worker_main`),
started by the node daemon. It connects its core worker and runs the tasks
pushed to it, one at a time, on the main thread."""

import os
import signal
import sys
import threading
import traceback

import cloudpickle

from oxray import _native
from oxray import exceptions
from oxray._private import serialization
from oxray._private import worker as _worker
from oxray.remote_function import FUNCTION_NAMESPACE, ArgSlot


class PrefixedStream:
    """Writes whole lines prefixed with their origin, as Ray's
    `(f pid=1234) hello`. The daemon relays the lines to the driver."""

    def __init__(self, stream, executor):
        self._stream = stream
        self._executor = executor
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text):
        with self._lock:
            text = self._partial + text
            lines = text.split("\n")
            self._partial = lines.pop()
            if lines:
                prefix = self._executor.log_prefix()
                self._stream.write("".join(f"{prefix}{line}\n" for line in lines))
                self._stream.flush()
        return len(text)

    def flush(self):
        with self._lock:
            if self._partial:
                self._stream.write(f"{self._executor.log_prefix()}{self._partial}\n")
                self._partial = ""
            self._stream.flush()

    def isatty(self):
        return False

    def fileno(self):
        return self._stream.fileno()

    @property
    def encoding(self):
        return self._stream.encoding

    def __getattr__(self, name):
        return getattr(self._stream, name)


class Executor:
    """Runs pushed tasks on the main thread."""

    def __init__(self, session):
        self.session = session
        self.functions = {}
        self.current = None
        self.cancel_requested = None
        self.pid = os.getpid()
        self.base_cuda = os.environ.get("CUDA_VISIBLE_DEVICES")

    def log_prefix(self):
        name = self.current.function_name if self.current is not None else None
        return f"({name} pid={self.pid}) " if name else f"(pid={self.pid}) "

    def function(self, function_id):
        fn = self.functions.get(function_id)
        if fn is None:
            blob = _native.kv_get(FUNCTION_NAMESPACE, function_id)
            if blob is None:
                raise exceptions.RaySystemError(f"function {function_id.hex()} is not registered")
            fn = cloudpickle.loads(blob)
            self.functions[function_id] = fn
        return fn

    def on_cancel(self, task_id):
        """Called on a runtime thread: interrupt the main thread if it still
        runs that task. A real signal also wakes a blocking sleep or read."""
        current = self.current
        if current is not None and current.task_id == task_id:
            self.cancel_requested = task_id
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    def _sigint(self, signum, frame):
        current = self.current
        if current is not None and self.cancel_requested == current.task_id:
            self.cancel_requested = None
            raise exceptions.TaskCancelledError(current.task_id)

    def run(self):
        signal.signal(signal.SIGINT, self._sigint)
        _native.set_cancel_hook(self.on_cancel)
        while True:
            task = _native.next_task()
            if task is None:
                return
            self.execute(task)

    def _set_gpus(self, gpu_ids):
        self.session.gpu_ids = list(gpu_ids)
        if gpu_ids:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpu_ids)
        elif self.base_cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = self.base_cuda

    def execute(self, task):
        self.current = task
        self._set_gpus(task.gpu_ids)
        num_returns = task.num_returns
        retryable = False
        try:
            try:
                fn = self.function(task.function_id)
                args, kwargs = self._arguments(task)
                result = fn(*args, **kwargs)
                returns = self._split_returns(result, num_returns, task.function_name)
                out = [serialization.serialize(v, f"the return value of {task.function_name}") for v in returns]
            except exceptions.TaskCancelledError:
                out = [(task.function_name.encode(), serialization.CANCELLED, [])] * max(num_returns, 0)
            except _ArgumentError as e:
                out = [e.parts] * num_returns
            except BaseException as e:  # the user's error, reported to the caller
                retryable = self._retryable(task, e)
                out = [self._error_parts(task, e)] * num_returns
            self.current = None
            self.cancel_requested = None
            _native.complete_task(task, out, retryable)
        finally:
            self.current = None
            self.session.gpu_ids = []

    def _arguments(self, task):
        blob = task.args
        if not blob:
            return (), {}
        values = []
        for parts in task.resolved_args:
            v = serialization.deserialize(*parts)
            if isinstance(v, serialization.ErrorValue):
                raise _ArgumentError(parts)
            values.append(v)
        args, kwargs = serialization.deserialize(blob, serialization.PICKLED)
        fill = lambda v: values[v.index] if isinstance(v, ArgSlot) else v
        return [fill(a) for a in args], {k: fill(v) for k, v in kwargs.items()}

    @staticmethod
    def _split_returns(result, num_returns, name):
        if num_returns == 1:
            return [result]
        if num_returns == 0:
            return []
        try:
            values = list(result)
        except TypeError:
            raise ValueError(
                f"Task {name} has num_returns={num_returns} but returned a {type(result).__name__}, "
                "not a sequence"
            ) from None
        if len(values) != num_returns:
            raise ValueError(
                f"Task {name} returned {len(values)} objects, but num_returns={num_returns}."
            )
        return values

    @staticmethod
    def _retryable(task, error):
        blob = task.retry_exceptions
        if not blob:
            return False
        allowed = cloudpickle.loads(blob)
        if allowed is True:
            return isinstance(error, Exception)
        return isinstance(error, tuple(allowed))

    def _error_parts(self, task, error):
        if isinstance(error, exceptions.RayTaskError):
            # A failure of something this task waited on: pass it through.
            err = error
        else:
            # Skip this executor's own frame: users see their code only.
            frames = error.__traceback__.tb_next if error.__traceback__ else None
            tb = "".join(traceback.format_exception(type(error), error, frames))
            err = exceptions.RayTaskError(task.function_name, tb, error, pid=self.pid)
        try:
            data = serialization.dumps(err)
        except Exception:
            # The exception itself cannot be pickled: keep its text.
            plain = exceptions.RayTaskError(
                task.function_name, err.traceback_str,
                exceptions.RayError(f"{type(error).__name__}: {error}"), pid=self.pid,
            )
            data = serialization.dumps(plain)
        return data, serialization.TASK_ERROR, []


class _ArgumentError(Exception):
    """An argument's value is itself an error: the task fails with it."""

    def __init__(self, parts):
        self.parts = parts


def main():
    worker_id = os.environ["OXRAY_WORKER_ID"]
    session = _worker.connect_worker(os.environ["OXRAY_DAEMON_SOCKET"], worker_id, os.environ["OXRAY_SESSION_DIR"])
    executor = Executor(session)
    sys.stdout = PrefixedStream(sys.stdout, executor)
    sys.stderr = PrefixedStream(sys.stderr, executor)
    try:
        executor.run()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
