"""Typed shapes of the plain dicts tokenscan returns (for type checkers and readers).

They are ``TypedDict``\\ s: at runtime the values are ordinary ``dict``\\ s.
``Summary`` has the keys and nesting of the ``summary`` object in
``tokenscan replay --format json``, with times as timezone-aware datetimes.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Dict, List, Optional, TypedDict

if TYPE_CHECKING:  # typing.NotRequired is Python 3.11+; annotations are not evaluated at run time
    from typing_extensions import NotRequired

__all__ = [
    "CaptureInfo",
    "ImportReport",
    "ProcessInfo",
    "RuleInfo",
    "RuleSummary",
    "Summary",
    "TimeRange",
    "UnevaluableExample",
    "UnmappedLine",
]


class CaptureInfo(TypedDict):
    """A capture that was read."""

    path: str
    """The capture file as given (or the label passed to ``Rules.evaluate``)."""
    events: int
    """Events read from it."""


class TimeRange(TypedDict):
    """Earliest and latest event time read (UTC, microsecond precision)."""

    first: datetime.datetime
    last: datetime.datetime


class UnevaluableExample(TypedDict):
    """An event a rule could not evaluate."""

    capture: str
    event_index: int
    message: str


class RuleSummary(TypedDict):
    """Per-rule results."""

    rule_id: str
    rule_name: str
    severity: str
    findings: int
    unevaluable: int
    """Events the rule could not evaluate (for example an open with null flags, for TRC-108)."""
    unevaluable_examples: List[UnevaluableExample]
    """The first few of them."""
    sequences: NotRequired[int]
    """Sequence rules only: sequences matched (``findings`` counts their events)."""
    sequences_dropped: NotRequired[int]
    """Sequence rules only: partial sequences dropped at the pending bound (some may be missing)."""
    samples: NotRequired[int]
    """Sample rules only: samples matched, one per set of join-key values (``findings`` counts their events)."""


class ProcessInfo(TypedDict):
    """A process with findings."""

    host: str
    pid: int
    comm: str


class Summary(TypedDict):
    """What a replay read and found (``Findings.summary()``)."""

    events: int
    captures: List[CaptureInfo]
    time_range: Optional[TimeRange]
    """``None`` when no event was read."""
    findings: int
    rules: List[RuleSummary]
    """In rule-set order."""
    containers: List[str]
    """Container ids with findings, sorted."""
    processes: List[ProcessInfo]
    """Processes with findings, sorted by host, pid, comm."""


class RuleInfo(TypedDict):
    """A rule, as ``Rules.describe()`` lists it."""

    id: str
    name: str
    kind: str
    """``"eql"`` or ``"signature"``."""
    severity: str
    risk_score: Optional[float]
    threat: List[str]
    """MITRE ATT&CK mappings, one line each."""
    source: str
    """The rule file (``<builtin>/NAME`` for a built-in rule)."""


class UnmappedLine(TypedDict):
    """An input line an import could not turn into a capture row."""

    input: str
    """The input file, as given."""
    line: int
    """1-based line number (in the decompressed text)."""
    reason: str
    """Why, in one sentence (for example ``event net_packet_dns has no capture row``)."""


class ImportReport(TypedDict):
    """What ``import_tracee``, ``import_ecs`` or ``import_k8s_audit`` read and wrote."""

    format: str
    """``"tracee"``, ``"ecs"`` or ``"k8s-audit"``."""
    inputs: List[str]
    """The input files, in the order read."""
    output: str
    """The capture written."""
    lines: int
    """Non-blank lines read."""
    bytes: int
    """Bytes of JSON read (after decompression)."""
    gzip: bool
    """Whether any input was gzip-compressed."""
    events: int
    """Event rows written (``opens + execs + audits``)."""
    opens: int
    execs: int
    audits: int
    """Kubernetes audit rows (``k8s_audit``)."""
    unmapped: int
    """Lines that did not become rows."""
    unmapped_by_reason: Dict[str, int]
    """``unmapped`` by kind of reason, e.g. ``{"event sched_process_fork": 3, "invalid JSON": 1}``."""
    unmapped_examples: List[UnmappedLine]
    """The first ``max_examples`` unmapped lines, with line numbers and reasons."""
    notes: Dict[str, int]
    """Facts about rows that were written, with counts (e.g. container-init events kept)."""
