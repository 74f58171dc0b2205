"""The dashboard process: connects to a cluster as a client and serves the
dashboard until the cluster (or a SIGTERM) ends it.

    python -m oxray.dashboard --address ADDR --host H --port P --session-dir D [--token-file F]
                              [--watch-pid PID]

Once it listens, it writes `<session-dir>/dashboard.json` (its pid, host,
port and URL), which is how `launcher.start_dashboard` knows it is up
(`--port 0` picks a free port). It exits when the process `--watch-pid`
(the node daemon) is gone or the session directory's daemon socket
disappears, so it never outlives its cluster.
"""

import argparse
import asyncio
import errno
import json
import os
import signal
import sys

from oxray.dashboard import DEFAULT_HOST, DEFAULT_PORT, READY_FILE

#: How many ports from the default one the dashboard tries.
PORT_TRIES = 50
#: How often the dashboard checks that its cluster still runs (seconds).
WATCH_INTERVAL_S = 0.5


def parse_args(argv=None):
    """The command line of the dashboard process."""
    ap = argparse.ArgumentParser(prog="python -m oxray.dashboard", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", required=True, help="the cluster to show (HOST:PORT of a head, or a session dir)")
    ap.add_argument("--host", default=DEFAULT_HOST, help=f"the interface to listen on (default {DEFAULT_HOST})")
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the port (default {DEFAULT_PORT}; 0: any)")
    ap.add_argument("--session-dir", required=True, help="the session directory of the node it runs beside")
    ap.add_argument("--token-file", help="the cluster token's file: HTTP clients must present that token")
    ap.add_argument("--watch-pid", type=int, help="exit when this process (the node daemon) is gone")
    return ap.parse_args(argv)


def read_token(path):
    """The token in `path` (None without a path); exits when it cannot be read."""
    if not path:
        return None
    try:
        with open(path) as f:
            token = f.read().strip()
    except OSError as e:
        sys.exit(f"oxray dashboard: cannot read the token file: {e}")
    if not token:
        sys.exit(f"oxray dashboard: the token file {path} is empty")
    return token


def cluster_gone(session_dir, watch_pid):
    """Whether the cluster this dashboard serves has stopped."""
    from oxray._private.node import _pid_alive

    if watch_pid and not _pid_alive(watch_pid):
        return True
    return not os.path.exists(os.path.join(session_dir, "daemon.sock"))


def write_ready_file(session_dir, host, port):
    """Announces where the dashboard listens (read by the launcher)."""
    from oxray._private.node import write_private

    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    info = {"pid": os.getpid(), "host": host, "port": port, "url": f"http://{shown}:{port}"}
    path = os.path.join(session_dir, READY_FILE)
    write_private(path + ".tmp", json.dumps(info))
    os.replace(path + ".tmp", path)
    return info


async def serve(args, ctx):
    """Runs the web app until SIGTERM/SIGINT or the cluster's end."""
    from aiohttp import web

    from oxray.dashboard.app import create_app

    app = create_app(ctx)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # As Ray's: on the default port, a port in use moves the dashboard to the next free one.
    tries = PORT_TRIES if args.port == DEFAULT_PORT else 1
    for offset in range(tries):
        site = web.TCPSite(runner, args.host, args.port + offset)
        try:
            await site.start()
            break
        except OSError as e:
            if e.errno != errno.EADDRINUSE or offset == tries - 1:
                await runner.cleanup()
                raise
    port = runner.addresses[0][1] if runner.addresses else args.port
    info = write_ready_file(args.session_dir, args.host, port)
    print(f"oxray dashboard at {info['url']}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gone = False
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), WATCH_INTERVAL_S)
        except asyncio.TimeoutError:
            if cluster_gone(args.session_dir, args.watch_pid):
                gone = True
                break
    try:
        os.remove(os.path.join(args.session_dir, READY_FILE))
    except OSError:
        pass
    await runner.cleanup()
    return gone


def main(argv=None):
    """Entry point of `python -m oxray.dashboard`."""
    args = parse_args(argv)
    token = read_token(args.token_file)
    from oxray.dashboard.launcher import check_exposure

    try:
        check_exposure(args.host, token is not None)
    except ValueError as e:
        sys.exit(f"oxray dashboard: {e}")
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        sys.exit("oxray dashboard: aiohttp is not installed (pip install 'oxray[default]')")
    import oxray
    from oxray.dashboard.context import DashboardContext

    oxray.init(address=args.address, log_to_driver=False, namespace="_oxray_dashboard")
    ctx = DashboardContext(args.address, args.session_dir, token)
    try:
        gone = asyncio.run(serve(args, ctx))
    except OSError as e:
        oxray.shutdown()
        print(f"oxray dashboard: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr, flush=True)
        return 1
    if not gone:  # (when the daemon is gone there is nothing to disconnect from)
        oxray.shutdown()
    # A state read stuck in a worker thread must not keep the process alive.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
