"""``file:`` references and file secrets are read only inside the credentials directory.

The attack (issue 10.5/10.6): a targets-file edit names ``/proc/self/environ``, a path with
``..``, a symlink out of the directory, a device, a FIFO (which would hang the reader) or a huge
file as a credential or a secret. ``config check`` reports each one with its field, and the
read itself refuses them even when the file changes after the check.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from rotator.errors import SecretSourceError
from rotator.filerefs import MAX_FILE_BYTES
from rotator.resolve import resolve_reference
from rotator.sources.file import FileSource, load_file
from tests.security.config_helpers import cli, rotator_env

TARGETS = """
secrets:
  outside:
    source: file
    path: ../outside.json
  big:
    source: file
    path: big.json
  fine:
    source: file
    path: fine.json
targets:
{targets}
"""

TARGET = """  {name}:
    provider: adobe
    base_url: https://platform.adobe.io/data/foundation/flowservice
    resource_id: conn-1
    secret: fine
    credentials:
      client_id: env:ATTACK_CLIENT_ID
      client_secret: {ref}
    options:
      org_id: "org@AdobeOrg"
"""


def _credentials_dir(tmp_path: Path) -> Path:
    creds = tmp_path / "creds"
    creds.mkdir()
    (tmp_path / "outside.json").write_text('{"password": "OUTSIDE-CONTENT"}')
    (creds / "fine.json").write_text('{"password": "fine"}')
    (creds / "ok.txt").write_text("fine")
    (creds / "big.json").write_text(" " * (MAX_FILE_BYTES + 1))
    (creds / "escape").symlink_to(tmp_path / "outside.json")
    (creds / "inner-link").symlink_to(creds / "ok.txt")
    os.mkfifo(creds / "fifo")
    return creds


@pytest.mark.integration
def test_config_check_reports_every_file_violation(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    creds = _credentials_dir(tmp_path)
    refs = {
        "proc": "file:/proc/self/environ",
        "dotdot": "file:../outside.json",
        "symlink": "file:escape",
        "device": "file:/dev/zero",
        "fifo": "file:fifo",
        "ok": "file:ok.txt",
        "innerlink": "file:inner-link",
    }
    targets = "".join(TARGET.format(name=name, ref=ref) for name, ref in refs.items())
    (tmp_path / "rotator.yaml").write_text(TARGETS.format(targets=targets))
    env = rotator_env(tmp_path, redis_url, key_prefix, ROTATOR_CREDENTIALS_DIR=str(creds))
    started = time.monotonic()
    check = cli(env, "config", "check", timeout=60)
    assert time.monotonic() - started < 60  # the FIFO never blocks the check
    assert check.returncode == 1
    reported = {line.split(": ")[1] for line in check.stderr.splitlines() if ": " in line}
    # One issue per bad reference, each naming its target and field
    assert {
        "targets.proc.credentials.client_secret",
        "targets.dotdot.credentials.client_secret",
        "targets.symlink.credentials.client_secret",
        "targets.device.credentials.client_secret",
        "targets.fifo.credentials.client_secret",
        "secrets.outside.path",
        "secrets.big.path",
    } <= reported
    assert not {"targets.ok.credentials.client_secret", "secrets.fine.path"} & reported
    assert "targets.innerlink.credentials.client_secret" not in reported
    assert "OUTSIDE-CONTENT" not in check.stdout + check.stderr  # no file content anywhere


def test_reads_refuse_what_changed_after_the_check(tmp_path: Path) -> None:
    creds = _credentials_dir(tmp_path)
    assert resolve_reference("file:ok.txt", base_dir=creds) == "fine"
    assert resolve_reference("file:inner-link", base_dir=creds) == "fine"
    # The file passed config check, then became a symlink out of the directory
    (creds / "ok.txt").unlink()
    (creds / "ok.txt").symlink_to("/proc/self/environ")
    for ref in ("file:ok.txt", "file:escape", "file:/proc/self/environ", "file:/dev/zero"):
        with pytest.raises(KeyError) as caught:
            resolve_reference(ref, base_dir=creds)
        assert "OUTSIDE-CONTENT" not in str(caught.value)


def test_fifo_and_oversized_files_do_not_block_or_fill_memory(tmp_path: Path) -> None:
    creds = _credentials_dir(tmp_path)
    started = time.monotonic()
    with pytest.raises(KeyError, match="not a regular file"):
        resolve_reference("file:fifo", base_dir=creds)
    with pytest.raises(SecretSourceError, match="larger than"):
        load_file("big", "big.json", creds)
    with pytest.raises(SecretSourceError, match="outside the credentials directory"):
        load_file("outside", "../outside.json", creds)
    assert time.monotonic() - started < 5


def test_non_utf8_credential_never_shows_its_bytes(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "bin").write_bytes(b"secret\xff\xfeSECRETBYTES")
    (creds / "bin.json").write_bytes(b'{"password": "\xffSECRETBYTES"}')
    with pytest.raises(KeyError) as caught:
        resolve_reference("file:bin", base_dir=creds)
    assert "SECRET" not in str(caught.value) and "xff" not in str(caught.value)
    with pytest.raises(SecretSourceError) as source_error:
        load_file("s", "bin.json", creds)
    assert "SECRET" not in str(source_error.value)


def test_file_secrets_are_read_off_the_event_loop(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"password": "p"}')
    threads: list[int] = []
    source = FileSource()
    original = source.load

    def spy(*args: object) -> dict[str, object]:
        import threading

        threads.append(threading.get_ident())
        return original(*args)  # type: ignore[arg-type]

    source.load = spy  # type: ignore[method-assign]

    async def main() -> int:
        from rotator.config import SecretSpec
        from rotator.sources.base import SourceContext

        ctx = SourceContext(versions=None, base_dir=tmp_path)  # type: ignore[arg-type]
        await source.load_async("s", SecretSpec(source="file", path="s.json"), ctx)
        import threading

        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert threads and threads[0] != loop_thread
