"""The `oxray` command: start and stop a standing cluster, show its state.

    oxray start --head [--port P] [--node-ip-address IP] [--num-cpus N] [--num-gpus N] [--journal F]
                [--resources JSON] [--token T] [--block]
                [--include-dashboard true|false] [--dashboard-host H] [--dashboard-port P]
    oxray start --address HEAD_IP:PORT [same flags]
    oxray status [-v]
    oxray list actors|tasks|nodes|objects|workers|jobs|placement-groups
               [--format table|json|yaml] [--filter KEY=VALUE]... [--limit N] [--detail]
    oxray get actors|tasks|nodes|objects|workers|jobs|placement-groups ID [--format yaml|json]
    oxray summary tasks|actors|objects [--format table|json|yaml] [--filter KEY=VALUE]...
    oxray memory
    oxray logs [FILE|GLOB] [--pid P|--actor-id ID|--task-id ID] [--node-id ID] [--tail N] [--follow] [--err]
    oxray job submit|status|logs|stop|list|delete ...   (job submission, as `ray job`)
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
from oxray.util.state.common import SCHEMAS


DEFAULT_PORT = 6379


def _cluster_token(args, head_address):
    """The token of the cluster to join: --token, OXRAY_AUTH_TOKEN, or (a
    head on this machine) the token file that head wrote."""
    token = args.token or os.environ.get("OXRAY_AUTH_TOKEN")
    if token:
        return token
    for n in _node.local_nodes():
        if n.get("is_head") and n.get("head_address") == head_address:
            token = _read_private(os.path.join(n["session_dir"], "token"))
            if token:
                return token
    return None


def _read_private(path):
    """The content of a file of ours, if it exists."""
    try:
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def _start(args):
    from oxray._private.worker import node_resources

    if bool(args.head) == bool(args.address):
        print("oxray start: give either --head (start a new cluster) or --address HEAD:PORT (join one)",
              file=sys.stderr)
        return 2
    resources = json.loads(args.resources) if args.resources else None
    totals = node_resources(args.num_cpus, args.num_gpus, resources, args.object_store_memory)
    journal = None
    if args.head:
        node_ip = args.node_ip_address or "127.0.0.1"
        head_address = None
        port = DEFAULT_PORT if args.port is None else args.port
        # The head's tables survive a crash of the head: started again on
        # the same port it recovers them, with the same token, so that the
        # other nodes reconnect. `oxray stop` forgets them.
        # (A head on a random port, 0, cannot be found again: no journal.)
        if args.journal or port:
            journal = args.journal or os.path.join(_node.user_dir(), f"head-{port}.redb")
        token = (args.token or os.environ.get("OXRAY_AUTH_TOKEN")
                 or (journal and _read_private(journal + ".token")) or _node.new_token())
        if journal:
            _node.write_private(journal + ".token", token)
    else:
        host, port_ = _node.split_host_port(args.address)
        head_address = f"{host}:{port_}"
        node_ip = args.node_ip_address or ("127.0.0.1" if host.startswith("127.") else
                                           _node._local_ip_towards(host, port_) or "127.0.0.1")
        token = _cluster_token(args, head_address)
        port = args.port or 0
        if not token:
            print(f"oxray start: no token for the cluster at {head_address}: pass --token or set "
                  "OXRAY_AUTH_TOKEN (the head printed where its token file is)", file=sys.stderr)
            return 2
    session_dir = _node.new_session_dir("h")
    try:
        daemon = _node.LocalDaemon(session_dir, totals, prestart_workers=int(totals["CPU"]), owned=False,
                                   node_ip=node_ip, port=port, head_address=head_address, token=token,
                                   health_port=args.health_port, journal=journal,
                                   metrics_port=args.metrics_export_port)
    except Exception as e:
        import shutil
        shutil.rmtree(session_dir, ignore_errors=True)
        print(f"oxray start: {e}", file=sys.stderr)
        return 1
    address = daemon.tcp_address
    if args.head:
        head_address = address
        _node.write_private(os.path.join(session_dir, "token"), token)
        _node.write_private(_node._head_address_file(), address)
    index_file = _node.record_node(daemon, head_address, bool(args.head))
    dashboard = None
    if args.head and args.include_dashboard:
        dashboard = _start_dashboard(args, daemon, address, session_dir, index_file)
    if args.head:
        print(f"Started an oxray head at {address}.")
        if dashboard is not None:
            print(f"View the dashboard at {dashboard.url} (it asks for the cluster token).")
        print(f"The cluster token is in {os.path.join(session_dir, 'token')} (readable by you only).")
        print(f"Join from another host: OXRAY_AUTH_TOKEN=<token> oxray start --address {address}")
        print(f"Connect a driver on this host with: oxray.init(address='auto'), or oxray.init(address='{address}')")
    else:
        print(f"Started an oxray node at {address}, joined to the head at {head_address}.")
    print("Stop it with: oxray stop")
    if args.block:
        import signal
        signal.signal(signal.SIGTERM, lambda *_: daemon.process.terminate())
        try:
            return daemon.process.wait()
        except KeyboardInterrupt:
            daemon.process.terminate()
            daemon.process.wait()
        finally:
            if dashboard is not None:
                dashboard.stop()
    return 0


def _start_dashboard(args, daemon, address, session_dir, index_file):
    """The head's dashboard process (oxray.dashboard.launcher), or None
    with a warning when it cannot start."""
    from oxray.dashboard import launcher

    try:
        return launcher.start_head_dashboard(address, session_dir, args.dashboard_host, args.dashboard_port,
                                             daemon.process.pid, index_file)
    except Exception as e:
        print(f"oxray start: the dashboard did not start, the cluster runs without it: {e}", file=sys.stderr)
        return None


def _bool_arg(text):
    """A true/false command-line value."""
    low = text.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _connect():
    import oxray

    oxray.init(address="auto")
    return oxray


def _stop(args):
    nodes = _node.local_nodes()
    if not nodes:
        print("oxray stop: no running oxray node found", file=sys.stderr)
    from oxray.dashboard.launcher import signal_dashboards
    dashboards = signal_dashboards(nodes, 9 if args.force else 15)
    for n in nodes:
        try:
            os.kill(int(n["pid"]), 9 if args.force else 15)
        except OSError:
            pass
    deadline = time.monotonic() + 10
    for pid in dashboards:
        while time.monotonic() < deadline and _node._pid_alive(pid):
            time.sleep(0.05)
    for n in nodes:
        while time.monotonic() < deadline and os.path.exists(f"/proc/{n['pid']}"):
            time.sleep(0.05)
        _node.remove_node_files(n["session_dir"])
        try:
            os.remove(n["index_file"])
        except OSError:
            pass
    try:
        os.remove(_node._head_address_file())
    except OSError:
        pass
    # Stopped on purpose: the next head starts a new cluster.
    import glob
    for path in glob.glob(os.path.join(_node.user_dir(), "head-*.redb*")):
        try:
            os.remove(path)
        except OSError:
            pass
    if nodes:
        print(f"Stopped {len(nodes)} oxray node(s).")
    return 0


def _colour(args):
    """Whether to colour the output: only on a terminal, and not with
    NO_COLOR set."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _status(args):
    oxray = _connect()
    try:
        from oxray import _native
        from oxray.util.state import render
        print(render.status_output(_native.cluster_info(), _native.list_placement_groups(), verbose=args.verbose,
                                   colour=_colour(args)))
    finally:
        oxray.shutdown()
    return 0


