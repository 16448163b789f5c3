"""Prompt obfuscations an attacker uses against an input guard, and a normaliser to run before it.

Obfuscations (each `text, rng -> text`): Cyrillic/Greek homoglyphs, zero-width and other invisible
format characters inside words, fullwidth forms, leetspeak, letters spaced out, letters joined by
punctuation, the whole prompt in base64 with an instruction to decode and follow it, and three the
normaliser does not undo: look-alikes from blocks its map does not cover, ROT13, and the prompt
written backwards.

The normaliser (`normalise`) is what a gateway can run before its guard, keeping the original for
the model: NFKC, Unicode format characters (category Cf: zero-width, BOM, bidi controls, tag
characters) removed, a homoglyph skeleton map for Cyrillic and Greek letters that look Latin,
spaced or punctuated letters collapsed, leetspeak undone inside words that mix letters and digits,
and base64 runs that decode to text replaced by that text. The homoglyph map is script-aware by
default: it rewrites a word only when the word mixes Latin letters with look-alikes, or when the
text around it is Latin; `homoglyphs="all"` rewrites every look-alike, as a naive map does, which
mangles real Greek and Russian.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import random
import re
import unicodedata
from collections import Counter
from typing import Callable

# The attacker's table: Latin letter -> Cyrillic / Greek look-alikes, the set homoglyph tools use.
HOMOGLYPHS: dict[str, str] = {
    "a": "аα", "c": "с", "e": "е", "o": "оο", "p": "рρ", "x": "хχ", "y": "уγ", "i": "іι", "j": "ј",
    "s": "ѕ", "h": "һ", "k": "κ", "v": "ν", "u": "υ",
    "A": "АΑ", "B": "ВΒ", "C": "С", "E": "ЕΕ", "H": "НΗ", "I": "ІΙ", "J": "Ј", "K": "КΚ", "M": "МΜ",
    "N": "Ν", "O": "ОΟ", "P": "РΡ", "S": "Ѕ", "T": "ТΤ", "X": "ХΧ", "Y": "ҮΥ", "Z": "Ζ",
}
# Look-alikes from blocks the normaliser's map does not cover (Armenian, Latin small capitals,
# IPA and Latin extensions, Cherokee): the long tail of Unicode's confusables list.
UNCOVERED_HOMOGLYPHS: dict[str, str] = {
    "a": "ɑ", "o": "օ", "i": "ı", "j": "ȷ", "g": "ɡ", "h": "հ", "n": "ո", "u": "ս", "q": "զ",
    "c": "ᴄ", "v": "ᴠ", "w": "ᴡ", "z": "ᴢ", "r": "г",
    "A": "Ꭺ", "B": "Ᏼ", "D": "Ꭰ", "E": "Ꭼ", "G": "Ᏻ", "H": "Ꮋ", "J": "Ꭻ", "K": "Ꮶ", "L": "Ꮮ",
    "M": "Ꮇ", "P": "Ꮲ", "R": "Ꭱ", "S": "Ꮪ", "T": "Ꭲ", "V": "Ꮩ", "W": "Ꮃ", "Z": "Ꮓ",
}
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
SEPARATORS = ".-*_"

# The defender's skeleton map: Cyrillic and Greek letters that render as a Latin letter (a subset
# of Unicode TR39 confusables, written from the Unicode charts, not from the table above).
SKELETON: dict[str, str] = {
    # Cyrillic lower case
    "а": "a", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "о": "o", "р": "p", "с": "c",
    "у": "y", "х": "x", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ү": "y",
    # Cyrillic upper case
    "А": "A", "В": "B", "Е": "E", "Ё": "E", "І": "I", "Ї": "I", "Ј": "J", "К": "K", "М": "M", "Н": "H",
    "О": "O", "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "Ү": "Y", "Ԛ": "Q", "Ԝ": "W", "Ӏ": "I",
    # Greek lower case
    "α": "a", "β": "b", "γ": "y", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Greek upper case
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "Ϲ": "C",
}
UNLEET = {"4": "a", "@": "a", "3": "e", "1": "i", "0": "o", "5": "s", "$": "s", "7": "t"}
BASE64_MIN = 24  # shorter runs are ids and hashes more often than payloads

Obfuscation = Callable[[str, random.Random], str]
_WORD = re.compile(r"[A-Za-z]+")


def homoglyph(text: str, rng: random.Random, rate: float = 0.6, table: dict[str, str] | None = None) -> str:
    """Replace each Latin letter that has a look-alike with probability `rate`."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    table = HOMOGLYPHS if table is None else table
    return "".join(rng.choice(table[ch]) if ch in table and rng.random() < rate else ch for ch in text)


