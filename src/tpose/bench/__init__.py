"""Benchmarks that print a table and write JSON + Markdown: inference, training steps, data pipeline.

Run them from the repository root (``tpose bench``, ``tpose bench --train`` or the scripts in
``benchmarks/``); results go to ``benchmarks/results/``.
"""
