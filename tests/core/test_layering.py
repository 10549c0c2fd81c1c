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


def test_the_engine_sees_notifications_only_through_its_protocol() -> None:
    # The engine queues notices through rotator.protocols.Notifier; the queue (Redis) and the
    # delivery (HTTP to webhooks) are wired in by the runtime, never imported by the engine.
    code = (
        "import rotator.engine, sys; "
        "loaded = [m for m in ('rotator.notify.queue', 'rotator.notify.deliver', "
        "'rotator.store.notify') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
