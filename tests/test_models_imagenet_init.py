"""ImageNet initialisation maps torchvision ResNet-50 / official HRNet keys onto the backbones exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import tpose
from tpose.models.blocks import BasicBlock, Bottleneck, conv3x3, make_layer
from tpose.models.hrnet import HighResolutionModule, _conv_bn
from tpose.models.imagenet_init import init_backbone_from_imagenet

from .conftest import TINY


class ResNet50Layout(nn.Module):
    """torchvision's resnet50 module tree (v1.5 bottlenecks, 3-4-6-3), for its state-dict keys only."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = make_layer(Bottleneck, 64, 64, 3)
        self.layer2 = make_layer(Bottleneck, 256, 128, 4, stride=2)
        self.layer3 = make_layer(Bottleneck, 512, 256, 6, stride=2)
        self.layer4 = make_layer(Bottleneck, 1024, 512, 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, 1000)


class HRNetImageNetLayout(nn.Module):
    """The official HRNet-W{C} ImageNet classifier's module tree, for its state-dict keys only."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.layer1 = make_layer(Bottleneck, 64, 64, 4)
        self.transition1 = nn.ModuleList([_conv_bn(256, c, 1, True), nn.Sequential(_conv_bn(256, 2 * c, 2, True))])
        self.stage2 = nn.Sequential(HighResolutionModule([c, 2 * c], 4))
        self.transition2 = nn.ModuleList([None, None, nn.Sequential(_conv_bn(2 * c, 4 * c, 2, True))])
        self.stage3 = nn.Sequential(*(HighResolutionModule([c, 2 * c, 4 * c], 4) for _ in range(4)))
        self.transition3 = nn.ModuleList([None, None, None, nn.Sequential(_conv_bn(4 * c, 8 * c, 2, True))])
        self.stage4 = nn.Sequential(*(HighResolutionModule([c, 2 * c, 4 * c, 8 * c], 4) for _ in range(3)))
        heads = (32, 64, 128, 256)
        self.incre_modules = nn.ModuleList(
            make_layer(Bottleneck, ch, h, 1) for ch, h in zip((c, 2 * c, 4 * c, 8 * c), heads, strict=True)
        )
        self.downsamp_modules = nn.ModuleList(
            nn.Sequential(nn.Conv2d(h * 4, heads[i + 1] * 4, 3, 2, 1), nn.BatchNorm2d(heads[i + 1] * 4), nn.ReLU())
            for i, h in enumerate(heads[:-1])
        )
        self.final_layer = nn.Sequential(nn.Conv2d(1024, 2048, 1), nn.BatchNorm2d(2048), nn.ReLU())
        self.classifier = nn.Linear(2048, 1000)


# parts of the classifiers no TransPose backbone uses: filled with zeros to keep the test fast
_UNUSED = ("layer3.", "layer4.", "fc.", "stage4.", "incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")


def _random_state(layout: type[nn.Module], *args, counters: bool = True) -> dict[str, torch.Tensor]:
    """The layout's keys and shapes with random values (built on meta, so nothing big is initialised)."""
    with torch.device("meta"):
        module = layout(*args)
    g = torch.Generator().manual_seed(0)
    state = {}
    for k, v in module.state_dict().items():
        if k.startswith(_UNUSED) and not k.endswith("num_batches_tracked"):
            state[k] = torch.zeros(()).expand(v.shape)  # shape only, no memory
        elif k.endswith("num_batches_tracked"):
            if counters:
                state[k] = torch.tensor(12345)
        elif k.endswith("running_var"):
            state[k] = torch.rand(v.shape, generator=g) + 0.5
        else:
            state[k] = torch.randn(v.shape, generator=g)
    return state


