"""Write a synthetic Field Manual project for benchmarks: `fmbuild.toml` plus a vault of N notes.

Each note is about 4 KB, shaped like the real ones: frontmatter (title, id, tags, maturity, dates,
chapter, ATLAS IDs), headings, paragraphs with wikilinks of every form (bare, with a folder, an
alias, a heading, a block, same-note headings, embeds of notes and images, markdown links), a
few broken links, code fences and code spans full of `[[` and `]]`, `%% comments %%`, inline
tags and block ids. With `lifecycle`, also what a manual grows into: about 1% of notes
deprecated (others still link to them), playbooks with a table of wikilinks (their `covers` /
`applies`), and 20 evidence modules (no records) backing a fifth of the techniques and
patterns, whose prose cites their metrics. Deterministic for a seed.

    from benchmarks.gen_vault import generate_vault
    vault = generate_vault(Path("/tmp/bench"), 10_000, seed=0)   # -> /tmp/bench/vault

    python benchmarks/gen_vault.py /tmp/bench --notes 10000 --seed 0
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path

FOLDERS = ("techniques", "patterns", "playbooks")
TYPE_OF = {"techniques": "technique", "patterns": "pattern", "playbooks": "playbook"}
WORDS = (
    "adversarial evasion poisoning backdoor extraction inversion membership inference drift "
    "injection jailbreak pickle tampering signing provenance registry gateway retrieval vector "
    "embedding agent tool sandbox canary shadow rollback telemetry anomaly gradient surrogate "
    "watermark quantization tokenizer prompt context firewall scanner baseline threshold"
).split()
SECTIONS = ("Overview", "How it works", "In the lab", "What broke and why", "Detection and mitigation", "Sources")
TAGS = ("target/ml-model", "target/llm", "target/rag", "lifecycle/training", "lifecycle/inference",
        "attack/evasion", "attack/poisoning", "control/detective", "source/lab")
ATLAS = ("AML.T0043", "AML.T0020", "AML.T0051", "AML.T0024", "AML.T0018", "AML.T0010")
LOREM = (
    "The model answered with full confidence on inputs it had never seen, and the dashboards "
    "stayed green while the decision boundary moved. Operators saw the drift only after the "
    "weekly evaluation job compared the live distribution with the training baseline."
).split()

CONFIG = """\
[vault]
path = "vault"
templates = "templates"

[maturity]
levels = ["draft", "reviewed", "verified", "deprecated"]

[fields]
required = ["title", "id", "tags", "maturity", "created", "updated"]

[types.technique]
folder = "techniques"
required = ["atlas", "chapter"]

[types.pattern]
folder = "patterns"
required = ["chapter"]

[types.playbook]
folder = "playbooks"
required = ["chapter"]

[tags]
vocabulary = [{vocabulary}]
{chapters}"""

MODULES = 20  # evidence modules the notes share
MODULE_RUN = """\
import json, os
from pathlib import Path

