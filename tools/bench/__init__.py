"""The benchmark suite (issue #8): ``python -m tools.bench`` (``make bench``).

Every figure is a ratio or a count measured inside one run, on a PostgreSQL
database the suite creates for itself (``bench_backoffice`` by default); see
docs/benchmarks.md.
"""
