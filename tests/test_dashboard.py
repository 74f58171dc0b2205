"""The dashboard: its JSON routes (Ray's state API envelope), every page in
a real browser (headless Debian chromium driven by Playwright), live
updates, the cluster token on an `oxray start --head` cluster, and a
dashboard process that never outlives its cluster.

Screenshots of each page go to docs/dashboard/<page>.png."""

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

import oxray
from conftest import REPO, wait_for

pytest.importorskip("aiohttp")
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = os.path.join(REPO, "docs", "dashboard")
PAGES = ["overview", "jobs", "actors", "tasks", "timeline", "objects", "placement_groups", "logs"]
HELLO = f"hello-from-the-dashboard-test-{uuid.uuid4().hex[:8]}"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


def dashboard_pids():
    """Pids of running `python -m oxray.dashboard` processes."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if b"oxray.dashboard" in args:
                out.add(int(entry))
    return out


def gone(pid):
    from oxray._private.node import _pid_alive

    return not _pid_alive(pid)


def http(url, token=None):
    """(status, headers, body text) of a GET."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def api(base, path, token=None):
    status, _, body = http(base + path, token)
    assert status == 200, (path, status, body)
    return json.loads(body)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def dash():
    """An embedded 2-CPU cluster with its dashboard, some actors, tasks (one
    failed), an object, a placement group and a line a task printed."""
    from oxray.dashboard import launcher

    oxray.shutdown()
    ctx = oxray.init(num_cpus=2, include_dashboard=True, dashboard_port=0)
    info = launcher.read_ready_file(ctx["session_dir"])
    started = [info["pid"]]
    try:
        assert ctx.dashboard_url == info["url"].split("//")[1] and started[0] in dashboard_pids()
        import numpy as np
        from oxray.util import placement_group

        @oxray.remote
        class Counter:
            def __init__(self):
                self.n = 0

            def inc(self):
                self.n += 1
                return self.n

        @oxray.remote
        class Doomed:
            def __init__(self):
                raise RuntimeError("doomed from the start")

            def ping(self):
                return 1

        @oxray.remote
        def say_hello():
            print(HELLO, flush=True)
            return os.getpid()

        @oxray.remote
        def fails_on_purpose():
            raise ValueError("this task fails on purpose")

        @oxray.remote(num_gpus=1)
        def wants_a_gpu():
            return 1

        alpha = Counter.options(name="alpha").remote()
        assert oxray.get(alpha.inc.remote()) == 1
        doomed = Doomed.options(name="doomed").remote()
        with pytest.raises(oxray.exceptions.ActorDiedError):
            oxray.get(doomed.ping.remote())
        pid = oxray.get(say_hello.remote())
        with pytest.raises(ValueError):
            oxray.get(fails_on_purpose.remote())
        waiting = wants_a_gpu.remote()  # no node has a GPU: it waits for one
        big = oxray.put(np.arange(200_000, dtype=np.int64))  # 1.6 MB: lives in the shared store
        pg = placement_group([{"CPU": 0.5}], name="dash-pg")
        oxray.get(pg.ready())
        submission_id = None
        if importlib.util.find_spec("oxray.dashboard.jobs") is not None:
            req = urllib.request.Request("http://" + ctx.dashboard_url + "/api/jobs/", method="POST",
                                         data=json.dumps({"entrypoint": "echo job-says-hi"}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                submission_id = json.load(r)["submission_id"]
        state = {"base": "http://" + ctx.dashboard_url, "pid": started[0], "hello_pid": pid,
                 "object_id": big.hex(), "pg_id": pg.id.hex(), "actors": [alpha, doomed], "Counter": Counter,
                 "refs": [big, waiting], "submission_id": submission_id,
                 "session_dir": ctx["session_dir"]}
        yield state
    finally:
        oxray.shutdown()
    assert all(wait_for(lambda p=p: gone(p), timeout=10) for p in started), "the dashboard outlived its cluster"


@pytest.fixture(scope="module")
def page(browser, dash):
    """One browser page on the dashboard, collecting console errors."""
    context = browser.new_context(viewport={"width": 1400, "height": 860})
    pg = context.new_page()
    pg.errors = []
    pg.on("console", lambda m: pg.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.errors.append(f"page error: {e}"))
    pg.set_default_timeout(15_000)
    try:
        yield pg
    finally:
        context.close()


def open_page(page, base, path):
    """Opens a page and waits for its first refresh."""
    page.goto(base + path)
    page.wait_for_selector("#live.ok")


def test_state_routes_answer_with_rays_envelope(dash):
    base = dash["base"]
    body = api(base, "/api/v0/actors?limit=100")
    assert set(body) == {"result", "msg", "data"} and body["result"] is True and body["msg"] == ""
    listing = body["data"]["result"]
    assert {"total", "num_after_truncation", "num_filtered", "result"} <= set(listing)
    assert listing["total"] == listing["num_filtered"] == len(listing["result"]) == 2
    row = listing["result"][0]
    assert {"actor_id", "class_name", "state", "name", "pid"} <= set(row)
    assert "death_cause" not in row  # a detail column: only with detail=true, as Ray
    detail = api(base, "/api/v0/actors?detail=true")["data"]["result"]["result"]
    dead = [a for a in detail if a["name"] == "doomed"]
    assert dead[0]["state"] == "DEAD" and "creation task" in dead[0]["death_cause"]["actor_died_error_context"][
        "error_message"]

    alive = api(base, "/api/v0/actors?filter_keys=state&filter_predicates=%3D&filter_values=ALIVE")
    assert [a["name"] for a in alive["data"]["result"]["result"]] == ["alpha"]
    assert alive["data"]["result"]["total"] == 2 and alive["data"]["result"]["num_filtered"] == 1
    failed = api(base, "/api/v0/tasks?detail=true&filter_keys=state&filter_predicates=%3D&filter_values=FAILED"
                       "&filter_keys=type&filter_predicates=%3D&filter_values=NORMAL_TASK")
    rows = failed["data"]["result"]["result"]
    assert [t["name"] for t in rows] == ["fails_on_purpose"] and rows[0]["error_type"] == "TASK_EXECUTION_EXCEPTION"
    assert rows[0]["error_message"].splitlines()[-1] == "ValueError: this task fails on purpose"
    assert 'raise ValueError("this task fails on purpose")' in rows[0]["error_message"]
    assert rows[0]["end_time_ms"] >= rows[0]["start_time_ms"] >= rows[0]["creation_time_ms"]
    limited = api(base, "/api/v0/tasks?limit=1")["data"]["result"]
    assert len(limited["result"]) == 1 and limited["num_filtered"] >= 3

    for resource in ("nodes", "objects", "workers", "jobs", "placement_groups"):
        listing = api(base, f"/api/v0/{resource}")["data"]["result"]
        assert listing["total"] >= (1 if resource in ("nodes", "objects", "placement_groups") else 0), resource
    objects = api(base, "/api/v0/objects")["data"]["result"]["result"]
    assert dash["object_id"] in [o["object_id"] for o in objects]

    status, _, text = http(base + "/api/v0/actors?filter_keys=nope&filter_predicates=%3D&filter_values=1")
    assert status == 400 and json.loads(text)["result"] is False and "nope" in json.loads(text)["msg"]

    events = api(base, "/api/v0/tasks/timeline")
    assert events and all(e["ph"] == "X" and "ts" in e and "dur" in e for e in events)
    summary = api(base, "/api/v0/tasks/summarize")["data"]["result"]["result"]["node_id_to_summary"]["cluster"]
    assert summary["summary"]["fails_on_purpose"]["state_counts"] == {"FAILED": 1}
    logs = api(base, "/api/v0/logs")["data"]["result"]
    assert f"worker-{dash['hello_pid']}.out" in logs.get("worker_out", [])
    status, _, tail = http(base + f"/api/v0/logs/file?filename=worker-{dash['hello_pid']}.out&format=text&lines=50")
    assert status == 200 and HELLO in tail
    assert http(base + "/api/v0/logs/file?filename=../token&format=text")[0] == 400
    version = api(base, "/api/version")
    from oxray._private.ray_compat import ray_version

    assert version["version"] == "4" and version["ray_version"] == ray_version()


def test_logs_routes_list_every_log_of_the_node(dash, tmp_path):
    """The dashboard lists and reads what `oxray logs` does (the daemon's
    and job drivers' logs too), and nothing outside the session's logs."""
    from oxray.util.state import logs as state_logs

    base, session_dir = dash["base"], dash["session_dir"]
    assert api(base, "/api/version")["session_name"] == os.path.basename(session_dir)
    if dash["submission_id"]:
        wanted = f"job-driver-{dash['submission_id']}.log"
        assert wait_for(lambda: wanted in api(base, "/api/v0/logs")["data"]["result"].get("driver", []), timeout=20)
    logs = api(base, "/api/v0/logs")["data"]["result"]
    listed = state_logs.node_log_files(state_logs.session_node(session_dir))  # what `oxray logs` shows
    assert set(logs) <= {"worker_out", "worker_err", "daemon", "driver", "internal"} and set(logs) <= set(listed)
    assert "daemon.err" in logs["daemon"] and logs["daemon"] == listed["daemon"]
    files = {f["filename"]: f for f in api(base, "/api/logs")["data"]["result"]}
    assert files["daemon.err"]["category"] == "daemon" and files["daemon.err"]["pid"] is None
    hello = files[f"worker-{dash['hello_pid']}.out"]
    assert (hello["category"], hello["pid"], hello["stream"], hello["rotation"]) == (
        "worker_out", dash["hello_pid"], "out", 0)
    assert http(base + "/api/v0/logs/file?filename=daemon.err&format=text")[0] == 200
    # A link leading out of the logs directory is neither listed nor read; hidden or odd names are refused.
    secret = tmp_path / "secret.txt"
    secret.write_text("not a log\n")
    link = os.path.join(session_dir, "logs", "worker-999999.out")
    os.symlink(secret, link)
    try:
        assert "worker-999999.out" not in api(base, "/api/v0/logs")["data"]["result"].get("worker_out", [])
        assert "worker-999999.out" not in {f["filename"] for f in api(base, "/api/logs")["data"]["result"]}
        assert http(base + "/api/v0/logs/file?filename=worker-999999.out&format=text")[0] == 404
        assert http(base + "/api/v0/logs/file?pid=999999&format=text")[0] == 404
    finally:
        os.remove(link)
    for name in ("..", ".hidden", "logs/daemon.err", "%2Fetc%2Fpasswd"):
        assert http(base + f"/api/v0/logs/file?filename={name}&format=text")[0] == 400, name


def head_node_id(base):
    nodes = api(base, "/api/v0/nodes")["data"]["result"]["result"]
    return [n["node_id"] for n in nodes if n["is_head_node"]][0]


def test_logs_routes_take_a_node_id(dash):
    """The log routes read any node's logs (`node_id`, a prefix will do);
    a node the cluster does not have is a bad request."""
    base, pid = dash["base"], dash["hello_pid"]
    head = head_node_id(base)
    for node in (head, head[:8]):
        files = {f["filename"] for f in api(base, f"/api/logs?node_id={node}")["data"]["result"]}
        assert "daemon.err" in files and f"worker-{pid}.out" in files, node
        assert "daemon.err" in api(base, f"/api/v0/logs?node_id={node}")["data"]["result"]["daemon"], node
        assert http(base + f"/api/v0/logs/file?node_id={node}&filename=daemon.err&format=text")[0] == 200, node
        status, _, tail = http(base + f"/api/v0/logs/file?node_id={node}&filename=worker-{pid}.out&format=text")
        assert status == 200 and HELLO in tail, node
    for path in ("/api/logs?node_id=ffffffffffff", "/api/v0/logs?node_id=ffffffffffff",
                 "/api/v0/logs/file?node_id=ffffffffffff&filename=daemon.err&format=text"):
        status, _, body = http(base + path)
        assert status == 400 and json.loads(body)["result"] is False and "ffffffffffff" in json.loads(body)["msg"], path


def test_log_tail_reads_a_bounded_end(tmp_path):
    from oxray.dashboard import logs as dash_logs
    from oxray.util.state import logs as state_logs

    os.makedirs(tmp_path / "logs")
    node = state_logs.session_node(str(tmp_path))
    path = tmp_path / "logs" / "worker-1.out"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(10)))
    assert dash_logs.tail(node, "worker-1.out", 3) == "line 7\nline 8\nline 9\n"
    assert dash_logs.tail(node, "worker-1.out", 0) == ""
    assert dash_logs.tail(node, "worker-1.out", -1).count("\n") == 10
    path.write_bytes(b"x" * (dash_logs.MAX_TAIL_BYTES + 10) + b"\nlast\n")
    assert dash_logs.tail(node, "worker-1.out", -1) == "last\n"  # the cut line is dropped
    assert dash_logs.tail(node, "worker-1.out", 1) == "last\n"
    with pytest.raises(FileNotFoundError):
        dash_logs.tail(node, "worker-2.out")


