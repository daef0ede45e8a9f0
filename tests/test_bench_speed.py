"""``tpose bench``: interleaved timing and medians, the speed of a model along each path, options checked."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from tpose.bench.speed import SpeedOptions, format_speed, measure_speed, write_speed
from tpose.bench.timing import interleaved, summarize
from tpose.cli import main
from tpose.export import export_onnx

from .conftest import tiny_model

SIZE = (64, 48)


def test_interleaved_runs_round_robin_with_rotation_and_untimed_warmup() -> None:
    calls: list[str] = []
    fns = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    times = interleaved(fns, repeats=3, warmup=1)
    assert calls[:3] == ["a", "b", "c"]  # the warm-up round
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t >= 0 for v in times.values() for t in v)
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        interleaved(fns, repeats=0)


def test_summarize_takes_the_median() -> None:
    s = summarize([3.0, 1.0, 2.0, 10.0])
    assert s["median_s"] == 2.5 and s["min_s"] == 1.0 and s["max_s"] == 10.0 and s["n"] == 4
    assert s["spread"] == pytest.approx(9.0 / 2.5)
    with pytest.raises(ValueError):
        summarize([])


def test_every_path_and_batch_is_timed_and_reported(tmp_path) -> None:
    options = SpeedOptions(model="transpose_r_a3", input_size=SIZE, batch=(2, 1), paths=("torch", "torch_cl",
                           "onnxruntime"), threads=1, repeats=2, warmup=1)
    heard: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # random initial weights are expected here: no warning about them
        report = measure_speed(options, say=heard.append)
    assert [(r.batch, r.path) for r in report.rows] == [(b, p) for b in (1, 2) for p in options.paths]
    for r in report.rows:
        assert r.precision == "fp32" and 0 < r.min_ms <= r.median_ms
        assert r.ms_per_image == pytest.approx(r.median_ms / r.batch)
        assert r.images_per_s == pytest.approx(1000 * r.batch / r.median_ms)
    assert report.input_size == SIZE and report.threads == 1 and report.weights is None and len(heard) == 4
    text = format_speed(report)
    assert text.count("transpose_r_a3") == 1 and text.count("onnxruntime") == 2 and "64x48" in text
    data = json.loads(write_speed(report, tmp_path / "speed.json").read_text())
    assert data["rows"][0]["path"] == "torch" and data["input_size"] == [64, 48] and data["torch"]


def test_an_onnx_file_runs_on_onnxruntime_only(tmp_path) -> None:
    onnx_file = export_onnx(tiny_model(input_size=SIZE), tmp_path / "tiny.onnx", input_size=SIZE)
    report = measure_speed(SpeedOptions(weights=str(onnx_file), paths=("onnxruntime",), threads=1, repeats=1,
                                        warmup=0))
    assert [r.path for r in report.rows] == ["onnxruntime"] and report.input_size == SIZE
    assert report.weights == str(onnx_file)
    with pytest.raises(ValueError, match="only the onnxruntime path"):
        measure_speed(SpeedOptions(weights=str(onnx_file), paths=("torch",), repeats=1))


def test_bf16_runs_the_torch_path_under_autocast(monkeypatch) -> None:
    seen: list[torch.dtype | None] = []
    real = torch.nn.Conv2d.forward

    def spy(self, x):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return real(self, x)

    monkeypatch.setattr(torch.nn.Conv2d, "forward", spy)
    report = measure_speed(SpeedOptions(model="transpose_r_a3", input_size=SIZE, precision="bf16", threads=1,
                                        repeats=1, warmup=0))
    assert report.rows[0].precision == "bf16" and seen and set(seen) == {torch.bfloat16}


@pytest.mark.parametrize("fields, message", [({"paths": ("tensorrt",)}, "paths must be"),
                                             ({"precision": "int8"}, "int8: an int8 .onnx file"),
                                             ({"batch": (0,)}, "batch sizes must be positive"),
                                             ({"repeats": 0}, "repeats must be")])
def test_bad_options_are_named(fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        SpeedOptions(**fields)
    with pytest.raises(ValueError, match="bf16 runs the torch paths only"):
        measure_speed(SpeedOptions(model="transpose_r_a3", input_size=SIZE, precision="bf16",
                                   paths=("onnxruntime",), repeats=1))


def test_command_prints_the_table_and_writes_json(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", "transpose_r_a3", "--input-size", "64x48", "--batch", "1", "--path", "torch",
                 "--threads", "1", "--repeats", "1", "--json", str(out), "--quiet"]) == 0
    printed = capsys.readouterr()
    assert "ms/batch" in printed.out and "img/s" in printed.out and printed.err == ""
    assert json.loads(out.read_text())["rows"][0]["batch"] == 1
    for gone in ("--train", "--video", "--int8", "--data", "--detector"):  # the project's benchmarks are scripts
        with pytest.raises(SystemExit):
            main(["bench", gone])
