"""Downloads of registered weights against a loopback HTTP server: cache, cut transfers, bad files, offline."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import tpose
from tpose import factory
from tpose.models.checkpoint import CheckpointError, CheckpointMismatchError, save_released_layout
from tpose.weights import WeightsEntry, get_weights, register_weights, unregister_weights
from tpose.weights import download as wdownload
from tpose.weights import files as wfiles

from .conftest import TINY, tiny_model

TINY_64X48 = {**TINY, "input_size": (64, 48)}  # the shared tiny model, at 64x48
FILE = "tiny_r_a3_test.pth"
TAG = "tiny-test"


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files`` by base name; ``server.cut`` files stop halfway; HEAD can be switched off."""

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _head(self) -> bytes | None:
        name = self.path.rsplit("/", 1)[-1]
        self.server.requests.append((self.command, name))
        body = self.server.files.get(name)
        if body is None:
            self.send_error(404, "Not Found")
            return None
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        if not self.server.head:
            self.server.requests.append(("HEAD", self.path.rsplit("/", 1)[-1]))
            self.send_error(501, "Unsupported method")
            return
        self._head()

    def do_GET(self) -> None:  # noqa: N802
        body = self._head()
        if body is None:
            return
        name = self.path.rsplit("/", 1)[-1]
        if name in self.server.cut:  # announce everything, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class _Server:
    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.files = {}
        self.httpd.cut = set()
        self.httpd.head = True
        self.httpd.requests = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/releases/download/Hub"
        self.running = True

    @property
    def files(self) -> dict[str, bytes]:
        return self.httpd.files

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self.httpd.requests

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)
            self.running = False


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in ("TPOSE_OFFLINE", "TPOSE_WEIGHTS_DIR", "TPOSE_WEIGHTS_BASE_URL", "TPOSE_DOWNLOAD_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.stop()


def _entry(sha256: str | None = None) -> WeightsEntry:
    return WeightsEntry(
        variant="transpose_r_a3",
        tag=TAG,
        file=FILE,
        source="release",
        keypoint_set="coco17",
        input_size=(64, 48),
        train_data="nothing (random initialisation, for tests)",
        model_overrides=TINY_64X48,
        sha256=sha256,
    )


@pytest.fixture
def entry():
    registered = register_weights(_entry())
    yield registered
    unregister_weights("transpose_r_a3", TAG)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> tuple[bytes, dict[str, torch.Tensor]]:
    """A tiny TransPose-R-A3 in the released layout (a plain state dict .pth) and its tensors."""
    model = tiny_model(input_size=(64, 48))
    path = save_released_layout(model, tmp_path_factory.mktemp("released") / FILE)
    return path.read_bytes(), {k: v.clone() for k, v in model.state_dict().items()}


def _cache_listing() -> list[str]:
    folder = wfiles.cache_dir()
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_first_download_fills_torch_hub_cache_then_cache_works_without_server(server, entry, released, monkeypatch):
    body, tensors = released
    server.files[FILE] = body
    monkeypatch.setenv("TPOSE_WEIGHTS_BASE_URL", server.url)
    path = wdownload.resolve_weights("transpose_r_a3", TAG, progress=False)
    assert path == Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / FILE
    assert path.read_bytes() == body
    assert _cache_listing() == [FILE]  # no temporary file left beside it
    assert server.requests == [("HEAD", FILE), ("GET", FILE)]

    server.stop()
    monkeypatch.setenv("TPOSE_WEIGHTS_BASE_URL", f"http://127.0.0.1:{_closed_port()}/gone")
    assert wdownload.resolve_weights("transpose_r_a3", TAG, progress=False) == path
    model = factory.load_pretrained("transpose_r_a3", TAG, progress=False)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in tensors.items())
    assert model.metadata["weights"] == f"transpose_r_a3:{TAG}"
    assert model.metadata["keypoint_set"] == "coco17"
    assert model.config.d_model == TINY_64X48["d_model"]


def test_base_url_argument_and_weights_tag_argument(server, entry, released):
    server.files[FILE] = released[0]
    path = factory.resolve_weights_path(TAG, model="transpose_r_a3", base_url=server.url, progress=False)
    assert path == wfiles.cache_path(entry) and path.is_file()
    assert factory.resolve_weights_path(f"transpose_r_a3:{TAG}", offline=True) == path
    assert factory.resolve_weights_path(str(path)) == path


