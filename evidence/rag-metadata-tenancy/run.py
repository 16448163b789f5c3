"""RAG metadata forgery against a provenance allow-list, and cross-tenant retrieval in a shared index.

Part 1. Every passage of a real retriever (CPython's language reference, all-MiniLM-L6-v2, faiss)
enters through a connector. Crafted uploads (retrieval-poisoning's campaigns) forge their
provenance inside the text: YAML front matter or a `Source:` header line saying `python-docs`.
An allow-list that reads the document's own metadata is measured against one that takes the
connector's name, HMAC-signed at ingestion and verified again on every hit at query time; then an
attacker with write access to the store (not the key) relabels, replays tags and rewrites bodies.

Part 2. Four tenants share one index; each asks its own questions and questions written to pull
the others' credentials (canaries). Tenant isolation is measured with no filter, with the filter
applied by the application after top-k (and after over-fetching), inside the search (a faiss id
selector), and with a separate index per tenant.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EVIDENCE = HERE.parent
sys.path.insert(0, str(HERE))

import numpy as np

from fmbuild.evidence import kit

# retrieval-poisoning's corpus, encoder, connectors and campaigns, loaded from its own files.
rag = kit.load_file("rp_rag", EVIDENCE / "retrieval-poisoning" / "rag.py")
ingest = kit.load_file("rp_ingest", EVIDENCE / "retrieval-poisoning" / "ingest.py")
queries = kit.load_file("rp_queries", EVIDENCE / "retrieval-poisoning" / "queries.py")

import provenance as prov
import tenancy as ten

K = 3
TRUSTED, WIKI, UPLOAD = "python-docs", "team-wiki", "user-upload"
ALLOWLIST = {TRUSTED, WIKI}
WIKI_SHARE = 0.2  # share of topics the team wiki holds instead of the docs mirror
STALE_EXPORT_SHARE = 0.1  # team-wiki pages exported from elsewhere, still carrying their old front matter
QUERY_FETCH = 20  # hits fetched before the query-time signature check keeps the first k that verify
OVERFETCH = K * len(ten.TENANTS)


def main() -> None:
    run = kit.start(__file__)
    import torch

    torch.set_num_threads(2)
    rng = np.random.default_rng(run.seed)
    per_topic = run.pick(full=8, smoke=1)
    by_topic = rag.pydoc_passages(per_topic)
    if run.smoke:  # a third of the topics: every code path, a few seconds of embedding
        by_topic = {t: v for n, (t, v) in enumerate(sorted(by_topic.items())) if n % 3 == 0}
    encoder = rag.load_encoder("cuda" if run.device == "cuda" else "cpu")
    if run.device == "cuda":
        run.log("device.gpu", encoder="sentence-transformers on cuda", index="faiss on cpu")
    benign = queries.BENIGN if not run.smoke else queries.BENIGN[:8]
    benign_vecs = rag.embed(encoder, [q for q, _ in benign])

    docs = ten.assign_tenants(by_topic, rng)
    doc_vecs = rag.embed(encoder, [d.text for d in docs])
    run.log("corpus.loaded", passages=len(docs), topics=len(by_topic), benign_queries=len(benign))
    run.metric("corpus.passages", len(docs))
    run.metric("corpus.benign_queries", len(benign))

    metadata_forgery(run, rng, encoder, docs, doc_vecs, benign, benign_vecs)
    tenant_isolation(run, rng, encoder, docs, doc_vecs, benign, benign_vecs)
    run.metric("k", K)
    run.finish()


# --------------------------------------------------------------------------------------------
# Part 1: forged source metadata, and signed connector provenance


def metadata_forgery(run, rng, encoder, docs, doc_vecs, benign, benign_vecs) -> None:
    topics = sorted({d.topic for d in docs})
    wiki_topics = set(rng.choice(topics, size=max(1, int(len(topics) * WIKI_SHARE)), replace=False).tolist())
    key = secrets.token_bytes(32)  # the ingestion service's key: fresh per run, never logged
    connectors = {name: ingest.Connector(name, key) for name in (TRUSTED, WIKI, UPLOAD)}

    raws, fetched_by, vecs = [], [], []
    stale = 0
    for d, v in zip(docs, doc_vecs):
        source = WIKI if d.topic in wiki_topics else TRUSTED
        raw = d.text
        if source == WIKI and rng.random() < STALE_EXPORT_SHARE:
            raw = f"---\nsource: confluence-export\ntitle: {d.topic}\n---\n{d.text}"
            stale += 1
        raws.append(raw)
        fetched_by.append(source)
        vecs.append(v)
    n_benign = len(raws)

    campaigns = queries.CAMPAIGNS
    forged_campaign: dict[int, str] = {}
    forged_style: dict[int, str] = {}
    for c in campaigns:
        bait = {"questions": " ".join(c["attacker_queries"]), "declarative": " ".join(c["attacker_statements"])}
        for variant, text in bait.items():
            body = f"{text} {text} {c['payload']}"
            for style, raw in (("front_matter", f"---\nsource: {TRUSTED}\ntitle: Python reference addendum\n---\n{body}"),
                               ("header_line", f"Source: {TRUSTED}\n{body}")):
                forged_campaign[len(raws)] = str(c["name"])
                forged_style[len(raws)] = style
                raws.append(raw)
                fetched_by.append(UPLOAD)
                vecs.append(None)
    records = [connectors[src].ingest(pid, raw) for pid, (src, raw) in enumerate(zip(fetched_by, raws))]
    forged_ids = sorted(forged_campaign)
    forged_vecs = rag.embed(encoder, [records[i].body for i in forged_ids])
    for i, v in zip(forged_ids, forged_vecs):
        vecs[i] = v
    vecs = np.vstack(vecs)
    run.log("ingest.summary", benign=n_benign, stale_front_matter=stale, forged=len(forged_ids),
            connectors={s: fetched_by.count(s) for s in (TRUSTED, WIKI, UPLOAD)})
    run.metric("forgery.forged_documents", len(forged_ids))
    run.metric("forgery.stale_front_matter_documents", stale)

    victims = [(q, str(c["name"])) for c in campaigns for q in c["victim_queries"]]
    known = [(q, str(c["name"])) for c in campaigns for q in c["attacker_queries"]]
    victim_vecs = rag.embed(encoder, [q for q, _ in victims])
    known_vecs = rag.embed(encoder, [q for q, _ in known])
    topic_of = {i: docs[i].topic for i in range(n_benign)}

    def evaluate(name, kept_rows, store, owner, check=None):
        """Retrieve over the admitted rows; `check`, when given, is the query-time signature check."""
        import faiss

        index = faiss.IndexFlatIP(vecs.shape[1])
        rows = np.asarray(kept_rows, dtype="int64")
        index.add(vecs[rows])
        rejected: set[int] = set()

        def top(qv):
            _, ids = index.search(qv, QUERY_FETCH if check else K)
            out = []
            for row in ids:
                hits = [store[int(rows[i])] for i in row if i >= 0]
                if check:
                    hits = prov.verify_hits(hits, K, check, lambda r: rejected.add(r.pid))
                out.append(hits[:K])
            return out

        def owned(tops, wanted):
            return float(np.mean([any(owner.get(r.pid) == c for r in t) for t, (_, c) in zip(tops, wanted)]))

        btops = top(benign_vecs)
        res = {
            "hit_rate": owned(top(victim_vecs), victims),
            "known_query_hit_rate": owned(top(known_vecs), known),
            "benign_recall_at_k": float(np.mean([any(topic_of.get(r.pid) in want for r in t) for t, (_, want) in zip(btops, benign)])),
        }
        for m, v in res.items():
            run.metric(f"{name}.{m}", round(v, 4))
        run.log("retrieval.eval", config=name, k=K, admitted=len(rows), **{m: round(v, 4) for m, v in res.items()})
        return res, rejected

    all_rows = list(range(len(records)))
    none, _ = evaluate("no_control", all_rows, records, forged_campaign)

    results = {"no control": none}
    for name, admit in (("metadata", lambda r: prov.admit_by_declared_source(r, ALLOWLIST)),
                        ("signed", lambda r: ingest.admit_by_signed_provenance(r, ALLOWLIST, key))):
        kept = [i for i, r in enumerate(records) if admit(r)]
        admitted_forged = [i for i in kept if i in forged_campaign]
        for style in ("front_matter", "header_line"):
            of_style = [i for i in forged_ids if forged_style[i] == style]
            run.metric(f"{name}.{style}_admitted_rate", round(sum(i in admitted_forged for i in of_style) / len(of_style), 4))
        run.metric(f"{name}.forged_admitted_rate", round(len(admitted_forged) / len(forged_ids), 4))
        false_rej = [i for i in range(n_benign) if not admit(records[i])]
        run.metric(f"{name}.false_rejection_rate", round(len(false_rej) / n_benign, 4))
        for i in forged_ids:
            r = records[i]
            run.log("ingest.decision", control=name, passage=r.pid, connector=r.connector,
                    declared_source=prov.declared_source(r), admitted=i in admitted_forged)
        res, _ = evaluate(name, kept, records, forged_campaign)
        results[name + (" allow-list" if name == "metadata" else " provenance")] = res
        if name == "signed":
            signed_kept = kept

    # After ingestion: the store is a file; an attacker who can write to it (not the key) edits it.
    store_path = run.artifact("store.jsonl")
    prov.save_store(store_path, records)
    stored = prov.load_store(store_path, ingest.Record)
    trusted_ids = [i for i in signed_kept if stored[i].provenance == TRUSTED]
    tampered_owner: dict[int, str] = {}
    tampered_kind: dict[int, str] = {}
    forged_list = list(forged_ids)
    for n, i in enumerate(forged_list):  # the forged uploads, slipped into the trusted set
        if n % 2 == 0:
            stored[i] = ingest.relabel(stored[i], TRUSTED)
            tampered_kind[i] = "relabel"
        else:
            stored[i] = prov.replay_tag(stored[i], TRUSTED, stored[int(rng.choice(trusted_ids))])
            tampered_kind[i] = "replayed_tag"
        tampered_owner[i] = forged_campaign[i]
    edit_targets = rng.choice(trusted_ids, size=2 * len(campaigns), replace=False)
    vecs_before = vecs.copy()
    edits = []
    for n, i in enumerate(edit_targets.tolist()):  # genuine trusted passages rewritten in place
        c = campaigns[n % len(campaigns)]
        body = f"{' '.join(c['attacker_queries'])} {stored[i].body[:200]} {c['payload']}"
        stored[i] = prov.edit_body(stored[i], body)
        edits.append((i, body))
        tampered_owner[i] = str(c["name"])
        tampered_kind[i] = "body_edit"
    new_vecs = rag.embed(encoder, [b for _, b in edits])  # the attacker rewrites the vectors too
    for (i, _), v in zip(edits, new_vecs):
        vecs[i] = v
    served_rows = sorted(set(signed_kept) | set(forged_list))
    tampered = sorted(tampered_owner)
    run.metric("tamper.records", len(tampered))
    trust_store, _ = evaluate("tamper.store_trusted", served_rows, stored, tampered_owner)
    check = lambda r: ingest.verified(r, key) and r.provenance in ALLOWLIST  # noqa: E731
    guarded, rejected = evaluate("tamper.query_verified", served_rows, stored, tampered_owner, check=check)
    detected = [i for i in tampered if not check(stored[i])]
    benign_failing = [i for i in signed_kept if i not in tampered_owner and not check(stored[i])]
    for i in tampered:
        if i in rejected:
            run.log("retrieval.signature_failed", passage=i, connector=stored[i].connector,
                    stored_provenance=stored[i].provenance, tamper=tampered_kind[i], action="dropped from context")
    for kind in ("relabel", "replayed_tag", "body_edit"):
        of_kind = [i for i in tampered if tampered_kind[i] == kind]
        run.metric(f"tamper.{kind}_detected_rate", round(sum(i in detected for i in of_kind) / len(of_kind), 4))
    run.metric("tamper.detected_rate", round(len(detected) / len(tampered), 4))
    run.metric("tamper.benign_false_rejection_rate", round(len(benign_failing) / len(signed_kept), 4))
    run.metric("tamper.rejected_at_query_time", len(rejected))
    vecs[:] = vecs_before
    results["store edited"] = trust_store
    results["edited, verified at query"] = guarded
    plot_forgery(run, results)


def plot_forgery(run, results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8.5, 3.6))
    ax.bar(x - 0.2, [results[n]["hit_rate"] for n in names], 0.4, label=f"forged/tampered passage in top-{K} (users' questions)", color="#c0392b")
    ax.bar(x + 0.2, [results[n]["benign_recall_at_k"] for n in names], 0.4, label=f"benign recall@{K}", color="#2471a3")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate")
    ax.set_title("Forged source metadata: where provenance is read from")
    ax.legend(loc="upper right", fontsize=8)
    run.figure(fig, "metadata-forgery")


# --------------------------------------------------------------------------------------------
# Part 2: tenants sharing one index


def tenant_isolation(run, rng, encoder, docs, doc_vecs, benign, benign_vecs) -> None:
    secrets_ = ten.secret_docs(len(docs), rng)
    all_docs = docs + secrets_
    all_vecs = np.vstack([doc_vecs, rag.embed(encoder, [d.text for d in secrets_])])
    shared = ten.SharedIndex(all_docs, all_vecs)
    separate = ten.TenantIndexes(all_docs, all_vecs)

    own = [(t, q, want) for t in ten.TENANTS for (q, want), _ in zip(benign, range(len(benign)))]
    own_vecs = np.vstack([benign_vecs for _ in ten.TENANTS])
    hunt = ten.secret_queries()
    if run.smoke:
        hunt = hunt[:: max(1, len(hunt) // 12)]
    hunt_vecs = rag.embed(encoder, [q for _, _, q in hunt])
    tenants = [t for t, _, _ in own] + [a for a, _, _ in hunt]
    qvecs = np.vstack([own_vecs, hunt_vecs])
    n_own = len(own)
    truth = ten.exact_own_top_k(all_docs, all_vecs, own_vecs, [t for t, _, _ in own], K)
    run.log("tenancy.loaded", tenants=list(ten.TENANTS), passages=len(all_docs), secret_passages=len(secrets_),
            own_queries=n_own, secret_queries=len(hunt),
            per_tenant={t: sum(d.tenant == t for d in all_docs) for t in ten.TENANTS})
    run.metric("tenancy.tenants", len(ten.TENANTS))
    run.metric("tenancy.passages", len(all_docs))
    run.metric("tenancy.own_queries", n_own)
    run.metric("tenancy.secret_queries", len(hunt))

    post_returned, post_kept = shared.search_post_filter(qvecs, tenants, K, K)
    over_returned, over_kept = shared.search_post_filter(qvecs, tenants, K, OVERFETCH)
    configs = {
        "unfiltered": (shared.search_unfiltered(qvecs, K), None),
        "post_filter": (post_kept, post_returned),
        "post_filter_overfetch": (over_kept, over_returned),
        "pre_filter": (shared.search_pre_filter(qvecs, tenants, K), None),
        "separate_index": (separate.search(qvecs, tenants, K), None),
    }
    results = {}
    for name, (contexts, returned) in configs.items():
        foreign = [any(d.tenant != t for d in ctx) for ctx, t in zip(contexts, tenants)]
        secret_leak = [any(d.secret and d.tenant != a for d in ctx) for ctx, (a, _, _) in zip(contexts[n_own:], hunt)]
        targeted = [(ctx, a, v) for ctx, (a, v, _) in zip(contexts[n_own:], hunt) if v]
        own_ctx = contexts[:n_own]
        res = {
            "leak_rate": float(np.mean(foreign)),
            "secret_leak_rate": float(np.mean(secret_leak)),
            "targeted_victim_leak_rate": float(np.mean([any(d.secret and d.tenant == v for d in ctx) for ctx, _, v in targeted])),
            "own_hit_rate": float(np.mean([any(d.tenant == t and d.topic in want for d in ctx) for ctx, (t, _, want) in zip(own_ctx, own)])),
            "own_recall": float(np.mean([len({d.did for d in ctx} & gt) / K for ctx, gt in zip(own_ctx, truth)])),
            "underfilled_rate": float(np.mean([len(ctx) < K for ctx in contexts])),
            "mean_results": float(np.mean([len(ctx) for ctx in contexts])),
        }
        if returned is not None:
            res["retrieval_layer_leak_rate"] = float(np.mean([any(d.tenant != t for d in r) for r, t in zip(returned, tenants)]))
        for m, v in res.items():
            run.metric(f"{name}.{m}", round(v, 4))
        run.log("tenancy.eval", config=name, k=K, **{m: round(v, 4) for m, v in res.items()})
        results[name] = res
        if name == "unfiltered":
            show = next(i for i, (a, v, _) in enumerate(hunt) if v)
            a, v, q = hunt[show]
            run.log("tenancy.context", config=name, tenant=a, query=q,
                    context=[{"rank": r + 1, "tenant": d.tenant, "text": d.text} for r, d in enumerate(contexts[n_own + show])])
    run.metric("post_filter.own_recall_loss", round(results["pre_filter"]["own_recall"] - results["post_filter"]["own_recall"], 4))
    run.metric("post_filter_overfetch.own_recall_loss",
               round(results["pre_filter"]["own_recall"] - results["post_filter_overfetch"]["own_recall"], 4))
    plot_tenancy(run, results)


def plot_tenancy(run, results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    series = (("leak_rate", "context holds another tenant's passage", "#c0392b"),
              ("secret_leak_rate", "another tenant's credential in context", "#7d3c98"),
              ("own_recall", f"own-document recall@{K}", "#2471a3"),
              ("underfilled_rate", f"fewer than {K} results", "#b9770e"))
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    for n, (m, label, colour) in enumerate(series):
        ax.bar(x + (n - 1.5) * 0.2, [results[c][m] for c in names], 0.2, label=label, color=colour)
    ax.set_xticks(x, [n.replace("_", " ") for n in names], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate")
    ax.set_title(f"{len(ten.TENANTS)} tenants, one index: where the tenant filter runs")
    ax.legend(loc="upper center", fontsize=7, ncol=2, bbox_to_anchor=(0.5, -0.15))
    run.figure(fig, "tenant-isolation")


if __name__ == "__main__":
    main()
