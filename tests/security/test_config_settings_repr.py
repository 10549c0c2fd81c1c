"""The settings never show the master or audit key (issue 10.9, settings part).

A settings object ends up in reprs, tracebacks with locals, debug logs and error reports; the
keys in it are the keys to every stored secret and to the audit chain.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import structlog
from cryptography.fernet import Fernet

from rotator.config import Settings, load_settings
from rotator.errors import ConfigError

AUDIT = "audit-key-canary-0f9e8d7c6b5a49382716a5b4c3d2e1f0"


def test_repr_str_and_dump_hide_both_keys() -> None:
    master = Fernet.generate_key().decode()
    settings = Settings(
        master_key=master,
        audit_key=AUDIT,
        redis_url="redis://:redis-password@127.0.0.1:6379/0",
    )
    shown = [
        repr(settings),
        str(settings),
        f"{settings}",
        settings.model_dump_json(),
        str(settings.model_dump()),
    ]
    for text in shown:
        assert master not in text and AUDIT not in text
    assert "redis-password" not in repr(settings)
    # Every call site still gets the values
    assert settings.master_keys() == [master]
    assert settings.audit_key_bytes() == AUDIT.encode()


def test_logging_the_settings_hides_the_keys(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(master_key=Fernet.generate_key().decode(), audit_key=AUDIT)
    with structlog.testing.capture_logs() as logs:
        structlog.get_logger().info("settings", settings=settings)
    logging.getLogger("x").warning("settings %s %r", settings, settings)
    assert AUDIT not in repr(logs) and AUDIT not in caplog.text


def test_invalid_master_key_error_never_echoes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROTATOR_MASTER_KEY", "not-a-fernet-key-" + AUDIT)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert AUDIT not in str(caught.value)
    assert "ROTATOR_MASTER_KEY" in str(caught.value)


def test_a_crash_with_settings_in_locals_does_not_print_keys() -> None:
    """A traceback printer that shows locals (rich, sentry) uses repr()."""
    code = (
        "from rotator.config import Settings\n"
        f"s = Settings(audit_key={AUDIT!r})\n"
        "raise RuntimeError(repr(s))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1 and "RuntimeError" in result.stderr
    assert AUDIT not in result.stderr