def test_connection_cut_mid_file_leaves_nothing_in_the_cache(server, entry, released):
    body = released[0]
    server.files[FILE] = body
    server.httpd.cut.add(FILE)
    with pytest.raises(wdownload.WeightsDownloadError, match=r"cut off: received \d+ of \d+ bytes") as info:
        wdownload.resolve_weights("transpose_r_a3", TAG, base_url=server.url, progress=False)
    assert f"of {len(body)} bytes" in str(info.value)
    assert _cache_listing() == []
    # a later run cannot pick anything up without the network ...
    with pytest.raises(wdownload.WeightsUnavailableError):
        wdownload.resolve_weights("transpose_r_a3", TAG, offline=True)
    # ... and retries the download once the server is whole again
    server.httpd.cut.clear()
    path = wdownload.resolve_weights("transpose_r_a3", TAG, base_url=server.url, progress=False)
    assert path.read_bytes() == body


def test_cut_transfer_without_head_is_caught_by_the_strict_load(server, entry, released):
    server.files[FILE] = released[0]
    server.httpd.cut.add(FILE)
    server.httpd.head = False  # no announced size: only the load can tell
    with pytest.raises(CheckpointError, match="removed"):
        wdownload.resolve_weights("transpose_r_a3", TAG, base_url=server.url, progress=False)
    assert _cache_listing() == []


def test_corrupt_file_is_reported_and_removed(server, entry):
    server.files[FILE] = b"<html>not a checkpoint</html>" * 100
    with pytest.raises(CheckpointError, match=r"unusable.*\n.*removed and nothing was saved") as info:
        wdownload.resolve_weights("transpose_r_a3", TAG, base_url=server.url, progress=False)
    assert FILE in str(info.value) and server.url in str(info.value)
    assert _cache_listing() == []


def test_wrong_variant_file_lists_missing_and_unexpected_keys_and_is_removed(server, entry, tmp_path):
    other = tpose.create_model("transpose_h_s", num_layers=1, d_model=16, num_heads=1, dim_feedforward=32,
                               input_size=(64, 48))
    server.files[FILE] = save_released_layout(other, tmp_path / "h.pth").read_bytes()
    with pytest.raises(CheckpointMismatchError) as info:
        wdownload.resolve_weights("transpose_r_a3", TAG, base_url=server.url, progress=False)
    err = info.value
    assert any(k.startswith("layer2.") for k in err.missing)
    assert any(k.startswith("stage2.") for k in err.unexpected)
    assert "missing keys" in str(err) and "unexpected keys" in str(err) and "removed" in str(err)
    assert _cache_listing() == []


def test_sha256_is_checked_when_registered(server, released):
    body = released[0]
    server.files[FILE] = body
    register_weights(_entry(sha256="0" * 64))
    try:
        with pytest.raises(CheckpointError, match="SHA-256"):
            wdownload.resolve_weights("transpose_r_a3", TAG, base_url=server.url, progress=False)
        assert _cache_listing() == []
        register_weights(_entry(sha256=hashlib.sha256(body).hexdigest()), replace_existing=True)
        path = wdownload.resolve_weights("transpose_r_a3", TAG, base_url=server.url, progress=False)
        assert path.read_bytes() == body
    finally:
        unregister_weights("transpose_r_a3", TAG)


def test_missing_file_on_server_gives_http_status_and_manual_instructions(server, entry):
    with pytest.raises(wdownload.WeightsDownloadError, match="HTTP 404") as info:
        wdownload.resolve_weights("transpose_r_a3", TAG, base_url=server.url, progress=False)
    assert str(wfiles.cache_path(entry)) in str(info.value)
    assert _cache_listing() == []


def test_unreachable_server_gives_url_cache_path_and_switches(entry):
    base = f"http://127.0.0.1:{_closed_port()}/releases/download/Hub"
    with pytest.raises(wdownload.WeightsUnavailableError) as info:
        wdownload.resolve_weights("transpose_r_a3", TAG, base_url=base, progress=False)
    text = str(info.value)
    assert f"{base}/{FILE}" in text and info.value.url == f"{base}/{FILE}"
    assert str(wfiles.cache_path(entry)) in text and info.value.cache_path == wfiles.cache_path(entry)
    assert "TPOSE_WEIGHTS_DIR" in text and "TPOSE_OFFLINE=1" in text and "--weights" in text
    assert isinstance(info.value, OSError)  # the CLI reports OSErrors as plain messages