def _parse_filters(args):
    from oxray.util.state import filters

    return [filters.parse_filter(f) for f in args.filter or []]


def _list(args):
    from oxray.util.state import api, render

    try:
        wanted = _parse_filters(args)
    except ValueError as e:
        print(f"oxray list: {e}", file=sys.stderr)
        return 2
    oxray = _connect()
    try:
        try:
            rows, total = api.query(args.resource, wanted, limit=args.limit, detail=args.detail,
                                    include_self=False)
        except ValueError as e:
            print(f"oxray list: {e}", file=sys.stderr)
            return 2
    finally:
        oxray.shutdown()
    fmt = args.format or ("yaml" if args.detail else "table")
    if args.limit is not None and total > len(rows) and args.format in (None, "table"):
        print(f"Limit last {args.limit} entries (Total {total}). Use `--filter` to reduce the amount of data to "
              "return or setting a higher limit with `--limit` to see all data.", file=sys.stderr)
    schema = SCHEMAS[args.resource]
    if fmt == "table":
        print(render.list_output([r.asdict() for r in rows], schema, detail=args.detail, colour=_colour(args)))
    elif fmt == "json":
        print(render.to_json([r.asdict() for r in rows]))
    else:
        print(render.to_yaml([r.asdict() for r in rows]), end="")
    return 0


def _get(args):
    from oxray.util.state import api, render
    from oxray.util.state.common import ID_COLUMNS

    oxray = _connect()
    try:
        rows, _ = api.query(args.resource, [(ID_COLUMNS[args.resource], "=", args.id)], limit=None, detail=True,
                            include_self=False)
    finally:
        oxray.shutdown()
    if not rows:
        print(f"Resource with id={args.id} not found in the cluster.")
        return 1
    data = [r.asdict() for r in rows]
    if args.format == "json":
        print(render.to_json(data))
    else:
        print(render.to_yaml(data), end="")
    return 0


def _summary(args):
    from oxray.util.state import render, summaries

    try:
        wanted = _parse_filters(args)
    except ValueError as e:
        print(f"oxray summary: {e}", file=sys.stderr)
        return 2
    fn = {"tasks": summaries.summarize_tasks, "actors": summaries.summarize_actors,
          "objects": summaries.summarize_objects}[args.resource]
    oxray = _connect()
    try:
        try:
            summary = fn(filters=wanted)
        except ValueError as e:
            print(f"oxray summary: {e}", file=sys.stderr)
            return 2
    finally:
        oxray.shutdown()
    fmt = args.format or "table"
    if fmt == "table":
        print(render.summary_output(summary, args.resource, colour=_colour(args)))
    elif fmt == "json":
        print(render.to_json(summary))
    else:
        print(render.to_yaml(summary), end="")
    return 0


