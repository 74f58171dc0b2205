"""Code in runtime environments: the `working_dir`, `py_modules` and
`excludes` fields of a runtime_env, as Ray's.

Submitting side: each local directory (or `.py` file, or `.zip` file for a
working_dir) is packed into a zip once per content, named by its hash as
Ray names packages (`gcs://_ray_pkg_<sha1>.zip`), and uploaded once to the
cluster's KV store under that name. The packed form of a runtime_env has
these URIs in place of the local paths.

Shipping: the URIs travel with each task in the reserved variable
`OXRAY_RUNTIME_ENV_PACKAGES` of its env_vars (a JSON object of the packed
fields), the channel the job's code search path also uses (see
`code_search`): a child task inherits its parent's, and a task's own fields
replace its parent's field by field, as Ray merges runtime_envs. Users
never see the variable: `runtime_context` shows the fields instead, and the
worker does not export it to `os.environ`.

Worker side: a package is downloaded once per node into
`<session_dir>/runtime_resources/<hash>/`; for a task the working_dir copy
becomes the cwd and comes first on `sys.path`, then the py_modules copies.
After a plain task the cwd and `sys.path` are restored and the modules
imported from those copies are forgotten, so a later task with another (or
no) environment never sees them. An actor keeps its environment for life.
"""

import hashlib
import json
import os
import re
import stat
import sys
import threading
import types

# zipfile, tempfile and shutil are imported where packages are packed or
# unpacked: every process imports this module, few ship code.

from oxray import _native
from oxray._private import code_search

# The reserved env_vars entry carrying a task's packed fields (JSON).
PACKAGES_ENV_VAR = "OXRAY_RUNTIME_ENV_PACKAGES"
# The env_vars entries oxray itself puts in a runtime_env: never shown.
INTERNAL_ENV_VARS = (code_search.ENV_VAR, PACKAGES_ENV_VAR)
# The runtime_env fields that name code to ship.
PACKAGE_FIELDS = ("working_dir", "py_modules")
# The KV namespace of the packages (keys are their URIs, as Ray's).
KV_NAMESPACE = "runtime_env_packages"
# Ray's limit on a package (its zip), bounded by the largest message its
# GCS takes; `RAY_max_grpc_message_size` changes it, as in Ray.
MAX_PACKAGE_BYTES = int(os.environ.get("RAY_max_grpc_message_size", 500 * 1024 * 1024))
# Directories never packed: byte-code caches and version control data.
DEFAULT_EXCLUDED_DIRS = frozenset({"__pycache__", ".git"})
# Set to "1", a directory's .gitignore files are not applied (Ray's switch).
IGNORE_GITIGNORE_ENV_VAR = "RAY_RUNTIME_ENV_IGNORE_GITIGNORE"

def code_env_key(env_vars):
    """A task's code environment for the scheduler: a hash of the code its
    runtime_env ships (packages, code search path), or 0 for none. Workers
    that ran one environment's tasks serve only that environment."""
    if not env_vars:
        return 0
    code = [value for name, value in env_vars if name in INTERNAL_ENV_VARS]
    if not code:
        return 0
    return int.from_bytes(hashlib.sha1("\0".join(code).encode()).digest()[:8], "big") or 1


_PREFIX = "gcs://_ray_pkg_"
_URI = re.compile(r"gcs://_ray_pkg_([0-9a-f]{40})\.zip")
_lock = threading.RLock()


# --- validation ------------------------------------------------------------------

def check(env):
    """Raises for `working_dir`, `py_modules` or `excludes` values oxray
    cannot ship (called by `options.check_runtime_env`, so at decoration,
    `.options()` and `init`). Whether the paths exist is checked when the
    environment is packed (at `init`, or when a task is submitted)."""
    working_dir = env.get("working_dir")
    if working_dir is not None:
        if not isinstance(working_dir, (str, os.PathLike)):
            raise TypeError(f"runtime_env['working_dir'] must be a path string, got {type(working_dir).__name__}.")
        _check_local(os.fspath(working_dir), "working_dir")
    py_modules = env.get("py_modules")
    if py_modules is not None:
        if not isinstance(py_modules, (list, tuple)):
            raise TypeError(f"runtime_env['py_modules'] must be a list, got {type(py_modules).__name__}.")
        for entry in py_modules:
            if isinstance(entry, types.ModuleType):
                _module_path(entry)
            elif isinstance(entry, (str, os.PathLike)):
                path = os.fspath(entry)
                _check_local(path, "py_modules")
                if path.endswith(".whl"):
                    raise ValueError(
                        f"runtime_env['py_modules'] entry {path!r}: .whl files are not supported by oxray "
                        "(it installs no packages); pass the package's directory or module instead."
                    )
            else:
                raise TypeError(
                    "runtime_env['py_modules'] entries must be paths or imported module objects, "
                    f"got {type(entry).__name__}."
                )
    excludes = env.get("excludes")
    if excludes is not None and (
        not isinstance(excludes, (list, tuple)) or not all(isinstance(p, str) for p in excludes)
    ):
        raise TypeError("runtime_env['excludes'] must be a list of strings (gitignore-style patterns).")


