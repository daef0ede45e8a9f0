"""README "Train on your own keypoints", run as written: a COCO-format file with one's own joint names (made
here from the MPII subset), the keypoint-set YAML and the training config of the README, then each of its
commands (train with tiny step counts given as key=value overrides, eval, predict drawing the skeleton)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import DETECTOR, MPII, MPII_ANN, MPII_VAL_SPLIT, REPO, needs_detector, needs_mpii

pytestmark = [needs_mpii, needs_detector]

README = REPO / "README.md"
# the README's names for MPII's joints of the same place
OWN_NAMES = {"shoulder_l": "left_shoulder", "shoulder_r": "right_shoulder", "elbow_l": "left_elbow",
             "elbow_r": "right_elbow", "wrist_l": "left_wrist", "wrist_r": "right_wrist"}
# tiny step counts for a test; everything else is the README's
QUICK = ["train.epochs=2", "train.freeze.epochs=1", "train.max_steps_per_epoch=2", "train.batch_size=4",
         "train.threads=1", "data.workers=0", "eval.batch_size=8"]


def _section() -> str:
    text = README.read_text()
    start = text.index("## Train on your own keypoints")
    return text[start:text.index("\n## ", start + 3)]


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def _own_file(dest: Path, ids: list[int], images: Path) -> None:
    """The MPII persons of ``ids`` as a user's COCO file: six joints under the README's own names."""
    data = json.loads(MPII_ANN.read_text())
    mpii = data["categories"][0]["keypoints"]
    take = [mpii.index(OWN_NAMES[n]) for n in OWN_NAMES]
    keep = set(ids)
    anns = []
    for ann in data["annotations"]:
        if ann["image_id"] not in keep:
            continue
        kps = [v for j in take for v in ann["keypoints"][3 * j:3 * j + 3]]
        anns.append({**ann, "keypoints": kps, "num_keypoints": sum(1 for v in kps[2::3] if v > 0)})
    imgs = [im for im in data["images"] if im["id"] in keep]
    for im in imgs:
        shutil.copy(MPII / "images" / im["file_name"], images / im["file_name"])
    category = {**data["categories"][0], "keypoints": list(OWN_NAMES), "skeleton": []}
    dest.write_text(json.dumps({"images": imgs, "annotations": anns, "categories": [category]}))


def _ids(path: Path, n: int) -> list[int]:
    lines = (ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines())
    return [int(t) for t in lines if t][:n]


def _run(command: str, cwd: Path) -> str:
    args = shlex.split(command)
    assert args[0] == "tpose"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "TPOSE_DETECTOR": str(DETECTOR),
           "TPOSE_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "tpose.cli", *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_readme_section_runs_as_written(tmp_path):
    section = _section()
    files = {}
    for block in _blocks(section, "yaml"):
        name = block.splitlines()[0].lstrip("# ").split(":")[0].strip()
        files[name] = block
    assert set(files) == {"my_keypoints.yaml", "finetune.yaml"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    ours = yaml.safe_load(files["my_keypoints.yaml"])
    assert ours["names"] == list(OWN_NAMES)
    images = tmp_path / "mydata" / "images"
    images.mkdir(parents=True)
    train_ids = _ids(REPO / "configs" / "splits" / "mpii-subset-train400.txt", 16)
    _own_file(tmp_path / "mydata" / "train.json", train_ids, images)
    _own_file(tmp_path / "mydata" / "val.json", _ids(MPII_VAL_SPLIT, 6), images)

    commands = [ln.strip() for block in _blocks(section, "bash") for ln in block.splitlines() if ln.strip()]
    assert [c.split()[1] for c in commands] == ["train", "eval", "predict"]
    train_out = _run(commands[0] + " " + " ".join(QUICK) + " --no-progress", tmp_path)
    assert "joints mapped by joint_map (6)" in train_out and "joints starting fresh (0)" in train_out
    assert "the backbone is frozen" in train_out and "0.1 x lr" in train_out
    assert "the backbone trains from epoch 2 on" in train_out
    run = tmp_path / "runs" / "my_keypoints"
    meta = json.loads((run / "best.json").read_text())
    assert meta["keypoint_set"]["names"] == list(OWN_NAMES)
    assert meta["keypoint_set"]["skeleton"] == ours["skeleton"]

    eval_out = _run(commands[1] + " --no-progress", tmp_path)
    assert "PCK@0.2" in eval_out

    _run(commands[2] + " --no-progress", tmp_path)
    poses = sorted((tmp_path / "predictions").glob("*_pose.json"))
    assert len(poses) == len(list(images.iterdir()))
    assert list((tmp_path / "predictions").glob("*_pose.jpg"))
    found = [json.loads(p.read_text()) for p in poses]
    persons = [person for f in found for person in f.get("persons", [])]
    assert persons, "the detector found nobody in any image"
    assert set(persons[0]["keypoints"]) == set(OWN_NAMES)
