"""`JobSubmissionClient`: Ray's Jobs SDK over the dashboard's REST API
(`oxray.dashboard.jobs`), with the standard library's urllib; only
`tail_job_logs` (a websocket, as Ray's) needs aiohttp."""

import copy
import dataclasses
import json
import logging
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request

from oxray.job_submission.models import (
    JobDetails,
    JobStatus,
    JobSubmitRequest,
    strip_none,
)

logger = logging.getLogger(__name__)

#: Where the client looks when given no address and no cluster is found (Ray's default).
DEFAULT_DASHBOARD_ADDRESS = "http://localhost:8265"
DEFAULT_DASHBOARD_PORT = 8265
#: Seconds an ordinary request may take; package uploads get longer.
REQUEST_TIMEOUT_S = 60
UPLOAD_TIMEOUT_S = 600


class _Response:
    """What `_do_request` answers: `status_code`, `text`, `json()`."""

    def __init__(self, status_code, body):
        self.status_code = status_code
        self.content = body
        self.text = body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.text)


def _dashboard_of_cluster(address):
    """The URL of the dashboard of the cluster at `address` (None or
    "auto": the head started by `oxray start --head`; HOST:PORT: that
    cluster's head; a session directory), read from the
    `dashboard.json` its head's dashboard writes; None when not found
    on this machine."""
    from oxray._private import node as _node

    try:
        socket_path, _ = _node.resolve_address(address or "auto")
    except Exception:
        return None
    candidates = [os.path.dirname(socket_path)]
    if address and ":" in address and not address.startswith("/"):
        # A node of this machine was found: its head's session, if local, has the dashboard.
        host, port = _node.split_host_port(address)
        candidates += [n["session_dir"] for n in _node.local_nodes()
                       if n.get("is_head") and n.get("head_address") in (address, f"{host}:{port}")]
    for session_dir in candidates:
        info = _read_json(os.path.join(session_dir, "dashboard.json"))
        if info and info.get("url"):
            return info["url"]
    return None


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def get_address_for_submission_client(address=None):
    """The dashboard URL the client talks to, as Ray resolves it:
    `RAY_API_SERVER_ADDRESS` first, then `address`, then `RAY_ADDRESS`.
    An http(s):// URL is used as it is; a cluster address (HOST:PORT,
    "auto", none at all) leads to that cluster's dashboard when its head
    runs on this machine, and to HOST:8265 otherwise."""
    address = os.environ.get("RAY_API_SERVER_ADDRESS") or address or os.environ.get("RAY_ADDRESS") or None
    if address and "://" in address:
        scheme = address.split("://", 1)[0]
        if scheme == "ray":
            raise ValueError(f"Ray Client addresses (ray://) are not supported by oxray: use the dashboard's "
                             f"http:// address instead of {address!r}")
        if scheme not in ("http", "https"):
            raise ValueError(f"Unsupported address scheme {scheme!r} in {address!r}: use http:// or https://")
        return address.rstrip("/")
    url = _dashboard_of_cluster(address)
    if url:
        return url.rstrip("/")
    if address in (None, "auto") or address.startswith("/"):
        return DEFAULT_DASHBOARD_ADDRESS
    host = address.rpartition(":")[0] or address
    return f"http://{host}:{DEFAULT_DASHBOARD_PORT}"


_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def _is_loopback(host):
    """Whether a URL's `host` is this machine's loopback (by its name or IP
    literal only: a name that resolves there now may resolve elsewhere at
    connection time)."""
    from oxray.dashboard.launcher import is_loopback_host

    return is_loopback_host(host, resolve=False)


def _same_host(bind_host, url_host, node_ip=None):
    """Whether a URL naming `url_host` reaches a dashboard listening on
    `bind_host`: the same host, or a loopback name for a dashboard that
    listens on loopback or on every interface, or this node's own IP
    (`node_ip`) for one that listens on every interface."""
    bind_host = (bind_host or "").strip("[]").lower()
    url_host = (url_host or "").strip("[]").lower()
    if not url_host:
        return False
    if url_host == bind_host:
        return True
    if bind_host in _WILDCARD_HOSTS:
        return _is_loopback(url_host) or (bool(node_ip) and url_host == str(node_ip).strip("[]").lower())
    return _is_loopback(bind_host) and _is_loopback(url_host)


