"""Sweep results as data (chapter 04, "The benchmark"): ``Record``, one measured point with its provenance, and
``Results``, a sequence of them with the few operations the charts need (filter, median over repeats, table,
CSV round trip); plus the recorded data in ``data/``: ``reference()`` and ``digitized_2019()``.

Private: ``uringkit.bench`` re-exports every public name; ``bench.sweep`` makes Results, ``plots`` reads them.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import statistics
import typing
from collections.abc import Callable, Iterable, Sequence

from ._notebook import REPO

DATA = REPO / "data"
REFERENCE_CSV = DATA / "reference_sweep.csv"
DIGITIZED_CSV = DATA / "loti_2019_digitized.csv"
MEDIAN = -1              # the ``repeat`` of a record that is the median over repeats


@dataclasses.dataclass(frozen=True)
class Record:
    """One measured point of a sweep: parameters, results, server cost and provenance (chapter 04).

    A field that was not measured (a failed point, or the digitized 2019 data) is None; ``error`` says in one
    line why a point failed and is "" when it did not.
    """

    # what was asked
    model: str
    impl: str                           # "c", "py", or "2019" for the digitized reference
    concurrency: int
    keepalive: bool
    repeat: int                         # 0, 1, ...; MEDIAN (-1) for a median over repeats
    route: str = "/"
    backlog: int | None = None
    workers: int | None = None
    server_cpus: str = ""               # "0" or "0,1"; "" when not pinned
    load_cpus: str = ""
    target_duration_s: float | None = None
    # what the load generator saw
    rps: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    completed: int | None = None
    non_2xx: int | None = None
    connect_errors: int | None = None
    timeouts: int | None = None
    read_errors: int | None = None
    unserved: int | None = None         # clients that never got a single response (waiting in a queue all along)
    slow_connects: int | None = None    # connects that took >= 1 s: a SYN was dropped (accept queue full) and resent
    duration_s: float | None = None
    loadgen_cpu_s: float | None = None
    # what it cost the server (deltas of Server.statistics() around the point; RSS at its end)
    server_cpu_s: float | None = None
    cpu_us_per_request: float | None = None
    voluntary_switches: int | None = None
    involuntary_switches: int | None = None
    pss_bytes: int | None = None
    error: str = ""
    repeats: int = 1                    # how many measurements the record stands for (more than 1: a median)
    # where and when
    kernel: str = ""
    cpu_model: str = ""
    cpu_count: int | None = None
    uringkit_version: str = ""
    date: str = ""                      # ISO 8601, UTC

    @property
    def ok(self) -> bool:
        """True when the point was measured without failing."""
        return not self.error

    @property
    def errors(self) -> int | None:
        """Requests that did not succeed: non-2xx answers, connect errors, timeouts and read errors."""
        parts = (self.non_2xx, self.connect_errors, self.timeouts, self.read_errors)
        return None if all(p is None for p in parts) else sum(p or 0 for p in parts)


FIELDS = tuple(f.name for f in dataclasses.fields(Record))
PARAMETERS = ("model", "impl", "concurrency", "keepalive", "route", "backlog", "workers", "server_cpus",
              "load_cpus", "target_duration_s")
MACHINE = ("kernel", "cpu_model", "cpu_count", "uringkit_version")
METRICS = tuple(f for f in FIELDS if f not in PARAMETERS + MACHINE + ("repeat", "error", "repeats", "date"))


def _parser(hint) -> Callable[[str], object]:
    """How to read one CSV cell back into the field's type ("" is None for optional fields)."""
    optional = type(None) in typing.get_args(hint)
    base = next(t for t in typing.get_args(hint) if t is not type(None)) if optional else hint
    convert = {bool: lambda s: {"True": True, "False": False}[s], int: int, float: float, str: str}[base]
    return (lambda s: None if s == "" else convert(s)) if optional else convert


_PARSERS = {name: _parser(hint) for name, hint in typing.get_type_hints(Record).items()}