def test_every_page_shows_the_cluster(dash, page):
    base = dash["base"]
    os.makedirs(SHOTS, exist_ok=True)
    pid = dash["hello_pid"]
    checks = {
        "overview": ("/", "[data-node-id] td", lambda t: "ALIVE" in t and "head" in t and "{CPU: 1, GPU: 1}" in t),
        "jobs": ("/jobs", "#content .panel", lambda t: (dash["submission_id"] in t and "SUCCEEDED" in t
                                                         and "echo job-says-hi" in t) if dash["submission_id"]
                 else ("Job ID" in t or "No jobs yet" in t)),
        "actors": ("/actors", "[data-actor-id]", lambda t: "alpha" in t and "ALIVE" in t and "doomed" in t
                   and "DEAD" in t and "creation task" in t),
        "tasks": ("/tasks", "[data-task-id]", lambda t: "say_hello" in t and "Counter.inc" in t
                  and "fails_on_purpose" in t and "FAILED" in t and "TASK_EXECUTION_EXCEPTION" in t),
        "timeline": ("/timeline", "#timeline svg rect.ev", lambda t: "worker" in t),
        "objects": ("/objects", "[data-object-id]", lambda t: dash["object_id"][:20] in t and "MiB" in t),
        "placement_groups": ("/placement_groups", "[data-pg-id]", lambda t: "dash-pg" in t and "CREATED" in t),
        "logs": (f"/logs#worker-{pid}.out", "#logview", lambda t: HELLO in t),
    }
    assert list(checks) == PAGES
    for name, (path, selector, ok) in checks.items():
        open_page(page, base, path)
        page.wait_for_selector(selector)
        if name == "timeline":
            assert page.get_attribute("#timeline svg rect.bad", "data-name") == "task::fails_on_purpose"
        deadline = time.monotonic() + 10
        while not ok(page.inner_text("main")) and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        assert ok(page.inner_text("main")), (name, page.inner_text("main"))
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)
    assert page.errors == []


