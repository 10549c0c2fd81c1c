"""The engine depends on abstractions only: importing it pulls in neither Redis nor Celery.

(That ``RotatorStore`` and ``AuditLog`` satisfy its Protocols is checked by mypy on
``rotator.runtime``, which wires them in.)"""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_engine_imports_neither_redis_nor_celery() -> None:
    code = (
        "import rotator.engine, sys; "
        "assert 'redis' not in sys.modules and 'celery' not in sys.modules, "
        "sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'celery'))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
