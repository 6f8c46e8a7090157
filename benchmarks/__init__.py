"""Benchmarks of callbridge's adapter layer against native Lightning (not part of the installed package).

``python -m benchmarks.run`` runs every configuration of `benchmarks.catalog` side by side and
writes JSON plus a Markdown table; see ``docs/performance.md`` for the method and how to read it.
"""
