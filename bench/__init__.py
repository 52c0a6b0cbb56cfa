"""Benchmarks for the performance budgets of design.md: `python -m bench` runs them all, or
`python -m bench.<name>` one of them. Each starts what it needs locally (embedded Postgres, the
simulated AWS) and prints a small table."""
