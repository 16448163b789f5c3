"""The manual's ATLAS coverage as a layer for the ATLAS / ATT&CK Navigator (layer format 4.5).

One technique object per ATLAS technique a live technique note maps to, once per tactic it sits
under (the Navigator colours a cell per tactic). Its score is the coverage the manual has earned:

- 2: a pattern with verified evidence mitigates one of the notes that map to it;
- 1: the manual covers it, but no verified control stands behind it yet.

ATLAS techniques the manual does not cover are left out, so the Navigator shows them blank. The
comment and links name the notes; links are absolute only when `[site] url` is configured.
"""

from __future__ import annotations

import json
import re
from typing import Any

import networkx as nx

from fmbuild import __version__, frameworks
from fmbuild.graph.atlas_coverage import COVERED, VERIFIED, covered
from fmbuild.site.urls import page_url

LAYER_VERSION = "4.5"
NAVIGATOR_VERSION = "5.1.0"
DOMAIN = "atlas-atlas"  # the domain MITRE's own ATLAS layers use
COLOURS = {VERIFIED: "#31a354", COVERED: "#fdd49e"}


def tactic_shortname(tactic_id: str) -> str:
    """ATLAS tactic ID -> the Navigator's shortname ('AML.TA0000' -> 'ai-model-access')."""
    entry = frameworks.lookup(tactic_id)
    name = entry.name if entry is not None else tactic_id
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def layer(graph: nx.MultiDiGraph, site_url: str = "") -> dict[str, Any]:
    techniques: list[dict[str, Any]] = []
    for node, cover in covered(graph).items():
        notes, score = cover.notes, cover.score
        controls = sorted({str(graph.nodes[c].get("title", c)) for c in cover.verified_controls})
        titles = [f"{graph.nodes[n].get('title', n)} ({graph.nodes[n].get('maturity', 'draft')})" for n in notes]
        comment = "Field Manual: " + "; ".join(titles)
        comment += ". Verified controls: " + ", ".join(controls) + "." if controls else ". No verified control yet."
        entry: dict[str, Any] = {
            "techniqueID": node,
            "score": score,
            "color": COLOURS[score],
            "comment": comment,
            "enabled": True,
            "showSubtechniques": False,
            "metadata": [{"name": "note", "value": n} for n in notes],
        }
        if site_url:
            base = site_url.rstrip("/") + "/"
            entry["links"] = [{"label": str(graph.nodes[n].get("title", n)), "url": base + page_url(n)} for n in notes]
        for tactic in graph.nodes[node].get("tactics") or [None]:
            techniques.append({**entry, "tactic": tactic_shortname(tactic)} if tactic else dict(entry))
    return {
        "name": "MLSecOps Field Manual: ATLAS coverage",
        "versions": {"layer": LAYER_VERSION, "navigator": NAVIGATOR_VERSION},
        "domain": DOMAIN,
        "description": "ATLAS techniques the Field Manual covers; score 2: a control with verified evidence "
                       "stands behind it, 1: covered without a verified control yet.",
        "metadata": [{"name": "atlas_data_version", "value": frameworks.versions().get(frameworks.ATLAS, "")},
                     {"name": "generator", "value": f"fmbuild {__version__}"}],
        "techniques": techniques,
        "gradient": {"colors": [COLOURS[COVERED], COLOURS[VERIFIED]], "minValue": COVERED, "maxValue": VERIFIED},
        "legendItems": [{"label": "covered, verified control", "color": COLOURS[VERIFIED]},
                        {"label": "covered, no verified control yet", "color": COLOURS[COVERED]}],
        "hideDisabled": False,
    }


def to_navigator(graph: nx.MultiDiGraph, site_url: str = "") -> str:
    return json.dumps(layer(graph, site_url), indent=2, ensure_ascii=False) + "\n"
