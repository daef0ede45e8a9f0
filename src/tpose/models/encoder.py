"""The TransPose encoder (supplementary C): post-norm layers, position added to queries and keys only.

Parameters are laid out exactly as ``torch.nn.MultiheadAttention`` stores them (``in_proj_weight``
packing Wq, Wk, Wv; ``out_proj``) so released checkpoints load unchanged, but the forward uses
PyTorch's fused ``scaled_dot_product_attention``. The explicit softmax path is taken only when the
caller asks for the attention maps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import Dropout, fast_dropout


class SelfAttention(nn.Module):
    """Multi-head self-attention with Q, K from ``x + pos`` and V from ``x``.

    In CPU training with attention dropout, PyTorch's fused kernel falls back to its unfused path with
    a slow Bernoulli mask; there the explicit softmax with :func:`fast_dropout` is faster
    (``fast_dropout = False`` restores PyTorch's dropout).
    """

    fast_dropout: bool = True

    def __init__(self, d: int, heads: int, dropout: float = 0.1) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"d ({d}) must be divisible by the number of heads ({heads})")
        self.d, self.heads, self.dropout = d, heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d))
        self.out_proj = nn.Linear(d, d)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, self.d // self.heads).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor | None,
        need_weights: bool = False,
        keep_heads: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: [B, L, d]; pos: [1, L, d] or None. Returns the output and, if asked, the weights."""
        d = self.d
        w, b = self.in_proj_weight, self.in_proj_bias
        qk_in = x if pos is None else x + pos
        qk = F.linear(qk_in, w[: 2 * d], b[: 2 * d])
        q, k = qk.split(d, dim=-1)
        v = F.linear(x, w[2 * d :], b[2 * d :])
        q, k, v = self._split(q), self._split(k), self._split(v)
        p = self.dropout if self.training else 0.0
        weights = None
        cheap_mask = p > 0 and self.fast_dropout and x.device.type == "cpu"
        if need_weights or cheap_mask:
            scale = 1.0 / math.sqrt(d // self.heads)
            attn = torch.softmax((q * scale) @ k.transpose(-2, -1), dim=-1)
            if need_weights:
                weights = attn if keep_heads else attn.mean(dim=1)
            attn = fast_dropout(attn, p) if cheap_mask else F.dropout(attn, p, self.training)
            out = attn @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        bsz, _, n, _ = out.shape
        out = out.transpose(1, 2).reshape(bsz, n, d)
        return self.out_proj(out), weights


class EncoderLayer(nn.Module):
    """``Z = LN(MHSA(X) + X); X* = LN(FFN(Z) + Z)`` with dropout as in the released models."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = SelfAttention(d, heads, dropout)
        self.linear1 = nn.Linear(d, ffn)
        self.linear2 = nn.Linear(ffn, d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.dropout = Dropout(dropout)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor | None, need_weights: bool = False, keep_heads: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn_out, weights = self.self_attn(x, pos, need_weights, keep_heads)
        x = self.norm1(x + self.dropout1(attn_out))
        x = self.norm2(x + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(x))))))
        return x, weights


class Encoder(nn.Module):
    """A stack of encoder layers with no final LayerNorm (as released)."""

    def __init__(self, d: int, heads: int, ffn: int, num_layers: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d, heads, ffn, dropout) for _ in range(num_layers))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(
        self, x: torch.Tensor, pos: torch.Tensor | None, need_weights: bool = False, keep_heads: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        maps: list[torch.Tensor] = []
        for layer in self.layers:
            x, w = layer(x, pos, need_weights, keep_heads)
            if w is not None:
                maps.append(w)
        return x, maps