def _url_port(parsed):
    try:
        port = parsed.port
    except ValueError:
        return None
    if port is None:
        port = {"http": 80, "https": 443}.get(parsed.scheme)
    return port


def local_token(address):
    """The token of the cluster whose dashboard is at `address` (a URL),
    when that head runs on this machine: read from the token file `oxray
    start --head` wrote (readable by this user only). Only a URL that
    reaches that head's dashboard gets it: the host and port its
    `dashboard.json` names (a loopback URL for a dashboard on loopback or
    on every interface), while that dashboard runs. Any other URL gets
    None: the cluster token is never sent to another server."""
    from oxray._private import node as _node
    from oxray.dashboard.launcher import is_dashboard_pid

    parsed = urllib.parse.urlsplit(address)
    port = _url_port(parsed)
    if port is None:
        return None
    for n in _node.local_nodes():
        if not n.get("is_head"):
            continue
        info = _read_json(os.path.join(n["session_dir"], "dashboard.json")) or {}
        if info.get("port") != port or not _same_host(info.get("host"), parsed.hostname, n.get("node_ip")):
            continue
        # A stale file of a dashboard that died: its port may now be anyone's.
        if not is_dashboard_pid(info.get("pid") or 0):
            continue
        return _read_token(n["session_dir"])
    return None


def _read_token(session_dir):
    try:
        with open(os.path.join(session_dir, "token")) as f:
            return f.read().strip() or None
    except OSError:
        return None


def _auth_error(status, text):
    """Ray's message for a refused request (None when not refused)."""
    hint = ("\n\nThe cluster's dashboard needs the cluster token: set OXRAY_AUTH_TOKEN (`oxray start --head` "
            "printed where its token file is), or pass headers={'Authorization': 'Bearer <token>'}.")
    if status == 401:
        return f"Authentication required: {text}{hint}"
    if status == 403:
        return f"Authentication failed: {text}{hint}"
    return None


