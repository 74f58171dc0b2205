"""What every part of the dashboard needs to know about the cluster it
shows: `DashboardContext`."""

import os


class DashboardContext:
    """The cluster a dashboard process serves, shared by its routes (the
    state pages here, job submission in `jobs.py`, metrics in
    `metrics.py`).

    Attributes:
        address: the address the dashboard connected to with
            `oxray.init(address=...)` (HOST:PORT of a head, or an embedded
            cluster's session directory).
        session_dir: the session directory of the node the dashboard runs
            beside (the head's).
        logs_dir: `session_dir/logs`, where workers write
            `worker-<pid>.out` / `.err`.
        token: the cluster token that HTTP clients must present, or None
            when the cluster has none (a single-node embedded cluster).
    """

    def __init__(self, address, session_dir, token=None):
        self.address = address
        self.session_dir = session_dir
        self.logs_dir = os.path.join(session_dir, "logs")
        self.token = token or None

    def __repr__(self):
        return (f"DashboardContext(address={self.address!r}, session_dir={self.session_dir!r}, "
                f"token={'set' if self.token else None})")
