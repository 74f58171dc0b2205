"""`get_runtime_context()`: who and where the calling code runs."""

from oxray import _native
from oxray._private import worker as _worker


def job_id_hex(job_id):
    """A job id as Ray writes it: its 4 bytes, little-endian, in hex (job 1
    is `01000000`)."""
    return int(job_id).to_bytes(4, "little").hex()


class RuntimeContext:
    """Ids of the current job, node, worker, task and actor, as Ray's
    RuntimeContext reports them: the same ids wherever they are read."""

    def __init__(self, session):
        self._session = session

    def _ctx(self):
        return _native.context()

    def _executor(self):
        return self._session.executor

    def _task(self):
        return _worker.RUNNING_TASK.get()

    def get_job_id(self):
        """The job id as a hex string: the driver's job, also inside its
        tasks and actors."""
        executor = self._executor()
        task = self._task() or (executor.creation if executor is not None else None)
        job_id = task.job_id if task is not None else self._ctx()["job_id"]
        return job_id_hex(job_id)

    @property
    def job_id(self):
        return self.get_job_id()

    def get_node_id(self):
        """The node id as a hex string."""
        return self._ctx()["node_id"]

    @property
    def node_id(self):
        return self.get_node_id()

    def get_worker_id(self):
        """The worker (or driver) id as a hex string."""
        return self._ctx()["worker_id"]

    def get_task_id(self):
        """The id of the running task (hex); None in the driver."""
        task = self._task()
        if task is not None:
            return task.task_id
        return self._ctx()["task_id"]

    @property
    def task_id(self):
        return self.get_task_id()

    def get_task_name(self):
        """The running task's name: its `name` option, else the function's
        (`Class.method` for actor calls); None in the driver."""
        task = self._task()
        return task.function_name if task is not None else None

    def get_task_function_name(self):
        """The running task's function as `module.qualname` (for actor
        calls, `module.Class.method`); None in the driver."""
        task, executor = self._task(), self._executor()
        if task is None or executor is None:
            return None
        if task.method_name:
            cls = type(executor.actor) if executor.actor is not None else None
            if cls is None:
                return task.function_name
            return f"{cls.__module__}.{cls.__qualname__}.{task.method_name}"
        fn = executor.function(task.function_id)
        if task.actor_creation:
            return f"{fn.__module__}.{fn.__qualname__}.__init__"
        return f"{fn.__module__}.{fn.__qualname__}"

    def get_actor_id(self):
        """The id of the current actor (hex); None outside actors."""
        executor = self._executor()
        if executor is None or executor.actor_id is None:
            return None
        return executor.actor_id.hex()

    @property
    def actor_id(self):
        return self.get_actor_id()

    def get_actor_name(self):
        """The current actor's name (empty when it has none); None outside
        actors."""
        executor = self._executor()
        if executor is None or executor.actor_id is None:
            return None
        return _native.actor_info(actor_id=executor.actor_id)["name"]

    @property
    def current_actor(self):
        """A handle on the current actor (raises outside actors)."""
        executor = self._executor()
        if executor is None or executor.actor_id is None:
            raise RuntimeError("This method is only available in an actor.")
        import pickle

        from oxray.actor import ActorHandle

        return ActorHandle(*pickle.loads(_native.actor_info(actor_id=executor.actor_id)["handle"]))

    @property
    def namespace(self):
        return self._session.namespace

    def get_assigned_resources(self):
        """What the worker holds for the running task (an actor's, for its
        calls): `{resource: amount}`; empty in the driver."""
        executor = self._executor()
        task = self._task()
        if executor is not None and executor.creation is not None:
            task = executor.creation
        if task is None:
            return {}
        return {name: amount for name, amount in task.assigned_resources.items()}

    def get_accelerator_ids(self):
        return {"GPU": [str(g) for g in self._session.gpu_ids]}

    def get_placement_group_id(self):
        """The placement group the running task or actor is in (hex), or
        None."""
        group = getattr(self._session, "current_placement_group", None)
        return group.hex() if group else None

    @property
    def was_current_actor_reconstructed(self):
        """Whether this actor was restarted after its process died (its
        constructor ran again)."""
        return bool(getattr(self._session, "actor_reconstructed", False))

    def get_runtime_env_string(self):
        """The runtime environment of the job (in the driver) or of the
        running task or actor (in a worker), as JSON."""
        return self.runtime_env.serialize()

    @property
    def runtime_env(self):
        """The runtime environment of the job (in the driver) or of the
        running task or actor (in a worker), as a dict-like RuntimeEnv
        (empty when none). A working_dir or py_modules shows as the URIs
        of their uploaded packages, as in Ray."""
        from oxray._private import runtime_env_packages
        from oxray.runtime_env import RuntimeEnv

        # The job's code search path and the packages ride in env_vars;
        # Ray's users never see them there.
        env = runtime_env_packages.user_view(getattr(self._session, "runtime_env", None))
        return RuntimeEnv(_validate=False, **env)

    @property
    def gcs_address(self):
        """The head's address, as `init(address=...)` takes it: HOST:PORT
        on a cluster reached over TCP, else the session directory (a
        single-node cluster listens on Unix sockets only)."""
        from oxray import _native
        from oxray._private.node import address_part

        for n in _native.cluster_info():
            tcp = address_part(n["address"], "tcp") if n["is_head"] else None
            if tcp:
                return tcp
        return self._ctx()["session_dir"]

    def get(self):
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(), "task_id": self.get_task_id()}


def get_runtime_context():
    """The runtime context of the calling process."""
    return RuntimeContext(_worker.session())
