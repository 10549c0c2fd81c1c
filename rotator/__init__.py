"""rotator: asynchronous, crash-safe credential rotation on Celery + Redis."""

from __future__ import annotations

__version__ = "0.1.0"
