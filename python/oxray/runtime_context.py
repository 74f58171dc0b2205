"""`get_runtime_context()`: who and where the calling code runs."""

from oxray import _native
from oxray._private import worker as _worker


class RuntimeContext:
    """Ids of the current job, node, worker and task, as Ray's
    RuntimeContext reports them."""

    def __init__(self, session):
        self._session = session

    def _ctx(self):
        return _native.context()

    def get_job_id(self):
        """The job id as a hex string."""
        return f"{self._ctx()['job_id']:08x}"

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
        """The id of the running task; None in the driver."""
        return self._ctx()["task_id"]

    @property
    def task_id(self):
        return self.get_task_id()

    def get_actor_id(self):
        """The id of the current actor; None outside actors."""
        return None

    @property
    def namespace(self):
        return self._session.namespace

    def get_assigned_resources(self):
        return {}

    def get_accelerator_ids(self):
        return {"GPU": [str(g) for g in self._session.gpu_ids]}

    @property
    def was_current_actor_reconstructed(self):
        """Whether this actor was restarted after its process died (its
        constructor ran again)."""
        return bool(getattr(self._session, "actor_reconstructed", False))

    @property
    def gcs_address(self):
        return self._ctx()["session_dir"]

    def get(self):
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(), "task_id": self.get_task_id()}


def get_runtime_context():
    """The runtime context of the calling process."""
    return RuntimeContext(_worker.session())
