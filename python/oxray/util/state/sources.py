"""Raw state rows (dicts with every column of the row classes in
`common`), read from what the native core reports: the actor table, the
task lists of every process, the node table, every node's object store
and the placement-group table."""

import concurrent.futures
import os
import sys
import warnings

from oxray import _native
from oxray import exceptions
from oxray._private import worker as _worker
from oxray._private.node import address_part
from oxray.runtime_context import job_id_hex


def _hex(b):
    return b.hex() if b else None


def _ms(us):
    """Milliseconds from the runtime's microseconds (None for unknown: 0)."""
    return us // 1000 if us else None


def _node_ips():
    return {n["node_id"]: n["ip"] for n in _native.cluster_info()}


def actors():
    """Every actor of the cluster."""
    out = []
    for a in _native.list_actors():
        actor_id = a["actor_id"].hex()
        death = None
        if a["state"] == "DEAD" and a["death_message"]:
            death = {"actor_died_error_context": {
                "error_message": a["death_message"], "actor_id": actor_id, "class_name": a["class_name"],
                "name": a["name"], "ray_namespace": a["namespace"], "pid": a["pid"],
            }}
        out.append({
            "actor_id": actor_id, "class_name": a["class_name"], "state": a["state"], "job_id": None,
            "name": a["name"], "node_id": a["node_id"] or None, "pid": a["pid"], "ray_namespace": a["namespace"],
            "death_cause": death, "num_restarts": a["num_restarts"],
        })
    return out


def tasks(actor_rows=None):
    """Every task the cluster's processes report: pending, running and
    recently finished, one row per attempt."""
    pids = {}
    for a in actor_rows if actor_rows is not None else actors():
        if a["pid"] and not a["num_restarts"]:
            pids[a["actor_id"]] = a["pid"]
    out = []
    for t in _native.list_tasks():
        actor_id = _hex(t["actor_id"])
        out.append({
            "task_id": t["task_id"].hex(), "attempt_number": t["attempt_number"], "name": t["name"],
            "state": t["state"], "job_id": job_id_hex(t["job_id"]), "actor_id": actor_id, "type": t["type"],
            "func_or_class_name": t["name"], "parent_task_id": None, "node_id": _hex(t["node_id"]),
            "worker_id": _hex(t["worker_id"]),
            "worker_pid": t["worker_pid"] or (pids.get(actor_id) if actor_id else None),
            "error_type": t["error_type"] or None, "error_message": t["error_message"] or None,
            "language": "PYTHON",
            "creation_time_ms": _ms(t["creation_time_us"]), "start_time_ms": _ms(t["start_time_us"]),
            "end_time_ms": _ms(t["end_time_us"]),
        })
    return out


def nodes():
    """Every node the cluster has had."""
    out = []
    for n in _native.cluster_info():
        resources = dict(n["total"])
        resources[f"node:{n['ip']}"] = 1.0
        if n["is_head"]:
            resources["node:__internal_head__"] = 1.0
        out.append({
            "node_id": n["node_id"], "node_ip": n["ip"], "is_head_node": n["is_head"],
            "state": "ALIVE" if n["alive"] else "DEAD", "node_name": n["ip"],
            "resources_total": dict(sorted(resources.items())), "labels": {},
        })
    return out


def placement_groups():
    """Every placement group of the cluster."""
    out = []
    for g in _native.list_placement_groups():
        pg = g["placement_group_id"]
        bundles = [{"bundle_id": {"placement_group_id": pg, "bundle_index": i}, "unit_resources": dict(b),
                    "node_id": node}
                   for i, (b, node) in enumerate(zip(g["bundles"], g["bundles_to_node_id"]))]
        out.append({"placement_group_id": pg, "name": g["name"], "creator_job_id": None, "state": g["state"],
                    "bundles": bundles, "is_detached": g["detached"]})
    return out


def node_stores(objects=True):
    """[(node table entry, its store's stats)] of every alive node, asked
    through each node's daemon, all at once (a call waits 10 s at most); a
    node that does not answer is left out, with a warning. Without
    `objects`, only the totals (`num_objects` counts them)."""
    nodes = [n for n in _native.cluster_info() if n["alive"]]

    def ask(n):
        try:
            return n, _native.store_stats(n["address"], objects)
        except (OSError, exceptions.RayError) as e:  # an unreachable node: list the others
            warnings.warn(f"the object store of node {n['node_id']} ({n['ip']}) did not answer: {e}",
                          stacklevel=3)
            return n, None

    if len(nodes) <= 1:
        answers = [ask(n) for n in nodes]
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(nodes))) as pool:
            answers = list(pool.map(ask, nodes))
    return [(n, stats) for n, stats in answers if stats is not None]


