"""Progress bars of remote tasks and actors (oxray.experimental.tqdm_ray),
drawn by the driver without garbling the workers' prefixed output."""

import os
import re
import sys

from conftest import REPO, run_driver, run_on_terminal

# Ray's token (tqdm_ray.RAY_TQDM_MAGIC). The module itself is imported only by
# the unit test below: imported in this process, it would take over the
# output of every cluster later tests start here.
MAGIC = "__ray_tqdm_magic_token__"

# A task and an actor update bars between ordinary prints; the driver has a
# bar of its own. Written so that each normal line can be checked whole.
_PROGRAM = (
    "import glob, os, sys, time, oxray\n"
    "from oxray.experimental.tqdm_ray import tqdm\n"
    "oxray.init(num_cpus=2)\n"
    "@oxray.remote\n"
    "def work(n):\n"
    "    for i in tqdm(range(n), desc='task bar', flush_interval_s=0):\n"
    "        print(f'plain task line {i}')\n"
    "        time.sleep(0.01)\n"
    "    return n\n"
    "@oxray.remote(num_cpus=0)\n"
    "class Stepper:\n"
    "    def __init__(self):\n"
    "        self.bar = tqdm(desc='actor bar', total=4, unit='step', flush_interval_s=0)\n"
    "    def step(self, i):\n"
    "        self.bar.update(1)\n"
    "        print(f'plain actor line {i}')\n"
    "    def done(self):\n"
    "        self.bar.set_description('actor bar done')\n"
    "        self.bar.close()\n"
    "s = Stepper.remote()\n"
    "ref = work.remote(12)\n"
    "for i in range(4):\n"
    "    oxray.get(s.step.remote(i))\n"
    "oxray.get(s.done.remote())\n"
    "oxray.get(ref)\n"
    "mine = tqdm(total=3, desc='driver bar', flush_interval_s=0)\n"
    "for _ in range(3):\n"
    "    mine.update()\n"
    "print('driver says hi')\n"
    "mine.close()\n"
    "time.sleep(0.5)\n"
    "from oxray._private import worker as w\n"
    "logs = glob.glob(os.path.join(w.session().context['session_dir'], 'logs', '*'))\n"
    "leaked = [p for p in logs if tqdm_magic in open(p).read()]\n"
    "print('LOG FILES', len(logs), 'WITH BAR LINES', len(leaked))\n"
    "oxray.shutdown()\n"
).replace("tqdm_magic", repr(MAGIC))

_PLAIN = re.compile(r"^\((work|Stepper) pid=\d+\) plain (task|actor) line \d+$")


def _check_normal_lines(lines):
    plain = [ln for ln in lines if "plain " in ln]
    assert len(plain) == 16, plain
    for line in plain:
        assert _PLAIN.match(line), repr(line)


def test_bars_of_a_task_an_actor_and_the_driver_into_a_pipe():
    out = run_driver(_PROGRAM)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    _check_normal_lines(lines)
    # Not a terminal: no redrawing, and each bar prints its final state once.
    assert "\x1b[" not in out.stdout and MAGIC not in out.stdout + out.stderr
    task_bar = [ln for ln in lines if "task bar" in ln]
    assert len(task_bar) == 1 and re.match(r"^\(work pid=\d+\) task bar: 100%\|[█ ]+\| 12/12 \[", task_bar[0]), task_bar
    actor_bar = [ln for ln in lines if "actor bar" in ln]
    assert len(actor_bar) == 1 and re.match(r"^\(Stepper pid=\d+\) actor bar done: 100%\|.*\| 4/4 \[.*step/s\]$",
                                            actor_bar[0]), actor_bar
    assert re.search(r"^driver bar: 100%\|.*\| 3/3 ", out.stdout, re.M)
    assert "driver says hi" in lines
    # The bars' update lines stay out of the workers' log files.
    assert re.search(r"^LOG FILES [1-9]\d* WITH BAR LINES 0$", out.stdout, re.M), out.stdout


def test_bars_are_redrawn_on_a_terminal():
    code, shown, err = run_on_terminal([sys.executable, "-c", _PROGRAM], cwd=REPO,
                                       env=dict(os.environ, COLUMNS="100"))
    assert code == 0, err
    # Bars are cleared (cursor up, clear to the end) and drawn again.
    assert re.search(r"\x1b\[\d+A\r\x1b\[J", shown), repr(shown[:2000])
    assert re.search(r"task bar:  \d+%\|", shown) and "| 12/12 [" in shown
    assert "actor bar done: 100%|" in shown and "driver bar: 100%|" in shown
    # Each worker line is still whole once the redraw codes are taken out.
    lines = [re.sub(r"\x1b\[\d*[A-Za-z]|\r", "", ln) for ln in shown.split("\n")]
    _check_normal_lines(lines)
    assert MAGIC not in shown


def test_driver_bars_with_log_to_driver_off_and_import_after_init():
    out = run_driver(
        "import time, oxray\n"
        "oxray.init(num_cpus=1, log_to_driver=False)\n"
        "from oxray.experimental.tqdm_ray import tqdm\n"
        "@oxray.remote\n"
        "def work():\n"
        "    for _ in tqdm(range(5), desc='unseen'):\n"
        "        pass\n"
        "    print('not relayed')\n"
        "    return 5\n"
        "assert oxray.get(work.remote()) == 5\n"
        "bar = tqdm(['a', 'b'], desc='here')\n"
        "assert list(bar) == ['a', 'b'] and bar.n == 2 and bar.total == 2\n"
        "time.sleep(0.3)\n"
        "oxray.shutdown()\n")
    assert out.returncode == 0, out.stderr
    assert "not relayed" not in out.stdout and "unseen" not in out.stdout
    assert re.search(r"^here: 100%\|.*\| 2/2 ", out.stdout, re.M), out.stdout


def test_format_meter_and_magic_lines():
    from oxray._private import worker as _worker
    from oxray.experimental import tqdm_ray

    # Keep the driver hook out of the clusters later tests of this process start.
    if tqdm_ray._install_sink in _worker.DRIVER_HOOKS:
        _worker.DRIVER_HOOKS.remove(tqdm_ray._install_sink)
    assert tqdm_ray.RAY_TQDM_MAGIC == MAGIC
    line = tqdm_ray.format_meter("d", 5, 10, 2.0, "it", width=60)
    assert line.startswith("d:  50%|") and line.endswith("| 5/10 [00:02<00:02, 2.50it/s]") and len(line) <= 60
    assert tqdm_ray.format_meter("d", 7, None, 1.0) == "d: 7it [00:01, 7.00it/s]"
    cells = re.search(r"\|(#+ +)\|", tqdm_ray.format_meter("", 1, 2, 1.0, width=50, ascii_only=True)).group(1)
    assert cells.count("#") * 2 == len(cells)
    state, prefix = tqdm_ray._parse_magic('(f pid=7) {"__magic_token__": "%s", "x": 1}' % tqdm_ray.RAY_TQDM_MAGIC)
    assert prefix == "(f pid=7) " and state["x"] == 1
    assert tqdm_ray._parse_magic("(f pid=7) {not json " + tqdm_ray.RAY_TQDM_MAGIC) == (None, None)
    assert tqdm_ray._parse_magic("(f pid=7) hello") == (None, None)
