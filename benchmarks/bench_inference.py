"""Run from the repository root: `python benchmarks/bench_inference.py --help` (the code is `tpose.bench.inference`)."""

import sys

from tpose.bench.inference import main

if __name__ == "__main__":
    sys.exit(main())