def objects():
    """The objects in the shared-memory stores of every node."""
    stores = [(n, stats) for n, stats in node_stores() if stats["objects"]]
    if not stores:
        return []
    by_task = {}
    for t in _native.list_tasks():
        key = t["task_id"].hex()
        if key not in by_task or t["attempt_number"] > by_task[key]["attempt_number"]:
            by_task[key] = t  # the latest attempt
    out = []
    for node, stats in stores:
        out += _object_rows(node, stats, by_task)
    return out


def _owner_ip(owner, owner_pid, node):
    """The IP of an object's owner: its address's TCP part, or the node's
    own IP when the owner is a process of that node."""
    tcp = address_part(owner, "tcp")
    if tcp:
        return tcp.rsplit(":", 1)[0].strip("[]")
    return node["ip"] if owner_pid else None


def _object_rows(node, stats, by_task):
    out = []
    for o in stats["objects"]:
        if o["spilled"]:
            reason = "spilled to disk (its owner still holds a reference)"
        elif o["pins"]:
            reason = f"pinned: mapped by {o['pins']} reader(s)"
        else:
            reason = "held by its owner's ObjectRef"
        task = by_task.get(o["object_id"][:32])
        out.append({
            "object_id": o["object_id"], "object_size": o["size"],
            "task_status": task["state"] if task else "NIL",
            "attempt_number": task["attempt_number"] + 1 if task else None,
            "reference_type": "PINNED_IN_MEMORY" if o["pins"] else "UNKNOWN_STATUS",
            "call_site": "disabled", "type": None, "pid": o["owner_pid"] or None,
            "ip": _owner_ip(o["owner"], o["owner_pid"], node),
            "creator_pid": o["creator_pid"], "spilled": o["spilled"], "pin_reason": reason,
            "node_id": node["node_id"], "node_ip": node["ip"],
        })
    return out


def _me():
    """(worker id, node id, job id hex, is driver) of the calling process."""
    session = _worker.session()
    ctx = _native.context()
    return ctx["worker_id"], ctx["node_id"], job_id_hex(ctx["job_id"]), session.mode == "driver"


def workers(include_self=True, actor_rows=None, task_rows=None):
    """The processes oxray can name: the caller, each actor's process, and
    each worker running a task now."""
    ips = _node_ips()
    actor_rows = actors() if actor_rows is None else actor_rows
    task_rows = tasks(actor_rows) if task_rows is None else task_rows
    out = {}
    me, my_node, _, is_driver = _me()
    if include_self:
        out[me] = {"worker_id": me, "is_alive": True, "worker_type": "DRIVER" if is_driver else "WORKER",
                   "node_id": my_node, "ip": ips.get(my_node), "pid": os.getpid()}
    # The worker id of each actor's process, from a task of it that runs now.
    running = {}
    for t in task_rows:
        if t["worker_id"] and t["state"] == "RUNNING":
            running.setdefault(t["worker_id"], t)
    worker_of_actor = {t["actor_id"]: w for w, t in running.items() if t["actor_id"]}
    for a in actor_rows:
        if not a["pid"]:
            continue
        alive = a["state"] == "ALIVE"
        worker_id = worker_of_actor.get(a["actor_id"]) if alive and not a["num_restarts"] else None
        if worker_id == me:
            continue
        row = {"worker_id": worker_id, "is_alive": alive, "worker_type": "WORKER", "node_id": a["node_id"],
               "ip": ips.get(a["node_id"]), "pid": a["pid"]}
        out[worker_id or f"pid:{a['node_id']}:{a['pid']}"] = row
    for worker_id, t in running.items():
        if worker_id not in out and worker_id != me:
            out[worker_id] = {"worker_id": worker_id, "is_alive": True, "worker_type": "WORKER",
                              "node_id": t["node_id"], "ip": ips.get(t["node_id"]), "pid": t["worker_pid"]}
    return list(out.values())


def jobs(include_self=True, task_rows=None):
    """The jobs whose tasks are listed, and the caller's own."""
    task_rows = tasks() if task_rows is None else task_rows
    out = {}
    me, my_node, my_job, is_driver = _me()
    for t in task_rows:
        out.setdefault(t["job_id"], {"job_id": t["job_id"], "type": "DRIVER"})
    if include_self and is_driver:
        ip = _node_ips().get(my_node)
        out[my_job] = {
            "job_id": my_job, "type": "DRIVER", "status": "RUNNING",
            "entrypoint": " ".join([sys.executable, *sys.argv]) if sys.argv and sys.argv[0] else None,
            "driver_info": {"id": my_job, "node_ip_address": ip, "pid": str(os.getpid())},
            "driver_node_id": my_node,
        }
    return list(out.values())
