"""Size, cost and memory of a TransPose model, for ``tpose info`` and for comparing variants.

Multiply-adds are counted with ``torch.utils.flop_counter.FlopCounterMode`` (which reports 2 FLOPs
per multiply-add for convolutions, transposed ones included, and matrix products) on a meta-device
twin of the model, so counting costs no arithmetic. On the meta device attention runs as explicit
matrix products; for real CPU runs we also register the CPU flash-attention kernel, which the
counter does not know. Element-wise work (norms, softmax, activations, bias) is not counted.

Peak memory is measured on a real forward (``torch.no_grad``, the configured batch):
- CUDA: ``torch.cuda.max_memory_allocated`` above what was allocated before the input existed;
- CPU: a dispatch mode follows every tensor storage the forward creates (the input included) and
  frees it when the storage dies, recording the largest total alive at once. This is the memory
  PyTorch asks for, without allocator caching or the kernels' internal scratch buffers.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from ..utils.modes import eval_mode
from .config import ModelConfig
from .diagnosis import variant_name
from .transpose import TransPose
from .variants import build_model, get_config

_PARTS = ("backbone", "reduce", "encoder", "head")


def _sdpa_flops(query, key, value, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """FLOPs of softmax(QK^T)V for shapes [B, heads, L, e]: two matrix products."""
    b, h, lq, e = query
    lk, ev = key[-2], value[-1]
    return 2 * b * h * lq * lk * (e + ev)


def _custom_flops() -> dict[Any, Any]:
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    return {} if op is None else {op: _sdpa_flops}


_HEAD_PARTS = {"reduce": "reduce", "global_encoder": "encoder", "deconv_layers": "head", "final_layer": "head"}


def _meta_twin(config: ModelConfig) -> TransPose:
    """The architecture on the meta device; a sine table is swapped for a learnable one of the same
    shape and cost, because building the sine table on meta is slow to trace the first time."""
    if config.pos_embedding == "sine":
        config = config.with_overrides(pos_embedding="learnable")
    with torch.device("meta"):
        return TransPose(config).eval()


def count_macs(model_or_config: TransPose | ModelConfig, input_size: tuple[int, int] = (256, 192)) -> dict[str, int]:
    """Multiply-adds of one image's forward, in total and per part (backbone, reduce, encoder, head)."""
    config = model_or_config.config if isinstance(model_or_config, TransPose) else model_or_config
    twin = _meta_twin(config).requires_grad_(False)
    x = torch.empty(1, 3, *input_size, device="meta")
    counter = FlopCounterMode(display=False, custom_mapping=_custom_flops())
    with counter, torch.no_grad():
        twin(x)
    counts = counter.get_flop_counts()
    out = {"total": counter.get_total_flops() // 2, "backbone": 0, "reduce": 0, "encoder": 0, "head": 0}
    for child, part in _HEAD_PARTS.items():
        out[part] += sum(counts.get(f"{type(twin).__name__}.{child}", {}).values()) // 2
    # HRNet calls some backbone modules through ModuleLists, so the backbone is taken as the rest
    out["backbone"] = out["total"] - out["reduce"] - out["encoder"] - out["head"]
    return out


class _LiveStorage(TorchDispatchMode):
    """Bytes of tensor storages created inside the mode and still alive; keeps the peak."""

    def __init__(self, ignore: set[int]) -> None:
        super().__init__()
        self.ignore = ignore
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self.live or key in self.ignore:
                continue
            self.live[key] = storage.nbytes()
            self.current += self.live[key]
            self.peak = max(self.peak, self.current)
            weakref.finalize(storage, self._free, key)
        return out


def measure_peak_memory(model: TransPose, input_size: tuple[int, int] = (256, 192), batch: int = 1) -> int:
    """Peak bytes a no-grad forward allocates beyond the weights, input batch included (see module doc)."""
    device = next(model.parameters()).device
    with eval_mode(model):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            with torch.no_grad():
                x = torch.randn(batch, 3, *input_size, device=device)
                model(x)
            torch.cuda.synchronize(device)
            return int(torch.cuda.max_memory_allocated(device) - base)
        ignore = {t.untyped_storage()._cdata for t in [*model.parameters(), *model.buffers()]}
        tracker = _LiveStorage(ignore)
        with torch.no_grad(), tracker:
            x = torch.randn(batch, 3, *input_size, device=device)
            model(x)
        return int(tracker.peak)


def model_info(
    name_or_model: str | TransPose,
    input_size: tuple[int, int] = (256, 192),
    batch: int = 1,
    memory: bool = True,
) -> dict[str, Any]:
    """Parameters, multiply-adds per image, token grid and forward peak memory at ``input_size`` (H, W).

    ``memory=False`` skips the one real forward (everything else runs on the meta device).
    """
    if isinstance(name_or_model, str):
        name = name_or_model
        config = get_config(name)
        model = None
    else:
        model = name_or_model
        config = model.config
        name = variant_name(config) or "custom"
    sized = model if model is not None else _meta_twin(config)
    h, w = (int(v) for v in input_size)
    sized._check_size(h, w)
    params = list(sized.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    if model is None and config.pos_embedding == "sine":  # the twin's table is learnable; the real one frozen
        trainable -= sized.pos_embedding.numel()
    stride = sized.backbone_stride
    info: dict[str, Any] = {
        "name": name,
        "config": config.to_dict(),
        "input_size": (h, w),
        "batch": batch,
        "parameters": total,
        "trainable_parameters": trainable,
        "weight_bytes": sum(t.numel() * t.element_size() for t in [*params, *sized.buffers()]),
        "token_grid": (h // stride, w // stride),
        "tokens": (h // stride) * (w // stride),
        "feature_stride": stride,
        "heatmap_size": (h // 4, w // 4),
        "macs": count_macs(config, (h, w)),
    }
    if memory:
        real = model if model is not None else build_model(name)
        device = next(real.parameters()).device
        info["peak_memory_bytes"] = measure_peak_memory(real, (h, w), batch)
        info["memory_method"] = (
            "torch.cuda.max_memory_allocated" if device.type == "cuda" else "live tensor storages (dispatch mode)"
        )
        info["memory_device"] = str(device)
    return info


def _fmt_bytes(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def format_info(info: dict[str, Any]) -> str:
    """A readable table of :func:`model_info`'s result."""
    cfg = info["config"]
    h, w = info["input_size"]
    gh, gw = info["token_grid"]
    macs = info["macs"]
    rows = [
        ("model", f"{info['name']} ({cfg['backbone']}, {cfg['num_keypoints']} keypoints)"),
        ("input (H x W)", f"{h} x {w}"),
        (
            "encoder",
            f"d {cfg['d_model']}, {cfg['num_layers']} layers, {cfg['num_heads']} heads, "
            f"FFN {cfg['dim_feedforward']}, {cfg['pos_embedding']} positions",
        ),
        ("tokens", f"{gh} x {gw} = {info['tokens']:,} (feature stride {info['feature_stride']})"),
        ("heatmaps", f"{cfg['num_keypoints']} x {info['heatmap_size'][0]} x {info['heatmap_size'][1]}"),
        ("parameters", f"{info['parameters']:,} (trainable {info['trainable_parameters']:,})"),
        ("weights", _fmt_bytes(info["weight_bytes"])),
        ("multiply-adds", f"{macs['total'] / 1e9:.2f} G per image"),
    ]
    rows += [(f"  {part}", f"{macs[part] / 1e9:.2f} G") for part in _PARTS]
    if "peak_memory_bytes" in info:
        rows.append(
            (
                "peak forward memory",
                f"{_fmt_bytes(info['peak_memory_bytes'])} beyond weights, batch {info['batch']} "
                f"({info['memory_device']}, {info['memory_method']})",
            )
        )
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
