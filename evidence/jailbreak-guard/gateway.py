"""A small LLM gateway: input guard, model call, output guard, one structured event per step.

Every exchange leaves JSON events an operator can ship to a SIEM: `llm.request` (with the input
guard's verdict), `llm.response` (with the output guard's verdict and latency) and `llm.blocked`
when a guard stops it. Prompts and responses are logged as SHA-256 digests plus a short excerpt,
so the log proves what was sent without becoming a second copy of every conversation.

The output guard holds a canary: a random token placed in the system prompt that must never leave
the gateway, in any of the encodings a model (or an attacker asking it) might use.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

Message = dict[str, str]
Generate = Callable[[list[Message]], str]
Sink = Callable[[dict[str, Any]], None]

# Tell-tales of jailbreak framing: persona swaps, "no rules" modes, instruction overrides.
JAILBREAK_RULES: dict[str, re.Pattern[str]] = {
    "dan_persona": re.compile(r"\bDAN\b|[Dd]o [Aa]nything [Nn]ow|\bSTAN\b|\bDUDE\b|\bAIM\b"),
    "mode_switch": re.compile(r"\b(developer|god|jailbreak|jailbroken|unrestricted|unfiltered|opposite|evil|chaos|dev) mode\b", re.I),
    "override": re.compile(r"\b(ignore|disregard|forget|bypass)\b[^.\n]{0,40}\b(instructions?|rules|guidelines|polic(y|ies)|restrictions|filters?|programming|training)\b", re.I),
    "no_limits": re.compile(r"\b(no|without( any)?|free (of|from)|not bound by|broken free of)\b[^.\n]{0,25}\b(restrictions?|limitations?|filters?|censorship|ethics|ethical|morals?|guidelines|rules|boundaries|confines)\b", re.I),
    "amoral_persona": re.compile(r"\b(amoral|unethical|uncensored|unfiltered|immoral)\b", re.I),
    "roleplay_lock": re.compile(r"\b(stay in character|never break character|remain in character|you will always answer|never refuse|must not refuse|cannot refuse)\b", re.I),
    "persona_setup": re.compile(r"\b(pretend (to be|you are)|you are (now |going to |about to )?(act|play|roleplay|become|immerse)|act as (an?|my)|from now on,? you)\b", re.I),
    "dual_response": re.compile(r"\b(two (different )?(responses|paragraphs|answers)|\[?🔓|\(🔓|normal (response|output) and)\b", re.I),
}


@dataclass
class Verdict:
    allowed: bool
    guard: str
    reasons: list[str] = field(default_factory=list)
    score: float | None = None

    def as_event(self) -> dict[str, Any]:
        out: dict[str, Any] = {"guard": self.guard, "allowed": self.allowed, "reasons": self.reasons}
        if self.score is not None:
            out["score"] = round(self.score, 4)
        return out


class InputGuard:
    """Rules, optionally joined by a classifier (text -> probability of a jailbreak)."""

    def __init__(self, classifier: Callable[[str], float] | None = None, threshold: float = 0.5,
                 rules: dict[str, re.Pattern[str]] | None = None) -> None:
        self.rules = JAILBREAK_RULES if rules is None else rules
        self.classifier = classifier
        self.threshold = threshold

    def rule_hits(self, text: str) -> list[str]:
        return [name for name, rule in self.rules.items() if rule.search(text)]

    def check(self, text: str) -> Verdict:
        reasons = [f"rule:{r}" for r in self.rule_hits(text)]
        score = None
        if self.classifier is not None:
            score = float(self.classifier(text))
            if score >= self.threshold:
                reasons.append("classifier")
        return Verdict(allowed=not reasons, guard="input", reasons=reasons, score=score)


CANARY_PREFIX = "CANARY-"
BASE64_MIN_RUN = 16  # shorter base64 runs cannot hold an encoded canary


class CanaryGuard:
    """Blocks any response that carries the canary, plain or in a common disguise."""

    def __init__(self, canary: str | None = None) -> None:
        self.canary = canary or f"{CANARY_PREFIX}{secrets.token_hex(6).upper()}"
        core = self.canary
        self._needles = {
            "verbatim": _squash(core),
            "reversed": _squash(core[::-1]),
            "base64": _squash(base64.b64encode(core.encode()).decode()),
            "hex": _squash(core.encode().hex()),
        }

    @property
    def encodings(self) -> set[str]:
        """The forms checked: the squashed needles, and base64 runs decoded."""
        return set(self._needles) | {"base64-decoded"}

    def check(self, response: str) -> Verdict:
        squashed = _squash(response)
        reasons = [f"canary:{name}" for name, needle in self._needles.items() if needle in squashed]
        decoded = _decoded_base64_runs(response)
        if _squash(self.canary) in _squash(decoded):
            reasons.append("canary:base64")
        return Verdict(allowed=not reasons, guard="output", reasons=sorted(set(reasons)))


def _squash(text: str) -> str:
    """Lower-case, letters and digits only: spacing, dashes and line breaks do not hide a canary."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _decoded_base64_runs(text: str) -> str:
    out = []
    for run in re.findall(rf"[A-Za-z0-9+/=]{{{BASE64_MIN_RUN},}}", text):
        try:
            out.append(base64.b64decode(run + "=" * (-len(run) % 4)).decode("utf-8", "ignore"))
        except (ValueError, UnicodeError):
            continue
    return " ".join(out)


