"""``rotator audit ...`` and ``rotator report`` end to end through typer's CliRunner."""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rotator.audit import AuditEvent, AuditReader
from rotator.cli import audit as cli_audit
from rotator.cli.audit import audit_app, parse_time
from rotator.cli.report import report_command
from rotator.errors import AuditUnavailable

from .conftest import AUDIT_KEY, FakeEnv, rotation_events
from .test_report import TARGETS_YAML, seed


@pytest.fixture
def cli(env: FakeEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setattr(cli_audit, "_connect", lambda settings: env.sync)
    monkeypatch.setattr(cli_audit, "_connect_async", lambda settings: env.client())
    (tmp_path / "rotator.yaml").write_text(TARGETS_YAML)
    return Cli(env, tmp_path)


class Cli:
    def __init__(self, env: FakeEnv, tmp_path: Path) -> None:
        self.env = env
        self.tmp = tmp_path
        self.runner = CliRunner()
        self.environ = {
            "ROTATOR_REDIS_URL": "redis://fake.invalid:1/0",
            "ROTATOR_AUDIT_KEY": AUDIT_KEY.decode(),
            "ROTATOR_KEY_PREFIX": env.keys.prefix,
            "ROTATOR_STATE_DIR": str(tmp_path / "state"),
            "ROTATOR_TARGETS_FILE": str(tmp_path / "rotator.yaml"),
            "ROTATOR_ALLOWED_HOSTS": "adobe=a.example,uipath=u.example,appflow=f.example",
        }

    def __call__(self, *args: str, code: int = 0, **env: str) -> Any:
        result = self.runner.invoke(audit_app, list(args), env={**self.environ, **env})
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result


def test_list_human_and_json_with_paging(cli: Cli) -> None:
    cli.env.emit(rotation_events(120, targets=3, start=time.time()))
    human = cli("list", "--limit", "5", "--target", "target-1")
    assert "target-1" in human.stdout and "more: --cursor" in human.stdout
    first = json.loads(cli("list", "--json", "--limit", "30", "--target", "target-1").stdout)
    assert len(first["events"]) == 30 and first["next_cursor"]
    rest = json.loads(
        cli(
            "list", "--json", "--limit", "500", "-t", "target-1", "--cursor", first["next_cursor"]
        ).stdout
    )
    seqs = [e["seq"] for e in first["events"] + rest["events"]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 40
    assert rest["next_cursor"] is None
    page2 = json.loads(
        cli("list", "--json", "--limit", "30", "-t", "target-1", "--page", "2").stdout
    )
    assert page2["events"] == rest["events"][:10]


def test_list_filters(cli: Cli) -> None:
    cli.env.emit(rotation_events(120, targets=3, start=time.time() - 200))
    out = json.loads(
        cli(
            "list", "--json", "-e", "job.completed", "-o", "failed", "-o", "dead", "--oldest-first"
        ).stdout
    )
    assert out["events"] and {e["outcome"] for e in out["events"]} <= {"failed", "dead"}
    out = json.loads(cli("list", "--json", "--actor", "cli:*", "--provider", "adobe").stdout)
    assert out["events"] and all(e["actor"].startswith("cli:") for e in out["events"])
    assert all(e["provider"] == "adobe" for e in out["events"])
    out = json.loads(cli("list", "--json", "--since", "1h", "--until", "now").stdout)
    assert len(out["events"]) == 50
    out = json.loads(cli("list", "--json", "--until", "2h").stdout)
    assert out["events"] == []


def test_usage_errors_exit_2(cli: Cli) -> None:
    cli("list", "--since", "yesterday-ish", code=2)
    cli("list", "--cursor", "garbage", code=2)
    cli("list", "--cursor", "1:1-0", "--page", "2", code=2)
    cli("export", "--format", "xml", code=2)
    cli("archive", "--older-than", "soon", code=2)


def test_config_error_exits_2(cli: Cli) -> None:
    result = cli("list", code=2, ROTATOR_DISPATCH_INTERVAL="-1")
    assert "ROTATOR_DISPATCH_INTERVAL" in result.stderr


def test_show_tells_a_jobs_story(cli: Cli) -> None:
    cli.env.emit(rotation_events(20, start=time.time()))
    result = cli("show", "job000002")
    for step in ("job.started", "remote.read", "update.intent", "update.applied", "job.completed"):
        assert step in result.stdout
    data = json.loads(cli("show", "job000002", "--json").stdout)
    assert [e["seq"] for e in data["events"]] == [11, 12, 13, 14, 15]
    cli("show", "nope", code=1)


def test_verify_ok_then_tampered(cli: Cli) -> None:
    cli.env.emit(rotation_events(50, start=time.time()))
    result = cli("verify")
    assert "OK" in result.stdout and "50 events" in result.stdout
    checkpoint = json.loads((cli.tmp / "state" / "audit-verify.json").read_text())
    assert checkpoint["seq"] == 50
    stream_id = cli.env.sync.xrange(cli.env.keys.audit)[20][0]
    cli.env.sync.xdel(cli.env.keys.audit, stream_id)
    result = cli("verify", code=1)
    assert "FAILED" in result.stdout and "gap" in result.stdout
    data = json.loads(cli("verify", "--json", code=1).stdout)
    assert data["ok"] is False and data["problems"][0]["seq"] == 22


def test_verify_checkpoint_catches_a_forged_truncation(cli: Cli) -> None:
    cli.env.emit(rotation_events(30, start=time.time()))
    cli("verify")
    entries = cli.env.sync.xrange(cli.env.keys.audit)
    for stream_id, _ in entries[20:]:
        cli.env.sync.xdel(cli.env.keys.audit, stream_id)
    cli.env.sync.hset(cli.env.keys.audit_head, mapping={"seq": 20, "hash": entries[19][1][b"hash"]})
    cli("verify", "--no-checkpoint")
    result = cli("verify", code=1)
    assert "truncated" in result.stdout


def test_export_jsonl_csv_stdout_and_file(cli: Cli) -> None:
    cli.env.emit(rotation_events(40, start=time.time()))
    lines = cli("export").stdout.splitlines()
    assert len(lines) == 40 and json.loads(lines[0])["seq"] == 1
    target = cli.tmp / "out.csv"
    result = cli("export", "--format", "csv", "--output", str(target), "--target", "target-2")
    assert "written" in result.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert rows and all(r["target"] == "target-2" for r in rows)
    assert oct(target.stat().st_mode & 0o777) == "0o600"


def test_archive_and_verify_across(cli: Cli) -> None:
    cli.env.emit(rotation_events(60, start=time.time()))
    archive_dir = cli.tmp / "arch"
    out = json.loads(
        cli("archive", "--older-than", "1h", "--dir", str(archive_dir), "--json").stdout
    )
    assert out["archived"] == 0
    time.sleep(1.1)
    out = json.loads(
        cli("archive", "--older-than", "1s", "--dir", str(archive_dir), "--json").stdout
    )
    assert out["archived"] == 60 and len(out["files"]) == 1
    with gzip.open(out["files"][0], "rt") as handle:
        assert len(handle.readlines()) == 60
    cli.env.emit([AuditEvent("after", target="target-0")])
    assert "anchored at archived seq 60" in cli("verify").stdout
    assert "1 archive file(s)" in cli("verify", "--archive-dir", str(archive_dir)).stdout


def test_replay_spool(cli: Cli) -> None:
    spool = cli.tmp / "state" / "audit-spool"
    cli.env.server.connected = False
    with pytest.raises(AuditUnavailable):
        cli.env.emit([AuditEvent("spooled", target="t")], spool_dir=spool)
    assert "audit sink unavailable" in cli("replay-spool", code=1).stderr
    cli.env.server.connected = True
    assert "replayed 1" in cli("replay-spool").stdout
    assert [r.event.event for r in AuditReader(cli.env.sync, cli.env.keys).iter_events()] == [
        "spooled"
    ]


def test_report_command(cli: Cli) -> None:
    import typer

    app = typer.Typer()
    app.command("report")(report_command)
    app.command("noop")(lambda: None)
    seed(cli.env, time.time())
    html_path = cli.tmp / "report.html"
    result = cli.runner.invoke(app, ["report", "--html", str(html_path)], env=cli.environ)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "fresh" in result.stdout and "overdue" in result.stdout
    assert "<svg" in html_path.read_text()
    result = cli.runner.invoke(app, ["report", "--json", "--since", "30d"], env=cli.environ)
    data = json.loads(result.stdout)
    assert data["summary"]["targets"] == 7
    missing = {**cli.environ, "ROTATOR_TARGETS_FILE": str(cli.tmp / "missing.yaml")}
    result = cli.runner.invoke(app, ["report"], env=missing)
    assert result.exit_code == 2 and "missing.yaml" in result.stderr


def test_mounted_on_the_main_cli() -> None:
    from rotator.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["audit", "--help"]).exit_code == 0
    assert "--html" in runner.invoke(app, ["report", "--help"]).stdout


def test_parse_time() -> None:
    now = 1_000_000.0
    assert parse_time("24h", now) == now - 86400
    assert parse_time("now", now) == now
    assert parse_time("1700000000", now) == 1_700_000_000
    assert parse_time("2024-01-01", now) == 1_704_067_200
    assert parse_time("2024-01-01T01:00:00+01:00", now) == 1_704_067_200
