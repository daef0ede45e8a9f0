"""Benchmarks that print a table and write JSON + Markdown: inference, training steps, data pipeline.

Run them from the repository root (``tpose bench``, ``tpose bench --train``, ``tpose bench --data`` or the
scripts in ``benchmarks/``); results go to ``--out`` (default ``benchmarks/results/``) and real data is read
from the paths their options name (default ``../shared/data/...``). Modules: ``inference``, ``training``
(its plan and command line; the step configurations in ``levers``, their timing in ``step_timing``, the data
pipeline's in ``pipeline_timing``, the report in ``train_report``), ``data_pipeline``; shared: ``common``
(timing, machine facts, files), ``goals`` (what a report judges) and ``report`` (its common wording).
"""
