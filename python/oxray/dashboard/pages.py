"""The dashboard's HTML pages: one small shell per page (navigation, a
title, an empty container) whose script, shipped in `static/`, fills it
from the JSON routes and refreshes it every couple of seconds. No page
loads anything from another site."""

import html
import os

from aiohttp import web

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

#: (path, page id, title) of every page, in the navigation's order.
PAGES = [
    ("/", "overview", "Cluster"),
    ("/jobs", "jobs", "Jobs"),
    ("/actors", "actors", "Actors"),
    ("/tasks", "tasks", "Tasks"),
    ("/timeline", "timeline", "Timeline"),
    ("/objects", "objects", "Objects"),
    ("/placement_groups", "placement_groups", "Placement groups"),
    ("/logs", "logs", "Logs"),
]

_HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · oxray dashboard</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/dashboard.css">
</head>
"""


def _nav(current, extra=()):
    links = []
    for path, page, title in [*PAGES, *((p, None, t) for p, t in extra)]:
        attr = ' aria-current="page"' if page == current else ""
        links.append(f'<a href="{path}"{attr}>{html.escape(title)}</a>')
    return "".join(links)


def render_page(page, title, extra_nav=()):
    """The HTML shell of one page; `extra_nav` adds (path, title) links
    to pages other modules serve."""
    return _HEAD.format(title=html.escape(title)) + f"""<body data-page="{page}">
<header class="topbar">
<a class="brand" href="/">oxray <span>dashboard</span></a>
<nav>{_nav(page, extra_nav)}</nav>
<span id="live" class="live" title="refreshed every 1.5 s">connecting…</span>
</header>
<main>
<h1>{html.escape(title)}</h1>
<div id="error" class="banner" hidden></div>
<div id="content" aria-live="polite"><p class="muted">Loading…</p></div>
</main>
<script src="/static/common.js"></script>
<script src="/static/pages/{page}.js"></script>
</body>
</html>
"""


def render_login(next_path="/", wrong=False):
    """The page that asks for the cluster token (posted to `/login`)."""
    note = '<p class="banner">That token is not this cluster\'s.</p>' if wrong else ""
    return _HEAD.format(title="Sign in") + f"""<body class="login">
<main class="login-box">
<h1>oxray dashboard</h1>
<p>This cluster is protected by its token. Paste it below (the head printed where its token file is),
or open <code>/?token=&lt;token&gt;</code>.</p>
{note}
<form method="post" action="/login">
<input type="hidden" name="next" value="{html.escape(next_path, quote=True)}">
<label>Cluster token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">Open the dashboard</button>
</form>
</main>
</body>
</html>
"""


def _page_handler(page, title, extra_nav):
    body = render_page(page, title, extra_nav)

    async def handle(request):
        """Serves the page's shell."""
        return web.Response(text=body, content_type="text/html")

    handle.__doc__ = f"The {title} page."
    return handle


async def favicon(request):
    """`/favicon.ico`: the SVG icon."""
    return web.FileResponse(os.path.join(STATIC_DIR, "favicon.svg"),
                            headers={"Content-Type": "image/svg+xml"})


def add_routes(app, add_get, extra_nav=()):
    """Adds every page, the icon and the static files; `extra_nav` lists
    (path, title) of pages other modules serve, for the navigation bar."""
    for path, page, title in PAGES:
        add_get(path, _page_handler(page, title, extra_nav))
    add_get("/favicon.ico", favicon)
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False)
