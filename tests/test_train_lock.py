"""One writer per training run (issue 26, point 2): a second ``tpose train`` on a busy run folder refuses,
naming the folder and the process that holds it; a run killed with ``kill -9`` leaves no stale lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tpose.engine.run_log import LOCK_FILE, RunFolderBusy, RunLock

from .conftest import REPO
from .synthetic import tiny_train_config, write_coco_dataset


def test_a_second_lock_on_a_folder_is_refused_until_the_first_is_released(tmp_path) -> None:
    first = RunLock(tmp_path / "run").acquire()
    with pytest.raises(RunFolderBusy) as caught:
        RunLock(tmp_path / "run").acquire()
    message = str(caught.value)
    assert str(tmp_path / "run") in message and f"process {os.getpid()}" in message and f"kill {os.getpid()}" in message
    assert "output_dir=" in message
    first.release()
    RunLock(tmp_path / "run").acquire().release()
    assert json.loads((tmp_path / "run" / LOCK_FILE).read_text())["pid"] == os.getpid()


def _tpose_train(config: Path, out: Path, *overrides: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tpose.cli", "train", str(config), f"output_dir={out}",
                             *overrides, "--device", "cpu", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _epochs(out: Path) -> list[int]:
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.endswith("}")]


def test_two_runs_on_one_folder_and_a_kill_minus_9(tmp_path) -> None:
    data = write_coco_dataset(tmp_path / "coco", num_images=4)
    val = write_coco_dataset(tmp_path / "val", num_images=2, seed=5)
    out = tmp_path / "run"
    cfg = tiny_train_config(data, out, epochs=500, max_steps_per_epoch=1)
    cfg["data"]["val"] = [{"type": "coco", **val}]
    cfg["eval"]["every"] = 1000
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    first = _tpose_train(config, out)
    try:
        deadline = time.time() + 240
        while not _epochs(out) and time.time() < deadline and first.poll() is None:
            time.sleep(0.5)
        assert _epochs(out), f"the first run wrote no epoch: {first.poll()} {first.stderr and first.stderr.read()}"
        second = _tpose_train(config, out)
        _, err = second.communicate(timeout=240)
        assert second.returncode == 2, err
        assert f"{out} is in use by another tpose train (process {first.pid}" in err and f"kill {first.pid}" in err
        assert len(list((out / "tb").iterdir())) == 1  # the second run opened no TensorBoard file
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    done = _epochs(out)[-1]
    third = _tpose_train(config, out, f"train.epochs={done + 1}")
    stdout, err = third.communicate(timeout=240)
    assert third.returncode == 0, err
    assert "resuming from" in stdout and f"finished: {done + 1} epochs" in stdout
    epochs = _epochs(out)
    assert epochs == sorted(set(epochs)) and epochs[-1] == done + 1