out = Path(os.environ.get("FMBUILD_OUT", "out"))
out.mkdir(parents=True, exist_ok=True)
(out / "metrics.json").write_text(json.dumps({"accuracy": 0.95, "attack": {"success_rate": 0.1}}))
"""

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


def _name(rng: random.Random, i: int) -> str:
    return f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{i:05d}"


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(LOREM) for _ in range(words))


class _Plan:
    def __init__(self, n_notes: int, rng: random.Random) -> None:
        self.paths: list[str] = []  # 'techniques/evasion-drift-00001' (no .md)
        for i in range(n_notes):
            folder = FOLDERS[i % len(FOLDERS)]
            self.paths.append(f"{folder}/{_name(rng, i)}")
        # A few bare names borne twice (in different folders): real vaults have them.
        self.duplicates: list[str] = []
        for i in range(0, n_notes, 997):
            base = self.paths[i].rsplit("/", 1)[1]
            other = FOLDERS[(i + 1) % len(FOLDERS)]
            self.duplicates.append(f"{other}/{base}")
        self.images = [f"attachments/figure-{k:03d}.png" for k in range(20)]


def _link(rng: random.Random, plan: _Plan, own_path: str) -> str:
    """One link, in one of the forms Obsidian accepts (about 2% broken)."""
    target = rng.choice(plan.paths)
    name = target.rsplit("/", 1)[1]
    form = rng.randrange(12)
    if rng.random() < 0.02:
        return f"[[{rng.choice(WORDS)}-missing-{rng.randrange(10**6):06d}]]"
    if form == 0:
        return f"[[{name}]]"
    if form == 1:
        return f"[[{target}]]"
    if form == 2:
        return f"[[{target}|{_sentence(rng, 2)}]]"
    if form == 3:
        return f"[[{target}#{rng.choice(SECTIONS)}]]"
    if form == 4:
        return f"[[{target}#^ref-{rng.randrange(3)}]]"
    if form == 5:
        return f"[[#{rng.choice(SECTIONS)}]]"
    if form == 6:
        return f"[{_sentence(rng, 2)}](/{target.replace(' ', '%20')}.md)"
    if form == 7:
        return f"[[{target.upper()}]]"  # case-insensitive
    if form == 8:
        return f"![[{rng.choice(plan.images)}|300]]"
    if form == 9:
        return f"[[{name}.md|{_sentence(rng, 1)}]]"
    if form == 10:
        return f"[[{target}#{rng.choice(SECTIONS)}|{_sentence(rng, 2)}]]"
    return f"[[../{target}]]"  # relative to the linking note's folder


def _note(rng: random.Random, plan: _Plan, path: str, index: int, lifecycle: bool = False) -> str:
    folder = path.split("/", 1)[0]
    note_type = TYPE_OF[folder]
    name = path.rsplit("/", 1)[1]
    tags = [f"type/{note_type}", *rng.sample(TAGS, 2)]
    if rng.random() < 0.01:
        tags.append("target/unknown-thing")  # not in the vocabulary
    deprecated = lifecycle and index % 97 == 13  # about 1%: a living manual retires notes
    lines = [
        "---",
        f'title: "{name.replace("-", " ").title()}"',
        f"id: fm-{index:08x}",
        "tags:",
        *[f"  - {t}" for t in tags],
        f"maturity: {'deprecated' if deprecated else rng.choice(['draft', 'reviewed'])}",
        "created: 2026-01-15",
        "updated: 2026-02-14",
        f"chapter: {rng.randrange(1, 15)}",
    ]
    if note_type == "technique":
        lines += ["atlas:", *[f"  - {a}" for a in rng.sample(ATLAS, 2)]]
    if deprecated:
        lines.append("deprecated_reason: folded into a broader note")
    if note_type == "pattern":
        technique = rng.choice(plan.paths[0 :: len(FOLDERS)])  # techniques/ holds every third note
        lines += ["mitigates:", f'  - technique: "[[{technique}]]"', '    use: "blocks the path"']
    module = None
    if lifecycle and note_type in ("technique", "pattern") and index % 5 == 0:  # backed by evidence
        module = f"mod-{index % MODULES:02d}"
        lines += [
            "evidence:",
            f"  module: evidence/{module}",
            "  device: cpu",
            "  timeout: 300",
            "  claims:",
            '    accuracy: ">= 0.9"',
            '    attack.success_rate: "<= 0.2"',
        ]
    lines += ["---", "", f"# {name}", ""]
    if module is not None:
        lines += [f"The run measured {{{{evidence:accuracy:.1%}}}} clean accuracy.", ""]
    if lifecycle and note_type == "playbook":  # it declares what it covers in a table of links
        lines += ["## Techniques Covered", "", "| Technique | Step |", "|---|---|"]
        for _ in range(3):
            lines.append(f"| [[{rng.choice(plan.paths)}]] | {_sentence(rng, 3)} |")
        lines.append("")
    for s, section in enumerate(SECTIONS):
        lines += [f"## {section}", ""]
        for p in range(2):
            words = [_sentence(rng, 14)]
            for _ in range(2):
                words.append(_link(rng, plan, path))
                words.append(_sentence(rng, 5))
            if rng.random() < 0.3:
                words.append(f"#{rng.choice(TAGS)}")
            para = " ".join(words)
            if s < 3 and p == 0:
                para += f" ^ref-{s}"
            lines += [para, ""]
        if s == 1:
            lines += [
                "```python",
                "matrix = [[0, 1], [1, 0]]  # [[not-a-link]] inside a fence",
                "print(matrix[0][1]) ; nested = [[[x]]]",
                "```",
                "",
                "Inline code such as `[[also-not-a-link]]` and `a]]b[[c` stays code. "
                "%% an Obsidian comment with [[hidden-link]] %%",
                "",
            ]
        if s == 2 and rng.random() < 0.2:
            lines += [f"![[{rng.choice(plan.paths)}]]", ""]
    lines += ["- " + _sentence(rng, 8) + " " + _link(rng, plan, path), "- " + _sentence(rng, 8), ""]
    return "\n".join(lines)


def generate_vault(root: Path, n_notes: int, seed: int = 0, lifecycle: bool = False) -> Path:
    """Write `root/fmbuild.toml` and `root/vault/` with `n_notes` notes; return the vault path.

    `root` is emptied first when it holds an earlier generated project (a folder with an
    fmbuild.toml and a vault/); any other non-empty folder is refused."""
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        if not ((root / "fmbuild.toml").is_file() and (root / "vault").is_dir()):
            raise ValueError(f"{root} is not empty and is not a generated vault; refusing to overwrite it")
        shutil.rmtree(root)
    rng = random.Random(seed)
    plan = _Plan(n_notes, rng)
    vault = root / "vault"
    for folder in (*FOLDERS, "attachments", ".obsidian"):
        (vault / folder).mkdir(parents=True, exist_ok=True)
    (vault / ".obsidian" / "app.json").write_text('{"newLinkFormat": "absolute"}\n', encoding="utf-8")
    for image in plan.images:
        (vault / image).write_bytes(PNG_1PX)
    for index, path in enumerate(plan.paths):
        (vault / f"{path}.md").write_text(_note(rng, plan, path, index, lifecycle), encoding="utf-8")
    for k, path in enumerate(plan.duplicates):
        (vault / f"{path}.md").write_text(_note(rng, plan, path, n_notes + k, lifecycle), encoding="utf-8")
    for k in range(MODULES if lifecycle else 0):
        module = root / "evidence" / f"mod-{k:02d}"
        module.mkdir(parents=True, exist_ok=True)
        (module / "run.py").write_text(MODULE_RUN, encoding="utf-8")
        (module / "README.md").write_text(f"# mod-{k:02d}\n\nA generated module.\n", encoding="utf-8")
        (module / "module.toml").write_text(f'title = "Generated module {k}"\ndevice = "cpu"\n', encoding="utf-8")
    vocabulary = sorted({*TAGS, *(f"type/{t}" for t in TYPE_OF.values())})
    chapters = "".join(f'\n[[chapters]]\nnumber = {n}\ntitle = "Chapter {n}"\n' for n in range(1, 15))
    (root / "fmbuild.toml").write_text(
        CONFIG.format(vocabulary=", ".join(f'"{t}"' for t in vocabulary), chapters=chapters), encoding="utf-8"
    )
    return vault


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder to write fmbuild.toml and vault/ into")
    parser.add_argument("--notes", type=int, default=10_000, help="number of notes (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lifecycle", action="store_true",
                        help="add deprecated notes, playbook tables and evidence blocks with their modules")
    args = parser.parse_args(argv)
    if args.notes < 1:
        parser.error("--notes must be at least 1")
    try:
        vault = generate_vault(args.root, args.notes, args.seed, args.lifecycle)
    except (ValueError, OSError) as exc:
        print(f"gen_vault: error: {exc}", file=sys.stderr)
        return 2
    print(vault)
    return 0


if __name__ == "__main__":
    sys.exit(main())
