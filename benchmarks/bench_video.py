"""End-to-end speed of detection + pose + tracking per video frame: see tpose.bench.video (run from the repo root)."""

import sys

from tpose.bench.video import main

if __name__ == "__main__":
    sys.exit(main())