def _unchanged(model: nn.Module, before: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> None:
    for k, v in model.state_dict().items():
        if k.startswith(prefixes):
            assert torch.equal(v, before[k]), k


def test_resnet50_into_resnet_s() -> None:
    source = _random_state(ResNet50Layout)
    model = tpose.create_model("transpose_r_a3", **TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_backbone_from_imagenet(model, source)
    state = model.state_dict()
    assert report.loaded and all(torch.equal(state[k], source[k]) for k in report.loaded)
    backbone = [k for k in state if k.startswith(("conv1.", "bn1.", "layer1.", "layer2."))]
    assert report.loaded == backbone  # every backbone entry, layer2's 4 blocks = all of ResNet-50's
    assert report.not_initialised == []
    assert {k.split(".")[0] for k in report.skipped} == {"layer3", "layer4", "fc"}
    assert len(report.skipped) + len(report.loaded) == len(source)
    _unchanged(model, before, ("pos_embedding", "reduce.", "global_encoder.", "deconv_layers.", "final_layer."))
    assert "ResNet" in report.summary() and "fc (2)" in report.summary()


def test_resnet_s_star_reports_blocks_without_imagenet_counterpart() -> None:
    source = _random_state(ResNet50Layout, counters=False)  # old torchvision files carry no BN counters
    model = tpose.create_model("transpose_r_a3", **TINY, backbone="resnet_s_star")
    report = init_backbone_from_imagenet(model, source)
    blocks = sorted({int(k.split(".")[1]) for k in report.not_initialised})
    assert blocks == [4, 5, 6, 7, 8, 9]
    assert all(k.startswith("layer2.") for k in report.not_initialised)
    assert not any(k.endswith("num_batches_tracked") for k in report.not_initialised)
    state = model.state_dict()
    assert torch.equal(state["layer2.3.conv3.weight"], source["layer2.3.conv3.weight"])


def test_hrnet_w32_into_h_s() -> None:
    source = _random_state(HRNetImageNetLayout, 32)
    model = tpose.create_model("transpose_h_s", **TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_backbone_from_imagenet(model, {"state_dict": {f"module.{k}": v for k, v in source.items()}})
    state = model.state_dict()
    assert all(torch.equal(state[k], source[k]) for k in report.loaded)
    prefixes = ("conv1.", "bn1.", "conv2.", "bn2.", "layer1.", "transition1.", "stage2.", "transition2.", "stage3.")
    assert report.loaded == [k for k in state if k.startswith(prefixes)]
    assert report.not_initialised == []
    assert report.source_kind == "HRNet-W32"
    skipped_roots = {k.split(".")[0] for k in report.skipped}
    assert skipped_roots == {
        "stage3",
        "transition3",
        "stage4",
        "incre_modules",
        "downsamp_modules",
        "final_layer",
        "classifier",
    }
    # the last stage-3 module of TransPose-H keeps only the stride-4 output
    assert all(
        k.startswith(("stage3.3.fuse_layers.1.", "stage3.3.fuse_layers.2."))
        for k in report.skipped
        if k.startswith("stage3.")
    )
    # the head keeps its own final_layer despite the classifier's key of the same name
    _unchanged(model, before, ("pos_embedding", "reduce.", "global_encoder.", "final_layer."))


def test_wrong_width_is_a_shape_error() -> None:
    source = _random_state(HRNetImageNetLayout, 48)
    model = tpose.create_model("transpose_h_s", **TINY)
    before = model.transition1[0][0].weight.clone()
    with pytest.raises(ValueError, match=r"HRNet-W48.*hrnet_s_w32.*shape mismatches.*transition1\.0\.0\.weight"):
        init_backbone_from_imagenet(model, source)
    assert torch.equal(model.transition1[0][0].weight, before)


def test_resnet_into_hrnet_is_refused() -> None:
    with pytest.raises(ValueError, match=r"conv1\.weight: ImageNet \(64, 3, 7, 7\) vs model \(64, 3, 3, 3\)"):
        init_backbone_from_imagenet(tpose.create_model("transpose_h_s", **TINY), _random_state(ResNet50Layout))


def test_unrelated_source_is_refused() -> None:
    with pytest.raises(ValueError, match="share no entry"):
        init_backbone_from_imagenet(tpose.create_model("transpose_r_a3", **TINY), {"encoder.weight": torch.zeros(3)})


def test_layout_helpers_match_their_parents() -> None:
    """The test layouts use the same key scheme as the models (guards the helpers themselves)."""
    resnet = _random_state(ResNet50Layout)
    assert len(resnet) == 320 and "layer3.5.bn3.running_var" in resnet and "layer4.2.conv3.weight" in resnet
    assert resnet["layer2.0.downsample.0.weight"].shape == (512, 256, 1, 1)
    hrnet = _random_state(HRNetImageNetLayout, 32)
    assert hrnet["stage4.2.fuse_layers.3.0.2.0.weight"].shape == (256, 32, 3, 3)
    assert hrnet["transition3.3.0.0.weight"].shape == (256, 128, 3, 3)
    assert BasicBlock.expansion == 1 and conv3x3(3, 4).kernel_size == (3, 3)
