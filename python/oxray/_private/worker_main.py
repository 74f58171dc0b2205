"""Entry point of a worker process (`python -m oxray._private.worker_main`),
started by the node daemon. It connects its core worker and runs the tasks
pushed to it: plain tasks one at a time on the main thread; once it hosts an
actor, the actor's calls in order (or on N threads with max_concurrency, or
on an event loop for async actors; with concurrency groups, each group has
its own threads, or its own limit on the loop)."""

import asyncio
import atexit
import inspect
import os
import queue
import signal
import sys
import threading
import traceback

import cloudpickle

from oxray import _native
from oxray import exceptions
from oxray._private import generators
from oxray._private import runtime_env_packages
from oxray._private import serialization
from oxray._private import worker_logs
from oxray._private import worker as _worker
from oxray.actor import CONCURRENCY_GROUPS_KWARG, PUT_METHOD, TERMINATE_METHOD
from oxray.remote_function import FUNCTION_NAMESPACE, ArgSlot

# Frames of these files are the runtime's, not the user's: tracebacks skip them.
_RUNTIME_FILES = (__file__, generators.__file__)


class PrefixedStream:
    """Writes whole lines prefixed with their origin, as Ray's
    `(f pid=1234) hello`. The daemon relays the lines to the driver."""

    # The worker's log file for this stream (worker_logs.attach), if any.
    log = None

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
                if self.log is not None:
                    self.log.write_lines(lines)
        return len(text)

    def flush(self):
        with self._lock:
            if self._partial:
                self._stream.write(f"{self._executor.log_prefix()}{self._partial}\n")
                if self.log is not None:
                    self.log.write_lines([self._partial])
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


class _ArgumentError(Exception):
    """An argument's value is itself an error: the task fails with it."""

    def __init__(self, parts):
        self.parts = parts