def test_logs_page_picks_a_node(dash, page):
    """The Logs page lists the cluster's alive nodes, the dashboard's own
    first chosen; `#<node_id>/<file>` opens a file of that node."""
    base, pid = dash["base"], dash["hello_pid"]
    head = head_node_id(base)
    open_page(page, base, "/logs")
    page.wait_for_selector(f"#log-node option[value='{head}']", state="attached")
    options = page.eval_on_selector_all("#log-node option", "os => os.map(o => [o.value, o.textContent])")
    label = dict(options)[head]
    assert "(head)" in label and head[:8] in label, options
    assert page.input_value("#log-node") == head
    page.wait_for_selector(f"#content .files a[data-file='worker-{pid}.out']")
    page.select_option("#log-node", head)  # choosing the node again changes nothing
    page.goto(base + f"/logs#{head[:8]}/worker-{pid}.out")  # the #<node_id>/<file> form, an id prefix
    page.wait_for_selector("#live.ok")
    assert wait_for(lambda: HELLO in page.inner_text("#logview"), timeout=15), page.inner_text("main")
    assert page.input_value("#log-node") == head
    page.goto(base + f"/logs#worker-{pid}.out")
    page.wait_for_selector("#live.ok")
    assert wait_for(lambda: HELLO in page.inner_text("#logview"), timeout=15), page.inner_text("main")
    assert page.errors == []