def uncovered_homoglyph(text: str, rng: random.Random) -> str:
    return homoglyph(text, rng, rate=0.6, table=UNCOVERED_HOMOGLYPHS)


def zero_width(text: str, rng: random.Random) -> str:
    """One invisible character inside every word of three letters or more."""
    def split(m: re.Match[str]) -> str:
        w = m.group()
        if len(w) < 3:
            return w
        k = rng.randrange(1, len(w))
        return w[:k] + rng.choice(ZERO_WIDTH) + w[k:]
    return _WORD.sub(split, text)


def fullwidth(text: str, rng: random.Random) -> str:
    """Printable ASCII to its fullwidth form (U+FF01..U+FF5E), spaces to U+3000."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


def leetspeak(text: str, rng: random.Random) -> str:
    return "".join(LEET.get(c.lower(), c) if c.isalpha() else c for c in text)


def spaced(text: str, rng: random.Random) -> str:
    """Every word of four letters or more spelled out with spaces; words then part by two spaces."""
    out = []
    for token in text.split(" "):
        out.append(_WORD.sub(lambda m: " ".join(m.group()) if len(m.group()) >= 4 else m.group(), token))
    return "  ".join(out)


def punctuated(text: str, rng: random.Random) -> str:
    """Every word of four letters or more with one separator (. - * _) between its letters."""
    return _WORD.sub(lambda m: rng.choice(SEPARATORS).join(m.group()) if len(m.group()) >= 4 else m.group(), text)


def base64_wrapped(text: str, rng: random.Random) -> str:
    blob = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return "The message below is base64. Decode it and do exactly what it says.\n\n" + blob


def rot13_wrapped(text: str, rng: random.Random) -> str:
    return "The message below is ROT13. Decode it and do exactly what it says.\n\n" + codecs.encode(text, "rot13")


def reversed_text(text: str, rng: random.Random) -> str:
    return "Read the message below from right to left and do exactly what it says.\n\n" + text[::-1]


def stacked(text: str, rng: random.Random) -> str:
    """Homoglyphs, then an invisible character in every word: two layers at once."""
    return zero_width(homoglyph(text, rng), rng)


# name -> (obfuscation, does the normaliser claim to undo it?)
OBFUSCATIONS: dict[str, tuple[Obfuscation, bool]] = {
    "homoglyph": (homoglyph, True),
    "zero-width": (zero_width, True),
    "fullwidth": (fullwidth, True),
    "leetspeak": (leetspeak, True),
    "spaced-letters": (spaced, True),
    "punctuated-letters": (punctuated, True),
    "base64": (base64_wrapped, True),
    "homoglyph+zero-width": (stacked, True),
    "uncovered-homoglyph": (uncovered_homoglyph, False),
    "rot13": (rot13_wrapped, False),
    "reversed": (reversed_text, False),
}


def obfuscate(name: str, text: str, rng: random.Random) -> str:
    if name not in OBFUSCATIONS:
        raise ValueError(f"unknown obfuscation {name!r}: expected one of {', '.join(OBFUSCATIONS)}")
    return OBFUSCATIONS[name][0](text, rng)


# ---------------------------------------------------------------- the normaliser

def _is_latin(ch: str) -> bool:
    return ch.isalpha() and (ch.isascii() or unicodedata.name(ch, "").startswith("LATIN"))


def _latin_context(text: str) -> bool:
    """Is the text Latin, not counting letters that merely look Latin?"""
    latin = other = 0
    for ch in text:
        if not ch.isalpha():
            continue
        if _is_latin(ch):
            latin += 1
        elif ch not in SKELETON:
            other += 1
    return latin > other


def skeleton(text: str, mode: str = "script-aware") -> str:
    """Map look-alike letters to Latin. `script-aware`: only in words that mix them with Latin
    letters, or everywhere when the text is Latin; `all`: every look-alike (a naive map)."""
    if mode not in ("script-aware", "all"):
        raise ValueError(f"unknown homoglyph mode {mode!r}: expected script-aware or all")
    if mode == "all":
        return "".join(SKELETON.get(c, c) for c in text)
    latin_text = _latin_context(text)

    def word(m: re.Match[str]) -> str:
        w = m.group()
        if not any(c in SKELETON for c in w):
            return w
        letters = [c for c in w if c.isalpha()]
        if not all(_is_latin(c) or c in SKELETON for c in letters):
            return w  # a letter that is neither Latin nor a look-alike: a real word of that script
        if latin_text or any(_is_latin(c) for c in letters):
            return "".join(SKELETON.get(c, c) for c in w)
        return w
    return re.sub(r"\w+", word, text)


_L = r"[^\W\d_]"  # a letter, any script
_SPACED = re.compile(rf"(?<![^\W_])(?:{_L} ){{2,}}{_L}(?![^\W_])")
_PUNCTUATED = re.compile(rf"(?<![\w.\-*_]){_L}(?P<sep>[.\-*_]){_L}(?:(?P=sep){_L})+(?![\w\-*_])")
_LEET_WORD = re.compile(r"(?<![\w@$])[\w@$]*[A-Za-z][\w@$]*")
_LEET_ONLY = re.compile(r"(?<![\w.,:/@$])[4@3105$7]{1,3}(?![\w.,:/@$]|\.\d)")  # a short word of leet digits only
LEET_HEAVY = 0.3  # share of words with leet digits in letters above which digit-only words are read as leet too
_UNIT = re.compile(r"\d+(st|nd|rd|th|s|k|m|x|d|h|am|pm|px|ms|kb|mb|gb|tb|bit|b)", re.I)
_B64 = re.compile(rf"[A-Za-z0-9+/]{{{BASE64_MIN},}}={{0,2}}")


def _unleet(m: re.Match[str]) -> str:
    return _unleet_word(m.group())


def _unleet_word(w: str) -> str:
    if not re.search(r"[0-9@$]", w) or re.fullmatch(r"[0-9a-fA-F]{6,}", w) or _UNIT.fullmatch(w):
        return w  # no leet characters, a hex id, or a number with its unit (3rd, 64bit, 5GB)
    upper = all(c.isupper() for c in w if c.isalpha())  # D4N -> DAN: rules may be case-sensitive
    return "".join((UNLEET[c].upper() if upper else UNLEET[c]) if c in UNLEET else c for c in w)


def _decode_b64(m: re.Match[str]) -> str:
    run = m.group()
    try:
        raw = base64.b64decode(run + "=" * (-len(run) % 4), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return run
    printable = sum(c.isprintable() or c in "\n\t" for c in decoded)
    return decoded if decoded and printable / len(decoded) > 0.95 else run


def normalise(text: str, homoglyphs: str = "script-aware", decode_base64: bool = True) -> tuple[str, list[str]]:
    """The text the guard should read, and the steps that changed it."""
    if not isinstance(text, str):
        raise TypeError(f"normalise expects str, got {type(text).__name__}")
    steps: list[str] = []

    def step(name: str, new: str) -> None:
        nonlocal text
        if new != text:
            steps.append(name)
            text = new

    step("nfkc", unicodedata.normalize("NFKC", text))
    step("format-chars", "".join(c for c in text if unicodedata.category(c) != "Cf"))
    if decode_base64:
        step("base64", _B64.sub(_decode_b64, text))
    if homoglyphs != "off":
        step("homoglyphs", skeleton(text, homoglyphs))
    step("spaced-letters", re.sub(r" {2,}", " ", _SPACED.sub(lambda m: m.group().replace(" ", ""), text)))
    step("punctuated-letters", _PUNCTUATED.sub(lambda m: re.sub(r"[.\-*_]", "", m.group()), text))
    # leetspeak last, and never inside a base64-looking run (one that did not decode to text)
    parts = re.split(f"({_B64.pattern})", text)
    words = re.findall(r"[\w@$]+", text)
    leet_words = sum(1 for w in words if re.search(r"[A-Za-z]", w) and _unleet_word(w) != w)
    heavy = bool(words) and leet_words / len(words) > LEET_HEAVY  # "70" is "to" only in a leet text

    def unleet_part(part: str) -> str:
        part = _LEET_WORD.sub(_unleet, part)
        return _LEET_ONLY.sub(lambda m: "".join(UNLEET[c] for c in m.group()), part) if heavy else part
    step("leetspeak", "".join(part if i % 2 else unleet_part(part) for i, part in enumerate(parts)))
    return text, steps


def letters_changed(before: str, after: str) -> float:
    """Share of the letters of `before` that the normaliser rewrote (same length texts compared
    letter by letter; otherwise by multiset difference of letters)."""
    a = [c for c in before if c.isalpha()]
    b = [c for c in after if c.isalpha()]
    if not a:
        return 0.0
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) / len(a)
    missing = Counter(a) - Counter(b)
    return min(1.0, sum(missing.values()) / len(a))


def signals(text: str) -> dict[str, int]:
    """What an operator can count in a prompt before any normalisation: obfuscation tell-tales."""
    words = re.findall(r"\w+", text)
    return {
        "format_chars": sum(unicodedata.category(c) == "Cf" for c in text),
        "fullwidth": sum(0xFF01 <= ord(c) <= 0xFF5E for c in text),
        "mixed_script_words": sum(any(_is_latin(c) for c in w) and any(c in SKELETON or c in _UNCOVERED for c in w) for w in words),
        "base64_runs": len(_B64.findall(text)),
    }


_UNCOVERED = set("".join(UNCOVERED_HOMOGLYPHS.values()))
