"""Claims: `"<op> <value or expression>"` checked against a run's metrics.

A claim reads `>= 0.95`, `== true`, `!= 'pickle'`, or compares with other metrics of the same run:
`>= fgsm_accuracy + 0.4`, `< (clean.accuracy - attacked.accuracy) / 2`. The grammar is tiny and
parsed by hand (never `eval`):

    claim   := OP expr
    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := ('+' | '-') unary | atom
    atom    := NUMBER | 'true' | 'false' | STRING | PATH | '(' expr ')'
    PATH    := NAME ('.' SEGMENT)*      NAME = [A-Za-z_][A-Za-z0-9_]*, SEGMENT = [A-Za-z0-9_]+

Bounds (a note is input like any other): a claim is at most 500 characters, nests at most 32
levels (parentheses and signs), and a number has at most 40 characters and must be finite, so
no claim can exhaust the stack or Python's integer-string limit. NaN or Infinity, measured or
computed, fails every comparison with a message that says so.

Ordering operators and arithmetic take numbers only; `==` and `!=` also take booleans and strings
(same type on both sides; floats compare with a relative tolerance of 1e-9). A metric the run did
not produce makes the claim fail with a message that says so.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Union

OPERATORS = (">=", "<=", "==", "!=", ">", "<")
_FLOAT_REL_TOL = 1e-9
MAX_CLAIM_LENGTH = 500
MAX_DEPTH = 32
MAX_NUMBER_LENGTH = 40
MAX_METRIC_LENGTH = 200


class ClaimError(ValueError):
    """A claim that cannot be parsed; the message says where and what was expected."""


class MissingMetric(LookupError):
    """`reason` is a whole sentence ("the run did not produce metric 'x'"); `problem` says
    only what is wrong with the path ("which the run did not produce", "which is a group, not a value"), for
    messages that name the metric themselves."""

    def __init__(self, path: str, reason: str, problem: str = "") -> None:
        super().__init__(reason)
        self.problem = problem or reason
        self.path = path
        self.reason = reason


# --- syntax tree --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    value: Union[float, int, bool, str]

    def text(self) -> str:
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, str):
            return repr(self.value)
        return repr(self.value)


@dataclass(frozen=True, slots=True)
class MetricPath:
    path: str

    def text(self) -> str:
        return self.path


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: "Node"

    def text(self) -> str:
        return f"{self.op}{self.operand.text()}"


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: "Node"
    right: "Node"

    def text(self) -> str:
        return f"({self.left.text()} {self.op} {self.right.text()})"


Node = Union[Literal, MetricPath, Unary, Binary]


@dataclass(frozen=True, slots=True)
class Claim:
    metric: str  # dotted path of the measured metric (the claim's key)
    op: str
    rhs: Node
    source: str  # the claim exactly as written

    def metric_paths(self) -> list[str]:
        """Every metric the claim reads: its own and those in the expression."""
        found = [self.metric]
        _collect_paths(self.rhs, found)
        return list(dict.fromkeys(found))

    def check(self, metrics: dict[str, Any]) -> "Verdict":
        return check_claim(self, metrics)


@dataclass(frozen=True, slots=True)
class Verdict:
    metric: str
    expected: str  # the claim as written, e.g. '>= 0.95'
    measured: Any  # the measured value, None when the metric is missing
    ok: bool
    message: str


def _collect_paths(node: Node, found: list[str]) -> None:
    if isinstance(node, MetricPath):
        found.append(node.path)
    elif isinstance(node, Unary):
        _collect_paths(node.operand, found)
    elif isinstance(node, Binary):
        _collect_paths(node.left, found)
        _collect_paths(node.right, found)


# --- tokens and parser --------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<op>>=|<=|==|!=|>|<)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<path>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
  | (?P<punct>[-+*/()])
    """,
    re.VERBOSE,
)
_KEYWORDS = {"true": True, "false": False, "True": True, "False": False}
_METRIC_KEY = re.compile(r"^[^\s.]+(?:\.[^\s.]+)*$")


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ClaimError(f"unexpected character {text[pos]!r} at column {pos + 1}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Tok(kind, match.group(), pos))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def nest(self, tok: _Tok) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ClaimError(
                f"the expression nests deeper than {MAX_DEPTH} levels (parentheses and signs) "
                f"at column {tok.pos + 1}; write it more simply"
            )

    def peek(self) -> _Tok | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise ClaimError("the expression ends too early")
        self.i += 1
        return tok

    def claim(self) -> tuple[str, Node]:
        first = self.peek()
        if first is None:
            raise ClaimError("empty claim (write an operator and a value, e.g. '>= 0.9')")
        if first.kind != "op":
            raise ClaimError(
                f"a claim starts with one of {' '.join(OPERATORS)} (got {first.text!r}); e.g. '>= 0.9'"
            )
        self.i += 1
        rhs = self.expr()
        rest = self.peek()
        if rest is not None:
            raise ClaimError(f"unexpected {rest.text!r} at column {rest.pos + 1}")
        return first.text, rhs

    def expr(self) -> Node:
        node = self.term()
        while (tok := self.peek()) is not None and tok.kind == "punct" and tok.text in "+-":
            self.i += 1
            node = Binary(tok.text, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while (tok := self.peek()) is not None and tok.kind == "punct" and tok.text in "*/":
            self.i += 1
            node = Binary(tok.text, node, self.unary())
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if tok is not None and tok.kind == "punct" and tok.text in "+-":
            self.i += 1
            self.nest(tok)
            node = Unary(tok.text, self.unary())
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> Node:
        tok = self.take()
        if tok.kind == "number":
            if len(tok.text) > MAX_NUMBER_LENGTH:
                raise ClaimError(
                    f"the number at column {tok.pos + 1} has {len(tok.text)} characters "
                    f"(at most {MAX_NUMBER_LENGTH}); use an exponent, e.g. 1e30"
                )
            value = float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
            if isinstance(value, float) and not math.isfinite(value):
                raise ClaimError(f"the number at column {tok.pos + 1} is too large to be a finite float")
            return Literal(value)
        if tok.kind == "string":
            return Literal(_unquote(tok.text))
        if tok.kind == "path":
            if tok.text in _KEYWORDS:
                return Literal(_KEYWORDS[tok.text])
            return MetricPath(tok.text)
        if tok.kind == "punct" and tok.text == "(":
            self.nest(tok)
            node = self.expr()
            self.depth -= 1
            close = self.take()
            if close.text != ")":
                raise ClaimError(f"expected ')' at column {close.pos + 1}, got {close.text!r}")
            return node
        if tok.kind == "op":
            raise ClaimError(f"a second comparison {tok.text!r} at column {tok.pos + 1}")
        raise ClaimError(f"unexpected {tok.text!r} at column {tok.pos + 1}")


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def parse_claim(metric: str, text: Any) -> Claim:
    """Parse one claim (`metric: "<op> <expr>"`); raise `ClaimError` with a fix hint."""
    if isinstance(metric, str) and len(metric) > MAX_METRIC_LENGTH:
        raise ClaimError(f"the metric path {metric[:40]!r}… is {len(metric)} characters long (at most {MAX_METRIC_LENGTH})")
    if not isinstance(metric, str) or not _METRIC_KEY.match(metric):
        raise ClaimError(f"{metric!r} is not a metric path (dotted names, no spaces)")
    if isinstance(text, bool) or isinstance(text, (int, float)):
        raise ClaimError(
            f"the claim on {metric} is a bare value; quote an operator with it, e.g. \"== {_yaml(text)}\""
        )
    if not isinstance(text, str):
        raise ClaimError(f"the claim on {metric} must be a string such as \">= 0.9\"")
    if len(text) > MAX_CLAIM_LENGTH:
        raise ClaimError(f"the claim on {metric} is {len(text)} characters long (at most {MAX_CLAIM_LENGTH})")
    op, rhs = _Parser(text.strip()).claim()
    return Claim(metric=metric, op=op, rhs=rhs, source=text.strip())


def parse_claims(claims: Any) -> tuple[list[Claim], list[tuple[str, str]]]:
    """All claims of an evidence block: (parsed, [(metric, error message)])."""
    parsed: list[Claim] = []
    errors: list[tuple[str, str]] = []
    if claims is None:
        return parsed, errors
    if not isinstance(claims, dict):
        return parsed, [("claims", "claims must be a mapping of metric paths to '<op> <value>'")]
    for metric, text in claims.items():
        try:
            parsed.append(parse_claim(str(metric), text))
        except ClaimError as exc:
            errors.append((str(metric), str(exc)))
    return parsed, errors


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- evaluation ---------------------------------------------------------------------------


def lookup(metrics: Any, path: str) -> Any:
    """The value at a dotted path; a flat key holding dots (`"fgsm.eps_0.1"`) also resolves.

    Raises `MissingMetric` saying which part is absent.
    """
    parts = path.split(".")
    found = _lookup(metrics, parts)
    if found is _ABSENT:
        raise MissingMetric(path, f"the run did not produce metric {path!r}", "which the run did not produce")
    if isinstance(found, (dict, list)):
        kind = "group" if isinstance(found, dict) else "list"
        raise MissingMetric(path, f"metric {path!r} is a {kind}, not a value", f"which is a {kind}, not a value")
    return found


_ABSENT = object()


def _lookup(node: Any, parts: list[str]) -> Any:
    if not parts:
        return node
    if isinstance(node, dict):
        # Longest key first, so that a flat "a.b" key wins over nesting only when it exists.
        for n in range(len(parts), 0, -1):
            key = ".".join(parts[:n])
            if key in node:
                found = _lookup(node[key], parts[n:])
                if found is not _ABSENT:
                    return found
        return _ABSENT
    if isinstance(node, list) and parts[0].isdigit():
        index = int(parts[0])
        return _lookup(node[index], parts[1:]) if index < len(node) else _ABSENT
    return _ABSENT


class _TypeProblem(Exception):
    pass


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def evaluate(node: Node, metrics: dict[str, Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, MetricPath):
        return lookup(metrics, node.path)
    if isinstance(node, Unary):
        value = evaluate(node.operand, metrics)
        if not _is_number(value):
            raise _TypeProblem(f"{node.op}{node.operand.text()} needs a number, got {value!r}")
        return -value if node.op == "-" else value
    left = evaluate(node.left, metrics)
    right = evaluate(node.right, metrics)
    if not (_is_number(left) and _is_number(right)):
        raise _TypeProblem(f"{node.op} needs numbers, got {_show(left)} and {_show(right)}")
    try:
        return _arithmetic(node, left, right)
    except OverflowError:
        raise _TypeProblem(f"{node.text()} overflows a float") from None


def _arithmetic(node: Binary, left: Any, right: Any) -> Any:
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left - right
    if node.op == "*":
        return left * right
    if right == 0:
        raise _TypeProblem(f"division by zero in {node.text()}")
    return left / right


def _equal(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return math.isclose(a, b, rel_tol=_FLOAT_REL_TOL, abs_tol=1e-12)
    return a == b


def compare(op: str, measured: Any, expected: Any) -> bool:
    """`measured op expected`; raises `_TypeProblem` on values that cannot be compared."""
    if op in ("==", "!="):
        same_kind = (_is_number(measured) and _is_number(expected)) or type(measured) is type(expected)
        if not same_kind:
            raise _TypeProblem(
                f"cannot compare {type(measured).__name__} {measured!r} with {type(expected).__name__} {expected!r}"
            )
        equal = _equal(measured, expected)
        return equal if op == "==" else not equal
    if not (_is_number(measured) and _is_number(expected)):
        raise _TypeProblem(f"{op} needs numbers, got {measured!r} and {expected!r}")
    if op == ">=":
        return measured >= expected
    if op == ">":
        return measured > expected
    if op == "<=":
        return measured <= expected
    return measured < expected


def _not_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def check_claim(claim: Claim, metrics: dict[str, Any]) -> Verdict:
    try:
        measured = lookup(metrics, claim.metric)
    except MissingMetric as exc:
        return Verdict(claim.metric, claim.source, None, False, exc.reason)
    if _not_finite(measured):
        return Verdict(claim.metric, claim.source, measured, False,
                       f"measured {_show(measured)}, not a finite number: no claim holds on it")
    try:
        expected = evaluate(claim.rhs, metrics)
    except MissingMetric as exc:
        return Verdict(claim.metric, claim.source, measured, False, f"the expression needs metric {exc.path!r}, {exc.problem}")
    except _TypeProblem as exc:
        return Verdict(claim.metric, claim.source, measured, False, str(exc))
    if _not_finite(expected):
        return Verdict(claim.metric, claim.source, measured, False,
                       f"the expression {claim.rhs.text().strip('()')} is {_show(expected)}, not a finite number")
    try:
        ok = compare(claim.op, measured, expected)
    except _TypeProblem as exc:
        return Verdict(claim.metric, claim.source, measured, False, str(exc))
    shown = _show(expected)
    literal = isinstance(claim.rhs, Literal)
    target = f"{claim.op} {shown}" if literal else f"{claim.op} {claim.rhs.text().strip('()')} = {shown}"
    if ok:
        return Verdict(claim.metric, claim.source, measured, True, f"{_show(measured)} {target}")
    return Verdict(claim.metric, claim.source, measured, False, f"measured {_show(measured)}, expected {target}")


def check_presence(claim: Claim, metrics: dict[str, Any]) -> Verdict:
    """Smoke scale: every metric the claim reads must exist; its value is not judged."""
    for path in claim.metric_paths():
        try:
            lookup(metrics, path)
        except MissingMetric as exc:
            return Verdict(claim.metric, claim.source, None, False, exc.reason)
    measured = lookup(metrics, claim.metric)
    return Verdict(claim.metric, claim.source, measured, True, "present (smoke scale: value not judged)")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return repr(value if len(value) <= 80 else value[:80] + "…")
    if isinstance(value, int) and abs(value) >= 10**30:
        return f"{float(value):.6g}" if abs(value) < 10**308 else f"an integer of {len(str(abs(value))) if value.bit_length() < 10000 else 'many'} digits"
    return str(value)
