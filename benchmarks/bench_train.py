"""Run from the repository root: `python benchmarks/bench_train.py --help` (the code is `tpose.bench.training`)."""

import sys

from tpose.bench.training import main

if __name__ == "__main__":
    sys.exit(main())