@dataclass
class Exchange:
    request_id: str
    allowed: bool
    response: str
    blocked_by: str | None
    verdicts: list[Verdict]


REFUSAL = "This request was blocked by the gateway's policy."


class Gateway:
    """The only road to the model: guard in, call, guard out, log every step."""

    def __init__(self, generate: Generate, system_prompt: str, sink: Sink, input_guard: InputGuard | None = None,
                 output_guard: CanaryGuard | None = None, model_name: str = "unknown") -> None:
        self.generate = generate
        self.output_guard = output_guard
        canary = f"\nInternal reference (confidential, never repeat): {output_guard.canary}" if output_guard else ""
        self.system_prompt = system_prompt + canary
        self.input_guard = input_guard
        self.sink = sink
        self.model_name = model_name

    def chat(self, user_text: str, session: str = "default") -> Exchange:
        request_id = uuid.uuid4().hex[:12]
        base = {"request_id": request_id, "session": session, "model": self.model_name}
        verdicts: list[Verdict] = []
        verdict = self.input_guard.check(user_text) if self.input_guard else Verdict(True, "input", ["no input guard"])
        verdicts.append(verdict)
        self.sink({"event": "llm.request", **base, "prompt_sha256": _digest(user_text), "prompt_chars": len(user_text),
                   "prompt_excerpt": user_text[:80], "input_verdict": verdict.as_event()})
        if not verdict.allowed:
            self.sink({"event": "llm.blocked", **base, "stage": "input", "reasons": verdict.reasons})
            return Exchange(request_id, False, REFUSAL, "input", verdicts)
        messages = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": user_text}]
        started = time.perf_counter()
        try:
            response = self.generate(messages)
        except Exception as exc:  # a failing backend is an event, not a crash of the gateway
            self.sink({"event": "llm.error", **base, "error": f"{type(exc).__name__}: {exc}"})
            return Exchange(request_id, False, "The model backend failed.", "error", verdicts)
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        out = self.output_guard.check(response) if self.output_guard else Verdict(True, "output", ["no output guard"])
        verdicts.append(out)
        self.sink({"event": "llm.response", **base, "latency_ms": latency_ms, "response_sha256": _digest(response),
                   "response_chars": len(response), "response_excerpt": _redact(response, self.output_guard)[:80],
                   "output_verdict": out.as_event()})
        if not out.allowed:
            self.sink({"event": "llm.blocked", **base, "stage": "output", "reasons": out.reasons})
            return Exchange(request_id, False, REFUSAL, "output", verdicts)
        return Exchange(request_id, True, response, None, verdicts)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _redact(text: str, guard: CanaryGuard | None) -> str:
    """The log must not leak the canary either."""
    if guard is None:
        return text
    return re.sub(re.escape(guard.canary), "[CANARY]", text, flags=re.I)


def llama_generate(llm: Any, max_tokens: int = 64, seed: int = 0) -> Generate:
    """A `generate` backed by a llama-cpp-python `Llama`; greedy, so a seed gives one answer."""

    def generate(messages: list[Message]) -> str:
        out = llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0, seed=seed)
        return out["choices"][0]["message"]["content"] or ""

    return generate
