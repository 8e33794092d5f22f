"""Every error: the Python exception class, its attributes, and the same message as the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tokenscan
from conftest import FIXTURES

POD = FIXTURES / "pod-session.parquet"

BAD_RULE = """\
[rule]
name = "My token rule"
rule_id = "my-rule"
severity = "low"
language = "eql"
type = "eql"
query = '''
process where
  process.nmae == "cat"
'''
"""


def cli_error(cli: Path, *args: str) -> str:
    """The CLI's one-line error for these arguments, without its `tokenscan: error: ` prefix."""
    done = subprocess.run([str(cli), *args], capture_output=True, text=True)
    assert done.returncode == 2, done
    lines = [line for line in done.stderr.splitlines() if line.startswith("tokenscan: error: ")]
    assert len(lines) == 1, done.stderr
    return lines[0][len("tokenscan: error: ") :]


def raises(kind: type[BaseException], call: Callable[[], Any]) -> Any:
    with pytest.raises(kind) as e:
        call()
    return e.value


def test_hierarchy() -> None:
    for cls in (tokenscan.CaptureError, tokenscan.RuleError, tokenscan.UnevaluableError):
        assert issubclass(cls, tokenscan.TokenscanError)
        assert cls.__module__ == "tokenscan"
    assert issubclass(tokenscan.TokenscanError, Exception)
    assert not issubclass(tokenscan.TokenscanError, OSError)
    # the attributes exist (as None) even on an instance made by hand
    e = tokenscan.RuleError("x")
    assert (e.file, e.line, e.column) == (None, None, None)
    assert tokenscan.CaptureError("x").path is None
    u = tokenscan.UnevaluableError("x")
    assert (u.capture, u.event_index, u.rule_id) == (None, None, None)