def _check_local(path, field):
    if _URI.fullmatch(path):
        return  # a package already uploaded (a packed runtime_env passed on)
    if "://" in path:
        raise ValueError(
            f"runtime_env['{field}'] is {path!r}: oxray supports local paths only (no remote URIs such as "
            "s3://, gs:// or https://); download the package and pass its local directory."
        )


def _module_path(module):
    """The file or directory a module object stands for (a package: its
    directory; a single-file module: its file)."""
    paths = list(getattr(module, "__path__", None) or [])
    if len(paths) > 1:
        raise ValueError(f"py_modules only supports modules whose __path__ has length 1, got {module.__name__}.")
    if paths:
        return paths[0]
    path = getattr(module, "__file__", None)
    if not path:
        raise ValueError(f"The module {module.__name__} has no file to ship in runtime_env['py_modules'].")
    return path


# --- the runtime_env forms ------------------------------------------------------------

def has_packages(env):
    """Whether a runtime_env names code to ship."""
    return bool(env) and any(env.get(field) is not None for field in PACKAGE_FIELDS)


def decode(value):
    """The packed fields a PACKAGES_ENV_VAR value carries (empty: none)."""
    return json.loads(value) if value else {}


def encode(fields):
    """The PACKAGES_ENV_VAR value of packed fields (None: none)."""
    return json.dumps(fields, sort_keys=True) if fields else None


def add_packages(env_vars, env):
    """Folds the code of `env` (a task's, actor's or job's own runtime_env)
    into `env_vars`, the merged variables it runs with: its packed fields
    replace those inherited in PACKAGES_ENV_VAR one by one, as Ray merges
    runtime_envs. Packs and uploads what is not yet in the cluster."""
    if not has_packages(env):
        return env_vars
    fields = decode(env_vars.get(PACKAGES_ENV_VAR))
    fields.update(pack(env))
    value = encode(fields)
    if value is None:
        env_vars.pop(PACKAGES_ENV_VAR, None)
    else:
        env_vars[PACKAGES_ENV_VAR] = value
    return env_vars


def for_job(env):
    """The job's runtime_env as `init` keeps it: its code packed (so a
    missing or oversized directory fails `init` before a cluster starts)
    and carried in env_vars; `upload_job` uploads it once connected."""
    if not has_packages(env):
        return env
    out = {k: v for k, v in dict(env).items() if k not in PACKAGE_FIELDS and k != "excludes"}
    out["env_vars"] = add_packages(dict(env.get("env_vars") or {}), _Unconnected(env))
    return out


def upload_job(env):
    """Uploads the packages of the job's runtime_env (see `for_job`) to the
    cluster `init` just connected to."""
    fields = decode(((env or {}).get("env_vars") or {}).get(PACKAGES_ENV_VAR))
    for uri in _uris(fields):
        _upload(uri)


def user_view(env):
    """A runtime_env as users see it (Ray's form): the internal variables
    left out of env_vars, the packed fields (package URIs) in their place."""
    env = dict(env or {})
    env_vars = env.get("env_vars")
    if not env_vars or not any(name in env_vars for name in INTERNAL_ENV_VARS):
        return env
    env_vars = dict(env_vars)
    fields = decode(env_vars.pop(PACKAGES_ENV_VAR, None))
    env_vars.pop(code_search.ENV_VAR, None)
    if env_vars:
        env["env_vars"] = env_vars
    else:
        env.pop("env_vars")
    env.update(fields)
    return env


