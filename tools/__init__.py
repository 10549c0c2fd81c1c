"""Development tools, not part of the product: the chaos experiment and the benchmarks.

Run from the repository root: ``python -m tools.chaos`` (``make chaos``), ``python -m
tools.bench`` (``make bench``), ``python -m tools.bench_audit``. ``tools.common`` holds what
they and the tests share (processes, a private Redis, the sandbox process, key cleanup).
"""
