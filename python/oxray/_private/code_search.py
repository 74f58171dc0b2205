"""A job's `code_search_path` (`JobConfig(code_search_path=[...])`) in the
worker processes that run its tasks and actors.

Ray puts the entries first on the worker's `sys.path`. oxray's workers are
shared by the cluster's jobs and the job's environment reaches them per task
(as the job's runtime_env `env_vars` do), so the driver carries the entries
in the `OXRAY_CODE_SEARCH_PATH` variable of the job's runtime_env, and this
finder, first on `sys.meta_path` of every worker, looks up top-level modules
there while a task of that job runs (a task of another job has another, or
no, value)."""

import importlib.machinery
import os
import sys

# The variable (os.pathsep-separated entries) the job's tasks run with.
ENV_VAR = "OXRAY_CODE_SEARCH_PATH"


def directories(value):
    """The import directories of a code search path: a file entry (Ray
    allows them) stands for its directory."""
    out = []
    for entry in value.split(os.pathsep):
        if not entry:
            continue
        out.append(os.path.dirname(entry) if os.path.isfile(entry) else entry)
    return out


# A plain class: a meta path finder needs only `find_spec`, and
# importlib.abc would pull importlib.resources into every process.
class CodeSearchPathFinder:
    """Finds top-level modules in the running task's code search path,
    before `sys.path` (as Ray's entries come first there)."""

    def find_spec(self, fullname, path=None, target=None):
        """The spec of top-level module `fullname` in the code search path
        of the running task, or None."""
        # Submodules are found through their package's __path__.
        if path is not None or "." in fullname:
            return None
        value = os.environ.get(ENV_VAR)
        if not value:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, directories(value))

    def invalidate_caches(self):
        """Nothing to drop: PathFinder's per-directory caches are shared."""


def install():
    """Puts the finder on `sys.meta_path` once (worker processes do on
    `import oxray`)."""
    if not any(isinstance(f, CodeSearchPathFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, CodeSearchPathFinder())
