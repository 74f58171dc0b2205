"""The `oxray` command: start and stop a standing cluster, show its state.

    oxray start --head [--num-cpus N] [--num-gpus N] [--resources JSON]
    oxray status
    oxray list actors|nodes|tasks
    oxray memory
    oxray microbenchmark [--seconds S] [--only NAME] [--smoke]
    oxray stop

`oxray daemon ...` runs the node daemon binary itself (what `start` and
`oxray.init()` launch).
"""

import argparse
import json
import os
import sys
import time

from oxray._private import node as _node


def _start(args):
    from oxray._private.worker import node_resources

    if not args.head:
        print("oxray start: only --head is supported so far (joining other nodes comes with multi-node "
              "clusters)", file=sys.stderr)
        return 2
    if os.path.exists(_node.HEAD_ADDRESS_FILE):
        with open(_node.HEAD_ADDRESS_FILE) as f:
            existing = f.read().strip()
        if os.path.exists(os.path.join(existing, "daemon.sock")):
            print(f"oxray start: a head is already running at {existing}; stop it with `oxray stop`",
                  file=sys.stderr)
            return 1
    resources = json.loads(args.resources) if args.resources else None
    totals = node_resources(args.num_cpus, args.num_gpus, resources, args.object_store_memory)
    session_dir = _node.new_session_dir("h")
    daemon = _node.LocalDaemon(session_dir, totals, prestart_workers=int(totals["CPU"]), owned=False)
    with open(os.path.join(session_dir, "daemon.pid"), "w") as f:
        f.write(str(daemon.process.pid))
    with open(_node.HEAD_ADDRESS_FILE, "w") as f:
        f.write(session_dir)
    print(f"Started an oxray head at {session_dir}.")
    print("Connect with: oxray.init(address='auto')")
    print("Stop it with: oxray stop")
    return 0


def _connect():
    import oxray

    oxray.init(address="auto")
    return oxray


def _stop(args):
    try:
        with open(_node.HEAD_ADDRESS_FILE) as f:
            session_dir = f.read().strip()
    except OSError:
        print("oxray stop: no running head found", file=sys.stderr)
        return 0
    pid = None
    try:
        with open(os.path.join(session_dir, "daemon.pid")) as f:
            pid = int(f.read())
    except (OSError, ValueError):
        pass
    if pid is not None:
        try:
            os.kill(pid, 15 if not args.force else 9)
        except OSError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.05)
    os.remove(_node.HEAD_ADDRESS_FILE)
    import shutil
    shutil.rmtree(session_dir, ignore_errors=True)
    print("Stopped the oxray head.")
    return 0


def _status(args):
    oxray = _connect()
    try:
        for n in oxray.nodes():
            state = "ALIVE" if n["Alive"] else "DEAD"
            print(f"node {n['NodeID'][:12]} {state} {n['NodeManagerHostname']}")
        total, avail = oxray.cluster_resources(), oxray.available_resources()
        print("resources (used / total):")
        for k in sorted(total):
            if k.startswith("node:"):
                continue
            print(f"  {k}: {total[k] - avail.get(k, 0):g} / {total[k]:g}")
    finally:
        oxray.shutdown()
    return 0


def _list(args):
    oxray = _connect()
    try:
        from oxray.util import state
        rows = {"actors": state.list_actors, "nodes": state.list_nodes, "tasks": state.list_tasks}[args.what]()
        for row in rows:
            print(json.dumps(row, default=str))
    finally:
        oxray.shutdown()
    return 0


def _memory(args):
    oxray = _connect()
    try:
        from oxray.util import state
        summary = state.memory_summary()
        print(f"object store: {summary['used_bytes']} of {summary['capacity_bytes']} bytes used, "
              f"{summary['pinned_bytes']} pinned, {summary['spilled_bytes']} bytes spilled "
              f"({summary['spilled_objects']} objects) to {summary['spill_dir']}")
        for o in sorted(state.list_objects(), key=lambda o: -o["object_size"]):
            print(f"  {o['object_id']}  {o['object_size']:>12}  creator pid {o['creator_pid']:>7}  {o['pin_reason']}")
    finally:
        oxray.shutdown()
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "microbenchmark":
        from oxray.util import microbenchmark
        return microbenchmark.main(argv[1:])
    if argv and argv[0] == "daemon":
        binary = _node.daemon_binary()
        os.execv(binary, [binary, *argv])
    ap = argparse.ArgumentParser(prog="oxray", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a standing head node")
    start.add_argument("--head", action="store_true")
    start.add_argument("--num-cpus", type=float)
    start.add_argument("--num-gpus", type=float)
    start.add_argument("--resources", help='custom resources as JSON, e.g. \'{"Custom": 2}\'')
    start.add_argument("--object-store-memory", type=int)
    stop = sub.add_parser("stop", help="stop the head started by `oxray start`")
    stop.add_argument("--force", action="store_true")
    sub.add_parser("status", help="nodes and resource use")
    sub.add_parser("memory", help="objects in the shared-memory store")
    lst = sub.add_parser("list", help="list cluster state")
    lst.add_argument("what", choices=["actors", "nodes", "tasks"])
    args = ap.parse_args(argv)
    handler = {"start": _start, "stop": _stop, "status": _status, "list": _list, "memory": _memory}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
