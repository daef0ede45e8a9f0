"""Run from the repository root: `python benchmarks/bench_data.py --help` (the code is `tpose.bench.data_pipeline`)."""

import sys

from tpose.bench.data_pipeline import main

if __name__ == "__main__":
    sys.exit(main())
