"""Progress bars for remote tasks and actors, drawn by the driver, as Ray's
`ray.experimental.tqdm_ray`.

    from oxray.experimental.tqdm_ray import tqdm

    @oxray.remote
    def work(name):
        for x in tqdm(range(100), desc=name):
            time.sleep(0.1)

In a worker, each update of a bar is one line of JSON on the worker's
stdout, marked with Ray's magic token; the driver takes those lines out of
the worker output relayed to it (`oxray._native.set_log_sink`) and draws
every bar at the bottom of its terminal, below the workers' (prefixed)
lines: before a line is printed the bars are cleared, after it they are
drawn again, so neither garbles the other. A bar used in the driver itself
is drawn the same way.

When stdout is not a terminal, nothing is redrawn: worker lines are printed
unchanged, and a bar prints one plain line with its final state when it is
closed (or, still open, when the driver exits).

The driver must have imported this module (before or after `init`), as
Ray's examples do; a driver started with `log_to_driver=False` receives no
worker output, so it draws only its own bars. `RAY_TQDM_PATCH_PRINT=0`
keeps the driver's `print` as it is (by default it becomes `safe_print`
while bars are drawn on a terminal, as in Ray).
"""

import atexit
import builtins
import json
import os
import shutil
import sys
import threading
import time
import uuid
from typing import Any, Dict, Iterable, Optional

from oxray._private import worker as _worker

# The state of one bar, as a worker sends it.
ProgressBarState = Dict[str, Any]

# Ray's magic token: lines that carry it are bar updates, not output.
RAY_TQDM_MAGIC = "__ray_tqdm_magic_token__"

# The driver's manager (see instance()).
_manager: Optional["_BarManager"] = None
_manager_lock = threading.Lock()
_print = builtins.print


