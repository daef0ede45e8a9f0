"""Load test of ``tpose demo`` (README, demo section): 8 loopback sessions at once, each uploading 5 photos.

    TPOSE_DETECTOR=../shared/data/models/yolox_nano.onnx python benchmarks/demo_load.py [--sessions 8 --photos 5]

Prints the report as JSON (requests, p50/p95 seconds, errors, peak memory) and exits 1 on any error.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path

from tpose.demo import DemoOptions
from tpose.demo.load import LoadPlan, run_load

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=LoadPlan.sessions)
    parser.add_argument("--photos", type=int, default=LoadPlan.photos_per_session, help="requests per session")
    parser.add_argument("--out", help="also write the report JSON here")
    args = parser.parse_args()
    photos = sorted((ROOT / "docs" / "demo").glob("*.jpg"))
    report = run_load(photos, LoadPlan(args.sessions, args.photos), DemoOptions(port=free_port()))
    text = json.dumps(report.to_dict(), indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
