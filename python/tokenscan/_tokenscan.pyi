"""Type stubs for the compiled module ``tokenscan._tokenscan`` (checked by
``python -m mypy.stubtest tokenscan._tokenscan`` in ``./dev.sh test``)."""

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, Protocol, final

import pandas
import polars
import pyarrow

from tokenscan._types import ImportReport, RuleInfo, Summary

__all__ = [
    "CaptureError",
    "Findings",
    "RuleError",
    "Rules",
    "TokenscanError",
    "UnevaluableError",
    "ecs_view",
    "export_ecs",
    "export_tracee",
    "hunt",
    "import_ecs",
    "import_k8s_audit",
    "import_tracee",
    "process_tree",
    "report",
    "read_capture",
    "replay",
    "tracee_view",
    "__version__",
]

__version__: str

_StrPath = str | os.PathLike[str]
_Paths = _StrPath | Iterable[_StrPath]

class _ArrowArrayExportable(Protocol):
    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]: ...

class _ArrowStreamExportable(Protocol):
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...

_ArrowData = _ArrowArrayExportable | _ArrowStreamExportable

class TokenscanError(Exception):
    """Base class of the errors tokenscan detects (not raised itself for I/O: those are OSError)."""

class CaptureError(TokenscanError):
    """A capture file (or Arrow data given to Rules.evaluate) is unusable."""

    path: str | None
    """The capture file, or the label of the data."""

class RuleError(TokenscanError):
    """A rule file or an EQL query is unusable."""

    file: str | None
    """The rule file (``<builtin>/NAME`` for a built-in rule, ``<query>`` for a hunt query)."""
    line: int | None
    """1-based line, or None when the problem has no place."""
    column: int | None
    """1-based column (in characters), or None."""

class UnevaluableError(TokenscanError):
    """With strict=True: a rule cannot evaluate an event."""

    capture: str | None
    event_index: int | None
    rule_id: str | None

@final
class Findings:
    """Findings of a replay (or of ``Rules.evaluate``), one row per (event, rule) that fired.

    An Arrow stream: ``pyarrow.table(f)``, ``polars.DataFrame(f)`` and DuckDB read it
    without copying. Columns: ``rule_id``, ``rule_name``, ``severity``, ``capture``,
    ``event_index``, the event's ``time``, ``kind``, ``host``, ``container_id``, ``pid``,
    ``tid``, ``ppid``, ``uid``, ``comm``, ``exe``, ``args``, ``path``, ``requested_path``,
    ``flags``, ``tty``, ``reason``, and the triage context (null where the capture does not
    say): ``pod_name``, ``pod_namespace``, ``container_name``, ``image``,
    ``process_entity_id``, ``parent_pid``, ``parent_name``, ``parent_args``,
    ``session_leader_pid``, ``session_leader_name``, ``session_leader_tty``,
    ``entry_leader_pid``, ``entry_leader_name``, ``entry_leader_type``.
    """

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """Exports the findings through the Arrow PyCapsule stream interface (no copy)."""

    def to_arrow(self) -> pyarrow.Table:
        """The findings as a ``pyarrow.Table`` (zero-copy)."""

    def to_pandas(self) -> pandas.DataFrame:
        """The findings as a ``pandas.DataFrame`` (needs ``tokenscan[pandas]``)."""

    def to_polars(self) -> polars.DataFrame:
        """The findings as a ``polars.DataFrame`` (needs ``tokenscan[polars]``)."""

    def __len__(self) -> int:
        """Number of findings."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """One dict per finding (builds Python objects: for small results)."""

    def summary(self) -> Summary:
        """What was read and found, as in ``tokenscan replay --format json``'s summary."""

    def _repr_html_(self) -> str:
        """The findings as HTML, for notebooks."""