def test_silent_server_fails_after_the_connect_timeout(entry):
    with socket.socket() as listener:  # accepts connections in the kernel, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        base = f"http://127.0.0.1:{listener.getsockname()[1]}/Hub"
        with pytest.raises(wdownload.WeightsUnavailableError, match="no answer within the timeout"):
            wdownload.resolve_weights("transpose_r_a3", TAG, base_url=base, timeout=0.3, progress=False)
    assert _cache_listing() == []


def test_offline_mode_never_connects(server, entry, monkeypatch, released):
    server.files[FILE] = released[0]
    monkeypatch.setenv("TPOSE_OFFLINE", "1")
    with pytest.raises(wdownload.WeightsUnavailableError, match="TPOSE_OFFLINE is set") as info:
        wdownload.resolve_weights("transpose_r_a3", TAG, base_url=server.url)
    assert str(wfiles.cache_path(entry)) in str(info.value)
    with pytest.raises(wdownload.WeightsUnavailableError):
        wdownload.download_weights(entry, base_url=server.url)
    assert server.requests == []


def test_local_files_are_found_without_network(entry, released, tmp_path, monkeypatch):
    monkeypatch.setenv("TPOSE_OFFLINE", "1")
    folder = tmp_path / "my_weights"
    folder.mkdir()
    (folder / FILE).write_bytes(released[0])
    monkeypatch.setenv("TPOSE_WEIGHTS_DIR", os.pathsep.join([str(tmp_path / "absent"), str(folder)]))
    assert wdownload.resolve_weights("transpose_r_a3", TAG) == folder / FILE
    model = factory.load_pretrained("transpose_r_a3", TAG)
    assert torch.equal(model.state_dict()["final_layer.weight"], released[1]["final_layer.weight"])

    monkeypatch.delenv("TPOSE_WEIGHTS_DIR")  # the cache path the offline message names works as well
    target = wfiles.cache_path(entry)
    target.parent.mkdir(parents=True)
    target.write_bytes(released[0])
    assert wdownload.resolve_weights("transpose_r_a3", TAG) == target


def test_leftovers_of_killed_downloads_are_never_loaded_and_get_cleaned(server, entry, released):
    cache = wfiles.cache_dir()
    cache.mkdir(parents=True)
    stem = Path(FILE).stem
    leftover = cache / f".{stem}.deadbeef.tmp.pth.0123abcd.partial"
    leftover.write_bytes(released[0][:1000])
    fresh = cache / f".{stem}.cafebabe.tmp.pth"
    fresh.write_bytes(b"another process is downloading")
    old = time.time() - 2 * wdownload.STALE_AFTER_S
    os.utime(leftover, (old, old))
    with pytest.raises(wdownload.WeightsUnavailableError):
        wdownload.resolve_weights("transpose_r_a3", TAG, offline=True)
    server.files[FILE] = released[0]
    wdownload.resolve_weights("transpose_r_a3", TAG, base_url=server.url, progress=False)
    assert not leftover.exists() and fresh.exists()  # only stale leftovers go
    assert (cache / FILE).read_bytes() == released[0]


def test_cached_file_that_does_not_fit_says_to_delete_it(entry, released, tmp_path):
    bad = tpose.create_model("transpose_r_a3", **{**TINY_64X48, "num_layers": 2})
    target = wfiles.cache_path(entry)
    target.parent.mkdir(parents=True)
    save_released_layout(bad, target)
    with pytest.raises(CheckpointMismatchError, match="delete it to download it again") as info:
        factory.load_pretrained("transpose_r_a3", TAG, offline=True)
    assert any(k.startswith("global_encoder.layers.1.") for k in info.value.unexpected)
    assert target.exists()  # a file put there by hand is the user's to remove


def test_released_entries_point_at_the_paper_release():
    entry = get_weights("transpose_h_a6", "coco-256x192")
    assert entry.download_url() == (
        "https://github.com/yangsenius/TransPose/releases/download/Hub/tp_h_48_256x192_enc6_d96_h192_mh1.pth"
    )
    assert wfiles.cache_path(entry).name == "tp_h_48_256x192_enc6_d96_h192_mh1.pth"