# --- I/O: Python's own OSError subclasses ------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda p: tokenscan.replay(p),
        lambda p: tokenscan.replay([POD, p]),
        lambda p: tokenscan.read_capture(p),
        lambda p: tokenscan.ecs_view(p),
        lambda p: tokenscan.tracee_view(p),
        lambda p: tokenscan.hunt(p, "any where true"),
        lambda p: tokenscan.Rules.load(p),
        lambda p: tokenscan.replay(POD, rules=p),
    ],
    ids=["replay", "replay-list", "read_capture", "ecs_view", "tracee_view", "hunt", "Rules.load", "replay-rules"],
)
def test_missing_file_is_file_not_found(call: Callable[[str], Any], tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.parquet")
    e = raises(FileNotFoundError, lambda: call(missing))
    assert e.filename == missing
    assert e.errno == 2
    assert str(e) == f"[Errno 2] No such file or directory: '{missing}'"
    assert not isinstance(e, tokenscan.TokenscanError)


def test_the_cli_reports_the_same_missing_file(cli: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.parquet")
    assert cli_error(cli, "replay", missing) == f"{missing}: No such file or directory (os error 2)"


def test_other_os_errors_keep_their_errno() -> None:
    e = raises(NotADirectoryError, lambda: tokenscan.Rules.load(POD / "rule.toml"))
    assert e.filename == str(POD / "rule.toml")


def test_unreadable_file_is_permission_error(tmp_path: Path) -> None:
    secret = tmp_path / "secret.parquet"
    shutil.copy(POD, secret)
    secret.chmod(0)
    if os.geteuid() != 0:
        e = raises(PermissionError, lambda: tokenscan.replay(secret))
        assert e.filename == str(secret)
        return
    # root reads anything; drop the capabilities that let it, in a child process
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
    os.chown(secret, 65534, 65534)
    code = (
        "import tokenscan, sys\n"
        "try:\n"
        f"    tokenscan.replay({str(secret)!r})\n"
        "except PermissionError as e:\n"
        "    print(type(e).__name__, e.errno, e.filename)\n"
    )
    out = subprocess.run(
        [setpriv, "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == f"PermissionError 13 {secret}"


# --- capture errors ------------------------------------------------------------------------------


def write_parquet(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def capture_cases(tmp: Path) -> dict[str, Path]:
    """Broken captures, each with the error the CLI also reports."""
    table = pq.read_table(POD)
    text = tmp / "notes.txt"
    text.write_text("hello\n")
    empty = tmp / "empty.parquet"
    empty.write_bytes(b"")
    truncated = tmp / "truncated.parquet"
    data = POD.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    bad_json = tmp / "bad.ndjson"
    bad_json.write_text(
        '{"time": "2026-11-20T10:15:00Z", "kind": "open", "host": "n", "pid": 1, "tid": 1, "ppid": 0, '
        '"uid": 0, "gid": 0, "comm": "x", "cgroup_id": 1}\n{"time": 12, "kind": "fork"}\n'
    )
    return {
        "not-a-capture": text,
        "empty": empty,
        "truncated": truncated,
        "missing-column": write_parquet(tmp / "no-comm.parquet", table.drop_columns(["comm"])),
        "wrong-type": write_parquet(
            tmp / "text-pid.parquet",
            table.set_column(table.schema.get_field_index("pid"), "pid", pa.array(["1"] * len(table))),
        ),
        "null-where-not-allowed": write_parquet(
            tmp / "null-host.parquet",
            table.set_column(table.schema.get_field_index("host"), "host", pa.array([None] * len(table), pa.string())),
        ),
        "future-version": write_parquet(
            tmp / "v4.parquet", table.replace_schema_metadata({"tokenscan.capture_version": "4"})
        ),
        "bad-ndjson-line": bad_json,
    }


CASES = [
    "not-a-capture",
    "empty",
    "truncated",
    "missing-column",
    "wrong-type",
    "null-where-not-allowed",
    "future-version",
    "bad-ndjson-line",
]


@pytest.mark.parametrize("case", CASES)
def test_capture_errors_match_the_cli(case: str, cli: Path, tmp_path: Path) -> None:
    path = capture_cases(tmp_path)[case]
    expected = cli_error(cli, "replay", str(path))
    e = raises(tokenscan.CaptureError, lambda: tokenscan.replay(path))
    assert str(e) == expected
    assert e.path == str(path)
    assert expected.startswith(f"{path}: ")
    # the other readers say the same
    for call in (tokenscan.read_capture, tokenscan.ecs_view, tokenscan.tracee_view):
        assert str(raises(tokenscan.CaptureError, lambda: call(path))) == expected  # noqa: B023


def test_capture_error_messages_name_the_column(tmp_path: Path) -> None:
    cases = capture_cases(tmp_path)
    assert "required column `comm` is missing" in str(raises(tokenscan.CaptureError, lambda: tokenscan.replay(cases["missing-column"])))
    assert "column `pid` has type Utf8" in str(raises(tokenscan.CaptureError, lambda: tokenscan.replay(cases["wrong-type"])))
    assert "line 2" in str(raises(tokenscan.CaptureError, lambda: tokenscan.replay(cases["bad-ndjson-line"])))


def test_a_directory_without_captures(cli: Path, tmp_path: Path) -> None:
    e = raises(tokenscan.CaptureError, lambda: tokenscan.replay(tmp_path))
    assert str(e) == cli_error(cli, "replay", str(tmp_path))
    assert e.path == str(tmp_path)


# --- rule errors ---------------------------------------------------------------------------------


def test_bad_rule_file_points_at_line_and_column(cli: Path, tmp_path: Path) -> None:
    rule = tmp_path / "my-rule.toml"
    rule.write_text(BAD_RULE)
    expected = cli_error(cli, "replay", str(POD), "--rules", str(rule))
    for call in (lambda: tokenscan.Rules.load(rule), lambda: tokenscan.replay(POD, rules=rule)):
        e = raises(tokenscan.RuleError, call)
        assert str(e) == expected
        assert (e.file, e.line, e.column) == (str(rule), 9, 3)
    assert expected == (
        f"{rule}:9:3: in `query`: unknown field `process.nmae`: did you mean `process.name`? "
        "(write `?process.nmae` to treat it as always missing)"
    )
    e = raises(tokenscan.RuleError, lambda: tokenscan.Rules.from_text(BAD_RULE, "pasted.toml"))
    assert (e.file, e.line, e.column) == ("pasted.toml", 9, 3)


def test_toml_syntax_error(cli: Path, tmp_path: Path) -> None:
    rule = tmp_path / "broken.toml"
    rule.write_text('[rule]\nname = "unterminated\n')
    e = raises(tokenscan.RuleError, lambda: tokenscan.Rules.load(rule))
    assert str(e) == cli_error(cli, "rules", "list", "--rules", str(rule))
    assert e.file == str(rule) and e.line == 2


def test_not_a_rule_file(tmp_path: Path) -> None:
    e = raises(tokenscan.RuleError, lambda: tokenscan.Rules.from_text('title = "hello"\n', "x.toml"))
    assert (e.file, e.line, e.column) == ("x.toml", 1, 1)
    assert "not a rule file" in str(e)


def test_duplicate_rule_ids_have_no_position() -> None:
    text = tokenscan.Rules.default().sources[1][1]
    e = raises(tokenscan.RuleError, lambda: tokenscan.Rules.from_sources([("a.toml", text), ("b.toml", text)]))
    assert str(e) == "b.toml: rule id TRC-108 is already defined by a.toml"
    assert (e.file, e.line, e.column) == ("b.toml", None, None)


def test_empty_rules_directory(cli: Path, tmp_path: Path) -> None:
    e = raises(tokenscan.RuleError, lambda: tokenscan.Rules.load(tmp_path))
    assert str(e) == cli_error(cli, "rules", "list", "--rules", str(tmp_path))
    assert e.file == str(tmp_path) and e.line is None


def test_strict_error_matches_the_cli(cli: Path, in_repo: Path) -> None:
    expected = cli_error(cli, "replay", "fixtures/edge-cases.parquet", "--strict")
    e = raises(tokenscan.UnevaluableError, lambda: tokenscan.replay("fixtures/edge-cases.parquet", strict=True))
    assert str(e) == expected


# --- argument errors -------------------------------------------------------------------------------

untyped: Any = tokenscan  # these calls are wrong on purpose; the type checker would reject them


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: untyped.replay(3), r"expected a path \(str or os\.PathLike\) or a list of paths, not int"),
        (lambda: untyped.replay([POD, 3]), r"expected a list of paths \(str or os\.PathLike\), but an item is int"),
        (lambda: untyped.replay(POD, rules=3.5), r"expected a path \(str or os\.PathLike\) or a list of paths, not float"),
        (lambda: untyped.ecs_view(None), "not NoneType"),
        (lambda: untyped.Rules.load(b"rules.toml"), "not bytes"),
        (lambda: untyped.Rules.default().evaluate("table"), "expected Arrow data"),
        (lambda: tokenscan.replay(POD, batch_size=-1), "can't convert negative int to unsigned|out of range"),
    ],
)
def test_bad_arguments_are_type_errors(call: Callable[[], Any], message: str) -> None:
    with pytest.raises((TypeError, OverflowError), match=message):
        call()