def test_pages_update_without_reload(dash, page):
    open_page(page, dash["base"], "/actors")
    page.evaluate("window.__notReloaded = true")
    latecomer = dash["Counter"].options(name="latecomer").remote()
    oxray.get(latecomer.inc.remote())
    page.wait_for_selector("[data-actor-id]:has-text('latecomer')", timeout=20_000)
    assert page.evaluate("window.__notReloaded") is True
    open_page(page, dash["base"], "/tasks")
    page.evaluate("window.__notReloaded = true")
    page.wait_for_selector("[data-task-id]")
    before = api(dash["base"], "/api/v0/tasks?limit=10000")["data"]["result"]["total"]
    oxray.get(latecomer.inc.remote())
    rows = page.locator("[data-task-id]")
    assert wait_for(lambda: rows.count() > before, timeout=20), (before, page.inner_text("main"))
    assert page.evaluate("window.__notReloaded") is True
    assert page.errors == []


@pytest.fixture
def token_head(tmp_path):
    """A head started with `oxray start --head` (own node index, own
    dashboard port); yields (dashboard base URL, token, dashboard pid, the
    head's address, and `cli(*args)`, which runs `oxray` beside it)."""
    oxray.shutdown()
    env = dict(os.environ, RAY_TMPDIR=str(tmp_path))
    env.pop("OXRAY_AUTH_TOKEN", None)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "oxray.scripts", *args], capture_output=True, text=True,
                              timeout=60, cwd=REPO, env=env)

    out = cli("start", "--head", "--port", "0", "--num-cpus", "1", "--dashboard-port", "0")
    try:
        assert out.returncode == 0, out.stderr
        url = re.search(r"View the dashboard at (http://\S+)", out.stdout).group(1)
        head_address = re.search(r"Started an oxray head at (\S+?)\.?$", out.stdout, re.M).group(1)
        token_file = re.search(r"The cluster token is in (\S+) ", out.stdout).group(1)
        with open(token_file) as f:
            token = f.read().strip()
        with open(os.path.join(os.path.dirname(token_file), "dashboard.json")) as f:
            pid = json.load(f)["pid"]
        yield url, token, pid, head_address, cli
    finally:
        stopped = cli("stop")
        assert stopped.returncode == 0, stopped.stderr
    assert wait_for(lambda: gone(pid), timeout=10), "oxray stop left the dashboard running"


