"""The store's Lua scripts, one ``.lua`` file per state transition under ``rotator/store/lua/``.

Each file opens with a header naming its KEYS and ARGV. Scripts touch only the keys passed as
KEYS (built in ``rotator.store.keys``); no key name is ever assembled inside a script. A line
``-- include: <fragment>`` is replaced by that fragment's file, which is how every fenced
script starts with the same lease check (``fence_check.lua``).
"""

from __future__ import annotations

import functools
from importlib import resources

_INCLUDE = "-- include: "


@functools.cache
def load(name: str) -> str:
    """The source of ``lua/{name}.lua`` with its includes spliced in (read once per process)."""
    text = resources.files("rotator.store").joinpath("lua", f"{name}.lua").read_text("utf-8")
    lines = [
        load(line.removeprefix(_INCLUDE).strip()) if line.startswith(_INCLUDE) else line + "\n"
        for line in text.splitlines()
    ]
    return "".join(lines)
