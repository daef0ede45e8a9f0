"""Run from the repository root: `python benchmarks/bench_int8.py --help` (the code is `tpose.bench.int8`)."""

import sys

from tpose.bench.int8 import main

if __name__ == "__main__":
    sys.exit(main())