def _env_bool(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")


def safe_print(*args, **kwargs):
    """`print` that does not garble the bars: clears them, prints, draws
    them again. By default the driver's builtin `print` becomes this while
    bars are drawn on a terminal (`RAY_TQDM_PATCH_PRINT=0` turns that off)."""
    # Prints to files, StringIO objects, ... leave the terminal alone.
    if kwargs.get("file") not in (sys.stdout, sys.stderr, None):
        return _print(*args, **kwargs)
    manager = instance()
    with manager.lock:
        manager.hide_bars()
        try:
            _print(*args, **kwargs)
        finally:
            manager.unhide_bars()


def _in_worker():
    s = _worker._session
    return s is not None and s.mode == "worker"


class tqdm:
    """A progress bar usable in remote tasks and actors (and the driver),
    drawn centrally by the driver, as Ray's `tqdm_ray.tqdm`. Supports a
    subset of tqdm's arguments.

    Args:
        iterable: what to iterate over (the bar advances by one per item).
        desc: the bar's description.
        total: the expected number of items (by default `len(iterable)`).
        unit: the unit of the rate shown (default "it").
        position: the bar's line among the bars of its process (0 first).
        flush_interval_s: updates are sent at most this often (close,
            refresh and set_description are always sent).
    """

    def __init__(self, iterable: Optional[Iterable] = None, desc: Optional[str] = None,
                 total: Optional[int] = None, unit: Optional[str] = None, position: Optional[int] = None,
                 flush_interval_s: float = 1.0):
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except (TypeError, AttributeError):
                total = None
        self._iterable = iterable
        self._desc = desc or ""
        self._total = total
        self._unit = unit or "it"
        self._ip = _node_ip()
        self._pid = os.getpid()
        self._pos = position or 0
        self._uuid = uuid.uuid4().hex
        self._x = 0
        self._closed = False
        self._flush_interval_s = flush_interval_s
        self._last_flush_time = 0.0
        self._started = time.monotonic()

    def set_description(self, desc):
        """Sets the description (tqdm.tqdm.set_description)."""
        self._desc = desc
        self._dump_state(force_flush=True)

    def update(self, n=1):
        """Advances the bar by `n` (tqdm.tqdm.update)."""
        self._x += n
        self._dump_state()

    def close(self):
        """Closes the bar (tqdm.tqdm.close): its final state is sent."""
        if self._closed:
            return
        self._closed = True
        self._dump_state(force_flush=True)

    def refresh(self):
        """Sends the bar's current state now (tqdm.tqdm.refresh)."""
        self._dump_state(force_flush=True)

    @property
    def total(self) -> Optional[int]:
        """The expected number of items (None: unknown)."""
        return self._total

    @total.setter
    def total(self, total: int):
        self._total = total

    @property
    def n(self):
        """How far the bar is (tqdm's `n`)."""
        return self._x

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        """Yields the iterable's items, advancing by one each, and closes the
        bar when the iterable is exhausted (as tqdm does)."""
        if self._iterable is None:
            raise ValueError("No iterable provided")
        for x in iter(self._iterable):
            self.update(1)
            yield x
        self.close()

    def _dump_state(self, force_flush=False) -> None:
        now = time.monotonic()
        if not force_flush and now - self._last_flush_time < self._flush_interval_s:
            return
        self._last_flush_time = now
        state = self._get_state()
        if _in_worker():
            # One write of one whole line: a line written in pieces could be
            # cut by another thread's output.
            sys.stdout.write(json.dumps(state) + "\n")
            sys.stdout.flush()
        else:
            instance().process_state_update(state)

    def _get_state(self) -> ProgressBarState:
        return {
            "__magic_token__": RAY_TQDM_MAGIC,
            "x": self._x,
            "pos": self._pos,
            "desc": self._desc,
            "total": self._total,
            "unit": self._unit,
            "ip": self._ip,
            "pid": self._pid,
            "uuid": self._uuid,
            "closed": self._closed,
            # oxray's addition: the rate is the sender's, not skewed by how
            # the relay batches lines (Ray's driver ignores the key).
            "elapsed": time.monotonic() - self._started,
        }


def _node_ip():
    try:
        from oxray.util import get_node_ip_address
        return get_node_ip_address()
    except Exception:
        return "127.0.0.1"


# --- drawing -------------------------------------------------------------

def _format_interval(seconds):
    seconds = int(max(0, seconds))
    minutes, s = divmod(seconds, 60)
    h, m = divmod(minutes, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _number(x):
    return str(x) if isinstance(x, int) else f"{x:.4g}"


def format_meter(desc, n, total, elapsed, unit="it", width=80, ascii_only=False):
    """One bar as tqdm writes it: `desc: 42%|████▏     | 42/100 [00:01<00:02, 30.50it/s]`
    (without a total: `desc: 42it [00:01, 30.50it/s]`), at most `width`
    characters."""
    rate = n / elapsed if elapsed > 0 else None
    rate_text = f"{rate:.2f}{unit}/s" if rate is not None else f"?{unit}/s"
    label = f"{desc}: " if desc else ""
    if not total:
        return f"{label}{_number(n)}{unit} [{_format_interval(elapsed)}, {rate_text}]"[:width]
    frac = min(1.0, max(0.0, n / total))
    remaining = (total - n) / rate if rate else 0
    left = f"{label}{frac * 100:3.0f}%|"
    right = f"| {_number(n)}/{_number(total)} [{_format_interval(elapsed)}<{_format_interval(remaining)}, " \
            f"{rate_text}]"
    cells = max(1, min(width - len(left) - len(right), 60))
    if width - len(left) - len(right) < 1:
        cells = 10  # too narrow: the line is cut below, the bar still reads
    if ascii_only:
        done = int(frac * cells)
        bar = "#" * done + " " * (cells - done)
    else:
        eighths = int(frac * cells * 8)
        full, part = divmod(eighths, 8)
        bar = "\u2588" * full + ("" if full >= cells else (" \u258f\u258e\u258d\u258c\u258b\u258a\u2589"[part]))
        bar = bar + " " * (cells - len(bar))
    return (left + bar + right)[:width]


class _Bar:
    """One bar as the driver shows it."""

    def __init__(self, state, prefix, order):
        self.state = state
        self.prefix = prefix
        self.order = order
        self.started = time.monotonic()
        self.updated = self.started

    def update(self, state):
        self.state = state
        self.updated = time.monotonic()

    def render(self, width, ascii_only):
        s = self.state
        elapsed = s.get("elapsed")
        if not isinstance(elapsed, (int, float)):
            elapsed = self.updated - self.started  # a sender that does not say
        return format_meter(self.prefix + (s.get("desc") or ""), s.get("x") or 0, s.get("total"),
                            elapsed, s.get("unit") or "it", width, ascii_only)


class _BarManager:
    """Draws every bar on the driver: remote bars (from the magic lines in
    the relayed worker output) and the driver's own. Bars stay below the
    other output of the terminal; see the module's docstring."""

    def __init__(self):
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self.bars: Dict[str, _Bar] = {}
        # Bars are drawn grouped by process (in the order processes first
        # showed a bar), then by their `position`, as Ray places them.
        self._groups: Dict[Any, int] = {}
        self.in_hidden_state = False
        self.num_hides = 0
        # How many bar lines are drawn now, just above the cursor.
        self._drawn = 0
        self._patched_print = False
        atexit.register(self._at_exit)

    # --- the relayed worker output ---------------------------------------------
    def handle_lines(self, pid, stderr, lines):
        """The sink of the worker output relayed to the driver: bar updates
        update bars, other lines are printed (around the bars on a terminal)."""
        with self.lock:
            plain = []
            for line in lines:
                state, prefix = _parse_magic(line)
                if state is None:
                    plain.append(line)
                    continue
                if plain:
                    self._print_lines(plain, stderr)
                    plain = []
                self.process_state_update(state, prefix)
            if plain:
                self._print_lines(plain, stderr)

    def _print_lines(self, lines, stderr):
        stream = sys.stderr if stderr else sys.stdout
        text = "".join(f"{line}\n" for line in lines)
        if self._tty() and self._drawn:
            self.hide_bars()
            stream.write(text)
            stream.flush()
            self.unhide_bars()
        else:
            stream.write(text)
            stream.flush()

    # --- bars ----------------------------------------------------------------
    def process_state_update(self, state: ProgressBarState, prefix: Optional[str] = None) -> None:
        """Applies a bar's new state (creating the bar, or closing it)."""
        with self.lock:
            if prefix is None:
                prefix = "" if state.get("pid") == self.pid else f"(pid={state.get('pid')}) "
            key = state.get("uuid")
            bar = self.bars.get(key)
            if bar is None:
                if state.get("closed") and not state.get("x"):
                    return
                group = self._groups.setdefault((state.get("ip"), state.get("pid")), len(self._groups))
                bar = self.bars[key] = _Bar(state, prefix, (group, state.get("pos") or 0))
                self._maybe_patch_print()
            else:
                bar.update(state)
            tty = self._tty()
            if state.get("closed"):
                del self.bars[key]
                # A closed bar leaves its final line above the open ones.
                line = bar.render(self._width(tty), self._ascii_only())
                if tty:
                    self._write_over(line + "\n")
                else:
                    sys.stdout.write(line + "\n")
                    sys.stdout.flush()
            elif tty and not self.in_hidden_state:
                self._write_over("")

    def hide_bars(self) -> None:
        """Clears the drawn bars (before other output)."""
        with self.lock:
            if not self.in_hidden_state:
                self.in_hidden_state = True
                self.num_hides += 1
                if self._drawn:
                    sys.stdout.write(self._clear_codes())
                    sys.stdout.flush()
                    self._drawn = 0

    def unhide_bars(self) -> None:
        """Draws the bars again (after other output)."""
        with self.lock:
            if self.in_hidden_state:
                self.in_hidden_state = False
                if self._tty():
                    self._write_over("")

    def _clear_codes(self):
        # Up to the first bar's line, then clear to the end of the screen.
        return f"\x1b[{self._drawn}A\r\x1b[J" if self._drawn else ""

    def _write_over(self, before):
        """Clears the bars, writes `before`, draws the bars: one write, so
        the terminal never shows a half-drawn state."""
        width, ascii_only = self._width(True), self._ascii_only()
        lines = [b.render(width, ascii_only) for b in sorted(self.bars.values(), key=lambda b: b.order)]
        text = self._clear_codes() + before + "".join(f"{line}\n" for line in lines)
        self._drawn = len(lines)
        sys.stdout.write(text)
        sys.stdout.flush()

    def _tty(self):
        try:
            return sys.stdout.isatty()
        except (AttributeError, ValueError):
            return False

    def _width(self, tty):
        # One column short of the terminal: a line that fills it would
        # wrap on some terminals, and the bars' line count would be off.
        return max(20, shutil.get_terminal_size((80, 24)).columns - 1) if tty else 80

    def _ascii_only(self):
        return not (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "").startswith("utf")

    def _maybe_patch_print(self):
        if self._patched_print or not self._tty() or not _env_bool("RAY_TQDM_PATCH_PRINT", True):
            return
        self._patched_print = True
        if builtins.print is _print:
            builtins.print = safe_print

    def _at_exit(self):
        """Open bars at exit: printed once more, so a file or pipe gets their
        final state too; on a terminal they stay drawn."""
        with self.lock:
            if self._patched_print and builtins.print is safe_print:
                builtins.print = _print
            if self._tty() or not self.bars:
                return
            try:
                for bar in sorted(self.bars.values(), key=lambda b: b.order):
                    sys.stdout.write(bar.render(80, self._ascii_only()) + "\n")
                sys.stdout.flush()
            except (OSError, ValueError):
                pass
            self.bars.clear()


# The manager's public name (Ray's class is the private `_BarManager`).
BarManager = _BarManager


def _parse_magic(line):
    """(state, prefix) of a bar-update line (`(f pid=1) {"__magic_token__": ...}`),
    or (None, None) for any other line."""
    if RAY_TQDM_MAGIC not in line:
        return None, None
    start = line.find("{")
    if start < 0:
        return None, None
    try:
        state = json.loads(line[start:])
    except ValueError:
        return None, None
    if not isinstance(state, dict) or state.get("__magic_token__") != RAY_TQDM_MAGIC:
        return None, None
    return state, line[:start]


def instance() -> _BarManager:
    """The driver's bar manager (created on first use)."""
    global _manager
    if _manager is None:
        with _manager_lock:
            if _manager is None:
                _manager = _BarManager()
    return _manager


def _install_sink():
    """Hands the worker output relayed to this driver to the manager (called
    at import when connected, and at each `init` after it)."""
    s = _worker._session
    if s is None or s.mode != "driver":
        return
    from oxray import _native

    _native.set_log_sink(instance().handle_lines)


if _install_sink not in _worker.DRIVER_HOOKS:
    _worker.DRIVER_HOOKS.append(_install_sink)
_install_sink()
