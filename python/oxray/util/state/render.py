"""How the `oxray` command writes state: aligned tables (Ray's `ray list`
and `ray summary` layout), JSON, YAML, and the `oxray status` report (Ray's
`ray status` layout, with memory in readable units). Colour is used only
when asked for (the CLI asks when its stdout is a terminal)."""

import json
import math
import re
from datetime import datetime

BOLD, RESET = "\033[1m", "\033[0m"
_GREEN, _RED, _YELLOW, _CYAN = "\033[32m", "\033[31m", "\033[33m", "\033[36m"
_STATE_COLOURS = {
    "ALIVE": _GREEN, "FINISHED": _GREEN, "CREATED": _GREEN, "SUCCEEDED": _GREEN,
    "RUNNING": _CYAN,
    "DEAD": _RED, "FAILED": _RED, "REMOVED": _RED, "STOPPED": _RED,
}
_STATE_COLUMNS = {"state", "status", "task_status"}


def paint(text, colour, enabled):
    """`text` in `colour` (an ANSI code) when `enabled`."""
    return f"{colour}{text}{RESET}" if enabled and text else text


def _state_colour(value):
    if value in _STATE_COLOURS:
        return _STATE_COLOURS[value]
    if isinstance(value, str) and (value.startswith("PENDING") or value in (
            "RESTARTING", "RESCHEDULING", "SUBMITTED_TO_WORKER", "DEPENDENCIES_UNREADY")):
        return _YELLOW
    return None


# ----- YAML ---------------------------------------------------------------

# Plain strings a YAML parser would read as something else (PyYAML's YAML
# 1.1 resolvers, plus YAML 1.2 numbers such as 1e5): these get quoted.
_NOT_A_STRING = re.compile(r"""^(?:
    ~|null|Null|NULL|=|<<
  | yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|y|Y|n|N
  | [-+]?(?:0b[0-1_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*(?::[0-5]?[0-9])*)
  | [-+]?(?:[0-9][0-9_]*)?\.?[0-9_]*(?:[eE][-+]?[0-9]+)?
  | [-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)
  | [0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*
)$""", re.VERBOSE)
_PLAIN_BAD_START = set("-?:,[]{}#&*!|>'\"%@` \t")


def _scalar(value):
    """A YAML scalar for a str, number, bool or None."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    text = str(value)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        return json.dumps(text, ensure_ascii=False)
    if (not text or _NOT_A_STRING.match(text) or text[0] in _PLAIN_BAD_START or text[-1] in " :"
            or ": " in text or " #" in text):
        return "'" + text.replace("'", "''") + "'"
    return text


def _block(value, level):
    pad = " " * level
    if isinstance(value, dict):
        if not value:
            return f"{pad}{{}}\n"
        out = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{_scalar(str(k))}:\n{_block(v, level + 4)}")
            else:
                out.append(f"{pad}{_scalar(str(k))}: {_inline(v)}\n")
        return "".join(out)
    if isinstance(value, (list, tuple)):
        if not value:
            return f"{pad}[]\n"
        out = []
        for item in value:
            if isinstance(item, (dict, list, tuple)) and item:
                out.append(f"{pad}-   " + _block(item, level + 4)[level + 4:])
            else:
                out.append(f"{pad}-   {_inline(item)}\n")
        return "".join(out)
    return f"{pad}{_inline(value)}\n"


def _inline(value):
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[]"
    return _scalar(value)


def to_yaml(data):
    """`data` (dicts, lists, scalars) as a YAML document, as Ray's CLI
    writes it (`---` ... `...`, 4-space indents, keys in their order)."""
    return "---\n" + _block(data, 0) + "...\n"


def to_json(data):
    """`data` as one line of JSON."""
    return json.dumps(data, default=str)


# ----- tables -------------------------------------------------------------

def _plain_lines(value, level=0):
    """A dict or list as readable `key: value` lines (no YAML quoting)."""
    pad = " " * level
    lines = []
    items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
    for k, v in items:
        lead = f"{pad}{k}:" if k is not None else f"{pad}-"
        if isinstance(v, (dict, list, tuple)) and v:
            lines.append(lead)
            lines += _plain_lines(v, level + 2)
        else:
            lines.append(f"{lead} {'' if v is None else v}".rstrip())
    return lines


def _cell(value):
    """The lines of a table cell."""
    if value is None:
        return [""]
    if isinstance(value, (dict, list, tuple)):
        return _plain_lines(value) or [""]
    if isinstance(value, float):
        return [f"{value:.3f}"]
    return str(value).split("\n")


def table(rows, columns, colour=False, index=True, numeric_right=True):
    """`rows` (dicts) as an aligned table of `columns` (upper-cased
    headers), each row numbered as Ray's tables; cells with dicts take
    several lines."""
    headers = [c.upper() for c in columns]
    grid = [[_cell(r.get(c)) for c in columns] for r in rows]
    right = [numeric_right and all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                                   for r in rows if r.get(c) is not None) and any(r.get(c) is not None for r in rows)
             for c in columns]
    widths = [max([len(h)] + [len(line) for row in grid for line in row[i]]) for i, h in enumerate(headers)]
    idx_width = len(str(max(len(rows) - 1, 0))) if index else 0

    def fmt(i, text, raw=None):
        plain = text.rjust(widths[i]) if right[i] else text.ljust(widths[i])
        if colour and columns[i] in _STATE_COLUMNS and raw is not None:
            c = _state_colour(raw)
            if c:
                plain = plain.replace(text, paint(text, c, True), 1)
        return plain

    lines = []
    head = "  ".join(h.rjust(widths[i]) if right[i] else h.ljust(widths[i]) for i, h in enumerate(headers))
    lines.append(((" " * idx_width + "  ") if index else "") + paint(head.rstrip(), BOLD, colour))
    for n, (row, cells) in enumerate(zip(rows, grid)):
        height = max(len(c) for c in cells)
        for k in range(height):
            parts = []
            for i, c in enumerate(cells):
                text = c[k] if k < len(c) else ""
                parts.append(fmt(i, text, row.get(columns[i]) if k == 0 else None))
            prefix = (str(n).rjust(idx_width) + "  " if k == 0 else " " * (idx_width + 2)) if index else ""
            lines.append((prefix + "  ".join(parts)).rstrip())
    return "\n".join(lines)


def banner(title, colour=False, now=None):
    """Ray's `======== <title>: <time> ========` heading."""
    now = datetime.now() if now is None else now
    return paint("=" * 8 + f" {title}: {now} " + "=" * 8, BOLD, colour)


