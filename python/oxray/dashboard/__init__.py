"""oxray's dashboard: a small aiohttp web app, run as a process of its own
beside a cluster's head (as Ray's), that shows the cluster's state in a
browser and serves Ray's state API over HTTP.

    python -m oxray.dashboard --address ADDR --host H --port P --session-dir D [--token-file F]

`oxray start --head` starts one (127.0.0.1:8265 by default), and so does
`oxray.init(include_dashboard=True)`; `launcher.start_dashboard` is what
they call. The app is `app.create_app(ctx)` for a `context.DashboardContext`.
aiohttp is an optional dependency (`pip install oxray[default]`).
"""

#: Ray's default dashboard port.
DEFAULT_PORT = 8265
#: Ray's default dashboard host (this machine only).
DEFAULT_HOST = "127.0.0.1"
#: The file, in the session directory, that says where its dashboard listens.
READY_FILE = "dashboard.json"