def _uris(fields):
    uris = [fields["working_dir"]] if fields.get("working_dir") else []
    return uris + list(fields.get("py_modules") or [])


class _Unconnected(dict):
    """A runtime_env to pack without uploading (before `init` connects)."""


# --- packing and uploading (submitting side) ---------------------------------------------

class _Packed:
    """A packed path: its cheap signature (what its files' stats were), its
    URI, and its zip until uploaded (dropped then: a later cluster gets it
    packed again)."""

    def __init__(self, signature, uri, data):
        self.signature = signature
        self.uri = uri
        self.data = data


# (field, absolute path, excludes, gitignore applied) -> _Packed
_packed = {}
# cluster (its session directory) -> URIs uploaded there by this process
_uploaded = {}


def pack(env):
    """The packed fields of a runtime_env (`working_dir` and `py_modules`
    as package URIs); uploads the packages unless `env` is `_Unconnected`."""
    upload = not isinstance(env, _Unconnected)
    excludes = tuple(env.get("excludes") or ())
    fields = {}
    working_dir = env.get("working_dir")
    if working_dir is not None:
        fields["working_dir"] = _package(os.fspath(working_dir), "working_dir", excludes, upload)
    py_modules = env.get("py_modules")
    if py_modules is not None:
        fields["py_modules"] = [
            _package(_module_path(m) if isinstance(m, types.ModuleType) else os.fspath(m), "py_modules",
                     excludes, upload)
            for m in py_modules
        ]
    return fields


def _package(path, field, excludes, upload):
    """The URI of one working_dir or py_modules entry, packed (once per
    content) and uploaded (once per cluster) as needed."""
    if _URI.fullmatch(path):
        return path
    path = os.path.abspath(os.path.expanduser(path))
    gitignore = os.environ.get(IGNORE_GITIGNORE_ENV_VAR, "0") != "1"
    key = (field, path, excludes, gitignore)
    with _lock:
        source = _Source(path, field, excludes, gitignore)
        signature = source.signature()
        entry = _packed.get(key)
        if entry is None or entry.signature != signature:
            data, digest = source.pack()
            entry = _packed[key] = _Packed(signature, f"{_PREFIX}{digest}.zip", data)
        if upload:
            _upload(entry.uri, entry, source)
        return entry.uri


def _upload(uri, entry=None, source=None):
    """Puts package `uri` in the connected cluster's KV store unless this
    process, or another (a marker says), already did."""
    with _lock:
        cluster = _native.context()["session_dir"]
        done = _uploaded.setdefault(cluster, set())
        if uri in done:
            return
        marker = f"{uri}#uploaded".encode()
        if _native.kv_get(KV_NAMESPACE, marker) is None:
            if entry is None:
                entry = next((e for e in _packed.values() if e.uri == uri), None)
                if entry is None:
                    return  # packed by another process (a job's, passed on): it uploaded it
            data = entry.data
            if data is None:
                # Uploaded to an earlier cluster: pack it again for this one.
                if source is None:
                    key = next(k for k, e in _packed.items() if e is entry)
                    source = _Source(key[1], key[0], key[2], key[3])
                data, _ = source.pack()
            _native.kv_put(KV_NAMESPACE, uri.encode(), data)
            _native.kv_put(KV_NAMESPACE, marker, str(len(data)).encode())
        if entry is not None:
            entry.data = None
        done.add(uri)


def pack_unuploaded(env):
    """The packed fields of a runtime_env (`pack`), uploading nothing:
    for uploads another way (job submission's HTTP package API), which
    take each package's zip from `packed_data`."""
    return pack(_Unconnected(env))


def is_package_uri(uri):
    """Whether `uri` names a package as `pack` names them."""
    return bool(_URI.fullmatch(uri or ""))


def package_exists(uri):
    """Whether package `uri` is in the connected cluster's KV store."""
    return _native.kv_get(KV_NAMESPACE, f"{uri}#uploaded".encode()) is not None


def store_package(uri, data):
    """Puts package `uri` (its zip bytes) in the connected cluster's KV
    store, as an upload by `pack` would (the job server's package API)."""
    if not is_package_uri(uri):
        raise ValueError(f"{uri!r} is not a runtime_env package URI (gcs://_ray_pkg_<sha1>.zip).")
    _native.kv_put(KV_NAMESPACE, uri.encode(), data)
    _native.kv_put(KV_NAMESPACE, f"{uri}#uploaded".encode(), str(len(data)).encode())


