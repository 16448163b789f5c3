"""The pieces of the embedding-inversion lab that do not need the model: records, probes, matching."""

from __future__ import annotations

import numpy as np

FIRST = ("Maria James Aisha Chen Olga Pedro Fatima Lars Ingrid Kofi Yuki Elena Omar Priya Tomas "
         "Sofia Rahul Hannah Mateo Leila Ivan Grace Diego Amara Noah Zara Felix Nadia Arjun Clara").split()
LAST = ("Lopez Okafor Novak Schmidt Tanaka Haddad Kowalski Fischer Moreau Silva Ivanova Patel Larsen "
        "Byrne Rossi Nakamura Dubois Mensah Horvat Jansen Costa Weber Popescu Lindqvist Khan Murphy "
        "Alvarez Kim Brennan Sato").split()
CONDITIONS = ("type 2 diabetes", "HIV", "breast cancer", "major depression", "epilepsy", "asthma",
              "hepatitis C", "schizophrenia", "multiple sclerosis", "Crohn's disease", "tuberculosis",
              "bipolar disorder", "Parkinson's disease", "lung cancer", "alcohol dependence",
              "chronic kidney disease", "psoriasis", "heart failure", "anorexia nervosa", "glaucoma")
YEARS = tuple(range(1945, 2005))
ATTRIBUTES = ("first_name", "surname", "birth_year", "condition")
TEMPLATE = "Patient {first_name} {surname}, born {birth_year}, diagnosed with {condition}."
PROBES = {
    "first_name": "Patient {} .",
    "surname": "Patient {} .",
    "birth_year": "Patient born {}.",
    "condition": "Patient diagnosed with {}.",
}


def dictionaries(sizes: dict[str, int] | None = None) -> dict[str, list[str]]:
    """The attacker's dictionary of plausible values per attribute (the first `sizes[a]` of each)."""
    full = {"first_name": list(FIRST), "surname": list(LAST), "birth_year": [str(y) for y in YEARS],
            "condition": list(CONDITIONS)}
    if sizes is None:
        return full
    for name, n in sizes.items():
        if name not in full:
            raise ValueError(f"unknown attribute {name!r}")
        if not 2 <= n <= len(full[name]):
            raise ValueError(f"{name}: dictionary size must be between 2 and {len(full[name])}, not {n}")
    return {a: full[a][: sizes.get(a, len(full[a]))] for a in ATTRIBUTES}


def make_records(rng: np.random.Generator, n: int, values: dict[str, list[str]]) -> list[dict[str, str]]:
    """`n` private records drawn uniformly from the dictionaries."""
    if n < 1:
        raise ValueError(f"need at least one record, not {n}")
    return [{a: values[a][int(rng.integers(len(values[a])))] for a in ATTRIBUTES} for _ in range(n)]


def render(record: dict[str, str]) -> str:
    return TEMPLATE.format(**record)


def probe_texts(values: dict[str, list[str]]) -> dict[str, list[str]]:
    """One partial sentence per candidate value: what the attacker embeds with the public model."""
    return {a: [PROBES[a].format(v) for v in values[a]] for a in ATTRIBUTES}


def match(store: np.ndarray, probes: np.ndarray) -> np.ndarray:
    """For each stored vector, the index of the most similar probe (cosine; rows unit-normalised)."""
    return np.argmax(store @ probes.T, axis=1)


def add_noise(vectors: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of standard deviation `sigma` per dimension, then renormalised."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, not {sigma}")
    noisy = vectors + rng.normal(0.0, sigma, vectors.shape).astype(vectors.dtype)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)


def top_k_ids(store: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """What an ids-only store answers: the ids of the k nearest records per query, best first."""
    return np.argsort(-(queries @ store.T), axis=1, kind="stable")[:, :k]


def ids_only_labels(store: np.ndarray, probes: np.ndarray, k: int) -> np.ndarray:
    """Label each record with the probe that returned it at the best rank (-1: never returned).

    The caller sees only ranked ids, never vectors or scores; ties on rank go to the earlier probe.
    """
    ids = top_k_ids(store, probes, k)
    best_rank = np.full(len(store), k, dtype=int)
    labels = np.full(len(store), -1, dtype=int)
    for p, row in enumerate(ids):
        for rank, rid in enumerate(row):
            if rank < best_rank[rid]:
                best_rank[rid], labels[rid] = rank, p
    return labels


def recall_at_k(store: np.ndarray, queries: np.ndarray, targets: np.ndarray, k: int) -> float:
    ids = top_k_ids(store, queries, k)
    return float(np.mean([t in row for t, row in zip(targets, ids)]))
