"""Try every bad input of the hardening issue through the real command line and write what happened.

    python scripts/bad_inputs.py            # writes docs/bad-inputs.md

Each case runs ``tpose ...`` in a fresh temporary folder (with files made for it: a truncated video, a
corrupt .onnx, R-A3 weights in the released layout...) and records the exit code and the first lines of
what tpose printed, so the table shows the messages users meet, verbatim.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "docs" / "demo" / "000000000785.jpg"


def _make_files(tmp: Path) -> dict[str, str]:
    import tpose
    from tpose.export import export_onnx
    from tpose.models.checkpoint import save_released_layout, save_weights

    torch.manual_seed(0)
    save_released_layout(tpose.create_model("transpose_r_a3"), tmp / "r_a3.pth")
    tiny = tpose.create_model("transpose_r_a3", num_layers=1, d_model=32, num_heads=2, dim_feedforward=64,
                              input_size=(64, 48))
    save_weights(tiny, tmp / "tiny.safetensors")
    export_onnx(tiny, tmp / "tiny_64x48.onnx")
    (tmp / "cut.onnx").write_bytes((tmp / "tiny_64x48.onnx").read_bytes()[:2000])
    writer = cv2.VideoWriter(str(tmp / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(8):
        writer.write(np.random.default_rng(i).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    data = (tmp / "clip.avi").read_bytes()
    (tmp / "cut.avi").write_bytes(data[: int(len(data) * 0.4)])
    (tmp / "dets_none.json").write_text(json.dumps([{"image_id": 99, "category_id": 1, "bbox": [1, 1, 40, 60],
                                                     "score": 0.9}]))
    (tmp / "dets_empty.json").write_text(json.dumps([
        {"image_id": 785, "category_id": 1, "bbox": [277, 46, 225, 334], "score": 0.9},
        {"image_id": 785, "category_id": 1, "bbox": [5, 5, 0, 30], "score": 0.8}]))
    (tmp / "typo.yaml").write_text("train:\n  epoch: 1\n")
    (tmp / "ten.yaml").write_text("train:\n  epochs: ten\n")
    for side in ("a", "b"):  # two inputs named alike in different folders
        (tmp / side).mkdir()
        (tmp / side / "photo.jpg").write_bytes(PHOTO.read_bytes())
    _training_files(tmp)
    (tmp / "folder").mkdir()
    (tmp / "folder" / "a.jpg").write_bytes(PHOTO.read_bytes())
    (tmp / "folder" / "b.jpg").write_bytes(b"not a jpeg")
    data = (tmp / "tiny.safetensors").read_bytes()
    (tmp / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (tmp / "dets_xyxy.json").write_text(json.dumps([{"image_id": 785, "category_id": 1, "bbox": [277, 46, 502, 379],
                                                     "score": 0.9}]))
    (tmp / "dets_cars.json").write_text(json.dumps([{"image_id": 785, "category_id": 3, "bbox": [277, 46, 225, 334],
                                                     "score": 0.9}]))
    (tmp / "nested" / "2024").mkdir(parents=True)
    (tmp / "nested" / "a.jpg").write_bytes(PHOTO.read_bytes())
    (tmp / "nested" / "2024" / "b.jpg").write_bytes(PHOTO.read_bytes())
    files = {k: str(tmp / k) for k in ("r_a3.pth", "tiny.safetensors", "tiny_64x48.onnx", "cut.onnx", "clip.avi",
                                       "cut.avi", "dets_none.json", "dets_empty.json", "typo.yaml", "ten.yaml",
                                       "folder", "cut.safetensors", "dets_xyxy.json", "dets_cars.json", "nested",
                                       "a", "b", "overlap.yaml", "invisible.yaml")}
    files["read-only"] = str(_read_only_folder(tmp))
    return files


def _training_files(tmp: Path) -> None:
    """A two-image COCO set validated on itself (overlap.yaml) and an LSPET file whose every joint is marked
    invisible (invisible.yaml), for a tiny model."""
    import yaml
    from scipy.io import savemat

    (tmp / "coco").mkdir()
    points = [[300 + 8 * (k % 5), 80 + 18 * k, 2] for k in range(17)]
    images, anns = [], []
    for i in (1, 2):
        (tmp / "coco" / f"{i:012d}.jpg").write_bytes(PHOTO.read_bytes())
        images.append({"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 425})
        anns.append({"id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "bbox": [277, 46, 225, 334],
                     "area": 75000, "num_keypoints": 17, "keypoints": [v for p in points for v in p]})
    (tmp / "coco.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": [
        {"id": 1, "name": "person"}]}))
    coco = {"type": "coco", "ann_file": str(tmp / "coco.json"), "image_dir": str(tmp / "coco")}
    tiny = {"num_layers": 1, "d_model": 32, "num_heads": 2, "dim_feedforward": 64, "input_size": [64, 48]}
    base = {"model": "transpose_r_a3", "model_overrides": tiny, "output_dir": str(tmp / "run"),
            "train": {"epochs": 1, "batch_size": 2, "amp": "off", "threads": 1}}
    (tmp / "overlap.yaml").write_text(yaml.safe_dump({**base, "keypoint_set": "coco17", "data": {
        "train": [{**coco, "name": "people"}], "val": [{**coco, "name": "people-val"}], "workers": 0}}))
    (tmp / "lspet" / "images").mkdir(parents=True)
    for i in (1, 2):
        (tmp / "lspet" / "images" / f"im{i:05d}.jpg").write_bytes(PHOTO.read_bytes())
    joints = np.zeros((14, 3, 2))
    joints[:, :2] = 100.0
    savemat(str(tmp / "lspet" / "joints.mat"), {"joints": joints})
    (tmp / "invisible.yaml").write_text(yaml.safe_dump({**base, "keypoint_set": "lsp14", "data": {
        "train": [{"type": "lspet", "root": str(tmp / "lspet"), "first": 1, "last": 2}], "val": [], "workers": 0}}))


def _read_only_folder(tmp: Path) -> Path:
    """A folder this user cannot write into: chmod 500, or for root (who writes anywhere) /sys/fs."""
    if os.geteuid() != 0:
        folder = tmp / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    return Path("/sys/fs")


def _cases(f: dict[str, str]) -> list[tuple]:
    """(title, argv) or (title, argv, environment changes) of every case."""
    photo = str(PHOTO)
    return [
        ("a typo inside a config section", ["train", f["typo.yaml"]]),
        ("a typo in an override", ["train", str(ROOT / "configs" / "mixed_r_a4_128x96.yaml"), "train.epohcs=1"]),
        ("a value of the wrong type in a config", ["train", f["ten.yaml"]]),
        ("`tpose train` without a config", ["train"]),
        ("--model and --weights of another variant",
         ["predict", photo, "--model", "transpose_r_a4", "--weights", f["r_a3.pth"], "--no-progress"]),
        ("detections matching none of the inputs",
         ["predict", photo, "--weights", f["tiny.safetensors"], "--detections", f["dets_none.json"], "--no-progress"]),
        ("a detections file with an empty box",
         ["predict", photo, "--detections", f["dets_empty.json"], "--no-progress"]),
        ("a video that stops decoding part-way", ["predict", f["cut.avi"], "--weights", f["tiny.safetensors"],
                                                  "--no-progress", "--no-images"]),
        ("a corrupt / truncated .onnx", ["predict", photo, "--weights", f["cut.onnx"]]),
        ("an input size other than a fixed ONNX export's",
         ["predict", photo, "--weights", f["tiny_64x48.onnx"], "--input-size", "128x96"]),
        ("--input-size 0x0", ["predict", photo, "--input-size", "0x0"]),
        ("--device cuda without CUDA", ["predict", photo, "--device", "cuda"]),
        ("an .onnx with --backend torch", ["predict", photo, "--weights", f["tiny_64x48.onnx"], "--backend", "torch"]),
        ("explain with an .onnx without attention outputs", ["explain", photo, "--weights", f["tiny_64x48.onnx"]]),
        ("a video given together with an image",
         ["predict", photo, f["clip.avi"], "--weights", f["tiny.safetensors"], "--no-progress"]),
        ("a folder with an unreadable image", ["predict", f["folder"], "--weights", f["tiny.safetensors"],
                                               "--no-progress"]),
        ("an unknown model name", ["predict", photo, "--model", "transpose_r_a5"]),
        ("a missing weights file", ["predict", photo, "--weights", "nowhere.safetensors"]),
        ("two inputs with the same file name in different folders",
         ["predict", f["a"] + "/photo.jpg", f["b"] + "/photo.jpg", "--weights", f["tiny.safetensors"], "--whole-image",
          "--no-progress"]),
        ("a validation set equal to the training set", ["train", f["overlap.yaml"], "--no-progress"]),
        ("an LSPET file whose every joint is marked invisible", ["train", f["invisible.yaml"], "--no-progress"]),
        # issue 26: no silent nonsense, and every message names the fix
        ("detections written as x1,y1,x2,y2",
         ["predict", photo, "--weights", f["tiny.safetensors"], "--detections", f["dets_xyxy.json"], "--no-progress"]),
        ("detections of another category than person",
         ["predict", photo, "--weights", f["tiny.safetensors"], "--detections", f["dets_cars.json"], "--no-progress"]),
        ("--nms -1", ["predict", photo, "--nms", "-1"]),
        ("--nms 5", ["predict", photo, "--nms", "5"]),
        ("--whole-image together with --detections", ["predict", photo, "--whole-image", "--detections",
                                                      f["dets_xyxy.json"]]),
        ("--threads 0", ["predict", photo, "--threads", "0"]),
        ("--threads -3", ["predict", photo, "--threads", "-3"]),
        ("a read-only output folder", ["predict", photo, "--weights", f["tiny.safetensors"], "--whole-image", "-o",
                                       f["read-only"] + "/out", "--no-progress"]),
        ("an output folder inside a file", ["predict", photo, "--weights", f["tiny.safetensors"], "--whole-image",
                                            "-o", photo + "/out", "--no-progress"]),
        ("export into a read-only folder", ["export", "--weights", f["tiny.safetensors"], "-o",
                                            f["read-only"] + "/tiny.onnx", "--no-verify"]),
        ("a safetensors export into a read-only folder", ["export", "--weights", f["tiny.safetensors"], "--format",
                                                          "safetensors", "-o", f["read-only"] + "/x.safetensors"]),
        ("a truncated .safetensors", ["predict", photo, "--weights", f["cut.safetensors"], "--whole-image"]),
        ("an unwritable weights cache", ["predict", photo, "--weights", "transpose_r_a3:coco-256x192", "--whole-image"],
         {"TORCH_HOME": f["read-only"] + "/torch", "TPOSE_OFFLINE": ""}),
        ("a reversed --first/--last range", ["eval", "--weights", f["tiny.safetensors"], "--data", "lspet", "--root",
                                             f["folder"], "--first", "10", "--last", "5"]),
        ("a folder given as --detections", ["predict", photo, "--weights", f["tiny.safetensors"], "--detections",
                                            f["folder"], "--no-progress"]),
        ("a folder given as --weights", ["predict", photo, "--weights", f["folder"], "--whole-image"]),
        ("a sub-folder of an input folder", ["predict", f["nested"], "--weights", f["tiny.safetensors"],
                                             "--whole-image", "--no-progress"]),
    ]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="tpose-bad-inputs-") as tmp:
        files = _make_files(Path(tmp))
        env = {**os.environ, "TPOSE_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        for title, argv, *extra in _cases(files):
            changed = {**env, **(extra[0] if extra else {})}
            changed = {k: v for k, v in changed.items() if v != ""}  # "" removes a variable
            proc = subprocess.run([sys.executable, "-m", "tpose.cli", *argv, *(["-o", tmp + "/out"]
                                   if argv[0] in ("predict", "explain") and "-o" not in argv else [])],
                                  cwd=tmp, env=changed, capture_output=True, text=True, timeout=600)
            lines = [ln for ln in (proc.stderr + proc.stdout).splitlines()
                     if ln.strip() and not ln.startswith(("predict:", "evaluate:", "[", " ", "usage:"))
                     and "it/s" not in ln and "Warning" not in ln and "warnings.warn" not in ln]
            message = " ".join(lines[:3]).replace(tmp, "<tmp>").replace(str(ROOT), ".").replace("|", "\\|")
            shown = " ".join(a.replace(tmp + "/", "").replace(str(ROOT) + "/", "") for a in argv)
            rows.append((title, f"`tpose {shown}`", str(proc.returncode), message[:600]))
            print(f"{proc.returncode}  {title}: {message[:160]}")
    out = ROOT / "docs" / "bad-inputs.md"
    text = ["# Bad inputs and what tpose says", "",
            "Every case below was run through the real command line by `python scripts/bad_inputs.py` (made-up "
            "files in a temporary folder; `<tmp>` stands for it; `TPOSE_OFFLINE=1`). Exit code 2 is an error "
            "that stopped the job, 1 a job that finished but skipped or missed something, 0 success. Each case "
            "also has a test in `tests/test_hardening.py`, `tests/test_hardening_outputs.py`, "
            "`tests/test_hardening_training.py`, `tests/test_hardening_predict.py` or "
            "`tests/test_hardening_messages.py` (or `tests/test_train_mixture.py` for configs).", "",
            "| bad input | command | exit | what tpose printed |", "|---|---|---|---|"]
    text += [f"| {t} | {c} | {e} | {m} |" for t, c, e, m in rows]
    out.write_text("\n".join(text) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