def test_head_dashboard_needs_the_cluster_token(token_head, browser):
    base, token, *_ = token_head
    status, headers, body = http(base + "/api/v0/nodes")
    assert status == 401 and json.loads(body)["result"] is False and headers["WWW-Authenticate"].startswith("Bearer")
    assert http(base + "/api/v0/nodes", token="wrong-" + token)[0] == 401
    listing = api(base, "/api/v0/nodes", token=token)["data"]["result"]
    assert listing["total"] == 1 and listing["result"][0]["is_head_node"] is True
    status, _, body = http(base + "/actors")
    assert status == 401 and 'name="token"' in body

    context = browser.new_context()
    try:
        pg = context.new_page()
        pg.goto(base + "/actors")
        pg.fill("input[name=token]", "not-the-token")  # asks for the token
        pg.click("button[type=submit]")
        assert "not this cluster's" in pg.inner_text("body")
        pg.fill("input[name=token]", token)
        pg.click("button[type=submit]")
        pg.wait_for_selector("#live.ok", timeout=15_000)
        assert pg.url == base + "/actors"
        context.clear_cookies()
        pg.goto(base + f"/tasks?token={token}")
        assert pg.url == base + "/tasks"  # the token left the address bar
        pg.wait_for_selector("#live.ok", timeout=15_000)
        cookie = [c for c in context.cookies() if c["name"] == "oxray_dashboard_token"][0]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and token not in cookie["value"]
        pg.goto(base + "/")  # the cookie carries on
        pg.wait_for_selector("[data-node-id]", timeout=15_000)
    finally:
        context.close()


def test_logs_page_reads_another_nodes_logs(token_head, browser):
    """With a second node joined, the Logs page's node selector lists both,
    and choosing one lists and reads that node's files (through its daemon)."""
    base, token, _, head_address, cli = token_head
    out = cli("start", "--address", head_address, "--token", token, "--num-cpus", "1")
    assert out.returncode == 0, out.stderr
    assert wait_for(lambda: len(api(base, "/api/v0/nodes", token=token)["data"]["result"]["result"]) == 2, timeout=20)
    nodes = api(base, "/api/v0/nodes", token=token)["data"]["result"]["result"]
    head = [n["node_id"] for n in nodes if n["is_head_node"]][0]
    other = [n["node_id"] for n in nodes if not n["is_head_node"]][0]
    # The head's dashboard writes dashboard.log beside the head's other logs; the joined node has none.
    assert "dashboard.log" in {f["filename"] for f in api(base, f"/api/logs?node_id={head}", token=token)["data"]["result"]}
    theirs = {f["filename"] for f in api(base, f"/api/logs?node_id={other}", token=token)["data"]["result"]}
    assert "daemon.err" in theirs and "dashboard.log" not in theirs

    context = browser.new_context()
    try:
        pg = context.new_page()
        errors = []
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.set_default_timeout(15_000)
        pg.goto(base + f"/logs?token={token}")
        pg.wait_for_selector(f"#log-node option[value='{other}']", state="attached")
        labels = dict(pg.eval_on_selector_all("#log-node option", "os => os.map(o => [o.value, o.textContent])"))
        assert set(labels) == {head, other} and "(head)" in labels[head] and "(head)" not in labels[other]
        assert pg.input_value("#log-node") == head
        pg.wait_for_selector("#content .files a[data-file='dashboard.log']")
        pg.select_option("#log-node", other)
        pg.wait_for_selector("#content .files a[data-file='daemon.err']")
        assert pg.locator("#content .files a[data-file='dashboard.log']").count() == 0
        assert wait_for(lambda: pg.evaluate("location.hash").startswith(f"#{other}/"), timeout=10)
        pg.click("#content .files a[data-file='daemon.out']")
        assert wait_for(lambda: pg.evaluate("location.hash") == f"#{other}/daemon.out", timeout=10)
        assert wait_for(lambda: pg.inner_text("main h2") == "daemon.out", timeout=10)
        pg.wait_for_timeout(2000)  # live updates keep to the chosen node
        assert pg.locator("#content .files a[data-file='dashboard.log']").count() == 0
        assert pg.input_value("#log-node") == other
        pg.select_option("#log-node", head)
        pg.wait_for_selector("#content .files a[data-file='dashboard.log']")
        pg.click("#content .files a[data-file='dashboard.log']")
        assert wait_for(lambda: pg.evaluate("location.hash") == "#dashboard.log", timeout=10)
        assert wait_for(lambda: pg.inner_text("#logview").strip() not in ("", "(empty)"), timeout=10)
        assert "cannot read" not in pg.inner_text("#logview")
        pg.goto(base + f"/logs#{other[:8]}/daemon.err")  # another node's file by address, an id prefix
        assert wait_for(lambda: pg.input_value("#log-node") == other, timeout=10)
        pg.wait_for_selector("#content .files a.sel[data-file='daemon.err']")
        assert pg.locator("#content .files a[data-file='dashboard.log']").count() == 0
        assert errors == []
    finally:
        context.close()


