"""tokenscan: replay Kubernetes service-account token-theft captures in Python.

A capture (Parquet, or its NDJSON twin) holds the file-open and process-exec
events recorded on a node. ``tokenscan.replay`` runs captures through Elastic's
EQL rule "Service Account Token or Certificate Read Detected via Defend for
Containers" and Tracee's TRC-108 (or your own rule files), with the same engine
and the same answers as the ``tokenscan`` CLI, and hands the findings over as
Arrow without copying::

    import tokenscan

    findings = tokenscan.replay("fixtures/pod-session.parquet")
    findings.summary()["findings"]          # 14
    df = findings.to_pandas()               # or .to_polars(), .to_arrow(), pyarrow.table(findings)

    tokenscan.read_capture("fixtures/pod-session.parquet")         # the raw events
    tokenscan.ecs_view("fixtures/pod-session.parquet")             # as the EQL rule sees them
    tokenscan.tracee_view("fixtures/pod-session.parquet")          # as TRC-108 sees them
    tokenscan.hunt("fixtures/pod-session.parquet", 'process where process.name == "curl"')

    # events recorded by Tracee or Elastic Defend for Containers become captures
    report = tokenscan.import_tracee("events.json.gz", "capture.parquet")
    report["events"], report["unmapped_examples"]   # rows written; lines not mapped, with line numbers
    tokenscan.import_ecs("d4c-export.ndjson", "d4c.parquet")
    tokenscan.import_k8s_audit("kube-apiserver-audit.log", "audit.parquet")

    rules = tokenscan.Rules.load("my-rules/")
    rules.evaluate(pyarrow_table_or_batch)   # any __arrow_c_array__ / __arrow_c_stream__ object

Errors: ``TokenscanError`` is the base of what tokenscan detects:
``CaptureError`` (unusable capture, ``.path``), ``RuleError`` (bad rule file or
query, ``.file``, ``.line``, ``.column``) and ``UnevaluableError`` (with
``strict=True``). A file that cannot be opened raises Python's own
``OSError`` subclass (``FileNotFoundError``, ``PermissionError``, ...) with
``.filename``, as ``open()`` does; it is deliberately not a ``TokenscanError``,
so catch ``(tokenscan.TokenscanError, OSError)`` to catch everything.

Importing and exporting never replace an existing file unless ``force=True``
(``FileExistsError`` otherwise). Long work (reading, evaluating, importing)
releases the GIL.
"""

from tokenscan._tokenscan import (
    CaptureError,
    Findings,
    RuleError,
    Rules,
    TokenscanError,
    UnevaluableError,
    __version__,
    ecs_view,
    export_ecs,
    export_tracee,
    hunt,
    import_ecs,
    import_k8s_audit,
    import_tracee,
    process_tree,
    read_capture,
    replay,
    report,
    tracee_view,
)
from tokenscan._types import (
    CaptureInfo,
    ImportReport,
    ProcessInfo,
    RuleInfo,
    RuleSummary,
    Summary,
    TimeRange,
    UnevaluableExample,
    UnmappedLine,
)

__all__ = [
    # functions
    "replay",
    "read_capture",
    "ecs_view",
    "tracee_view",
    "hunt",
    "process_tree",
    "report",
    "import_tracee",
    "import_ecs",
    "import_k8s_audit",
    "export_tracee",
    "export_ecs",
    # classes
    "Findings",
    "Rules",
    # errors
    "TokenscanError",
    "CaptureError",
    "RuleError",
    "UnevaluableError",
    # typed shapes of returned dicts
    "Summary",
    "CaptureInfo",
    "TimeRange",
    "RuleSummary",
    "UnevaluableExample",
    "ProcessInfo",
    "ImportReport",
    "UnmappedLine",
    "RuleInfo",
    "__version__",
]
