"""What the test suite (tests/) and the benchmarks (bench/) share to drive browserfleet from outside.

`server`: a `browserfleet serve` subprocess and how to reach it and read its state (through the API or
the `Store`, never raw SQL). `processes`: which processes belong to a server or a data dir. `site`: a
directory served on 127.0.0.1. `postgres`: a throwaway PostgreSQL cluster.

Not part of the installed `browserfleet` package: it lives at the repository root and is importable
from there (`python -m bench`, pytest's `pythonpath`). Nothing here asserts or measures: tests and
benchmarks do, each with their own defaults, passed in as parameters.
"""
