"""ONNX Runtime behind the torch model's call, so prediction and explanation run on an exported file unchanged.

``OnnxPoseModel("m.onnx")`` is an ``nn.Module`` whose ``forward(x, return_attention=False, keep_heads=False)``
returns what ``TransPose`` returns, and which carries ``config``, ``backbone_stride``, ``keypoint_set`` and
``metadata`` read from the file: ``PosePredictor(OnnxPoseModel(path))`` and
``run_explain(..., model=OnnxPoseModel(path))`` (for a file exported with attention) work as with a torch
model. It holds no weights: ``.to()`` / ``.train()`` change nothing and gradients do not flow.

CUDA: ``device="cuda"`` puts ONNX Runtime's CUDA provider first when the installed onnxruntime has it
(``onnxruntime-gpu``); written but untested here (no GPU on the project's machines).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.keypoint_sets import KeypointSet
from ..models.config import ModelConfig

OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "layout", "all")


def default_threads() -> int:
    """The CPU cores this process may use (its affinity mask), the intra-op thread count we default to."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def session_options(threads: int | None = None, optimization: str = "all", spinning: bool = False) -> Any:
    """Intra-op threads = ``threads`` (default: all usable cores), one inter-op thread, graph optimisation level.

    ``spinning=False`` stops idle worker threads from busy-waiting for the next call: ONNX Runtime's
    default keeps them spinning, which on a small CPU takes the cores from whatever runs between calls
    (decoding, drawing, torch) and slowed a PyTorch forward run right after an ONNX one ~25x here.
    """
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "layout": getattr(ort.GraphOptimizationLevel, "ORT_ENABLE_LAYOUT", ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimization not in levels:
        raise ValueError(f"optimization must be one of {OPTIMIZATION_LEVELS}, got {optimization!r}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or default_threads())
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = levels[optimization]
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return opts


def providers_for(device: str | torch.device = "cpu") -> list[str]:
    """CPU always; the CUDA provider first for a CUDA device when this onnxruntime build has it."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError(
                f"device {device!r} asks for CUDA but this onnxruntime has no CUDAExecutionProvider "
                "(install onnxruntime-gpu)"
            )
        providers.insert(0, "CUDAExecutionProvider")
    return providers


def create_session(
    path: str | Path,
    threads: int | None = None,
    optimization: str = "all",
    device: str | torch.device = "cpu",
    spinning: bool = False,
) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``path``; missing or unreadable files are named in the error."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file")
    try:
        opts = session_options(threads, optimization, spinning)
        return ort.InferenceSession(str(path), opts, providers=providers_for(device))
    except Exception as err:  # onnxruntime raises its own exception types for corrupt or foreign files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: ONNX Runtime cannot load this file: {first}") from err


def read_metadata(session: Any) -> dict[str, Any]:
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
        from ..inference.predictor import default_keypoint_set
        from .onnx_export import HEATMAPS_NAME, attention_output_name

        self.path = Path(path)
        self.session = create_session(self.path, threads, optimization, device, spinning)
        meta = read_metadata(self.session)
        inp = self.session.get_inputs()[0]
        self.input_name: str = inp.name
        shape = list(inp.shape)
        if len(shape) != 4:
            raise ValueError(f"{self.path}: expected one image input [batch, 3, H, W], got shape {shape}")
        if all(isinstance(v, int) for v in shape[2:4]):
            self.image_size: tuple[int, int] = (int(shape[2]), int(shape[3]))
        elif "input_size" in meta:
            self.image_size = tuple(int(v) for v in meta["input_size"])  # type: ignore[assignment]
        else:
            raise ValueError(f"{self.path}: the input's height and width are not fixed in the graph")
        outputs = [o.name for o in self.session.get_outputs()]
        self.heatmaps_name = HEATMAPS_NAME if HEATMAPS_NAME in outputs else outputs[0]
        self.attention_names = [n for n in outputs if n.startswith("attention_")]
        self.attention_names.sort(key=lambda n: int(n.rsplit("_", 1)[1]))
        if self.attention_names and self.attention_names != [
            attention_output_name(i) for i in range(len(self.attention_names))
        ]:
            raise ValueError(f"{self.path}: attention outputs are not numbered 0..n-1: {self.attention_names}")
        self.attention: str | None = meta.get("attention") if self.attention_names else None
        if self.attention_names and self.attention is None:  # exported elsewhere: read it off the rank
            rank = len(self.session.get_outputs()[outputs.index(self.attention_names[0])].shape)
            self.attention = "heads" if rank == 4 else "mean"
        out_shape = self.session.get_outputs()[outputs.index(self.heatmaps_name)].shape
        k = out_shape[1] if len(out_shape) == 4 else None
        self.config: ModelConfig | None = None
        if isinstance(meta.get("model"), dict):
            self.config = ModelConfig.from_dict(dict(meta["model"]))
            k = self.config.num_keypoints
        if not isinstance(k, int):
            raise ValueError(f"{self.path}: cannot tell the number of keypoints from the heatmaps output {out_shape}")
        self.num_keypoints: int = int(k)
        self.num_layers: int = len(self.attention_names)
        stride = meta.get("backbone_stride")
        if stride is None and self.config is not None:
            stride = 8 if self.config.backbone.startswith("resnet") else 4
        self.backbone_stride: int | None = None if stride is None else int(stride)
        self.heatmap_stride = 4
        found = meta.get("keypoint_set")
        if isinstance(found, dict):
            self.keypoint_set = KeypointSet.from_dict(found)
        elif isinstance(found, str) and found:
            from ..data.keypoint_sets import get_keypoint_set

            self.keypoint_set = get_keypoint_set(found)
        else:
            self.keypoint_set = default_keypoint_set(self.num_keypoints)
        self.metadata: dict[str, Any] = {**meta, "keypoint_set": self.keypoint_set.to_dict()}
        # no weights live here; this empty tensor only answers "which device and dtype" for callers that ask
        self._anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}, image_size={self.image_size}, attention={self.attention!r}"

    def forward(
        self, x: torch.Tensor, return_attention: bool = False, keep_heads: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Heatmaps [B, K, H/4, W/4] and, with ``return_attention``, every layer's attention map."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{self.path.name} expects a tensor [B, 3, H, W], got {got}")
        if tuple(x.shape[2:]) != self.image_size:
            h, w = self.image_size
            raise ValueError(
                f"{self.path.name} was exported for {h}x{w} inputs, got {x.shape[2]}x{x.shape[3]} "
                "(export again with that input size)"
            )
        if return_attention and not self.attention_names:
            raise ValueError(f"{self.path.name} has no attention outputs: export it with attention=True")
        names = [self.heatmaps_name, *(self.attention_names if return_attention else [])]
        arr = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        outs = self.session.run(names, {self.input_name: arr})
        heatmaps = torch.from_numpy(outs[0]).to(x.device)
        if not return_attention:
            return heatmaps
        maps = [torch.from_numpy(o).to(x.device) for o in outs[1:]]
        if keep_heads and self.attention == "mean":
            if self.config is None or self.config.num_heads != 1:
                raise ValueError(f"{self.path.name} stores head-averaged attention; export with attention='heads'")
            maps = [m[:, None] for m in maps]
        elif not keep_heads and self.attention == "heads":
            maps = [m.mean(dim=1) for m in maps]
        return heatmaps, maps