class Executor:
    """Runs pushed tasks."""

    def __init__(self, session):
        self.session = session
        self.functions = {}
        self.current = None
        self.cancel_requested = None
        # True while a plain task's own code runs (what cancel interrupts).
        self.interruptible = False
        self.pid = os.getpid()
        self.base_cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
        self.actor = None
        self.actor_id = None
        self.actor_name = None
        # The actor's creation task: its job and resources are the actor's.
        self.creation = None
        self.loop = None
        self.semaphore = None
        # Concurrency groups: {name: limit} as declared, the group of each
        # method, and per group a queue (threaded) or semaphore (async).
        self.concurrency_groups = {}
        self.method_groups = {}
        self.group_queues = {}
        self.group_semaphores = {}
        # The code packages (working_dir, py_modules) the running plain task
        # entered, restored after it; or why they could not be set up (the
        # task fails with it, see _prepare).
        self.entered_packages = None
        self.runtime_env_error = None

    # --- context -----------------------------------------------------------
    def log_prefix(self):
        if self.actor_name:
            return f"({self.actor_name} pid={self.pid}) "
        current = self.current
        name = current.function_name if current is not None else None
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

    def _set_gpus(self, gpu_ids):
        self.session.gpu_ids = list(gpu_ids)
        if gpu_ids:
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpu_ids)
        elif self.base_cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = self.base_cuda

    # --- cancellation --------------------------------------------------------
    def on_cancel(self, task_id):
        """The running task `task_id` was cancelled (without force): raise
        KeyboardInterrupt in it, as Ray does, so its own clean-up runs.

        Called on whichever thread drives the runtime. From another thread,
        a real SIGINT interrupts the main thread, also in a blocking sleep or
        read. On the main thread itself, the task is blocked in `get` or
        `wait`, which the runtime ends with KeyboardInterrupt on its own (a
        signal here would raise inside this callback instead)."""
        current = self.current
        if current is None or current.task_id != task_id or self.actor is not None:
            return
        self.cancel_requested = task_id
        if threading.current_thread() is not threading.main_thread():
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    def _sigint(self, signum, frame):
        # Only the task's own code is interrupted; a cancel that lands after
        # it returned still makes the outcome "cancelled" (see execute).
        current = self.current
        if current is not None and self.cancel_requested == current.task_id and self.interruptible:
            raise KeyboardInterrupt(f"Task {current.task_id} was cancelled.")

    # --- the loop ------------------------------------------------------------
    def run(self):
        signal.signal(signal.SIGINT, self._sigint)
        _native.set_cancel_hook(self.on_cancel)
        self._loop_tasks()

    def _loop_tasks(self):
        while self.loop is None and not self.group_queues:
            task = _native.next_task()
            if task is None:
                return
            self.execute(task)
        if self.group_queues:
            self._dispatch_to_groups()
        else:
            # An async actor: its event loop takes the tasks from now on.
            threading.Event().wait()

    def _drain_into_loop(self):
        """Runs on the event loop when the task pipe is readable."""
        try:
            os.read(self._notify_fd, 65536)
        except BlockingIOError:
            pass
        while True:
            task = _native.try_next_task()
            if task is None:
                return
            self.loop.create_task(self.execute_async(task))

    def _dispatch_to_groups(self):
        """Threaded actor with concurrency groups: this thread hands each
        call to the threads of its method's group."""
        while True:
            task = _native.next_task()
            if task is None:
                return
            self.group_queues[self._group_of(task)].put(task)

    def _serve_group(self, tasks):
        while True:
            self.execute(tasks.get())

    def _group_of(self, task):
        group = self.method_groups.get(task.method_name)
        return group if group in self.concurrency_groups else None

    def execute(self, task):
        if not self.actor_name:
            self.current = task
        if not task.method_name:
            # Plain tasks get their lease's GPUs; an actor keeps the GPUs
            # its creation task was given.
            self._set_gpus(task.gpu_ids)
        # Most tasks set no variables and run where none were set.
        env_vars = task.env_vars
        saved_env = None
        if env_vars is not None or (self.session.runtime_env is not None and not task.method_name):
            saved_env = self._enter_runtime_env(task, env_vars)
        running = _worker.RUNNING_TASK.set(task)
        try:
            fn, args, kwargs = self._prepare(task)
            self.interruptible = True
            try:
                result = fn(*args, **kwargs)
                if task.returns_kind:
                    result = generators.drain(task, result, _worker.put)
            finally:
                self.interruptible = False
            out, retryable, error = self._success(task, result), False, None
        except BaseException as e:  # reported to the caller
            out, retryable, error = self._failure(task, e)
        finally:
            if self.cancel_requested is not None and self.cancel_requested == task.task_id:
                # Cancelled, however the task ended (it may have caught the
                # KeyboardInterrupt): its caller sees TaskCancelledError.
                out, retryable, error = self._cancelled(task), False, None
            _worker.RUNNING_TASK.reset(running)
            self.current = None
            self.cancel_requested = None
            if saved_env is not None:
                self._leave_runtime_env(saved_env)
        _native.complete_task(task, out, retryable, error)
        if task.actor_creation and self.actor is not None:
            self._start_concurrency(task)

    async def execute_async(self, task):
        semaphore = self.group_semaphores.get(self._group_of(task), self.semaphore)
        _worker.RUNNING_TASK.set(task)  # this asyncio task's own context
        async with semaphore:
            try:
                fn, args, kwargs = self._prepare(task)
                result = fn(*args, **kwargs)
                if task.returns_kind:
                    result = await generators.drain_async(task, result, _worker.put)
                elif inspect.isawaitable(result):
                    result = await result
                out, retryable, error = self._success(task, result), False, None
            except BaseException as e:  # reported to the caller
                out, retryable, error = self._failure(task, e)
            _native.complete_task(task, out, retryable, error)

    def _enter_runtime_env(self, task, env_vars):
        """Applies a plain task's or an actor creation's `env_vars`. Returns
        what to restore after a plain task (None when nothing changed, and
        for an actor, which keeps its environment for life)."""
        if task.method_name:
            return None
        self.session.runtime_env = {"env_vars": dict(env_vars)} if env_vars else None
        if not env_vars:
            return None
        # The packages ride in a reserved variable: they set the cwd and
        # sys.path, not an environment variable.
        env_vars, packages = runtime_env_packages.split(env_vars)
        saved = {name: os.environ.get(name) for name, _ in env_vars}
        os.environ.update(env_vars)
        if packages:
            try:
                entered = runtime_env_packages.enter(packages, self.functions)
            except Exception as e:
                self.runtime_env_error = exceptions.RuntimeEnvSetupError(
                    f"Failed to set up the runtime_env's code ({packages}): {type(e).__name__}: {e}")
            else:
                if not task.actor_creation:
                    self.entered_packages = entered
        return None if task.actor_creation else saved

    def _leave_runtime_env(self, saved):
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        entered, self.entered_packages = self.entered_packages, None
        if entered is not None:
            runtime_env_packages.leave(entered, self.functions)

    # --- one task --------------------------------------------------------------
    def _prepare(self, task):
        """The callable and arguments of a task."""
        if self.runtime_env_error is not None:
            error, self.runtime_env_error = self.runtime_env_error, None
            raise error
        if task.namespace:
            self.session.namespace = task.namespace
        if not task.method_name:
            # A plain task or an actor's creation: the group it runs in
            # (an actor's calls keep its creation's).
            group = task.placement_group_id or None
            self.session.current_placement_group = group
            self.session.captured_placement_group = group if task.capture_child_tasks else None
        args, kwargs = self._arguments(task)
        if task.actor_creation:
            cls = self.function(task.function_id)
            self.creation = task
            self.actor_id = task.actor_id
            # The creation task's attempt is the actor's incarnation: above
            # zero once it was restarted.
            self.session.actor_reconstructed = task.attempt > 0
            self.actor_name = cls.__name__
            return self._create_actor, (cls, args, kwargs), {}
        if task.method_name:
            if task.method_name == TERMINATE_METHOD:
                return self._exit_actor, (), {}
            if task.method_name == PUT_METHOD:
                # Returned inside a list: the caller borrows the ref.
                return (lambda value: [_worker.put(value)]), args, kwargs
            if self.actor is None:
                raise exceptions.RaySystemError("this worker hosts no actor")
            return getattr(self.actor, task.method_name), args, kwargs
        return self.function(task.function_id), args, kwargs

    def _create_actor(self, cls, args, kwargs):
        groups = kwargs.pop(CONCURRENCY_GROUPS_KWARG, None) or {}
        instance = cls(*args, **kwargs)
        self.actor = instance
        self.concurrency_groups = groups
        for name, member in inspect.getmembers(cls):
            group = getattr(member, "__oxray_method_options__", {}).get("concurrency_group")
            if group is not None:
                self.method_groups[name] = group
        return None

    def _start_concurrency(self, task):
        methods = [m for _, m in inspect.getmembers(type(self.actor)) if inspect.isfunction(m)]
        is_async = any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m) for m in methods)
        if self.concurrency_groups and not is_async:
            # The calls of the default group, and of each named one, get
            # their own threads; this thread only sorts them.
            limits = {None: max(1, task.max_concurrency), **self.concurrency_groups}
            for group, limit in limits.items():
                tasks = self.group_queues[group] = queue.SimpleQueue()
                for i in range(limit):
                    threading.Thread(target=self._serve_group, args=(tasks,),
                                     name=f"oxray-actor-{group or 'default'}-{i}", daemon=True).start()
            return
        if is_async:
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            self._notify_fd = _native.task_notify_fd()

            def run_loop():
                asyncio.set_event_loop(loop)
                self.semaphore = asyncio.Semaphore(max(1, task.max_concurrency))
                self.group_semaphores = {g: asyncio.Semaphore(n) for g, n in self.concurrency_groups.items()}
                loop.add_reader(self._notify_fd, self._drain_into_loop)
                loop.call_soon(self._drain_into_loop)  # tasks that came first
                ready.set()
                loop.run_forever()

            self.loop = loop
            threading.Thread(target=run_loop, name="oxray-actor-loop", daemon=True).start()
            ready.wait()
        elif task.max_concurrency > 1:
            for i in range(task.max_concurrency - 1):
                threading.Thread(target=self._loop_tasks, name=f"oxray-actor-{i}", daemon=True).start()

    def _exit_actor(self):
        try:
            _native.actor_exiting(self.actor_id)
            # An intended exit runs the atexit handlers, as Ray's does.
            atexit._run_exitfuncs()
            _worker.forget_metrics()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

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

    def _success(self, task, result):
        num_returns = task.num_returns
        if num_returns == 1:
            values = [result]
        elif num_returns == 0:
            values = []
        else:
            try:
                values = list(result)
            except TypeError:
                raise ValueError(
                    f"Task {task.function_name} has num_returns={num_returns} but returned a "
                    f"{type(result).__name__}, not a sequence"
                ) from None
            if len(values) != num_returns:
                raise ValueError(
                    f"Task {task.function_name} returned {len(values)} objects, but num_returns={num_returns}."
                )
        return [serialization.serialize(v, f"the return value of {task.function_name}") for v in values]

    def _failure(self, task, error):
        """The error objects for a failed task, whether to retry it, and
        what it raised as text (with the traceback) for `list_tasks`."""
        from oxray.actor import ActorExit

        if isinstance(error, ActorExit):
            self._exit_actor()
        n = task.num_returns
        if isinstance(error, exceptions.TaskCancelledError):
            return self._cancelled(task), False, None
        if isinstance(error, _ArgumentError):
            data, metadata, _ = error.parts
            return [serialization.error_parts(data, metadata)] * n, False, None
        parts, text = self._error_parts(task, error)
        return [parts] * n, self._retryable(task, error), text

    @staticmethod
    def _cancelled(task):
        parts = serialization.error_parts(task.function_name.encode(), serialization.CANCELLED)
        return [parts] * task.num_returns

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
        """The error object of `error`, and its text."""
        if isinstance(error, exceptions.RayTaskError):
            # A failure of something this task waited on: pass it through.
            err = error
        else:
            # Skip this executor's own frames: users see their code only.
            frames = error.__traceback__
            while frames is not None and frames.tb_frame.f_code.co_filename in _RUNTIME_FILES:
                frames = frames.tb_next
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
        try:
            text = str(err)
        except Exception:
            text = err.traceback_str
        # Kept as UTF-8 by the runtime: a lone surrogate (an undecodable
        # file name in a traceback) must not keep the reply from leaving.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        return serialization.error_parts(data, serialization.TASK_ERROR), text


def main():
    worker_id = os.environ["OXRAY_WORKER_ID"]
    session = _worker.connect_worker(os.environ["OXRAY_DAEMON_SOCKET"], worker_id, os.environ["OXRAY_SESSION_DIR"])
    executor = session.executor = Executor(session)
    sys.stdout = PrefixedStream(sys.stdout, executor)
    sys.stderr = PrefixedStream(sys.stderr, executor)
    worker_logs.attach(sys.stdout, sys.stderr, executor)
    try:
        executor.run()
    finally:
        _worker.forget_metrics()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