def packed_data(uri):
    """The zip of a package this process packed (`pack` of an unconnected
    runtime_env), for uploads that take another way than this process's
    own connection (job submission's HTTP package API); packed again when
    an upload already dropped it. None for a package not packed here."""
    with _lock:
        for key, entry in _packed.items():
            if entry.uri == uri:
                if entry.data is not None:
                    return entry.data
                data, _ = _Source(key[1], key[0], key[2], key[3]).pack()
                return data
    return None


def _mib(num_bytes):
    return f"{num_bytes / 1024 ** 2:.2f}MiB"


class _Source:
    """A local path to pack: a directory (a working_dir, or a py_modules
    package, packed with its own name as the top directory), a single
    `.py` module, or a `.zip` working_dir (shipped as it is)."""

    def __init__(self, path, field, excludes, gitignore):
        self.path = path
        self.field = field
        self.excludes = excludes
        self.gitignore = gitignore
        if os.path.isdir(path):
            self.kind = "dir"
        elif os.path.isfile(path) and field == "working_dir" and path.endswith(".zip"):
            self.kind = "zip"
        elif os.path.isfile(path) and field == "py_modules" and path.endswith(".py"):
            self.kind = "file"
        elif field == "working_dir":
            raise ValueError(
                f"runtime_env['working_dir'] must be an existing directory or .zip file, got {path!r}."
            )
        else:
            raise ValueError(
                f"runtime_env['py_modules'] entries must be existing directories or .py files, got {path!r}."
            )

    def _entries(self):
        """(name in the zip, path, stat) of each file and empty directory
        to pack, in a stable order."""
        if self.kind != "dir":
            return [(os.path.basename(self.path), self.path, os.stat(self.path))]
        # A py_modules package is unpacked under its own name, so that the
        # unpacked root goes on sys.path and `import <name>` finds it.
        top = os.path.basename(self.path) if self.field == "py_modules" else ""
        out = []
        _walk(self.path, "", [(None, _Rules(self.excludes))] if self.excludes else [], self.gitignore, out, set())
        return [(f"{top}/{name}" if top else name, path, st) for name, path, st in out]

    def signature(self):
        """What changes when the content may have: the packed files' names,
        sizes and modification times (no file is read)."""
        return tuple((name, st.st_size, st.st_mtime_ns, stat.S_ISDIR(st.st_mode))
                     for name, _, st in self._entries())

    def pack(self):
        """(zip bytes, sha1 hex of the content): the hash covers the names
        and contents, so equal content gives the same URI anywhere."""
        if self.kind == "zip":
            size = os.path.getsize(self.path)
            _check_size(size, self.path)
            with open(self.path, "rb") as f:
                data = f.read()
            return data, hashlib.sha1(data).hexdigest()
        import io
        import zipfile

        digest = hashlib.sha1()
        buffer = io.BytesIO()
        total = 0
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for name, path, st in self._entries():
                is_dir = stat.S_ISDIR(st.st_mode)
                info = zipfile.ZipInfo(name + "/" if is_dir else name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (st.st_mode & 0xFFFF) << 16
                digest.update(name.encode() + (b"/\0" if is_dir else b"\0"))
                if is_dir:
                    archive.writestr(info, b"")
                    continue
                with open(path, "rb") as f:
                    content = f.read()
                total += len(content)
                # Checked while packing: an oversized directory fails before
                # it is all in memory.
                _check_size(total, self.path)
                digest.update(len(content).to_bytes(8, "little") + content)
                archive.writestr(info, content)
        data = buffer.getvalue()
        _check_size(len(data), self.path)
        return data, digest.hexdigest()


def _check_size(size, path):
    if size >= MAX_PACKAGE_BYTES:
        raise ValueError(
            f"The runtime_env package of {path!r} (at least {_mib(size)}) exceeds the maximum size of "
            f"{_mib(MAX_PACKAGE_BYTES)}. You can exclude large files using the 'excludes' option to the "
            "runtime_env (gitignore-style patterns)."
        )


def _walk(directory, rel, rules, gitignore, out, seen):
    """Collects the files and empty directories under `directory` (`rel`
    its name in the package) that no rule excludes. `rules` are (base,
    patterns): the runtime_env's excludes (base None: the package root)
    and each .gitignore above, relative to its own directory, as Ray
    applies them. Symbolic links are followed (as Ray does), once."""
    real = os.path.realpath(directory)
    if real in seen:
        return
    seen = seen | {real}
    if gitignore:
        ignore_file = os.path.join(directory, ".gitignore")
        if os.path.isfile(ignore_file):
            with open(ignore_file, encoding="utf-8", errors="replace") as f:
                rules = rules + [(rel, _Rules(f.read().splitlines()))]
    with os.scandir(directory) as it:
        entries = sorted(it, key=lambda e: e.name)
    if not entries and rel:
        out.append((rel, directory, os.stat(directory)))
        return
    for entry in entries:
        name = f"{rel}/{entry.name}" if rel else entry.name
        try:
            is_dir = entry.is_dir()
            is_file = not is_dir and entry.is_file()
        except OSError:
            continue
        if not is_dir and not is_file:
            continue  # a broken link, a socket, ...
        if is_dir and entry.name in DEFAULT_EXCLUDED_DIRS:
            continue
        if any(spec.excludes(_relative(name, base), is_dir) for base, spec in rules):
            continue
        if is_dir:
            _walk(entry.path, name, rules, gitignore, out, seen)
        else:
            out.append((name, entry.path, entry.stat()))


def _relative(name, base):
    if not base:
        return name
    return name[len(base) + 1:]


class _Rules:
    """gitignore-style patterns (git's `gitignore` syntax: `*`, `?`, `[..]`,
    `**`, a leading `/` or an inner `/` anchoring to the base, a trailing
    `/` for directories only, `!` to re-include; the last match wins)."""

    def __init__(self, lines):
        self.rules = []
        for line in lines:
            rule = _parse(line)
            if rule is not None:
                self.rules.append(rule)

    def excludes(self, name, is_dir):
        """Whether the path `name` (relative to the base, '/'-separated)
        is excluded."""
        excluded = False
        for regex, negated, dir_only in self.rules:
            if dir_only and not is_dir:
                continue
            if regex.fullmatch(name):
                excluded = not negated
        return excluded


def _parse(line):
    line = line.rstrip("\n\r")
    # Trailing spaces are dropped unless escaped.
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        stripped += " "
    line = stripped
    if not line or line.startswith("#"):
        return None
    negated = line.startswith("!")
    if negated:
        line = line[1:]
    dir_only = line.endswith("/") and not line.endswith("\\/")
    line = line.rstrip("/") if dir_only else line
    if not line:
        return None
    anchored = "/" in line
    if line.startswith("/"):
        line = line[1:]
    regex = _translate(line)
    if not anchored:
        regex = "(?:.*/)?" + regex
    return re.compile(regex, re.DOTALL), negated, dir_only


def _translate(pattern):
    """The regular expression of one gitignore pattern (without its `!`,
    leading or trailing `/`)."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        at_component_start = i == 0 or pattern[i - 1] == "/"
        if at_component_start and pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if at_component_start and pattern.startswith("**", i) and i + 2 == n:
            out.append(".*")
            i += 2
            continue
        c = pattern[i]
        if c == "*":
            while i < n and pattern[i] == "*":
                i += 1
            out.append("[^/]*")
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        elif c == "[":
            # A `]` first in the class (after a `!`) is one of its characters.
            start = i + 1
            if start < n and pattern[start] == "!":
                start += 1
            if start < n and pattern[start] == "]":
                start += 1
            end = pattern.find("]", start)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


# --- the worker side -------------------------------------------------------------------

# URI -> the local directory of its unpacked copy (this process's cache).
_unpacked = {}


def split(env_vars):
    """A task's env_vars pairs without PACKAGES_ENV_VAR (what goes to
    `os.environ`), and the packed fields that variable carried."""
    fields, rest = {}, []
    for name, value in env_vars:
        if name == PACKAGES_ENV_VAR:
            fields = decode(value)
        else:
            rest.append((name, value))
    return rest, fields


def local_dir(uri):
    """The node's unpacked copy of package `uri`, downloaded from the KV
    store the first time (into a temporary directory renamed into place,
    so concurrent workers never see a partial copy)."""
    with _lock:
        path = _unpacked.get(uri)
        if path is not None:
            return path
        match = _URI.fullmatch(uri)
        if match is None:
            raise ValueError(f"{uri!r} is not a runtime_env package URI.")
        base = os.path.join(_native.context()["session_dir"], "runtime_resources")
        path = os.path.join(base, match.group(1))
        if not os.path.isdir(path):
            data = _native.kv_get(KV_NAMESPACE, uri.encode())
            if data is None:
                raise FileNotFoundError(f"The runtime_env package {uri} is not in the cluster's store.")
            import shutil
            import tempfile

            os.makedirs(base, exist_ok=True)
            scratch = tempfile.mkdtemp(prefix=f".{match.group(1)}-", dir=base)
            try:
                _unzip(data, scratch)
                try:
                    os.rename(scratch, path)
                except OSError:
                    if not os.path.isdir(path):
                        raise
                    shutil.rmtree(scratch, ignore_errors=True)  # another worker was first
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
        _unpacked[uri] = path
        return path


def _unzip(data, target):
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            extracted = archive.extract(info, target)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                # Keep the files' modes (executable scripts stay so).
                os.chmod(extracted, mode)


class Entered:
    """What a task's code environment changed: restored by `leave`."""

    def __init__(self, cwd, sys_path, roots, shadowed):
        self.cwd = cwd
        self.sys_path = sys_path
        self.roots = roots
        self.shadowed = shadowed