@final
class Rules:
    """A compiled set of detection rules that remembers, and pickles as, its source texts."""

    @classmethod
    def default(cls, *, ignore_above: int | None = 1024) -> Rules:
        """The built-in rules: Elastic's D4C token-read rule and Tracee's TRC-108."""

    @classmethod
    def load(cls, paths: _Paths, *, ignore_above: int | None = 1024) -> Rules:
        """Loads rule files; a directory contributes its ``*.toml`` files, sorted by name."""

    @classmethod
    def from_text(cls, text: str, name: str = "<text>", *, ignore_above: int | None = 1024) -> Rules:
        """Compiles one rule file's text; ``name`` stands for its path."""

    @classmethod
    def from_sources(cls, sources: Sequence[tuple[str, str]], *, ignore_above: int | None = 1024) -> Rules:
        """Compiles ``(name, text)`` pairs (what ``sources`` returns)."""

    @classmethod
    def _from_pickle(cls, sources: Sequence[tuple[str, str]], ignore_above: int | None) -> Rules: ...
    def __reduce__(self) -> tuple[Any, tuple[list[tuple[str, str]], int | None]]: ...
    @property
    def sources(self) -> list[tuple[str, str]]:
        """The rule file texts the set was compiled from, as ``(name, text)`` pairs."""

    @property
    def ignore_above(self) -> int | None:
        """Elasticsearch's keyword ``ignore_above`` limit (None: off)."""

    @property
    def ids(self) -> list[str]:
        """The rule ids, in order."""

    def describe(self) -> list[RuleInfo]:
        """One dict per rule, as ``tokenscan rules list --format json`` shows it."""

    def evaluate(
        self,
        data: _ArrowData,
        *,
        capture: str = "<arrow>",
        strict: bool = False,
        first_index: int = 0,
    ) -> Findings:
        """Evaluates the rules over any ``__arrow_c_array__`` / ``__arrow_c_stream__`` object."""

    def __len__(self) -> int:
        """Number of rules."""

def replay(
    captures: _Paths,
    rules: Rules | _Paths | None = None,
    *,
    strict: bool = False,
    batch_size: int = 65536,
) -> Findings:
    """Replays captures through detection rules (default: the built-in ones), as ``tokenscan replay``."""

def read_capture(path: _StrPath, columns: Sequence[str] | None = None) -> pyarrow.Table:
    """A capture's raw events as a ``pyarrow.Table`` (zero-copy), canonical column types."""

def ecs_view(captures: _Paths) -> pyarrow.Table:
    """The events as the EQL rules see them (ECS fields), after ``capture`` and ``event_index``."""

def tracee_view(captures: _Paths) -> pyarrow.Table:
    """The events as Tracee signatures see them, after ``capture`` and ``event_index``."""

def hunt(captures: _Paths, query: str, *, ignore_above: int | None = 1024) -> pyarrow.Table:
    """The events matching an ad-hoc EQL query, with ``capture``, ``event_index`` and every capture column."""

def process_tree(
    captures: _Paths,
    rules: Rules | _Paths | None = None,
    *,
    pod: str | None = None,
    container: str | None = None,
    pid: int | None = None,
) -> pyarrow.Table:
    """The process tree of a pod, container or session, one row per process, with its findings, as ``tokenscan tree``."""

def report(
    captures: _Paths,
    path: _StrPath,
    rules: Rules | _Paths | None = None,
    *,
    force: bool = False,
) -> None:
    """Writes the triage report of ``captures`` to ``path`` as one self-contained HTML file, as ``tokenscan report``.

    Findings per rule (with each rule's version and the SHA-256 of its text) and per pod,
    a timeline, one process tree per pod container and session with findings, and the blind
    spots; at most 9 MiB for one capture and the built-in rules.
    """

def import_tracee(
    events: _Paths,
    output: _StrPath,
    *,
    format: Literal["parquet", "ndjson", "jsonl"] | None = None,
    strict: bool = False,
    force: bool = False,
    container_init: Literal["keep", "host"] = "keep",
    tty_from_stdin: bool = False,
    max_examples: int = 5,
    batch_size: int = 65536,
) -> ImportReport:
    """Imports ``tracee --output json`` events (plain or gzip) into a capture, as ``tokenscan import tracee``."""

def import_ecs(
    events: _Paths,
    output: _StrPath,
    *,
    format: Literal["parquet", "ndjson", "jsonl"] | None = None,
    strict: bool = False,
    force: bool = False,
    max_examples: int = 5,
    batch_size: int = 65536,
) -> ImportReport:
    """Imports Elastic ECS (Defend for Containers) documents (plain or gzip) into a capture, as ``tokenscan import ecs``."""

def import_k8s_audit(
    events: _Paths,
    output: _StrPath,
    *,
    format: Literal["parquet", "ndjson", "jsonl"] | None = None,
    strict: bool = False,
    force: bool = False,
    max_examples: int = 5,
    batch_size: int = 65536,
) -> ImportReport:
    """Imports a kube-apiserver audit log (``audit.k8s.io/v1`` events, plain or gzip) into a capture, as ``tokenscan import k8s-audit``."""

def export_tracee(
    capture: _StrPath,
    output: _StrPath,
    *,
    style: Literal["v0.24", "v0.23"] = "v0.24",
    flag_names: bool = False,
    force: bool = False,
) -> int:
    """Writes a capture as ``tracee --output json`` lines; returns the number of events written."""

def export_ecs(
    capture: _StrPath,
    output: _StrPath,
    *,
    layout: Literal["nested", "dotted"] = "nested",
    force: bool = False,
) -> int:
    """Writes a capture as ECS documents shaped like Defend for Containers events; returns the number of events written."""
