"""An exported TransPose run by ONNX Runtime behind the torch model's call: the one ONNX model class.

``OnnxPoseModel("m.onnx")`` is an ``nn.Module`` whose ``forward(x, return_attention=False, keep_heads=False)``
returns what ``TransPose`` returns, and which carries ``config``, ``backbone_stride`` and ``metadata`` read
from the file, so prediction, evaluation and explanation (for a file exported with attention) run on it
unchanged. It holds no weights: ``.to()`` / ``.train()`` change nothing and gradients do not flow. A file
with a fixed batch (exported elsewhere) is fed in chunks of that batch. Which keypoint set it predicts is
decided where every model's is: ``tpose.create_model``'s loader (``tpose.factory``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..codecs import HEATMAP_STRIDE
from ..data.keypoint_sets import KeypointSet, resolve_keypoint_set
from ..utils.ort import create_session
from .backbones import backbone_info, list_backbones
from .config import ModelConfig

INPUT_NAME = "image"
HEATMAPS_NAME = "heatmaps"
ATTENTION_PREFIX = "attention_"


class AttentionUnavailableError(ValueError, NotImplementedError):
    """Attention maps asked of an ONNX export that has none (export with attention outputs)."""


def attention_output_name(layer: int) -> str:
    return f"{ATTENTION_PREFIX}{layer}"


def read_onnx_metadata(session: Any) -> dict[str, Any]:
    """The ``tpose`` JSON recorded at export (empty for files exported elsewhere), plus ``keypoint_set``."""
    raw = dict(session.get_modelmeta().custom_metadata_map)
    meta: dict[str, Any] = {}
    if "tpose" in raw:
        try:
            meta = dict(json.loads(raw["tpose"]))
        except (json.JSONDecodeError, TypeError, ValueError):
            meta = {}
    if "keypoint_set" in raw:
        text = raw["keypoint_set"].strip()
        meta["keypoint_set"] = json.loads(text) if text.startswith("{") else text
    return meta


class OnnxPoseModel(nn.Module):
    """An exported TransPose run by ONNX Runtime, called like the torch model (see the module doc)."""

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        optimization: str = "all",
        device: str = "cpu",
        spinning: bool = False,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = create_session(self.path, threads, optimization, device, spinning)
        meta = read_onnx_metadata(self.session)
        inp = self.session.get_inputs()[0]
        self.input_name: str = inp.name
        shape = list(inp.shape)
        if len(shape) != 4:
            raise ValueError(f"{self.path}: expected one image input [batch, 3, H, W], got shape {shape}")
        self.fixed_batch: int | None = shape[0] if isinstance(shape[0], int) else None
        if all(isinstance(v, int) for v in shape[2:4]):
            self.input_size: tuple[int, int] = (int(shape[2]), int(shape[3]))
        elif "input_size" in meta:
            self.input_size = tuple(int(v) for v in meta["input_size"])  # type: ignore[assignment]
        else:
            raise ValueError(f"{self.path}: the input's height and width are not fixed in the graph")
        outputs = [o.name for o in self.session.get_outputs()]
        self.heatmaps_name = HEATMAPS_NAME if HEATMAPS_NAME in outputs else outputs[0]
        self.attention_names = sorted((n for n in outputs if n.startswith(ATTENTION_PREFIX)),
                                      key=lambda n: int(n.rsplit("_", 1)[1]))
        if self.attention_names != [attention_output_name(i) for i in range(len(self.attention_names))]:
            raise ValueError(f"{self.path}: attention outputs are not numbered 0..n-1: {self.attention_names}")
        self.attention: str | None = meta.get("attention") if self.attention_names else None
        if self.attention_names and self.attention is None:  # exported elsewhere: read it off the rank
            rank = len(self.session.get_outputs()[outputs.index(self.attention_names[0])].shape)
            self.attention = "heads" if rank == 4 else "mean"
        out_shape = self.session.get_outputs()[outputs.index(self.heatmaps_name)].shape
        k = out_shape[1] if len(out_shape) == 4 else None
        self.config: ModelConfig | None = None
        recorded = meta.get("model")
        # a file exported with a backbone not registered in this process still runs: it needs no backbone code
        if isinstance(recorded, dict) and recorded.get("backbone", ModelConfig.backbone) in list_backbones():
            self.config = ModelConfig.from_dict(dict(recorded))
            k = self.config.num_keypoints
        if not isinstance(k, int):
            raise ValueError(f"{self.path}: cannot tell the number of keypoints from the heatmaps output {out_shape}")
        self.num_keypoints: int = int(k)
        self.num_layers: int = len(self.attention_names)
        stride = meta.get("backbone_stride")
        if stride is None and self.config is not None:
            stride = backbone_info(self.config.backbone).stride
        self.backbone_stride: int | None = None if stride is None else int(stride)
        self.heatmap_stride = HEATMAP_STRIDE
        self.metadata: dict[str, Any] = dict(meta)
        # no weights live here; this empty tensor only answers "which device and dtype" for callers that ask
        self._anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    @property
    def keypoint_set(self) -> KeypointSet:
        """What the file predicts: its recorded keypoint set, else the built-in set of its keypoint count."""
        return resolve_keypoint_set(None, self.metadata, self.num_keypoints, str(self.path))

    @property
    def quantized(self) -> bool:
        """True for an int8 export (its metadata records the quantization)."""
        return bool(self.metadata.get("quantization"))

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}, input_size={self.input_size}, attention={self.attention!r}"

    def _run(self, names: list[str], arr: np.ndarray) -> list[np.ndarray]:
        if self.fixed_batch is None:
            return self.session.run(names, {self.input_name: arr})
        chunks: list[list[np.ndarray]] = []
        for start in range(0, len(arr), self.fixed_batch):
            part = arr[start : start + self.fixed_batch]
            n = len(part)
            if n < self.fixed_batch:
                part = np.concatenate([part, np.zeros((self.fixed_batch - n, *part.shape[1:]), part.dtype)])
            chunks.append([o[:n] for o in self.session.run(names, {self.input_name: part})])
        return [np.concatenate([c[i] for c in chunks]) for i in range(len(names))]

    def forward(
        self, x: torch.Tensor, return_attention: bool = False, keep_heads: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Heatmaps [B, K, H/4, W/4] and, with ``return_attention``, every layer's attention map."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{self.path.name} expects a tensor [B, 3, H, W], got {got}")
        if tuple(x.shape[2:]) != self.input_size:
            h, w = self.input_size
            raise ValueError(
                f"{self.path.name} was exported for {h}x{w} inputs, got {x.shape[2]}x{x.shape[3]}: use "
                f"--input-size {h}x{w} (or leave it out), or export again with `tpose export --input-size "
                f"{x.shape[2]}x{x.shape[3]}`"
            )
        if return_attention and not self.attention_names:
            raise AttentionUnavailableError(f"{self.path.name} has no attention outputs: export it with "
                                            "`tpose export --attention`, or use the torch backend (the weights file)")
        names = [self.heatmaps_name, *(self.attention_names if return_attention else [])]
        arr = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        outs = self._run(names, arr)
        heatmaps = torch.from_numpy(outs[0]).to(x.device)
        if not return_attention:
            return heatmaps
        maps = [torch.from_numpy(o).to(x.device) for o in outs[1:]]
        if keep_heads and self.attention == "mean":
            if self.config is None or self.config.num_heads != 1:
                raise ValueError(f"{self.path.name} stores head-averaged attention; export with --attention heads")
            maps = [m[:, None] for m in maps]
        elif not keep_heads and self.attention == "heads":
            maps = [m.mean(dim=1) for m in maps]
        return heatmaps, maps