def _memory(args):
    oxray = _connect()
    try:
        from oxray.util import state
        from oxray.util.state import render
        summary = state.memory_summary()
        objects = state.list_objects(limit=None)
    finally:
        oxray.shutdown()
    fm = render.format_memory
    print(f"object store: {fm(summary['used_bytes'])}/{fm(summary['capacity_bytes'])} used, "
          f"{fm(summary['pinned_bytes'])} pinned, {fm(summary['spilled_bytes'])} spilled "
          f"({summary['spilled_objects']} objects) to {summary['spill_dir']}")
    rows = [{"object_id": o.object_id, "size": fm(o.object_size), "creator_pid": o.creator_pid,
             "reason": o.pin_reason} for o in sorted(objects, key=lambda o: -o.object_size)]
    if rows:
        print(render.table(rows, ["object_id", "size", "creator_pid", "reason"], _colour(args), index=False))
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "microbenchmark":
        from oxray.util import microbenchmark
        return microbenchmark.main(argv[1:])
    if argv and argv[0] == "job":
        from oxray._private import job_cli
        return job_cli.main(argv[1:])
    if argv and argv[0] == "logs":
        from oxray._private import logs_cli
        return logs_cli.main(argv[1:])
    if argv and argv[0] == "daemon":
        command = _node.daemon_command()
        os.execv(command[0], [*command, *argv])
    ap = argparse.ArgumentParser(prog="oxray", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a head node, or a node that joins one")
    start.add_argument("--head", action="store_true", help="start a new cluster with this node as its head")
    start.add_argument("--address", help="join the cluster whose head listens at HOST:PORT")
    start.add_argument("--port", type=int, help=f"the head's TCP port (default {DEFAULT_PORT})")
    start.add_argument("--node-ip-address", help="the IP this node listens on (default 127.0.0.1)")
    start.add_argument("--token", help="the cluster token (default: OXRAY_AUTH_TOKEN, or a new one for a head)")
    start.add_argument("--num-cpus", type=float)
    start.add_argument("--num-gpus", type=float)
    start.add_argument("--resources", help='custom resources as JSON, e.g. \'{"Custom": 2}\'')
    start.add_argument("--object-store-memory", type=int)
    start.add_argument("--block", action="store_true", help="stay in the foreground until the node stops")
    start.add_argument("--health-port", type=int, help="serve GET /healthz over HTTP on this port (for probes)")
    start.add_argument("--metrics-export-port", type=int,
                       help="serve Prometheus metrics (GET /metrics) on this port (default: any free port)")
    start.add_argument("--journal", help="the head's journal file (default: head-<port>.redb in the user's oxray "
                                         "directory): a head started again with it recovers the cluster's tables")
    start.add_argument("--include-dashboard", type=_bool_arg, default=True, metavar="true|false",
                       help="start the dashboard beside the head (default true)")
    start.add_argument("--dashboard-host", default="127.0.0.1",
                       help="the interface the dashboard listens on (default 127.0.0.1; 0.0.0.0 for all)")
    start.add_argument("--dashboard-port", type=int, default=8265,
                       help="the dashboard's port (default 8265, or the next free one; 0 for any)")
    stop = sub.add_parser("stop", help="stop every oxray node this user started on this machine")
    stop.add_argument("--force", action="store_true")
    status = sub.add_parser("status", help="nodes, resource use and pending demands (as `ray status`)")
    status.add_argument("-v", "--verbose", action="store_true", help="also each node's resource use")
    sub.add_parser("memory", help="objects in the shared-memory store")
    formats = ["table", "json", "yaml"]
    lst = sub.add_parser("list", help="list cluster state (as `ray list`)")
    lst.add_argument("resource", choices=list(SCHEMAS))
    lst.add_argument("--format", choices=formats, help="output format (default: table; yaml with --detail)")
    lst.add_argument("-f", "--filter", action="append", metavar="KEY=VALUE",
                     help="keep rows where KEY=VALUE (or KEY!=VALUE); repeat to require several; "
                          "values compare case-insensitively")
    lst.add_argument("--limit", type=int, default=100, help="at most this many rows (default 100)")
    lst.add_argument("--detail", action="store_true", help="every column (written as YAML unless --format)")
    get = sub.add_parser("get", help="one resource by id, with every column (as `ray get`)")
    get.add_argument("resource", choices=list(SCHEMAS))
    get.add_argument("id")
    get.add_argument("--format", choices=["yaml", "json"], default="yaml")
    summ = sub.add_parser("summary", help="tasks, actors or objects counted by name, class or call site")
    summ.add_argument("resource", choices=["tasks", "actors", "objects"])
    summ.add_argument("--format", choices=formats, help="output format (default: table)")
    summ.add_argument("-f", "--filter", action="append", metavar="KEY=VALUE",
                      help="summarize only the rows where KEY=VALUE (or KEY!=VALUE)")
    args = ap.parse_args(argv)
    handler = {"start": _start, "stop": _stop, "status": _status, "list": _list, "get": _get,
               "summary": _summary, "memory": _memory}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