class JobSubmissionClient:
    """Submits jobs to a cluster and follows them, through the Jobs REST
    API of its dashboard (Ray's `ray.job_submission.JobSubmissionClient`).

    Args:
        address: the dashboard's URL ("http://127.0.0.1:8265"), or a
            cluster address (HOST:PORT, "auto") whose dashboard is found
            from its head; default `RAY_API_SERVER_ADDRESS`, then
            `RAY_ADDRESS`, then the local cluster. `RAY_API_SERVER_ADDRESS`
            overrides `address`, as in Ray.
        create_cluster_if_needed: accepted for compatibility (no cluster is
            started).
        cookies: cookies sent with every request.
        metadata: metadata added to every job's own.
        headers: HTTP headers sent with every request; an `Authorization`
            header here is used as it is. Otherwise the cluster token comes
            from `OXRAY_AUTH_TOKEN`, or from the token file of a head
            started on this machine when `address` is that head's
            dashboard (no token is sent to any other address).
        verify: verify the server's TLS certificate (True), not (False), or
            with this CA file or directory.
    """

    def __init__(self, address=None, create_cluster_if_needed=False, cookies=None, metadata=None, headers=None,
                 verify=True):
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address must be a string, got {type(address)}")
        if not isinstance(create_cluster_if_needed, bool):
            raise TypeError(f"create_cluster_if_needed must be a bool, got {type(create_cluster_if_needed)}")
        if cookies is not None and not isinstance(cookies, dict):
            raise TypeError(f"cookies must be a dict, got {type(cookies)}")
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata)}")
        if headers is not None and not isinstance(headers, dict):
            raise TypeError(f"headers must be a dict, got {type(headers)}")
        if not isinstance(verify, (str, bool)):
            raise TypeError(f"verify must be a str or bool, got {type(verify)}")
        self._address = get_address_for_submission_client(address)
        self._cookies = cookies
        self._default_metadata = dict(metadata or {})
        self._headers = dict(headers or {})
        if not any(k.lower() == "authorization" for k in self._headers):
            token = os.environ.get("OXRAY_AUTH_TOKEN") or local_token(self._address)
            if token:
                self._headers["Authorization"] = f"Bearer {token}"
        if cookies:
            self._headers.setdefault("Cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()))
        self._verify = verify
        if isinstance(verify, str):
            if os.path.isdir(verify):
                self._ssl_context = ssl.create_default_context(capath=verify)
            elif os.path.isfile(verify):
                self._ssl_context = ssl.create_default_context(cafile=verify)
            else:
                raise FileNotFoundError(f"Path to CA certificates: '{verify}', does not exist.")
        elif verify is False:
            self._ssl_context = ssl._create_unverified_context()
        else:
            self._ssl_context = None
        self._server_version = None
        self._check_connection_and_version()

    # -- plumbing

    def get_address(self):
        """The dashboard URL this client talks to."""
        return self._address

    def _check_connection_and_version(self):
        r = self._do_request("GET", "/api/version")
        if r.status_code == 404:
            raise RuntimeError("Version check returned 404. Jobs API is not supported on the cluster: is the "
                               f"dashboard running at {self._address}?")
        if r.status_code != 200:
            self._raise_error(r)
        self._server_version = r.json()

    def _raise_error(self, r):
        raise RuntimeError(f"Request failed with status code {r.status_code}: {r.text}.")

    def _do_request(self, method, endpoint, *, data=None, json_data=None, timeout=REQUEST_TIMEOUT_S):
        """One HTTP request to the dashboard; raises ConnectionError when it
        cannot be reached and RuntimeError when the token is refused."""
        headers = dict(self._headers)
        if json_data is not None:
            data = json.dumps(json_data).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self._address + endpoint, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._ssl_context) as r:
                response = _Response(r.status, r.read())
        except urllib.error.HTTPError as e:
            response = _Response(e.code, e.read())
        except (urllib.error.URLError, OSError) as e:
            raise ConnectionError(f"Failed to connect to Ray at address: {self._address}. ({e})") from None
        error = _auth_error(response.status_code, response.text)
        if error:
            raise RuntimeError(error)
        return response

    def _upload_packages_if_needed(self, runtime_env):
        """Packs the runtime_env's local working_dir and py_modules (as
        `init` does, oxray._private.runtime_env_packages), uploads those
        the cluster lacks, and puts their URIs in the runtime_env."""
        from oxray._private import options, runtime_env_packages

        options.check_runtime_env(runtime_env)
        if not runtime_env_packages.has_packages(runtime_env):
            return runtime_env
        fields = runtime_env_packages.pack_unuploaded(runtime_env)
        uris = ([fields["working_dir"]] if fields.get("working_dir") else []) + list(fields.get("py_modules") or [])
        for uri in uris:
            protocol, name = uri.split("://", 1)
            path = f"/api/packages/{protocol}/{name}"
            r = self._do_request("GET", path)
            if r.status_code == 200:
                continue
            if r.status_code != 404:
                self._raise_error(r)
            data = runtime_env_packages.packed_data(uri)
            if data is None:
                raise RuntimeError(f"The package {uri} is neither in the cluster nor packed here.")
            logger.info("Uploading package %s.", uri)
            r = self._do_request("PUT", path, data=data, timeout=UPLOAD_TIMEOUT_S)
            if r.status_code != 200:
                self._raise_error(r)
        runtime_env.update(fields)
        return runtime_env

    # -- the API

    def submit_job(self, *, entrypoint, job_id=None, runtime_env=None, metadata=None, submission_id=None,
                   entrypoint_num_cpus=None, entrypoint_num_gpus=None, entrypoint_memory=None,
                   entrypoint_resources=None):
        """Submits a job: the shell command `entrypoint` runs on the head,
        as the job's driver, in `runtime_env` (its local `working_dir` and
        `py_modules` are uploaded first). Returns the submission id (given,
        or a new `raysubmit_...`). `entrypoint_num_cpus`/`gpus`/`memory`/
        `resources` are reserved for the driver while it runs. Raises
        RuntimeError when the cluster refuses it (e.g. the submission id is
        taken)."""
        if job_id:
            logger.warning("job_id kwarg is deprecated. Please use submission_id instead.")
        runtime_env = self._upload_packages_if_needed(copy.deepcopy(dict(runtime_env or {})))
        metadata = dict(metadata or {})
        metadata.update(self._default_metadata)
        request = JobSubmitRequest(
            entrypoint=entrypoint,
            submission_id=submission_id or job_id,
            runtime_env=runtime_env,
            metadata=metadata,
            entrypoint_num_cpus=entrypoint_num_cpus,
            entrypoint_num_gpus=entrypoint_num_gpus,
            entrypoint_memory=entrypoint_memory,
            entrypoint_resources=entrypoint_resources,
        )
        r = self._do_request("POST", "/api/jobs/", json_data=strip_none(dataclasses.asdict(request)))
        if r.status_code != 200:
            self._raise_error(r)
        return r.json()["submission_id"]

    def stop_job(self, job_id):
        """Asks a job to stop (SIGTERM to its driver, SIGKILL after a grace
        period). Returns True when the job was still running. Raises
        RuntimeError when it does not exist."""
        r = self._do_request("POST", f"/api/jobs/{job_id}/stop")
        if r.status_code != 200:
            self._raise_error(r)
        return r.json()["stopped"]

    def delete_job(self, job_id):
        """Forgets a finished job (its logs stay on the head). Raises
        RuntimeError when it does not exist or has not finished."""
        r = self._do_request("DELETE", f"/api/jobs/{job_id}")
        if r.status_code != 200:
            self._raise_error(r)
        return r.json()["deleted"]

    def get_job_info(self, job_id):
        """The JobDetails of a job, by submission id or job id."""
        r = self._do_request("GET", f"/api/jobs/{job_id}")
        if r.status_code != 200:
            self._raise_error(r)
        return JobDetails.from_json(r.json())

    def list_jobs(self):
        """Every job submitted to the cluster, as JobDetails."""
        r = self._do_request("GET", "/api/jobs/")
        if r.status_code != 200:
            self._raise_error(r)
        return [JobDetails.from_json(j) for j in r.json()]

    def get_job_status(self, job_id):
        """The JobStatus of a job."""
        return self.get_job_info(job_id).status

    def get_job_logs(self, job_id):
        """Everything the job's driver printed so far (stdout and stderr)."""
        r = self._do_request("GET", f"/api/jobs/{job_id}/logs")
        if r.status_code != 200:
            self._raise_error(r)
        return r.json()["logs"]

    async def tail_job_logs(self, job_id):
        """An async iterator over the job's output as the driver writes it
        (chunks of text), ending once the job has finished:

            async for lines in client.tail_job_logs(submission_id):
                print(lines, end="")

        Needs aiohttp (a websocket, as Ray's)."""
        try:
            import aiohttp
        except ImportError:
            raise RuntimeError("tail_job_logs needs aiohttp (pip install aiohttp)") from None
        async with aiohttp.ClientSession(headers=self._headers) as session:
            try:
                ws = await session.ws_connect(f"{self._address}/api/jobs/{job_id}/logs/tail",
                                              ssl=self._ssl_context if self._ssl_context is not None else True)
            except aiohttp.WSServerHandshakeError as e:
                error = _auth_error(e.status, e.message)
                if error:
                    raise RuntimeError(error) from None
                if e.status == 404:
                    raise RuntimeError(f"Request failed with status code 404: Job {job_id} does not exist.") from None
                raise RuntimeError(f"Request failed with status code {e.status}: {e.message}.") from None
            except aiohttp.ClientError as e:
                raise ConnectionError(f"Failed to connect to Ray at address: {self._address}. ({e})") from None
            async with ws:
                while True:
                    msg = await ws.receive()
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        yield msg.data
                    elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                        if ws.close_code == aiohttp.WSCloseCode.ABNORMAL_CLOSURE:
                            raise RuntimeError(f"WebSocket connection closed unexpectedly with close code "
                                               f"{ws.close_code}")
                        break
                    elif msg.type == aiohttp.WSMsgType.ERROR:
                        raise RuntimeError(f"WebSocket error for job {job_id}: {ws.exception()}")

    def get_version(self):
        """The version of the cluster's Jobs API ("4")."""
        r = self._do_request("GET", "/api/version")
        if r.status_code != 200:
            self._raise_error(r)
        return r.json().get("version")


__all__ = ["JobSubmissionClient", "JobStatus", "get_address_for_submission_client"]
