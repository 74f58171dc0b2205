"""deploy/: the Kubernetes manifests, the image recipe and the Slurm batch
script. Nothing here starts a real cluster: the manifests are parsed and
checked for what an oxray node needs (token from the Secret, pod IP, probes,
/dev/shm), and the Slurm script runs against stand-ins for srun, scontrol,
hostname and oxray."""

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(REPO, "deploy")
K8S = os.path.join(DEPLOY, "kubernetes")
DOCKERFILE = os.path.join(DEPLOY, "Dockerfile")
SBATCH = os.path.join(DEPLOY, "slurm", "oxray-cluster.sbatch")

STANDARD_KINDS = {("v1", "Secret"), ("v1", "Service"), ("apps/v1", "Deployment")}
SECRET_NAME = "oxray-cluster-token"
SECRET_KEY = "token"


# ------------------------------------------------------------------ helpers

def manifest_files():
    """The Kubernetes manifests (kustomization.yaml is kustomize's own file)."""
    return sorted(f for f in os.listdir(K8S)
                  if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml")


def load(name):
    with open(os.path.join(K8S, name)) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def all_objects():
    return [(name, doc) for name in manifest_files() for doc in load(name)]


def find(kind, name):
    found = [doc for _, doc in all_objects() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind} {name!r}, found {len(found)}"
    return found[0]


def main_container(deployment):
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one oxray container per pod"
    return containers[0]


def command_line(container):
    """The container's command and args as one string, as a shell would see them."""
    return " ".join(str(part) for part in container.get("command", []) + container.get("args", []))


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def secret_values(secret):
    """The Secret's values as text, from stringData or (base64) data."""
    values = dict(secret.get("stringData") or {})
    for key, value in (secret.get("data") or {}).items():
        values[key] = base64.b64decode(value).decode()
    return values


DEPLOYMENTS = ["oxray-head", "oxray-worker"]


# ---------------------------------------------------------- the manifests

def test_manifests_parse_and_use_standard_kinds_only():
    files = manifest_files()
    assert {"secret.yaml", "head.yaml", "workers.yaml"} <= set(files)
    for name, doc in all_objects():
        assert (doc.get("apiVersion"), doc.get("kind")) in STANDARD_KINDS, (name, doc.get("kind"))
        assert doc["metadata"].get("name"), name


def test_expected_objects_exist():
    secrets = {doc["metadata"]["name"] for doc in load("secret.yaml") if doc["kind"] == "Secret"}
    assert secrets == {SECRET_NAME}
    head = {(doc["kind"], doc["metadata"]["name"]) for doc in load("head.yaml")}
    assert {("Deployment", "oxray-head"), ("Service", "oxray-head")} <= head
    workers = {(doc["kind"], doc["metadata"]["name"]) for doc in load("workers.yaml")}
    assert ("Deployment", "oxray-worker") in workers

    assert find("Deployment", "oxray-head")["spec"]["replicas"] == 1
    assert find("Deployment", "oxray-worker")["spec"]["replicas"] >= 1


def test_kustomization_lists_every_manifest():
    path = os.path.join(K8S, "kustomization.yaml")
    if not os.path.exists(path):
        pytest.skip("no kustomization.yaml")
    with open(path) as f:
        kustomization = yaml.safe_load(f)
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == manifest_files()


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_deployment_selects_its_own_pods(name):
    spec = find("Deployment", name)["spec"]
    selector = spec["selector"]["matchLabels"]
    labels = spec["template"]["metadata"]["labels"]
    assert selector and selector.items() <= labels.items()


def test_head_service_selects_the_head_pods_and_exposes_6379():
    service = find("Service", "oxray-head")
    selector = service["spec"]["selector"]
    head_labels = find("Deployment", "oxray-head")["spec"]["template"]["metadata"]["labels"]
    worker_labels = find("Deployment", "oxray-worker")["spec"]["template"]["metadata"]["labels"]
    assert selector and selector.items() <= head_labels.items()
    assert not selector.items() <= worker_labels.items(), "the head Service must not route to workers"

    cluster_ports = [p for p in service["spec"]["ports"] if p["port"] == 6379]
    assert len(cluster_ports) == 1
    assert cluster_ports[0].get("name") == "cluster"
    assert cluster_ports[0].get("targetPort", 6379) in (6379, "cluster")
    assert cluster_ports[0].get("protocol", "TCP") == "TCP"

    head_ports = main_container(find("Deployment", "oxray-head")).get("ports", [])
    assert 6379 in [p["containerPort"] for p in head_ports]


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_dev_shm_is_a_memory_backed_emptydir(name):
    pod = find("Deployment", name)["spec"]["template"]["spec"]
    mounts = [m for m in main_container(find("Deployment", name)).get("volumeMounts", [])
              if m["mountPath"] == "/dev/shm"]
    assert len(mounts) == 1, "the object store lives in /dev/shm"
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    volume = volumes[mounts[0]["name"]]
    assert volume["emptyDir"]["medium"] == "Memory"
    assert volume["emptyDir"].get("sizeLimit"), "give /dev/shm a size"


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_token_comes_from_the_secret(name):
    secret = find("Secret", SECRET_NAME)
    env = env_of(main_container(find("Deployment", name)))
    token = env["OXRAY_AUTH_TOKEN"]
    assert "value" not in token, "the token must not be written in the manifest"
    ref = token["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"] == SECRET_NAME
    assert ref["key"] == SECRET_KEY
    assert SECRET_KEY in secret_values(secret)


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_node_ip_is_the_pod_ip(name):
    container = main_container(find("Deployment", name))
    node_ip = env_of(container)["NODE_IP"]
    assert node_ip["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert re.search(r"--node-ip-address[ =]\$\(NODE_IP\)", command_line(container))


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_probes_are_http_healthz_on_the_health_port(name):
    container = main_container(find("Deployment", name))
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz", probe
        assert get["port"] == 8080, probe
    assert "--health-port 8080" in command_line(container)


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_cpu_and_memory_requests_and_limits(name):
    resources = main_container(find("Deployment", name))["resources"]
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[section]), section


def test_head_command():
    line = command_line(main_container(find("Deployment", "oxray-head")))
    assert line.startswith("oxray start ")
    for flag in ("--head", "--port 6379", "--block", "--health-port 8080", "--node-ip-address"):
        assert flag in line, flag
    assert "--address" not in line


def test_worker_command():
    line = command_line(main_container(find("Deployment", "oxray-worker")))
    assert line.startswith("oxray start ")
    for flag in ("--address oxray-head:6379", "--block", "--health-port 8080", "--node-ip-address"):
        assert flag in line, flag
    assert "--head" not in line.split()


def test_no_real_token_in_the_manifests():
    # The Secret holds a placeholder: too short to be accepted as a token
    # (16 characters at least), or plainly marked as one.
    value = secret_values(find("Secret", SECRET_NAME))[SECRET_KEY]
    assert len(value) < 16 or re.search(r"change|replace|placeholder", value, re.I), value
    for name, doc in all_objects():
        text = yaml.safe_dump(doc)
        assert "--token" not in text, name
        # Nothing that looks like a generated secret (long base64 or hex).
        for word in re.findall(r"[A-Za-z0-9+/_-]{32,}={0,2}", text):
            assert not (re.search(r"\d", word) and re.search(r"[A-Za-z]", word)), (name, word)
    for name, doc in all_objects():
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"].get("containers", []):
                for e in container.get("env", []):
                    if "TOKEN" in e["name"]:
                        assert "value" not in e, (name, e["name"])


# ------------------------------------------------------------- the image

def read(path):
    with open(path) as f:
        return f.read()


def test_dockerfile_is_multi_stage_and_builds_with_setup_sh():
    text = read(DOCKERFILE)
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    assert len(froms) >= 2
    build_image, build_stage = froms[0]
    assert build_image.startswith("rust:") and build_stage
    assert re.search(r"apt-get install[^\n]*python3-venv", text)
    assert re.search(r"^RUN\b[^#]*?bash scripts/setup\.sh", text, re.M | re.S)
    assert re.search(rf"^COPY\s+--from={build_stage}\s+/opt/oxray/\.venv\s+/opt/oxray/\.venv", text, re.M)
    assert re.search(rf"^COPY\s+--from={build_stage}\s+/opt/oxray/python\s+/opt/oxray/python", text, re.M)
    assert re.search(r"^ENV\s+PATH=/opt/oxray/\.venv/bin:", text, re.M)
    assert not froms[-1][0].startswith("rust:"), "the runtime stage carries no toolchain"


# ---------------------------------------------------------- the Slurm job

def test_sbatch_script_syntax_and_contents():
    subprocess.run(["bash", "-n", SBATCH], check=True)
    text = read(SBATCH)
    assert re.search(r"^#SBATCH --nodes=", text, re.M)
    assert len(re.findall(r"^#SBATCH ", text, re.M)) >= 3
    for needle in ("scontrol show hostnames", "hostname --ip-address", "oxray start --head",
                   "oxray start --address", "oxray stop", "export OXRAY_AUTH_TOKEN",
                   "RAY_ADDRESS=", "trap cleanup EXIT", "--block"):
        assert needle in text, needle


# Stand-ins: `srun -w NODE CMD` runs CMD here with SLURMD_NODENAME=NODE;
# `hostname` gives node nI the address 127.0.0.(10+I) (after a 127.0.1.1 from
# --ip-address, as on Debian hosts); `oxray start` serves GET /healthz on its
# --node-ip-address and --health-port until `oxray stop` on that node.
FAKE_SRUN = r"""#!/usr/bin/env bash
host=
while [ $# -gt 0 ]; do
  case $1 in
    -w) host=$2; shift 2 ;;
    --*) shift ;;
    *) break ;;
  esac
done
[ -n "$host" ] || { echo "fake srun: no -w NODE" >&2; exit 99; }
echo "$host $*" >>"$FAKE_STATE/srun.log"
export SLURMD_NODENAME=$host
exec "$@"
"""
FAKE_SCONTROL = r"""#!/usr/bin/env bash
[ "$1 $2" = "show hostnames" ] || exit 98
for n in $FAKE_NODES; do echo "$n"; done
"""
FAKE_HOSTNAME = r"""#!/usr/bin/env bash
i=${SLURMD_NODENAME#n}
case $1 in
  --ip-address) echo "127.0.1.1" ;;
  -I) echo "127.0.0.$((10 + i)) 192.0.2.1" ;;
  *) echo "$SLURMD_NODENAME" ;;
esac
"""
FAKE_OXRAY = r"""#!/usr/bin/env bash
echo "$SLURMD_NODENAME $*" >>"$FAKE_STATE/oxray.log"
case $1 in
  start)
    args=("$@")
    for ((i = 0; i < ${#args[@]}; i++)); do
      case ${args[i]} in
        --node-ip-address) ip=${args[i + 1]} ;;
        --health-port) port=${args[i + 1]} ;;
      esac
    done
    [ "${#OXRAY_AUTH_TOKEN}" -ge 16 ] || { echo "fake oxray: no token" >&2; exit 3; }
    mkdir -p "$FAKE_STATE/www" && : >"$FAKE_STATE/www/healthz"
    python -m http.server --bind "$ip" --directory "$FAKE_STATE/www" "$port" >/dev/null 2>&1 &
    echo $! >"$FAKE_STATE/$SLURMD_NODENAME.pid"
    wait $!
    ;;
  stop)
    pidf=$FAKE_STATE/$SLURMD_NODENAME.pid
    if [ -f "$pidf" ]; then kill "$(cat "$pidf")"; rm -f "$pidf"; fi
    ;;
esac
"""
DRIVER = r"""
import json, os, sys, time
with open(os.path.join(os.environ["FAKE_STATE"], "driver.out"), "w") as f:
    json.dump({"address": os.environ["RAY_ADDRESS"], "token": os.environ["OXRAY_AUTH_TOKEN"],
               "argv": sys.argv[1:]}, f)
if sys.argv[1:] == ["sleep"]:
    time.sleep(60)
sys.exit(7)
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_slurm(tmp_path):
    bin_dir = tmp_path / "bin"
    state = tmp_path / "state"
    submit = tmp_path / "submit"
    for d in (bin_dir, state, submit):
        d.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL),
                       ("hostname", FAKE_HOSTNAME), ("oxray", FAKE_OXRAY)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(0o755)
    driver = submit / "driver.py"
    driver.write_text(DRIVER)
    job_id = f"test{os.getpid()}{time.monotonic_ns() % 100000}"
    env = dict(os.environ)
    env.update({
        "PATH": f"{bin_dir}:{os.path.dirname(sys.executable)}:{env.get('PATH', '/usr/bin:/bin')}",
        "FAKE_STATE": str(state),
        "FAKE_NODES": "n0 n1 n2",
        "SLURM_JOB_ID": job_id,
        "SLURM_JOB_NODELIST": "n[0-2]",
        "SLURM_SUBMIT_DIR": str(submit),
        "SLURM_CPUS_PER_TASK": "2",
        "OXRAY_VENV": str(tmp_path / "no-venv"),
        "OXRAY_PORT": str(_free_port()),
        "OXRAY_HEALTH_PORT": str(_free_port()),
        "OXRAY_STARTUP_TIMEOUT": "20",
    })
    env.pop("OXRAY_AUTH_TOKEN", None)
    env.pop("RAY_ADDRESS", None)
    procs = []

    def start(*args):
        proc = subprocess.Popen(["bash", SBATCH, str(driver), *args], env=env, cwd=str(submit),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        procs.append(proc)
        return proc

    yield start, state, submit, job_id, env
    for proc in procs:  # whatever happened, nothing of the fake cluster stays
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
    subprocess.run(["rm", "-rf", f"/tmp/oxray-slurm-{job_id}"])


def _check_cluster_gone(state, submit, job_id, env):
    log = (state / "oxray.log").read_text().splitlines()
    starts = [line.split()[0] for line in log if line.split()[1] == "start"]
    stops = [line.split()[0] for line in log if line.split()[1] == "stop"]
    assert starts[0] == "n0" and sorted(starts) == ["n0", "n1", "n2"], "the head starts first"
    assert sorted(stops) == ["n0", "n1", "n2"] and stops[-1] == "n0", "workers stop first, the head last"
    assert not list(state.glob("*.pid")), "every fake node was stopped"
    assert not list(submit.glob("oxray-job-*")), "the token file is removed at the end"
    assert not os.path.exists(f"/tmp/oxray-slurm-{job_id}")
    return log


def test_sbatch_script_runs_the_driver_on_a_fake_allocation(fake_slurm):
    start, state, submit, job_id, env = fake_slurm
    proc = start("--flag", "x y")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 7, out  # the driver's exit status
    log = _check_cluster_gone(state, submit, job_id, env)

    port, health = env["OXRAY_PORT"], env["OXRAY_HEALTH_PORT"]
    head = next(line for line in log if line.startswith("n0 start"))
    assert f"--head --port {port} --node-ip-address 127.0.0.10 --num-cpus 2" in head
    assert f"--health-port {health} --block" in head
    for i in (1, 2):
        worker = next(line for line in log if line.startswith(f"n{i} start"))
        assert f"--address 127.0.0.10:{port} --node-ip-address 127.0.0.1{i} --num-cpus 2" in worker
        assert worker.endswith("--block")
    # The driver ran with the head's address, the generated token and its arguments.
    driver = json.loads((state / "driver.out").read_text())
    assert driver["address"] == f"127.0.0.10:{port}"
    assert driver["argv"] == ["--flag", "x y"]
    assert len(driver["token"]) >= 32


def test_sbatch_script_stops_the_cluster_when_cancelled(fake_slurm):
    start, state, submit, job_id, env = fake_slurm
    proc = start("sleep")
    deadline = time.monotonic() + 30
    while not (state / "driver.out").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.1)
    token_files = list(submit.glob("oxray-job-*/token"))
    assert len(token_files) == 1 and (token_files[0].stat().st_mode & 0o777) == 0o600
    proc.send_signal(signal.SIGTERM)  # what scancel (or --signal before the time limit) sends
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out
    _check_cluster_gone(state, submit, job_id, env)


def test_deploy_readme_covers_ports_token_and_shm():
    text = read(os.path.join(DEPLOY, "README.md"))
    for needle in ("6379", "8080", "/dev/shm", "OXRAY_AUTH_TOKEN", "oxray-cluster-token",
                   "docker build", "kubectl apply", "sbatch"):
        assert needle in text, needle
