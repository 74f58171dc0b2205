"""`Cluster`: several oxray nodes on this machine, each a real node daemon
with its own object store, joined over loopback TCP. Ray's multi-node tests
are written against Ray's class of the same name; this one has its API.

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    node = cluster.add_node(num_cpus=2, resources={"gpu_box": 1})
    oxray.init(address=cluster.address)
    ...
    cluster.remove_node(node)
    cluster.shutdown()
"""

import atexit
import os
import signal
import time

from oxray._private import node as _node

# add_node arguments of Ray's that have no meaning here (no dashboard, no
# Redis, ...): accepted and ignored, so that Ray's tests run unchanged.
_IGNORED_NODE_ARGS = {
    "dashboard_port", "include_dashboard", "dashboard_host", "dashboard_agent_listen_port", "_system_config",
    "enable_object_reconstruction", "redis_port", "min_worker_port", "max_worker_port", "worker_port_list",
    "object_manager_port", "node_manager_port", "metrics_export_port", "temp_dir",
    "_temp_dir", "ray_client_server_port", "num_redis_shards", "redis_max_memory", "log_to_driver",
    "node_name", "runtime_env_agent_port", "session_name",
}


class ClusterNode:
    """One node of a `Cluster`: its daemon process and where it listens."""

    def __init__(self, daemon, is_head, index_file):
        self._daemon = daemon
        self.is_head = is_head
        self._index_file = index_file
        with open(os.path.join(daemon.session_dir, "node_id")) as f:
            self.node_id = f.read().strip()
        self.unique_id = self.node_id
        self.address = daemon.tcp_address
        self.node_ip_address = daemon.node_ip
        self.session_dir = daemon.session_dir

    @property
    def process(self):
        """The node daemon's process (a `subprocess.Popen`)."""
        return self._daemon.process

    @property
    def all_processes(self):
        """The node's processes, as Ray's `Node.all_processes` lists them."""
        return {"raylet": [self._daemon.process]}

    def alive(self):
        return self._daemon.process.poll() is None

    def kill_raylet(self):
        """Kills the node's daemon at once (its workers follow)."""
        self._stop(graceful=False)

    def _stop(self, graceful=True):
        p = self._daemon.process
        if p.poll() is None:
            p.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        self._daemon.stop()
        try:
            os.remove(self._index_file)
        except OSError:
            pass

    def __repr__(self):
        return f"ClusterNode(node_id={self.node_id[:12]}, address={self.address}, head={self.is_head})"


class Cluster:
    """A cluster of node daemons on this machine, joined over loopback TCP."""

    def __init__(self, initialize_head=False, connect=False, head_node_args=None, shutdown_at_exit=True):
        self.head_node = None
        self.worker_nodes = set()
        self._token = _node.new_token()
        self._connected = False
        self._head_port = 0
        self._head_args = {}
        self._journal_dir = None
        if shutdown_at_exit:
            atexit.register(self.shutdown)
        if initialize_head:
            self.add_node(**(head_node_args or {}))
            if connect:
                self.connect()
        elif connect:
            raise ValueError("connect=True needs initialize_head=True")

    @property
    def address(self):
        """HOST:PORT of the head, for `oxray.init(address=...)`."""
        return self.head_node.address if self.head_node else None

    @property
    def gcs_address(self):
        return self.address

    def connect(self, namespace=None):
        """Connects this process as a driver of the cluster."""
        import oxray

        oxray.init(address=self.address, namespace=namespace)
        self._connected = True

    def add_node(self, wait=True, **node_args):
        """Starts a node (the head, when there is none yet) and returns it.
        Takes `num_cpus`, `num_gpus`, `resources`, `object_store_memory` and
        `env_vars` (set for the node's workers)."""
        from oxray._private.worker import node_resources

        unknown = set(node_args) - _IGNORED_NODE_ARGS - {"num_cpus", "num_gpus", "resources", "object_store_memory",
                                                         "env_vars", "labels"}
        if node_args.get("labels"):
            unknown.add("labels")  # oxray's nodes carry no labels
        if unknown:
            raise ValueError(f"add_node() got unsupported arguments: {sorted(unknown)}")
        num_cpus = node_args.get("num_cpus")
        totals = node_resources(1 if num_cpus is None else num_cpus, node_args.get("num_gpus", 0),
                                node_args.get("resources"), node_args.get("object_store_memory", 256 << 20))
        is_head = self.head_node is None
        session_dir = _node.new_session_dir("h")
        if is_head:
            self._head_args = dict(node_args)
        try:
            daemon = _node.LocalDaemon(session_dir, totals, prestart_workers=min(int(totals["CPU"]), 2),
                                       owned=False, node_ip="127.0.0.1", port=self._head_port if is_head else 0,
                                       head_address=None if is_head else self.address, token=self._token,
                                       journal=self._journal_path() if is_head else None,
                                       env_vars=node_args.get("env_vars"))
        except Exception:
            import shutil
            shutil.rmtree(session_dir, ignore_errors=True)
            raise
        if is_head:
            _node.write_private(os.path.join(session_dir, "token"), self._token)
        head_address = daemon.tcp_address if is_head else self.address
        if is_head:
            self._head_port = _node.split_host_port(daemon.tcp_address)[1]
        node = ClusterNode(daemon, is_head, _node.record_node(daemon, head_address, is_head))
        if is_head:
            self.head_node = node
        else:
            self.worker_nodes.add(node)
        return node

    def restart_head(self):
        """Kills the head at once and starts it again on the same port with
        the same journal (an oxray extension; Ray needs an external Redis
        for this). The other nodes keep running and reconnect; the head's
        tables (actors, named and detached ones included) come back.
        Returns the new head node."""
        if self.head_node is None:
            raise RuntimeError("this cluster has no head to restart")
        self.remove_node(self.head_node, allow_graceful=False)
        return self.add_node(**self._head_args)

    def _journal_path(self):
        if self._journal_dir is None:
            import tempfile

            self._journal_dir = tempfile.mkdtemp(prefix="journal-", dir=_node.user_dir())
        return os.path.join(self._journal_dir, "head.redb")

    def remove_node(self, node, allow_graceful=True):
        """Stops a node: gracefully (SIGTERM), or killed at once."""
        node._stop(graceful=allow_graceful)
        if node is self.head_node:
            self.head_node = None
        else:
            self.worker_nodes.discard(node)

    def list_all_nodes(self):
        return ([self.head_node] if self.head_node else []) + list(self.worker_nodes)

    def wait_for_nodes(self, timeout=30):
        """Waits until every node of this cluster is registered and alive."""
        import oxray

        deadline = time.monotonic() + timeout
        expected = {n.node_id for n in self.list_all_nodes()}
        while True:
            if not oxray.is_initialized():
                if all(n.alive() for n in self.list_all_nodes()):
                    return
            else:
                alive = {n["NodeID"] for n in oxray.nodes() if n["Alive"]}
                if expected <= alive:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nodes did not all join within {timeout} s")
            time.sleep(0.05)

    def shutdown(self):
        """Disconnects this driver (if it connected) and stops every node."""
        if self._connected:
            import oxray

            oxray.shutdown()
            self._connected = False
        for node in list(self.worker_nodes):
            self.remove_node(node)
        if self.head_node is not None:
            self.remove_node(self.head_node)
        if self._journal_dir is not None:
            import shutil

            shutil.rmtree(self._journal_dir, ignore_errors=True)
            self._journal_dir = None
