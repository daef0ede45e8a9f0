"""``python -m tpose.export.int8`` / ``tpose export --int8``: the command line of int8 quantization."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from ...engine.train_config import read_yaml
from ...factory import load_pose_model
from ..onnx_export import export_onnx
from .pipeline import quantize_model
from .settings import Int8Options


def _fp32_file(model: str, folder: Path, attention: bool) -> Path:
    """An ``.onnx`` path as it is; a weights file or registry name exported (fp32, opset 17) into ``folder``."""
    if model.endswith(".onnx"):
        return Path(model)
    loaded = load_pose_model(model, backend="torch")
    tail = "_attention" if attention else ""
    return export_onnx(loaded.model, folder / f"{Path(model).stem}{tail}.onnx", attention=attention,
                       keypoint_set=loaded.keypoint_set)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tpose.export.int8 MODEL --data DATA.yaml [--out F] [--report F.json]``."""
    p = argparse.ArgumentParser(description="static int8 quantization of a tpose ONNX file, gated by PCK@0.2")
    p.add_argument("model", help="fp32 .onnx file, or a weights file / registry name to export first")
    p.add_argument("--data", required=True, help="YAML with calibration:, validation: (data set specs), "
                   "optional calibration_count: and tolerance: (see configs/int8_r_a4_128x96.yaml)")
    p.add_argument("--out", default=None, help="int8 .onnx (default <stem>_int8.onnx beside the fp32 file)")
    p.add_argument("--attention", action="store_true", help="export with attention outputs (weights input only)")
    p.add_argument("--report", default=None, help="write the report as JSON here")
    p.add_argument("--no-search", action="store_true", help="measure, but keep nothing in float")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    data = read_yaml(Path(args.data).read_text()) or {}
    out = Path(args.out) if args.out else None
    folder = out.parent if out is not None else Path()
    fp32 = _fp32_file(args.model, folder, args.attention)
    options = Int8Options.from_data(data, search=not args.no_search, threads=args.threads)
    report = quantize_model(fp32, out, calibration=data.get("calibration"), validation=data.get("validation"),
                            options=options, progress=print)
    print(report.summary())
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(report.to_dict(), indent=1, default=str) + "\n")
    return 0 if report.passed in (True, None) else 1

