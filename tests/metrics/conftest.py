"""The integration rig (real worker, beat, Redis and sandbox) for the monitoring tests."""

from tests.integration.conftest import sandbox, system

__all__ = ["sandbox", "system"]