def list_output(rows, schema, detail=False, colour=False):
    """Ray's `ray list` table: a heading, the count, and the rows with
    readable sizes."""
    if not rows:
        return "No resource in the cluster"
    columns = schema.table_columns(detail=detail)
    shown = [schema.humanify(r) for r in rows]
    return "\n".join([
        "", banner("List", colour), "Stats:", "-" * 30, f"Total: {len(rows)}", "", "Table:", "-" * 30,
        table(shown, columns, colour), "",
    ])


def summary_output(summary, resource, colour=False):
    """Ray's `ray summary` layout: the totals, then one row per group
    (columns in alphabetical order; for objects, the call site first)."""
    cluster = dict(summary["cluster"])
    groups = cluster.pop("summary")
    summary_by = cluster.pop("summary_by")
    stats = "\n".join(f"{k}: {_stat(v)}" for k, v in sorted(cluster.items()))
    rows = []
    for key, group in groups.items():
        row = dict(group)
        if resource == "objects":
            row = {"call_site": key, **row}
        rows.append(row)
    if rows:
        columns = sorted(rows[0])
        if resource == "objects":
            columns = ["call_site"] + [c for c in columns if c != "call_site"]
        body = table(rows, columns, colour, numeric_right=False)
    else:
        body = f"(no {resource})"
    return "\n".join([
        "", banner(f"{resource.capitalize()} Summary", colour), "Stats:", "-" * 36, stats, "", "",
        f"Table (group by {summary_by}):", "-" * 36, body, "",
    ])


def _stat(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}"
    return value


# ----- oxray status -------------------------------------------------------

_MEMORY_SUFFIXES = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))
_PG_INDEXED = re.compile(r"^(.+)_group_(\d+)_([0-9a-zA-Z]+)$")
_PG_WILDCARD = re.compile(r"^(.+)_group_([0-9a-zA-Z]+)$")


def format_memory(n):
    """Bytes as Ray's `ray status` writes them: `16.48GiB`, `512.00MiB`, `0B`."""
    for suffix, size in _MEMORY_SUFFIXES:
        if n >= size:
            return f"{n / size:.2f}{suffix}"
    return f"{int(n)}B"


def _pg_resource(name):
    """(resource, placement group or None, countable) of a resource name,
    as Ray parses `CPU_group_<i>_<pg>` and `CPU_group_<pg>`."""
    m = _PG_INDEXED.match(name)
    if m:
        return m.group(1), m.group(3), False
    m = _PG_WILDCARD.match(name)
    if m:
        return m.group(1), m.group(2), True
    return name, None, True


