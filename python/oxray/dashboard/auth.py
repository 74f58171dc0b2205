"""Who may use the dashboard.

When the cluster has a token (`oxray start --head` clusters), every route
but the static files needs it: as `Authorization: Bearer <token>` (API
clients), or as the HttpOnly cookie a browser gets by opening
`/?token=<token>` (or submitting the small form the dashboard shows
instead of a page); the cookie holds a value derived from the token, not
the token. API routes (`/api/...`) answer 401 with a JSON body
without it. Tokens are compared in constant time.

Without a token (an embedded single-node cluster, listening on 127.0.0.1
only), requests that reach a loopback address must also name a loopback
host (or this machine's name) in their Host header, so that a web page
elsewhere cannot read the dashboard through DNS rebinding.
"""

import hashlib
import hmac
import ipaddress
import socket
from urllib.parse import urlencode

from aiohttp import web

from oxray.dashboard import appkeys as keys

#: The cookie that carries the token for browsers.
COOKIE = "oxray_dashboard_token"
#: Paths anyone may fetch (the app's own static files: no cluster data).
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = ("/favicon.ico", "/login")


def token_matches(given, token):
    """Whether `given` is `token`, compared in constant time."""
    if not given or not token:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def bearer(request):
    """The token of an `Authorization: Bearer <token>` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def cookie_value(token):
    """What the browser's cookie holds: a value derived from the token
    (HMAC-SHA256), so that a leaked cookie opens the dashboard but is not
    the cluster token itself (which lets nodes join)."""
    return hmac.new(token.encode("utf-8"), b"oxray dashboard session", hashlib.sha256).hexdigest()


def is_authorized(request, token):
    """Whether `request` carries the cluster token (header) or the cookie
    derived from it."""
    return token_matches(bearer(request), token) or token_matches(request.cookies.get(COOKIE), cookie_value(token))


def unauthorized_json(message="Unauthorized: this cluster's dashboard needs its token "
                              "(Authorization: Bearer <token>)"):
    """Ray's envelope with result false, status 401."""
    return web.json_response({"result": False, "msg": message, "data": {}}, status=401,
                             headers={"WWW-Authenticate": 'Bearer realm="oxray"'})


def login_page(next_path="/", wrong=False):
    """The small page asking for the token, status 401."""
    from oxray.dashboard.pages import render_login

    return web.Response(text=render_login(next_path, wrong), content_type="text/html", status=401)


def with_cookie(response, token):
    """`response` with the session cookie set (HttpOnly, SameSite=Strict)."""
    response.set_cookie(COOKIE, cookie_value(token), httponly=True, samesite="Strict", path="/")
    return response


def redirect(location):
    """A 302 response to `location` (a local path)."""
    return web.Response(status=302, headers={"Location": location})


def _safe_next(path):
    """A local path to go to after logging in (never another site)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def _loopback(host):
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def host_allowed(request):
    """Whether a request's Host header fits the address it reached."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname or not _loopback(str(sockname[0])):
        return True
    host = request.host or ""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    return name in ("localhost", socket.gethostname().lower()) or _loopback(name)


async def login(request):
    """`POST /login` (the form): sets the cookie and goes back, or asks again."""
    token = request.app[keys.CTX].token
    form = await request.post()
    next_path = _safe_next(form.get("next", "/"))
    if token is None:
        return redirect(next_path)
    if not token_matches(form.get("token", ""), token):
        return login_page(next_path, wrong=True)
    return with_cookie(redirect(next_path), token)


def middleware(ctx):
    """The aiohttp middleware that enforces the rules above for `ctx`."""

    @web.middleware
    async def check(request, handler):
        """Lets an authorized request through; answers the others."""
        token = ctx.token
        path = request.path
        if token is None:
            if not host_allowed(request):
                return web.Response(status=421, text="Misdirected request: unexpected Host header\n")
            return await handler(request)
        if path.startswith(PUBLIC_PREFIXES) or path in PUBLIC_PATHS:
            return await handler(request)
        query_token = request.query.get("token")
        if query_token is not None and request.method == "GET" and not path.startswith("/api/"):
            rest = [(k, v) for k, v in request.query.items() if k != "token"]
            target = path + ("?" + urlencode(rest) if rest else "")
            if token_matches(query_token, token):
                return with_cookie(redirect(target), token)
            return login_page(target, wrong=True)
        if is_authorized(request, token):
            return await handler(request)
        if path.startswith("/api/"):
            return unauthorized_json()
        return login_page(request.path_qs)

    return check