def enter(fields, functions=None):
    """Makes the packed fields the running code's environment: the
    working_dir copy the cwd and first on sys.path, the py_modules copies
    next; modules of the same names imported before are set aside (and
    the task functions of those modules in `functions`, an executor's
    cache, dropped), so the task imports the packages' own. Raises
    (changing nothing) when a package cannot be fetched."""
    working_dir = local_dir(fields["working_dir"]) if fields.get("working_dir") else None
    modules = [local_dir(uri) for uri in fields.get("py_modules") or ()]
    roots = ([working_dir] if working_dir else []) + modules
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = None
    entered = Entered(cwd, list(sys.path), roots, _shadow(roots))
    _drop_functions(functions, set(entered.shadowed))
    if working_dir:
        os.chdir(working_dir)
    sys.path[:0] = [root for root in dict.fromkeys(roots)]
    return entered


# Top-level modules a package never replaces: what every worker imported
# before running anything (a fresh worker of Ray's has them too).
_KEPT = frozenset({"oxray", "ray", "cloudpickle", "__main__"})


def _shadow(roots):
    """Takes out of sys.modules the modules (with their submodules) that
    the packages provide under the same top-level name, so the task imports
    the packages' own, as a fresh worker would. Returns them, for `leave`
    to put back."""
    names = set()
    for root in roots:
        for entry in os.listdir(root):
            if entry.endswith(".py"):
                names.add(entry[:-3])
            elif entry.isidentifier() and os.path.isdir(os.path.join(root, entry)):
                names.add(entry)
    names -= _KEPT | set(sys.builtin_module_names) | set(getattr(sys, "stdlib_module_names", ()))
    if not names:
        return {}
    return {name: sys.modules.pop(name) for name in list(sys.modules) if name.partition(".")[0] in names}