def test_dashboard_dies_with_a_killed_driver():
    oxray.shutdown()
    code = ("import json, os, sys, time, oxray\n"
            "ctx = oxray.init(num_cpus=1, include_dashboard=True, dashboard_port=0)\n"
            "from oxray.dashboard import launcher\n"
            "info = launcher.read_ready_file(ctx['session_dir'])\n"
            "info['daemon'] = oxray._private.worker._session.daemon.process.pid\n"
            "print(json.dumps(info), flush=True)\n"
            "time.sleep(120)\n")
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        info = json.loads(driver.stdout.readline())
        assert not gone(info["pid"])
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    assert wait_for(lambda: gone(info["pid"]), timeout=15), "the dashboard outlived its killed driver"
    assert wait_for(lambda: gone(info["daemon"]), timeout=15)


def test_a_dashboard_without_a_token_stays_on_loopback(shutdown_only, tmp_path):
    """An embedded cluster has no token: its dashboard (whose Jobs API runs
    shell commands) may not listen beyond this machine."""
    from oxray.dashboard import launcher

    assert launcher.is_loopback_host("127.0.0.1") and launcher.is_loopback_host("localhost")
    assert launcher.is_loopback_host("::1") and launcher.is_loopback_host("127.0.0.5")
    for host in ("0.0.0.0", "::", "", "10.1.2.3"):
        assert not launcher.is_loopback_host(host), host
    before = dashboard_pids()
    with pytest.raises(ValueError, match="without a cluster token") as e:
        launcher.start_dashboard("unused", str(tmp_path), host="0.0.0.0", port=0)
    assert "oxray start --head" in str(e.value) and "127.0.0.1" in str(e.value)
    launcher.check_exposure("0.0.0.0", has_token=True)  # a cluster with a token may
    with pytest.raises(ValueError, match="without a cluster token"):
        oxray.init(num_cpus=1, include_dashboard=True, dashboard_host="0.0.0.0", dashboard_port=0)
    assert not oxray.is_initialized()
    # The dashboard process itself refuses too.
    out = subprocess.run([sys.executable, "-m", "oxray.dashboard", "--address", "unused", "--host", "0.0.0.0",
                          "--port", "0", "--session-dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert out.returncode != 0 and "without a cluster token" in out.stderr
    assert dashboard_pids() <= before


def test_init_starts_no_dashboard_unless_asked(shutdown_only):
    with pytest.warns(UserWarning, match="only with include_dashboard=True"):
        ctx = oxray.init(num_cpus=1, dashboard_port=8266)
    assert ctx.dashboard_url is None and "webui_url" not in ctx
    oxray.shutdown()
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(RuntimeError, match="Failed to start the dashboard"):
            oxray.init(num_cpus=1, include_dashboard=True, dashboard_port=taken.getsockname()[1])
    assert not oxray.is_initialized()
