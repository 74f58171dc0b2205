"""`oxray logs`, as Ray's `ray logs`: list the log files of this machine's
oxray nodes, or print (tail, follow) one of them.

    oxray logs                           list every node's log files
    oxray logs 'worker-*'                list the files that match; print the file when one matches
    oxray logs worker-1234.out           print a file
    oxray logs --pid 1234 [--err]        a worker's stdout (stderr)
    oxray logs --actor-id ID [--err]     an actor's output
    oxray logs --task-id ID [--err]      the lines one task printed
    oxray logs ... --node-id ID --tail N --follow --address ADDR

Ray's subcommand spellings work too: `oxray logs cluster [GLOB]`,
`oxray logs actor --id ID`, `oxray logs task --id ID`,
`oxray logs worker --pid PID`.

Without --address, the logs of this machine's nodes are read from their
session directories. With --address HEAD_HOST:PORT (or auto), `oxray logs`
joins that cluster and reads every node's logs through the node's daemon,
those of nodes on other hosts too.
"""

import argparse
import sys

from oxray.exceptions import RayError
from oxray.util.state import logs as _logs

_SUBCOMMANDS = ("cluster", "actor", "task", "worker")


def _parser():
    ap = argparse.ArgumentParser(prog="oxray logs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("glob", nargs="?", help="a file name, or a glob of file names (default: list every file)")
    ap.add_argument("--address", help="the cluster: auto, HEAD_HOST:PORT (every node of the cluster, on any "
                                      "host) or a session directory (default: every oxray node of this machine)")
    ap.add_argument("--node-id", help="only this node (a prefix of its id will do)")
    ap.add_argument("--node-ip", help="only the node with this IP")
    ap.add_argument("--pid", type=int, help="the log of the worker with this pid")
    ap.add_argument("--actor-id", help="the output of this actor (hex id)")
    ap.add_argument("--task-id", help="the lines this task printed (hex id)")
    ap.add_argument("--id", dest="entity_id", help=argparse.SUPPRESS)  # `oxray logs actor|task --id`
    ap.add_argument("--err", action="store_true", help="stderr instead of stdout (with --pid, --actor-id, --task-id)")
    ap.add_argument("--tail", type=int, default=1000, help="print the last N lines (default 1000; -1: all)")
    ap.add_argument("-f", "--follow", action="store_true", help="keep printing new lines as they are written")
    ap.add_argument("--interval", type=float, default=None, help=argparse.SUPPRESS)
    return ap


def main(argv):
    """Runs `oxray logs ARGV...`; returns the exit status."""
    argv = list(argv)
    kind = argv.pop(0) if argv and argv[0] in _SUBCOMMANDS else None
    args = _parser().parse_args(argv)
    if kind == "actor":
        args.actor_id = args.actor_id or args.entity_id
    elif kind == "task":
        args.task_id = args.task_id or args.entity_id
    elif args.entity_id is not None:
        print("oxray logs: --id goes with `oxray logs actor` or `oxray logs task`", file=sys.stderr)
        return 2
    if kind in ("actor", "task", "worker") and not (args.actor_id or args.task_id or args.pid is not None):
        print(f"oxray logs {kind}: give --id" + (" (or --pid)" if kind == "worker" else ""), file=sys.stderr)
        return 2
    try:
        _connect(args)
        if args.pid is not None or args.actor_id or args.task_id:
            return _print_log(args, filename=None)
        if args.glob and not _is_glob(args.glob) and kind != "cluster":
            return _print_log(args, filename=args.glob)
        return _list(args, kind)
    except (ValueError, OSError, RayError) as e:  # OSError: ConnectionError, a node that did not answer
        print(f"oxray logs: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _connect(args):
    """Joins the cluster `--address` names by its head (HOST:PORT or auto),
    so that every node's logs are read through its daemon; the nodes are
    then those of the connection."""
    address = args.address
    if address is None or address.startswith("/") or (address != "auto" and ":" not in address):
        return
    import oxray

    try:
        oxray.init(address=address, log_to_driver=False, namespace="_oxray_logs", logging_level="ERROR")
    except Exception as e:
        raise ConnectionError(f"cannot connect to the cluster at {address}: {e}") from None
    args.address = None


def _is_glob(text):
    return any(c in text for c in "*?[")


def _list(args, kind):
    nodes = _logs._select_nodes(_logs.log_nodes(args.address), args.node_id, args.node_ip)
    if not nodes:
        print("No oxray node found on this machine. Start one with `oxray start --head`, or run a driver "
              "that calls oxray.init().", file=sys.stderr)
        return 1
    found, listed = [], []
    for node in nodes:
        try:
            files = _logs.node_log_files(node, args.glob) if node.readable else None
        except (OSError, RayError) as e:  # a node that does not answer: list the others
            files = e
        listed.append((node, files))
        if isinstance(files, Exception):
            continue
        for names in (files or {}).values():
            found += [(node, name) for name in names]
    # Ray's `ray logs GLOB` prints the file when exactly one matches.
    if args.glob and kind != "cluster" and len(found) == 1:
        node, name = found[0]
        args.node_id = node["node_id"]
        return _print_log(args, filename=name)
    for node, files in listed:
        head = " (head)" if node.get("is_head") else ""
        print(f"Node ID: {node['node_id']}{head}  IP: {node['node_ip']}")
        if not node.readable:
            print("  (on another host: give --address HEAD_HOST:PORT to read its logs through its daemon)")
            continue
        print(f"  {node.where}")
        if isinstance(files, Exception):
            print(f"  (did not answer: {files})")
            continue
        if not files:
            print("  (no log files" + (f" match {args.glob!r}" if args.glob else "") + ")")
        for category, names in files.items():
            print(f"  {category}:")
            for name in names:
                print(f"    {name}")
    return 0


def _print_log(args, filename):
    chunks = _logs.get_log(address=args.address, node_id=args.node_id, node_ip=args.node_ip, filename=filename,
                           pid=args.pid, actor_id=args.actor_id, task_id=args.task_id, follow=args.follow,
                           tail=args.tail, suffix="err" if args.err else "out", errors="replace",
                           _interval=args.interval)
    for chunk in chunks:
        sys.stdout.write(chunk)
        sys.stdout.flush()
    return 0