def usage_lines(usage, verbose=False):
    """`used/total resource` lines for {resource: (used, total)}, as Ray's
    `ray status`: memory in readable units, placement-group copies folded
    into their resource's line."""
    pg_used, pg_total = {}, {}
    for name, (used, total) in usage.items():
        base, pg, countable = _pg_resource(name)
        if pg and countable:
            pg_used[base] = pg_used.get(base, 0) + used
            pg_total[base] = pg_total.get(base, 0) + total
    lines = []
    for name, (used, total) in sorted(usage.items()):
        if name.startswith("node:") or _pg_resource(name)[1]:
            continue
        if name.startswith("accelerator_type:") and not verbose:
            continue
        in_pg = name in pg_total
        if in_pg:
            used = used - pg_total[name] + pg_used[name]
        if name in ("memory", "object_store_memory"):
            line = f"{format_memory(used)}/{format_memory(total)} {name}"
            if in_pg:
                line += (f" ({format_memory(pg_used[name])} used of {format_memory(pg_total[name])} "
                         "reserved in placement groups)")
        else:
            line = f"{_amount(used)}/{_amount(total)} {name}"
            if in_pg:
                line += f" ({_amount(pg_used[name])} used of {_amount(pg_total[name])} reserved in placement groups)"
        lines.append(line)
    return lines


def _reserved(groups, node_id):
    """{"<resource>_group_<pg>": amount} that the bundles of `groups`
    placed on `node_id` reserve (the node table reports only what is left
    of them)."""
    out = {}
    for g in groups or []:
        pg = g["placement_group_id"]
        for bundle, node in zip(g["bundles"], g["bundles_to_node_id"]):
            if node != node_id:
                continue
            for name, amount in bundle.items():
                key = f"{name}_group_{pg}"
                out[key] = out.get(key, 0) + amount
    return out


def _amount(x):
    """A resource amount as Ray writes it (`2.0`), without float noise."""
    return float(round(x, 4))


def _usage_of(nodes, groups=None):
    usage = {}
    for n in nodes:
        totals = dict(n["total"])
        for key, amount in _reserved(groups, n["node_id"]).items():
            if key in n["available"]:
                totals[key] = amount
        for k, total in totals.items():
            used = total - n["available"].get(k, 0)
            u, t = usage.get(k, (0, 0))
            usage[k] = (u + used, t + total)
    return usage


def _demand_lines(nodes):
    demand, in_pg = {}, {}
    for n in nodes:
        for shape, count in n.get("pending", []):
            bundle, uses_pg = {}, False
            for name, amount in shape.items():
                base, pg, _ = _pg_resource(name)
                if pg:
                    uses_pg = True
                    if base == "bundle":
                        continue
                bundle[base] = bundle.get(base, 0) + amount
            if not bundle:
                continue
            key = tuple(sorted(bundle.items()))
            demand[key] = demand.get(key, 0) + count
            if uses_pg:
                in_pg[key] = in_pg.get(key, 0) + count
    lines = []
    for key, count in demand.items():
        line = f" {dict(key)}: {count}+ pending tasks/actors"
        if key in in_pg:
            line += f" ({in_pg[key]}+ using placement groups)"
        lines.append(line)
    return lines


def status_output(nodes, groups=None, verbose=False, colour=False, now=None):
    """The `oxray status` report for the node table `nodes` (the native
    `cluster_info()`) and placement groups `groups` (the native
    `list_placement_groups()`), in Ray's `ray status` layout."""
    head = banner("Cluster status", colour, now)
    rule = "-" * len(banner("Cluster status", False, now))
    alive = [n for n in nodes if n["alive"]]
    dead = [n for n in nodes if not n["alive"]]
    out = [head, "Node status", rule, "Active:"]
    out += [f" 1 node_{n['node_id']}" for n in alive] or [" (no active nodes)"]
    out += ["Pending:", " (no pending nodes)", "Recent failures:"]
    out += [f" node_{n['node_id']}: NodeTerminated (ip: {n['ip']})" for n in dead] or [" (no failures)"]
    out += ["", "Resources", rule, "Total Usage:"]
    out += [f" {line}" for line in usage_lines(_usage_of(alive, groups), verbose)] or [" (no resources)"]
    out += ["Pending Demands:"]
    out += _demand_lines(alive) or [" (no resource demands)"]
    if verbose:
        for n in alive:
            role = " (head)" if n["is_head"] else ""
            out += ["", f"Node: {n['node_id']}{role} {n['ip']} {n['hostname']}", " Usage:"]
            out += [f"  {line}" for line in usage_lines(_usage_of([n], groups), True)]
    return "\n".join(out)
