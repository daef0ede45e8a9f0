"""Run from the repository root: `python benchmarks/bench_detector.py --help` (the code is `tpose.bench.detector`)."""

import sys

from tpose.bench.detector import main

if __name__ == "__main__":
    sys.exit(main())
