"""The README's Notifications section stays true: its config parses, its receiver-side
signature check accepts rotator's signatures and refuses tampered or old ones."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import yaml

from rotator.notify.deliver import sign
from rotator.notify.model import NotifySection, TargetNotify

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    return README.read_text().split("## Notifications", 1)[1].split("\n## ", 1)[0]


def test_the_documented_configuration_is_valid() -> None:
    (block,) = re.findall(r"```yaml\n(.*?)```", section(), re.DOTALL)
    data = yaml.safe_load(block.replace("# ...", ""))
    notify = NotifySection.model_validate(data["notify"])
    route = TargetNotify.model_validate(data["targets"]["crm"]["notify"])
    assert set(notify.webhooks) == {"ops", "chat"} and route.webhooks == ["ops"]


def test_the_documented_receiver_check_verifies_rotator_signatures() -> None:
    code = re.findall(r"```python\n(.*?)```", section(), re.DOTALL)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # the README's own snippet
    verify = namespace["verify"]
    body, key, now = b'{"event":"failed"}', b"receiver-key", int(time.time())

    assert verify(key, body, sign(key, body, now))
    assert not verify(key, body + b" ", sign(key, body, now))
    assert not verify(b"other", body, sign(key, body, now))
    assert not verify(key, body, sign(key, body, now - 3600))
