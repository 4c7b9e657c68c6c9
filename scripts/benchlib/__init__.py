"""Pieces of `scripts/bench.py`: synthetic DAGs, the harness that drives real runs, the groups."""