class Results(Sequence):
    """A list of ``Record``s with CSV in/out, filtering and medians over repeats (chapter 04)."""

    def __init__(self, records: Iterable[Record] = ()):
        self._records = list(records)

    # --- a sequence ------------------------------------------------------------------------------------------
    def __getitem__(self, i):
        return Results(self._records[i]) if isinstance(i, slice) else self._records[i]

    def __len__(self) -> int:
        return len(self._records)

    def __add__(self, other: Iterable[Record]) -> "Results":
        return Results([*self._records, *other])

    def __eq__(self, other) -> bool:
        return isinstance(other, Results) and self._records == other._records

    def __repr__(self) -> str:
        models = ", ".join(self.models) or "none"
        return f"<Results: {len(self)} records; models {models}>"

    def append(self, record: Record) -> None:
        """Add one record at the end."""
        self._records.append(record)

    @property
    def models(self) -> tuple[str, ...]:
        """The models present, in order of first appearance."""
        return tuple(dict.fromkeys(r.model for r in self._records))

    @property
    def impls(self) -> tuple[str, ...]:
        """The implementations present ("c", "py", "2019"), in order of first appearance."""
        return tuple(dict.fromkeys(r.impl for r in self._records))

    # --- selecting and summarising ---------------------------------------------------------------------------
    def where(self, **criteria) -> "Results":
        """Records whose fields match: a value, a collection of allowed values, or a predicate.

        ``results.where(model=("epoll", "poll"), impl="c", concurrency=lambda c: c <= 1000)``
        """
        for name in criteria:
            if name not in FIELDS:
                raise TypeError(f"Record has no field {name!r}")

        def matches(value, wanted) -> bool:
            if callable(wanted):
                return bool(wanted(value))
            if isinstance(wanted, (list, tuple, set, frozenset, range)):
                return value in wanted
            return value == wanted

        return Results(r for r in self._records
                       if all(matches(getattr(r, k), v) for k, v in criteria.items()))

    def relabel(self, **fields) -> "Results":
        """Copies of the records with ``fields`` replaced, e.g. ``reference().relabel(impl="ref")`` so a reference
        run plots as its own curves beside a live run of the same servers."""
        return Results(dataclasses.replace(r, **fields) for r in self._records)

    def median(self) -> "Results":
        """One record per point: the median of each metric over the repeats that succeeded.

        A point where every repeat failed keeps the first error; one where some failed says how many in
        ``error`` (failures are reported, never dropped silently).
        """
        groups: dict[tuple, list[Record]] = {}
        for r in self._records:
            groups.setdefault(tuple(getattr(r, k) for k in PARAMETERS + MACHINE), []).append(r)
        return Results(_median_of(group) for group in groups.values())

    def table(self, columns: Sequence[str] = ("model", "impl", "concurrency", "keepalive", "rps",
                                               "cpu_us_per_request", "p99_ms", "errors", "error")) -> str:
        """The records as a plain-text table of ``columns`` (Record fields or properties), for a notebook cell."""
        def cell(r: Record, c: str) -> str:
            v = getattr(r, c)
            if v is None:
                return "-"
            if isinstance(v, float):
                return f"{v:,.1f}" if abs(v) < 1e5 else f"{v:,.0f}"
            return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)

        rows = [list(columns)] + [[cell(r, c) for c in columns] for r in self._records]
        widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
        lines = ["  ".join(v.rjust(w) if j else v.ljust(w) for j, (v, w) in enumerate(zip(row, widths)))
                 for row in rows]
        return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])

    # --- in and out ------------------------------------------------------------------------------------------
    def to_csv(self, path: str | os.PathLike) -> None:
        """Write every record as one CSV row (floats exactly, None as an empty cell)."""
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(FIELDS)
            writer.writerows(csv_row(r) for r in self._records)

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> "Results":
        """Read records written by ``to_csv`` (or appended by ``sweep(path=...)``), with their types restored."""
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            unknown = set(reader.fieldnames or ()) - set(FIELDS)
            if unknown:
                raise ValueError(f"{path}: columns {sorted(unknown)} are not Record fields")
            return cls(Record(**{k: _PARSERS[k](v) for k, v in row.items()}) for row in reader)

    def to_pandas(self):
        """The records as a pandas DataFrame, one column per field (pandas is optional for uringkit)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("Results.to_pandas() needs pandas, which uringkit does not depend on: "
                              "pip install pandas (or use Results.to_csv / the records themselves)") from None
        return pd.DataFrame([dataclasses.astuple(r) for r in self._records], columns=list(FIELDS))


def csv_row(r: Record) -> list:
    """The CSV cells of one record, in FIELDS order (None as an empty cell)."""
    return ["" if v is None else v for v in dataclasses.astuple(r)]


def _median_of(group: list[Record]) -> Record:
    good = [r for r in group if r.ok]
    first = group[0]
    if not good:
        return dataclasses.replace(first, repeat=MEDIAN, repeats=len(group))
    values = {}
    for name in METRICS:
        column = [getattr(r, name) for r in good if getattr(r, name) is not None]
        if column:
            # median_low keeps counts integral: it picks a measured value rather than averaging two
            pick = statistics.median_low if isinstance(column[0], int) else statistics.median
            values[name] = pick(column)
        else:
            values[name] = None
    failed = len(group) - len(good)
    error = f"{failed} of {len(group)} repeats failed: {next(r.error for r in group if not r.ok)}" if failed else ""
    return dataclasses.replace(good[0], **values, repeat=MEDIAN, repeats=len(group), error=error)


# --- recorded data ---------------------------------------------------------------------------------------------
def reference() -> Results:
    """The reference sweep recorded with the book (data/reference_sweep.csv; see data/README.md), so every chart
    renders where experiments cannot run (chapter 04)."""
    if not REFERENCE_CSV.exists():
        raise FileNotFoundError(f"no reference sweep recorded yet: {REFERENCE_CSV} is missing "
                                f"(data/README.md says how to record one)")
    return Results.from_csv(REFERENCE_CSV)


@functools.lru_cache(maxsize=1)
def _digitized() -> tuple[Record, ...]:
    with open(DIGITIZED_CSV, newline="") as f:
        # What is known of the 2019 setup (data/README.md): HTTP/1.0, one connection per request, listen
        # backlog 10, pools of 100; the machine and load tool were not published.
        return tuple(Record(model=row["architecture"], impl="2019", concurrency=int(row["concurrency"]),
                            keepalive=False, repeat=0, backlog=10, workers=100,
                            rps=float(row["requests_per_sec"]), date="2019")
                     for row in csv.DictReader(f))


def digitized_2019() -> Results:
    """Requests/s of the seven 2019 servers, digitized from the charts the book's source shows (impl "2019";
    label them "digitized from the 2019 charts"). Introduced in chapter 04."""
    return Results(_digitized())
