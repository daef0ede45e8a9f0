"""Training: a tiny model really learns, resumes exactly after a kill, and DDP ranks stay identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tpose.engine.distributed import weights_checksum
from tpose.engine.schedule import learning_rate
from tpose.engine.train import train
from tpose.engine.train_config import load_config, parse_override
from tpose.models.checkpoint import load_model

from .conftest import REPO
from .synthetic import tiny_train_config, write_coco_dataset


@pytest.fixture(scope="module")
def coco_data(tmp_path_factory) -> dict:
    return write_coco_dataset(tmp_path_factory.mktemp("coco"), num_images=12)


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_training_lowers_the_loss_and_writes_everything(coco_data, tmp_path):
    cfg = tiny_train_config(coco_data, tmp_path / "run", epochs=3)
    result = train(cfg, progress=False)
    assert result.status == "finished" and result.epochs_done == 3
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < losses[0]
    out = tmp_path / "run"
    for name in ("last.ckpt", "last.safetensors", "last.json", "best.safetensors", "best.json", "metrics.csv",
                 "metrics.jsonl", "curves.png"):
        assert (out / name).is_file(), name
    assert any((out / "tb").iterdir())
    assert "val_PCK@0.2" in result.history[-1]
    meta = json.loads((out / "best.json").read_text())
    assert meta["keypoint_set"]["name"] == "coco17"
    model = load_model(out / "best.safetensors")
    assert model.config.num_keypoints == 17 and model.config.d_model == 32


def test_finished_run_is_not_repeated(coco_data, tmp_path):
    cfg = tiny_train_config(coco_data, tmp_path / "run", epochs=1)
    train(cfg, progress=False)
    again = train(cfg, progress=False)
    assert again.status == "resumed-finished" and again.epochs_done == 1


def test_killed_run_resumes_to_the_same_weights(coco_data, tmp_path):
    # the reference: an uninterrupted run
    ref_cfg = tiny_train_config(coco_data, tmp_path / "ref", epochs=4, max_steps_per_epoch=3)
    train(ref_cfg, progress=False)
    # the same run in a subprocess, killed with SIGKILL once its first checkpoint exists
    run_dir = tmp_path / "killed"
    cfg = tiny_train_config(coco_data, run_dir, epochs=4, max_steps_per_epoch=3)
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "tpose.cli", "train", str(cfg_file), "--no-progress"],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while not (run_dir / "last.ckpt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len((run_dir / "metrics.jsonl").read_text().splitlines())
    assert 1 <= done_before < 4, "the run should have been killed part-way"
    result = train(cfg, progress=False)
    assert result.epochs_done == 4
    ref = load_file(tmp_path / "ref" / "last.safetensors")
    got = load_file(run_dir / "last.safetensors")
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.equal(ref[key], got[key]), key
    epochs = [r["epoch"] for r in result.history]
    assert epochs == [1, 2, 3, 4]


def test_time_limit_pauses_cleanly(coco_data, tmp_path):
    cfg = tiny_train_config(coco_data, tmp_path / "run", epochs=5, time_limit_minutes=1e-6)
    result = train(cfg, progress=False)
    assert result.status == "paused" and result.epochs_done == 1
    resumed = train(tiny_train_config(coco_data, tmp_path / "run", epochs=5, max_steps_per_epoch=1),
                    progress=False)
    assert resumed.epochs_done == 5 and resumed.status == "finished"


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_with_identical_weights(coco_data, tmp_path):
    cfg = tiny_train_config(coco_data, tmp_path / "ddp", epochs=2, max_steps_per_epoch=2)
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "tpose.cli", "train", str(cfg_file), "--no-progress", "--device", "cpu"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sums = json.loads((tmp_path / "ddp" / "rank_checksums.json").read_text())
    assert len(sums) == 2 and sums[0] == sums[1]
    saved = load_model(tmp_path / "ddp" / "last.safetensors")
    assert weights_checksum(saved) == pytest.approx(sums[0], rel=1e-12)


def test_config_overrides_and_errors(tmp_path):
    keys, value = parse_override("train.lr=3e-4")
    assert keys == ["train", "lr"] and value == pytest.approx(3e-4)
    cfg = load_config(None, ["train.epochs=7", "model_overrides.input_size=[128,96]"])
    assert cfg["train"]["epochs"] == 7 and cfg["model_overrides"]["input_size"] == [128, 96]
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["train.epochs"])
    with pytest.raises(ValueError, match="unknown key 'trian'.*did you mean 'train'"):
        load_config(None, ["trian.epochs=3"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("modle: transpose_r_a4\n")
    with pytest.raises(ValueError, match="bad.yaml: modle: unknown key 'modle'.*did you mean 'model'"):
        load_config(bad)


def test_cosine_schedule_matches_the_released_recipe():
    # per-epoch cosine from 1e-4 to 1e-5 over 230 epochs, as torch's CosineAnnealingLR
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=230, eta_min=1e-5)
    for epoch in range(0, 230, 23):
        ours = learning_rate("cosine", 1e-4, 1e-5, epoch, 5, 100, 230, per="epoch")
        while sched.last_epoch < epoch:
            opt.step()
            sched.step()
        assert ours == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
    assert learning_rate("cosine", 1e-3, 0, 0, 9, 100, 10, warmup_steps=100) == pytest.approx(1e-4)
