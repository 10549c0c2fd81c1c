from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from rotator import api
from rotator.config import Settings

TARGETS = """
secrets:
  pw: {source: generate}
targets:
  crm:
    provider: adobe
    base_url: https://platform.adobe.io/data/foundation/flowservice
    resource_id: c1
    secret: pw
"""


@pytest.mark.integration
def test_enqueue_returns_the_job_id_and_dedupes(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    (tmp_path / "rotator.yaml").write_text(TARGETS)
    settings = Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        targets_file=tmp_path / "rotator.yaml",
        state_dir=tmp_path,
        master_key=Fernet.generate_key().decode(),
        audit_key="k",
    )
    job_id = api.enqueue("crm", reason="leak drill", actor="api:incident-bot", settings=settings)
    assert api.enqueue("crm", settings=settings) == job_id
    record = api.job(job_id, settings=settings)
    assert (record["state"], record["actor"], record["note"]) == (
        "queued",
        "api:incident-bot",
        "leak drill",
    )
    with pytest.raises(KeyError, match="nope"):
        api.enqueue("nope", settings=settings)
