"""Models for the quantizer tests, each a `file.py:factory` export source, with data to calibrate them.

Random weights from fixed seeds: the tests measure how well quantization preserves each model's
outputs, which needs no training.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

VOCAB, TOKENS, HIDDEN, HEADS, LAYERS, FFN = 1000, 32, 128, 4, 4, 512


class BertLayer(nn.Module):
    """Post-LayerNorm encoder layer as in BERT: attention with an additive mask, exact-erf GELU FFN."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.ModuleList(nn.Linear(HIDDEN, HIDDEN) for _ in range(3))
        self.attn_out = nn.Linear(HIDDEN, HIDDEN)
        self.norm1 = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.ffn_in = nn.Linear(HIDDEN, FFN)
        self.ffn_out = nn.Linear(FFN, HIDDEN)
        self.norm2 = nn.LayerNorm(HIDDEN, eps=1e-12)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = (proj(x).view(b, t, HEADS, HIDDEN // HEADS).transpose(1, 2) for proj in self.qkv)
        scores = q @ k.transpose(-1, -2) / math.sqrt(HIDDEN // HEADS) + mask_bias
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, HIDDEN)
        x = self.norm1(x + self.attn_out(context))
        return self.norm2(x + self.ffn_out(F.gelu(self.ffn_in(x))))


class SentenceEncoder(nn.Module):
    """BERT-style sentence encoder: token, position and type embeddings, 4 layers, masked mean pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, HIDDEN)
        self.positions = nn.Embedding(TOKENS, HIDDEN)
        self.norm = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.layers = nn.ModuleList(BertLayer() for _ in range(LAYERS))
        for module in self.modules():  # BERT's initialisation
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1])
        x = self.norm(self.tokens(input_ids) + self.positions(positions)[None])
        # Hugging Face's additive mask: the float minimum where attention_mask is 0.
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, mask_bias)
        weights = attention_mask[..., None].to(x.dtype)
        return (x * weights).sum(1) / weights.sum(1)


def sentence_batch(count: int, seed: int) -> dict[str, np.ndarray]:
    """`count` samples of (1, TOKENS) ids with a random padded tail, in the data set format."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, (count, 1, TOKENS)).astype(np.int64)
    lengths = rng.integers(TOKENS // 4, TOKENS + 1, count)
    mask = (np.arange(TOKENS)[None, :] < lengths[:, None]).astype(np.int64)[:, None, :]
    ids[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask}


def sentence_encoder():
    torch.manual_seed(0)
    sample = sentence_batch(1, seed=99)
    return SentenceEncoder().eval(), (torch.from_numpy(sample["input_ids"][0]), torch.from_numpy(sample["attention_mask"][0]))
