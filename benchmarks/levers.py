"""The training step's configurations: which levers a step turns on, and the step each configuration runs.

A configuration is the reference plus levers, named by joining them with ``+`` (``fused+attn_dropout0``);
``reference`` adds none and ``default`` adds what ``tpose train`` turns on here (see ``bench_train.py``
for what each lever does); each step is the engine's own (``tpose.engine.step.TrainStep``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from tpose.engine.step import TrainStep
from tpose.engine.train import resolve_amp
from tpose.engine.train_config import DEFAULTS
from tpose.models.dropout import set_fast_dropout
from tpose.models.encoder import SelfAttention

LEVERS = ("channels_last", "fused", "fast_dropout", "attn_dropout0", "bf16", "compile")
# configurations timed besides reference and default unless asked otherwise: each lever alone, and fused
# with the cheap dropout masks or with attention dropout 0 (which lets it run the flash kernel)
DEFAULT_LEVERS = ("channels_last", "fused", "fast_dropout", "fused+fast_dropout", "fused+attn_dropout0", "bf16",
                  "compile")


@dataclass(frozen=True)
class StepConfig:
    """One way of running a training step: a name and the levers it turns on."""

    name: str
    levers: frozenset[str]

    def has(self, lever: str) -> bool:
        return lever in self.levers

    @property
    def flash(self) -> bool:
        """Whether attention runs the fused kernel without an [L, L] matrix (CPU flash needs dropout 0)."""
        return self.has("fused") and self.has("attn_dropout0")


def default_levers() -> frozenset[str]:
    """The levers ``tpose train`` turns on here with its default config."""

    train = DEFAULTS["train"]
    on = {"fused"}
    if train.get("fast_dropout", True):
        on.add("fast_dropout")
    if train.get("channels_last", True):
        on.add("channels_last")
    if resolve_amp(train["amp"], torch.device("cpu")) == torch.bfloat16:
        on.add("bf16")
    if train.get("compile"):
        on.add("compile")
    return frozenset(on)


def parse_config(name: str, default: frozenset[str] | None = None) -> StepConfig:
    """``"channels_last+bf16"`` -> its levers; ``reference`` adds none, ``default`` adds what tpose train uses."""
    levers: set[str] = set()
    for part in name.split("+"):
        part = part.strip()
        if part == "reference":
            continue
        if part == "default":
            levers |= default if default is not None else default_levers()
        elif part in LEVERS:
            levers.add(part)
        else:
            raise ValueError(f"unknown lever {part!r} in {name!r}; known: reference, default, {', '.join(LEVERS)}")
    return StepConfig(name, frozenset(levers))


def configurations(levers: Sequence[str], default: frozenset[str]) -> list[StepConfig]:
    """reference, default, then the requested ones, without two of the same levers (the first name wins)."""
    out: list[StepConfig] = []
    for name in ["reference", "default", *levers]:
        cfg = parse_config(name, default)
        if all(c.levers != cfg.levers for c in out):
            out.append(cfg)
    return out


def attention_bytes(model: torch.nn.Module, size: tuple[int, int], batch: int, cfg: StepConfig) -> int:
    """Rough peak of the [B, heads, L, L] tensors a step keeps for backward (0 with the flash kernel).

    Per layer: the softmax output, the dropout mask and the dropped weights; the explicit path also
    keeps the head-averaged map it returns.
    """
    if cfg.flash:
        return 0
    c = model.config
    stride = model.backbone_stride
    tokens = (size[0] // stride) * (size[1] // stride)
    per_head = batch * tokens * tokens * 4
    kept = c.num_layers * 3 * c.num_heads * per_head
    if not cfg.has("fused"):
        kept += c.num_layers * per_head
    return kept + 2 * c.num_heads * per_head  # one layer's logits and softmax while it runs


class _Explicit(torch.nn.Module):
    """The released formulation: the model called with ``return_attention=True`` (explicit softmax(QK^T)V,
    every layer's map kept), its heatmaps returned so the engine's step can run it like the model itself."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images, return_attention=True)[0]


def build_step(
    base: torch.nn.Module, cfg: StepConfig, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, lr: float
) -> tuple[Callable[[], torch.Tensor], torch.nn.Module]:
    """A no-argument training step for ``cfg`` on its own copy of ``base`` and its own Adam: the engine's
    ``TrainStep`` (what ``tpose train`` runs), with the model set up as the levers say."""

    model = copy.deepcopy(base).train()
    set_fast_dropout(model, cfg.has("fast_dropout"))
    if cfg.has("channels_last"):
        model = model.to(memory_format=torch.channels_last)
    if cfg.has("attn_dropout0"):
        for m in model.modules():
            if isinstance(m, SelfAttention):
                m.dropout = 0.0
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    net: torch.nn.Module = model if cfg.has("fused") else _Explicit(model)
    if cfg.has("compile"):
        net = torch.compile(net)
    step = TrainStep(net, optimizer, torch.device("cpu"), channels_last=cfg.has("channels_last"),
                     amp_dtype=torch.bfloat16 if cfg.has("bf16") else None)
    return (lambda: step(x, target, weight)), model
