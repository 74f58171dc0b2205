"""`oxray job ...`: Ray's job CLI (`ray job submit|status|logs|stop|list|delete`)
over `oxray.job_submission.JobSubmissionClient`.

    oxray job submit [--address URL] [--submission-id ID] [--working-dir DIR]
                     [--runtime-env FILE | --runtime-env-json JSON] [--metadata-json JSON]
                     [--entrypoint-num-cpus N] [--entrypoint-num-gpus N] [--entrypoint-memory B]
                     [--entrypoint-resources JSON] [--no-wait] [--headers JSON] -- ENTRYPOINT...
    oxray job status ID
    oxray job logs ID [-f|--follow]
    oxray job stop ID [--no-wait]
    oxray job list
    oxray job delete ID

`--address` defaults to RAY_API_SERVER_ADDRESS / RAY_ADDRESS, then the
local head's dashboard. `submit` follows the job's logs until it ends
(unless --no-wait) and exits with 1 when it failed, as Ray's. Headers
(e.g. the token) come from --headers or RAY_JOB_HEADERS (JSON); without
them the token is OXRAY_AUTH_TOKEN, or the token file of a head on this
machine when --address is that head's dashboard (no other address gets it).
"""

import argparse
import asyncio
import json
import os
import pprint
import shlex
import sys
import time


def _headers(value):
    value = value if value is not None else os.environ.get("RAY_JOB_HEADERS")
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError as e:
        raise ValueError(f'Failed to parse headers into JSON. Expected format: {{"KEY": "VALUE"}}, got {value}, {e}')


def _client(args):
    from oxray.job_submission import JobSubmissionClient

    verify = args.verify
    if isinstance(verify, str) and verify.lower() in ("true", "false"):
        verify = verify.lower() == "true"
    client = JobSubmissionClient(args.address, headers=_headers(args.headers), verify=verify)
    print(f"Job submission server address: {client.get_address()}")
    return client


def _box(text, out=sys.stdout):
    print("", file=out)
    print("-" * len(text), file=out)
    print(text, file=out)
    print("-" * len(text), file=out)
    print("", file=out)


def _log_job_status(client, job_id):
    """Prints the job's status as Ray's CLI does; returns it."""
    from oxray.job_submission import JobStatus

    info = client.get_job_info(job_id)
    if info.status == JobStatus.SUCCEEDED:
        _box(f"Job '{job_id}' succeeded")
    elif info.status == JobStatus.STOPPED:
        print(f"Job '{job_id}' was stopped")
    elif info.status == JobStatus.FAILED:
        _box(f"Job '{job_id}' failed")
        if info.message is not None:
            print(f"Status message: {info.message}")
    else:
        print(f"Status for job '{job_id}': {info.status}")
        if info.message is not None:
            print(f"Status message: {info.message}")
    sys.stdout.flush()
    return info.status


