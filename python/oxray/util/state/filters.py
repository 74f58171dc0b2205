"""`filters` and `limit` of the state API, with Ray's semantics.

A filter is `(key, predicate, value)` with predicate "=" or "!="; several
filters all have to hold. String values compare case-insensitively; a
string value given for a number or boolean column is converted first (as
the CLI's `--filter pid=123` needs).
"""

import warnings

PREDICATES = ("=", "!=")


def parse_filter(text):
    """`"key=value"` or `"key!=value"` (the CLI's `--filter`) as a
    `(key, predicate, value)` tuple."""
    for i, ch in enumerate(text):
        if ch == "=":
            key, predicate, value = text[:i], "=", text[i + 1:]
            break
        if ch == "!" and text[i + 1:i + 2] == "=":
            key, predicate, value = text[:i], "!=", text[i + 2:]
            break
    else:
        raise ValueError(f"The format of a given filter {text!r} is invalid: cannot find the predicate. "
                         "Please provide key=val or key!=val.")
    key, value = key.strip(), value.strip()
    if not key or not value:
        raise ValueError(f"The format of a given filter {text!r} is invalid: cannot identify its key or value. "
                         "Please provide key=val or key!=val.")
    return key, predicate, value


def check_filters(filters, schema, what):
    """`filters` validated against `schema` (a state row class): a list of
    `(column, predicate, value)` with the column names lower-cased. Raises
    ValueError for a malformed filter, a predicate other than = and !=, or
    a column that cannot be filtered on."""
    out = []
    for f in filters or []:
        try:
            key, predicate, value = f
        except (TypeError, ValueError):
            raise ValueError(f"a filter is a (key, predicate, value) tuple, got {f!r}") from None
        if predicate not in PREDICATES:
            raise ValueError(f"Unsupported filter predicate {predicate!r} is given. Available predicates: =, !=.")
        key = str(key).lower()
        if key not in schema.filterable_columns():
            raise ValueError(f"cannot filter {what} on {key!r}: the filterable columns are "
                             f"{', '.join(sorted(schema.filterable_columns()))}")
        out.append((key, predicate, value))
    return out


def conflicting(filters):
    """Whether two "=" filters name the same column with different values
    (nothing can match: Ray warns and returns no rows)."""
    equal = {}
    for key, predicate, value in filters:
        if predicate != "=":
            continue
        if key in equal and _norm(equal[key]) != _norm(value):
            warnings.warn(f"There are multiple '=' filters with the same key {key!r} but different values "
                          f"{equal[key]!r} & {value!r}. Empty result set will be returned", UserWarning,
                          stacklevel=3)
            return True
        equal.setdefault(key, value)
    return False


def _norm(value):
    return value.lower() if isinstance(value, str) else value


def _to_bool(value):
    text = value.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"Invalid filter value {value!r} for a boolean column: use True/true/1 or False/false/0")


def _equal(actual, wanted):
    if isinstance(wanted, str):
        if isinstance(actual, str):
            return actual.lower() == wanted.lower()
        if isinstance(actual, bool):
            return actual == _to_bool(wanted)
        if isinstance(actual, int):
            try:
                return actual == int(wanted)
            except ValueError:
                raise ValueError(f"Invalid filter value {wanted!r} for an integer column") from None
        if isinstance(actual, float):
            try:
                return actual == float(wanted)
            except ValueError:
                raise ValueError(f"Invalid filter value {wanted!r} for a number column") from None
    return actual == wanted


def matches(row, filters):
    """Whether the dict `row` passes every checked filter."""
    for key, predicate, value in filters:
        equal = _equal(row.get(key), value)
        if equal != (predicate == "="):
            return False
    return True


def apply(rows, filters, sort_key, limit):
    """The rows (dicts) that pass `filters`, sorted by `sort_key`, and the
    first `limit` of them (all with `limit=None`), as Ray orders and limits
    its lists; also returns how many passed before the limit."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
    if conflicting(filters):
        return [], 0
    kept = [r for r in rows if matches(r, filters)]
    kept.sort(key=sort_key)
    return (kept if limit is None else kept[:limit]), len(kept)
