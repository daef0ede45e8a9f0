"""The weights registry: released entries, shipped weights found through importlib.resources, tables, tags."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import tpose
from tpose import factory
from tpose.models.checkpoint import save_weights
from tpose.weights import (
    WeightsEntry,
    default_tag,
    format_weights_table,
    get_weights,
    list_weights,
    register_weights,
    resolved_accuracy,
    shipped_tag,
    variants_with_weights,
)
from tpose.weights import download as wdownload
from tpose.weights import files as wfiles

from .conftest import REPO, TINY, tiny_model

SHIPPED = "transpose_r_a4_lsp_mpii_128x96.safetensors"
SPEC_FILES = {  # /work/shared/spec/transpose-reference.md, "Released checkpoints"
    "transpose_r_a3": "tp_r_256x192_enc3_d256_h1024_mh8.pth",
    "transpose_r_a4": "tp_r_256x192_enc4_d256_h1024_mh8.pth",
    "transpose_h_s": "tp_h_32_256x192_enc4_d64_h128_mh1.pth",
    "transpose_h_a4": "tp_h_48_256x192_enc4_d96_h192_mh1.pth",
    "transpose_h_a6": "tp_h_48_256x192_enc6_d96_h192_mh1.pth",
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in ("TPOSE_OFFLINE", "TPOSE_WEIGHTS_DIR", "TPOSE_WEIGHTS_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def shipped_dir(tmp_path, monkeypatch) -> tuple[Path, tpose.TransPose]:
    """A stand-in for tpose/weights/ holding a tiny 14-keypoint R-A4 saved as the lead's training run saves it."""
    model = tiny_model("transpose_r_a4", 1, num_keypoints=14, input_size=(128, 96))
    folder = tmp_path / "package_weights"
    save_weights(
        model,
        folder / SHIPPED,
        extra_metadata={"variant": "transpose_r_a4", "keypoint_set": "lsp14", "epoch": 6,
                        "metrics": {"val_PCK@0.2": 0.7345, "PCK@0.2_mpii": 0.77, "val_loss": 0.001}},
    )
    monkeypatch.setattr(wfiles, "package_dir", lambda: folder)
    return folder, model


def test_released_checkpoints_of_the_paper_are_registered_with_published_accuracy():
    released = {e.variant: e for e in list_weights() if e.source == "release"}
    assert {v: e.file for v, e in released.items()} == SPEC_FILES
    for variant, entry in released.items():
        assert entry.download_url() == f"https://github.com/yangsenius/TransPose/releases/download/Hub/{SPEC_FILES[variant]}"
        assert entry.keypoint_set == "coco17" and entry.input_size == (256, 192) and "MIT" in entry.license
        assert all(a.published for a in entry.accuracy)
        assert {a.boxes for a in entry.accuracy} == {"detector boxes", "GT boxes"}
    r_a4 = {a.boxes: a.value for a in released["transpose_r_a4"].accuracy}
    assert r_a4 == {"detector boxes": 72.6, "GT boxes": 75.1}
    assert "transpose_h_a5" not in variants_with_weights()
    with pytest.raises(ValueError, match="no weights are registered for transpose_h_a5"):
        get_weights("transpose_h_a5", True)


def test_mirror_base_url_from_environment(monkeypatch):
    monkeypatch.setenv("TPOSE_WEIGHTS_BASE_URL", "http://mirror.example/tp/")
    assert get_weights("transpose_r_a3").download_url() == "http://mirror.example/tp/" + SPEC_FILES["transpose_r_a3"]


def test_shipped_weights_are_looked_up_inside_the_package():
    entry = get_weights("transpose_r_a4", "lsp-mpii-128x96")
    assert entry.source == "package" and entry.keypoint_set == "lsp14" and entry.input_size == (128, 96)
    assert wfiles.package_file(entry) == Path(tpose.__file__).parent / "weights" / SHIPPED
    assert not any(a.published for a in entry.accuracy)
    if wfiles.local_file(entry) is None:
        with pytest.raises(FileNotFoundError, match="lacks the file"):
            wdownload.resolve_weights("transpose_r_a4", "lsp-mpii-128x96")
    else:
        assert wdownload.resolve_weights("transpose_r_a4", "lsp-mpii-128x96", offline=True) == wfiles.package_file(
            entry
        )


