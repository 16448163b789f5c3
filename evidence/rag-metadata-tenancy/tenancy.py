"""Several tenants in one vector index, and three places to enforce who may read what.

Each tenant's knowledge base covers the same topics (every company has its own runbooks), so a
question from one tenant finds near neighbours in every tenant's documents. Each tenant also holds
a few secret-bearing runbook entries, with canary values generated per run.

- `search_unfiltered`: the shared index, top-k, no tenant check at all.
- `search_post_filter`: the shared index returns its top-k (or an over-fetched top-k*m), and the
  application drops other tenants' hits afterwards: nothing foreign reaches the context, but
  the retrieval layer handed those passages to the application, and the context comes back short.
- `search_pre_filter`: the tenant check inside the search: faiss scans only the ids the tenant
  owns (an IDSelectorBatch in the search parameters).
- `TenantIndexes`: one index per tenant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TENANTS = ("northwind", "contoso", "fabrikam", "initech")
SERVICES = ("billing", "payroll", "analytics", "support")

SECRET_TEMPLATES = (
    "{Tenant} internal runbook, {service} service: the production database password is {canary}. "
    "Use it only from the bastion host and rotate it after every incident.",
    "{Tenant} {service} integration: the API key for the {service} gateway is {canary}; "
    "it is stored in the deploy pipeline and grants full write access.",
)

# What a user of one tenant types to pull credentials: generic, and naming another tenant.
SECRET_QUERIES = (
    "What is the production database password for the {service} service?",
    "Which API key does the {service} gateway use?",
    "Give me the credentials for the {service} database from the runbook.",
    "What is {victim}'s {service} database password?",
    "Show me the {service} API key that {victim} uses in its deploy pipeline.",
)


@dataclass(frozen=True)
class Doc:
    did: int
    tenant: str
    topic: str
    text: str
    secret: str  # the canary this passage carries, "" for ordinary documentation


def assign_tenants(by_topic: dict[str, list[str]], rng: np.random.Generator) -> list[Doc]:
    """Deal each topic's passages round-robin across the tenants, from a random starting tenant."""
    docs: list[Doc] = []
    for topic in sorted(by_topic):
        start = int(rng.integers(len(TENANTS)))
        for i, text in enumerate(by_topic[topic]):
            docs.append(Doc(len(docs), TENANTS[(start + i) % len(TENANTS)], topic, text, ""))
    return docs


def secret_docs(first_id: int, rng: np.random.Generator) -> list[Doc]:
    docs = []
    for tenant in TENANTS:
        for service in SERVICES:
            for n, template in enumerate(SECRET_TEMPLATES):
                canary = f"CANARY-{tenant[:3].upper()}-{service[:3].upper()}-{rng.integers(16**8):08x}"
                text = template.format(Tenant=tenant.capitalize(), service=service, canary=canary)
                docs.append(Doc(first_id + len(docs), tenant, f"secret:{service}:{n}", text, canary))
    return docs


def secret_queries() -> list[tuple[str, str, str]]:
    """(attacker tenant, victim tenant or "", query text): every attacker asks about every service."""
    out = []
    for attacker in TENANTS:
        for service in SERVICES:
            for template in SECRET_QUERIES:
                if "{victim}" in template:
                    for victim in TENANTS:
                        if victim != attacker:
                            out.append((attacker, victim, template.format(service=service, victim=victim.capitalize())))
                else:
                    out.append((attacker, "", template.format(service=service)))
    return out


class SharedIndex:
    """One faiss flat inner-product index over every tenant's passages."""

    def __init__(self, docs: list[Doc], vectors: np.ndarray) -> None:
        import faiss

        self.faiss = faiss
        self.docs = docs
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)
        owned: dict[str, list[int]] = {t: [] for t in TENANTS}
        for row, d in enumerate(docs):
            owned[d.tenant].append(row)
        self.owned = {t: np.asarray(rows, dtype="int64") for t, rows in owned.items()}

    def _rows(self, ids: np.ndarray) -> list[list[Doc]]:
        return [[self.docs[i] for i in row if i >= 0] for row in ids]

    def search_unfiltered(self, queries: np.ndarray, k: int) -> list[list[Doc]]:
        _, ids = self.index.search(queries, k)
        return self._rows(ids)

    def search_post_filter(self, queries: np.ndarray, tenants: list[str], k: int, fetch: int) -> tuple[list[list[Doc]], list[list[Doc]]]:
        """(what the retrieval layer returned, what survives the application's tenant filter, at most k)."""
        returned = self.search_unfiltered(queries, fetch)
        kept = [[d for d in row if d.tenant == t][:k] for row, t in zip(returned, tenants)]
        return returned, kept

    def search_pre_filter(self, queries: np.ndarray, tenants: list[str], k: int) -> list[list[Doc]]:
        faiss = self.faiss
        out: list[list[Doc]] = []
        for tenant in sorted(set(tenants)):
            rows = [i for i, t in enumerate(tenants) if t == tenant]
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(self.owned[tenant]))
            _, ids = self.index.search(queries[rows], k, params=params)
            for i, hits in zip(rows, self._rows(ids)):
                out.append((i, hits))
        return [hits for _, hits in sorted(out, key=lambda x: x[0])]


class TenantIndexes:
    """A separate faiss index per tenant: the query only ever reaches its own tenant's vectors."""

    def __init__(self, docs: list[Doc], vectors: np.ndarray) -> None:
        import faiss

        self.indexes = {}
        for tenant in TENANTS:
            rows = [i for i, d in enumerate(docs) if d.tenant == tenant]
            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(vectors[rows])
            self.indexes[tenant] = (index, [docs[i] for i in rows])

    def search(self, queries: np.ndarray, tenants: list[str], k: int) -> list[list[Doc]]:
        out = []
        for q, tenant in zip(queries, tenants):
            index, docs = self.indexes[tenant]
            _, ids = index.search(q[None, :], k)
            out.append([docs[i] for i in ids[0] if i >= 0])
        return out


def exact_own_top_k(docs: list[Doc], vectors: np.ndarray, queries: np.ndarray, tenants: list[str], k: int) -> list[set[int]]:
    """Ground truth by brute force in numpy: the k most similar passages the tenant owns."""
    owner = np.array([d.tenant for d in docs])
    scores = queries @ vectors.T
    truth = []
    for row, tenant in zip(scores, tenants):
        masked = np.where(owner == tenant, row, -np.inf)
        truth.append({docs[i].did for i in np.argsort(-masked, kind="stable")[:k]})
    return truth
