"""The benchmark scripts' helpers (benchmarks/common.py): peak RSS of a child process, machine facts, result files."""

from __future__ import annotations

import json
from pathlib import Path

from .benchmark_scripts import load

common = load("common")


def allocate_and_touch(mib: int) -> int:
    """Child-process target: hold ``mib`` MiB of touched memory, return how many bytes."""
    block = bytearray(mib * 2**20)
    block[:: 4096] = b"\x01" * len(block[:: 4096])
    return len(block)


def fail() -> None:
    raise RuntimeError("boom")


def test_peak_rss_of_a_child_counts_what_it_allocated() -> None:
    small = common.run_in_child(allocate_and_touch, 1, timeout=120)
    big = common.run_in_child(allocate_and_touch, 300, timeout=120)
    assert small["error"] is None and big["result"] == 300 * 2**20
    grew = big["peak_rss_bytes"] - small["peak_rss_bytes"]
    assert 250 * 2**20 < grew < 400 * 2**20
    failed = common.run_in_child(fail, timeout=120)
    assert failed["result"] is None and "RuntimeError: boom" in failed["error"]


def test_machine_info_and_matmul_peak() -> None:
    info = common.machine_info(threads=1)
    assert info["usable_cores"] >= 1 and info["torch"] and "load_average" in info
    assert common.matmul_peak_gflops(n=128, repeats=2, threads=1) > 0


def test_result_files(tmp_path) -> None:
    table = common.markdown_table(["name", "ms"], [["a|b", "1,234.5"], ["c", None]])
    lines = table.splitlines()
    assert lines[1] == "| --- | ---: |"  # text left, numbers right
    assert "a\\|b" in lines[2]
    md = common.write_markdown(tmp_path / "r" / "x.md", "Title", ["one", "", table])
    assert md.read_text().startswith("# Title\n\none\n\n| name")
    js = common.write_json(tmp_path / "r" / "x.json", {"p": Path("a"), "v": 1.5})
    assert json.loads(js.read_text()) == {"p": "a", "v": 1.5}
    assert common.fmt(1234.56) == "1,234.6" and common.fmt(None) == "–"