def test_pyproject_ships_the_weights_folder():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    pyproject = REPO / "pyproject.toml"
    data = tomllib.loads(pyproject.read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["tpose"]
    assert "weights/*.safetensors" in patterns and "weights/*.json" in patterns


def test_measured_accuracy_is_read_from_the_shipped_metadata(shipped_dir):
    entry = get_weights("transpose_r_a4", "lsp-mpii-128x96")
    acc, mpii, coco = resolved_accuracy(entry)
    assert acc.metric == "PCK@0.2" and acc.value == pytest.approx(0.7345) and not acc.published
    assert "epoch 6" in acc.note
    assert mpii.dataset == "MPII validation split" and mpii.value == pytest.approx(0.77)
    assert coco.value is None  # not in this file's metadata: never made up
    table = format_weights_table("transpose_r_a4")
    assert "measured: LSPET im09001-im10000 PCK@0.2 0.735 (boxes from annotated joints" in table
    assert "shipped" in table and "published: COCO val2017 AP 72.6 (detector boxes) / 75.1 (GT boxes)" in table


def test_measured_accuracy_without_a_file_is_not_invented(monkeypatch, tmp_path):
    monkeypatch.setattr(wfiles, "package_dir", lambda: tmp_path / "empty")
    accuracies = resolved_accuracy(get_weights("transpose_r_a4", "lsp-mpii-128x96"))
    assert len(accuracies) == 3 and all(a.value is None and a.formatted_value() == "n/a" for a in accuracies)


def test_the_former_shipped_tag_gives_the_weights_that_replaced_it(shipped_dir):
    folder, _ = shipped_dir
    with pytest.warns(DeprecationWarning, match="lspet-128x96 were replaced by transpose_r_a4:lsp-mpii-128x96"):
        assert get_weights("transpose_r_a4", "lspet-128x96").tag == "lsp-mpii-128x96"
    with pytest.warns(DeprecationWarning, match="retrained on LSPET, LSP and MPII"):
        assert factory.resolve_weights_path("lspet-128x96") == folder / SHIPPED
    with pytest.warns(DeprecationWarning):
        assert factory.resolve_weights_path("transpose_r_a4:lspet-128x96") == folder / SHIPPED


def test_default_tags_online_offline_and_for_the_cli(shipped_dir, monkeypatch):
    assert default_tag("transpose_r_a4", offline=False) == "coco-256x192"
    assert default_tag("transpose_r_a4", offline=True) == "lsp-mpii-128x96"  # COCO file not cached
    monkeypatch.setenv("TPOSE_OFFLINE", "1")
    assert default_tag("transpose_r_a4") == "lsp-mpii-128x96"
    assert get_weights("transpose_r_a4", True).tag == "lsp-mpii-128x96"
    assert shipped_tag("transpose_r_a4") == "lsp-mpii-128x96" and shipped_tag("transpose_r_a3") is None
    assert default_tag("transpose_r_a3") == "coco-256x192"  # nothing local: the error will explain


def test_offline_default_prefers_the_cached_paper_weights(shipped_dir):
    entry = get_weights("transpose_r_a4", "coco-256x192")
    wfiles.cache_path(entry).parent.mkdir(parents=True)
    wfiles.cache_path(entry).write_bytes(b"placed by hand")
    assert default_tag("transpose_r_a4", offline=True) == "coco-256x192"
    assert wdownload.resolve_weights("transpose_r_a4", offline=True) == wfiles.cache_path(entry)


def test_load_pretrained_rebuilds_the_shipped_model_from_its_metadata(shipped_dir):
    _, saved = shipped_dir
    model = factory.load_pretrained("transpose_r_a4", "lsp-mpii-128x96", offline=True)
    assert model.config == saved.config
    assert all(torch.equal(v, saved.state_dict()[k]) for k, v in model.state_dict().items())
    assert model.metadata["keypoint_set"] == "lsp14" and model.metadata["weights"] == "transpose_r_a4:lsp-mpii-128x96"


def test_shipped_file_of_another_variant_is_refused(shipped_dir, monkeypatch, tmp_path):
    folder = tmp_path / "other"
    model = tpose.create_model("transpose_r_a3", num_keypoints=14, input_size=(128, 96), **TINY)
    save_weights(model, folder / SHIPPED, extra_metadata={"variant": "transpose_r_a3"})
    monkeypatch.setattr(wfiles, "package_dir", lambda: folder)
    with pytest.raises(ValueError, match="trained as transpose_r_a3, not transpose_r_a4"):
        factory.load_pretrained("transpose_r_a4", "lsp-mpii-128x96", offline=True)


def test_weights_argument_is_a_path_a_tag_or_variant_and_tag(shipped_dir, tmp_path):
    folder, _ = shipped_dir
    assert factory.resolve_weights_path(folder / SHIPPED) == folder / SHIPPED
    assert factory.resolve_weights_path("lsp-mpii-128x96", model="transpose_r_a4") == folder / SHIPPED
    assert factory.resolve_weights_path("transpose_r_a4:lsp-mpii-128x96") == folder / SHIPPED
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        factory.resolve_weights_path(str(tmp_path / "nope.pth"))
    with pytest.raises(ValueError, match=r"its tags: coco-256x192, lsp-mpii-128x96"):
        factory.resolve_weights_path("imagenet", model="transpose_r_a4")
    # a tag only one variant has names it; a tag several have must be told which (the one loader, issue 14)
    assert factory.resolve_weights_path("lsp-mpii-128x96") == folder / SHIPPED
    with pytest.raises(ValueError, match=r"several models have this tag \(transpose_r_a3, .*transpose_r_a4"):
        factory.resolve_weights_path("coco-256x192")
    with pytest.raises(ValueError, match="are for transpose_r_a3, not transpose_r_a4"):
        get_weights("transpose_r_a4", "transpose_r_a3:coco-256x192")


def test_registration_is_validated():
    base = dict(file="x.pth", source="release", keypoint_set="coco17", input_size=(256, 192), train_data="x")
    with pytest.raises(ValueError, match="unknown model"):
        register_weights(WeightsEntry(variant="transpose_x", tag="t", **base))
    with pytest.raises(ValueError, match="tag"):
        register_weights(WeightsEntry(variant="transpose_r_a3", tag="a:b", **base))
    with pytest.raises(ValueError, match="registered already"):
        register_weights(WeightsEntry(variant="transpose_r_a3", tag="coco-256x192", **base))
    with pytest.raises(ValueError, match="sha256"):
        register_weights(WeightsEntry(variant="transpose_r_a3", tag="t", sha256="abc", **base))
    with pytest.raises(ValueError, match="source"):
        register_weights(WeightsEntry(variant="transpose_r_a3", tag="t", **{**base, "source": "ftp"}))


def test_tables_list_every_entry_with_status_boxes_and_license(shipped_dir):
    text = format_weights_table()
    for variant, file in SPEC_FILES.items():
        assert variant in text and file in text
    assert "transpose_h_a5" not in text
    assert "download" in text and "person AP 56.4" in text and "License: MIT (TransPose repository)" in text
    md = format_weights_table(markdown=True).splitlines()
    assert md[0].startswith("| model | tag |") and md[1].startswith("|---|")
    assert sum(line.startswith("| transpose_") for line in md) == len(list_weights())
    assert format_weights_table("transpose_h_a5").startswith("no weights are registered for transpose_h_a5")


def test_predictor_takes_the_resolved_shipped_weights(shipped_dir):
    from tpose.inference.predictor import PosePredictor

    path = factory.resolve_weights_path("lsp-mpii-128x96", model="transpose_r_a4")
    predictor = PosePredictor("transpose_r_a4", weights=path, flip_test=False, detector=None)
    assert predictor.input_size == (128, 96) and predictor.keypoint_set.name == "lsp14"
