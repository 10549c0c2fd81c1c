"""``file``: a JSON object of fields in a file (relative paths: next to the targets file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rotator.config import SecretSpec
from rotator.errors import SecretSourceError
from rotator.sources.base import SourceContext, ValueSource


def load_file(name: str, path: str, base_dir: Path) -> dict[str, Any]:
    """A JSON object of fields; relative paths resolve against the targets file's folder."""
    file_path = Path(path) if Path(path).is_absolute() else base_dir / path
    try:
        text = file_path.read_text()
    except OSError as exc:
        raise SecretSourceError(f"secret {name}: cannot read {file_path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        # The offset only: the error object holds the file's bytes, which must go nowhere.
        raise SecretSourceError(
            f"secret {name}: {file_path} is not UTF-8 text (byte {exc.start})"
        ) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        # Position only: the message must not quote file content.
        raise SecretSourceError(
            f"secret {name}: {file_path} is not valid JSON (line {exc.lineno})"
        ) from None
    if not isinstance(value, dict) or not value:
        raise SecretSourceError(f"secret {name}: {file_path} must hold a non-empty JSON object")
    return value


class FileSource(ValueSource):
    def load(self, name: str, spec: SecretSpec, ctx: SourceContext) -> dict[str, Any]:
        assert spec.path is not None  # the settings model requires it for this source
        return load_file(name, spec.path, ctx.base_dir)
