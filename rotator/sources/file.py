"""``file``: a JSON object of fields in a file inside the credentials directory.

Relative paths resolve against the credentials directory (``ROTATOR_CREDENTIALS_DIR``, default
the targets file's folder); the file is read under ``rotator.filerefs``'s rules (inside that
directory, a regular file, at most 64 KiB) and in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from rotator import filerefs
from rotator.config import SecretSpec
from rotator.errors import SecretSourceError
from rotator.sources.base import SourceContext, ValueSource


def load_file(name: str, path: str, base_dir: Path) -> dict[str, Any]:
    """A JSON object of fields. Errors name the secret and the path, never file content."""
    try:
        data = filerefs.read_bytes(path, base_dir)
    except filerefs.FileRefused as exc:
        raise SecretSourceError(f"secret {name}: {exc}") from None
    except OSError as exc:
        raise SecretSourceError(f"secret {name}: cannot read {path}: {exc.strerror}") from None
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        # The offset only: the error object holds the file's bytes, which must go nowhere.
        raise SecretSourceError(
            f"secret {name}: {path} is not UTF-8 text (byte {exc.start})"
        ) from None
    except json.JSONDecodeError as exc:
        # Position only: the message must not quote file content.
        raise SecretSourceError(
            f"secret {name}: {path} is not valid JSON (line {exc.lineno})"
        ) from None
    if not isinstance(value, dict) or not value:
        raise SecretSourceError(f"secret {name}: {path} must hold a non-empty JSON object")
    return value


class FileSource(ValueSource):
    def load(self, name: str, spec: SecretSpec, ctx: SourceContext) -> dict[str, Any]:
        assert spec.path is not None  # the settings model requires it for this source
        return load_file(name, spec.path, ctx.base_dir)

    async def load_async(self, name: str, spec: SecretSpec, ctx: SourceContext) -> dict[str, Any]:
        return await asyncio.to_thread(self.load, name, spec, ctx)