def leave(entered, functions=None):
    """Undoes `enter` after a plain task: the cwd and sys.path as they were,
    and the modules imported from the task's packages forgotten (with the
    task functions of those modules in `functions`, an executor's cache),
    so that the next task imports its own."""
    if entered.cwd is not None:
        try:
            os.chdir(entered.cwd)
        except OSError:
            pass
    sys.path[:] = entered.sys_path
    prefixes = tuple(os.path.join(root, "") for root in entered.roots)
    if not prefixes:
        return
    # The modules the packages' ones shadowed come back after them.
    shadowed, entered.shadowed = entered.shadowed, {}
    removed = set()
    for name, module in list(sys.modules.items()):
        try:
            files = [getattr(module, "__file__", None) or ""] + list(getattr(module, "__path__", None) or [])
        except Exception:
            continue
        if any(isinstance(f, str) and f.startswith(prefixes) for f in files):
            removed.add(name)
            del sys.modules[name]
    sys.modules.update(shadowed)
    _drop_functions(functions, removed)


def _drop_functions(functions, modules):
    """Forgets the cached task functions (and actor classes) defined in
    `modules`: they are loaded again, from the modules then importable."""
    if not functions or not modules:
        return
    for key, fn in list(functions.items()):
        if getattr(fn, "__module__", None) in modules:
            del functions[key]