def _follow(client, job_id):
    """Prints the job's output as it comes until the job ends; returns its
    final status. Without aiohttp it polls the logs instead."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return _poll_logs(client, job_id)

    async def tail():
        async for lines in client.tail_job_logs(job_id):
            print(lines, end="", flush=True)

    asyncio.run(tail())
    return _log_job_status(client, job_id)


def _poll_logs(client, job_id):
    shown = 0
    while True:
        status = client.get_job_status(job_id)
        logs = client.get_job_logs(job_id)
        print(logs[shown:], end="", flush=True)
        shown = len(logs)
        if status.is_terminal():
            logs = client.get_job_logs(job_id)
            print(logs[shown:], end="", flush=True)
            return _log_job_status(client, job_id)
        time.sleep(0.5)


def _json_arg(value, name):
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as e:
        raise ValueError(f"--{name} must be a JSON object: {e}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"--{name} must be a JSON object, got {value}")
    return parsed


def _runtime_env(args):
    """Ray's `parse_runtime_env_args`: --runtime-env (a YAML file) or
    --runtime-env-json, with --working-dir overriding its working_dir."""
    env = {}
    if args.runtime_env is not None:
        if args.runtime_env_json is not None:
            raise ValueError("Only one of --runtime_env and --runtime-env-json can be provided.")
        import yaml

        with open(args.runtime_env) as f:
            env = yaml.safe_load(f) or {}
    elif args.runtime_env_json is not None:
        env = _json_arg(args.runtime_env_json, "runtime-env-json")
    if args.working_dir is not None:
        if "working_dir" in env:
            print("Overriding runtime_env working_dir with --working-dir option", file=sys.stderr)
        env["working_dir"] = args.working_dir
    return env


def _submit(args):
    from oxray.job_submission import JobStatus

    entrypoint = list(args.entrypoint)
    if entrypoint and entrypoint[0] == "--":
        entrypoint = entrypoint[1:]
    if not entrypoint:
        print("oxray job submit: give the entrypoint after --, e.g. oxray job submit -- python script.py",
              file=sys.stderr)
        return 2
    runtime_env = _runtime_env(args)
    client = _client(args)
    job_id = client.submit_job(
        entrypoint=shlex.join(entrypoint),
        submission_id=args.submission_id or args.job_id,
        runtime_env=runtime_env,
        metadata=_json_arg(args.metadata_json, "metadata-json"),
        entrypoint_num_cpus=args.entrypoint_num_cpus,
        entrypoint_num_gpus=args.entrypoint_num_gpus,
        entrypoint_memory=args.entrypoint_memory,
        entrypoint_resources=_json_arg(args.entrypoint_resources, "entrypoint-resources"),
    )
    _box(f"Job '{job_id}' submitted successfully")
    print("Next steps")
    print("  Query the logs of the job:")
    print(f"    oxray job logs {job_id}")
    print("  Query the status of the job:")
    print(f"    oxray job status {job_id}")
    print("  Request the job to be stopped:")
    print(f"    oxray job stop {job_id}")
    print("", flush=True)
    if args.no_wait:
        return 0
    print("Tailing logs until the job exits (disable with --no-wait):", flush=True)
    status = _follow(client, job_id)
    return 1 if status == JobStatus.FAILED else 0


def _status(args):
    _log_job_status(_client(args), args.job_id)
    return 0


def _stop(args):
    client = _client(args)
    print(f"Attempting to stop job '{args.job_id}'")
    client.stop_job(args.job_id)
    if args.no_wait:
        return 0
    print(f"Waiting for job '{args.job_id}' to exit (disable with --no-wait):", flush=True)
    while True:
        status = client.get_job_status(args.job_id)
        if status.is_terminal():
            _log_job_status(client, args.job_id)
            return 0
        print(f"Job has not exited yet. Status: {status}", flush=True)
        time.sleep(1)


def _logs(args):
    client = _client(args)
    if args.follow:
        _follow(client, args.job_id)
    else:
        print(client.get_job_logs(args.job_id), end="", flush=True)
    return 0


def _list(args):
    print(pprint.pformat(_client(args).list_jobs()))
    return 0


def _delete(args):
    _client(args).delete_job(args.job_id)
    print(f"Job '{args.job_id}' deleted successfully")
    return 0


def _common(p):
    p.add_argument("--address", help="the dashboard's address (http://HOST:8265); default: RAY_API_SERVER_ADDRESS, "
                                     "RAY_ADDRESS, or the local head's dashboard")
    p.add_argument("--headers", help='HTTP headers as JSON, e.g. \'{"Authorization": "Bearer <token>"}\' '
                                     "(default: RAY_JOB_HEADERS)")
    p.add_argument("--verify", default=True, help="verify the server's TLS certificate: true, false, or a CA path")


def parser():
    """The argument parser of `oxray job`."""
    ap = argparse.ArgumentParser(prog="oxray job", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    submit = sub.add_parser("submit", help="submit a job to run on the cluster's head")
    _common(submit)
    submit.add_argument("--job-id", help="DEPRECATED: use --submission-id")
    submit.add_argument("--submission-id", help="the job's id (default: a new raysubmit_...)")
    submit.add_argument("--runtime-env", help="a YAML file with the job's runtime_env")
    submit.add_argument("--runtime-env-json", help="the job's runtime_env as JSON")
    submit.add_argument("--working-dir", help="a local directory to run the job in (uploaded; overrides the "
                                              "runtime_env's)")
    submit.add_argument("--metadata-json", help="metadata to attach to the job, as JSON")
    submit.add_argument("--entrypoint-num-cpus", type=float, help="CPUs to reserve for the entrypoint")
    submit.add_argument("--entrypoint-num-gpus", type=float, help="GPUs to reserve for the entrypoint")
    submit.add_argument("--entrypoint-memory", type=int, help="memory (bytes) to reserve for the entrypoint")
    submit.add_argument("--entrypoint-resources", help="custom resources to reserve for the entrypoint, as JSON")
    submit.add_argument("--no-wait", action="store_true", help="do not follow the logs until the job exits")
    submit.add_argument("entrypoint", nargs=argparse.REMAINDER, help="the command to run (after --)")
    for name, text in (("status", "the status of a job"), ("delete", "forget a finished job")):
        p = sub.add_parser(name, help=text)
        _common(p)
        p.add_argument("job_id")
    stop = sub.add_parser("stop", help="stop a job")
    _common(stop)
    stop.add_argument("job_id")
    stop.add_argument("--no-wait", action="store_true", help="do not wait for the job to exit")
    logs = sub.add_parser("logs", help="the output of a job")
    _common(logs)
    logs.add_argument("job_id")
    logs.add_argument("-f", "--follow", action="store_true", help="follow the logs (like tail -f)")
    lst = sub.add_parser("list", help="every submitted job")
    _common(lst)
    return ap


def main(argv):
    """Runs `oxray job ARGV...`; returns the exit code."""
    args = parser().parse_args(argv)
    handler = {"submit": _submit, "status": _status, "stop": _stop, "logs": _logs, "list": _list,
               "delete": _delete}[args.command]
    try:
        return handler(args)
    except (RuntimeError, ValueError, ConnectionError, OSError, TypeError) as e:
        print(f"oxray job {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
