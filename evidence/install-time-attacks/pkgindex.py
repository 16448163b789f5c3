"""The pieces of a PEP 503 package index built from files this module makes itself: source
distributions whose setup.py writes a canary, a setuptools wheel repacked from the local
installation (what pip's build isolation fetches from the index), the simple-index pages, and
the typo generator for the typosquatting part. No network but the loopback server that serves them.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

EPOCH = (2026, 1, 1, 0, 0, 0)
EPOCH_TS = 1767225600  # 2026-01-01T00:00:00Z, for tar members
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


def normalize(name: str) -> str:
    """PEP 503 normalized name: what pip and the index compare, not what a person typed."""
    if not _NAME.match(name):
        raise ValueError(f"not a valid distribution name: {name!r}")
    return re.sub(r"[-_.]+", "-", name).lower()


def _tar_add(tf: tarfile.TarFile, path: str, data: bytes) -> None:
    info = tarfile.TarInfo(path)
    info.size, info.mtime, info.mode = len(data), EPOCH_TS, 0o644
    tf.addfile(info, io.BytesIO(data))


def build_sdist(dest: Path, name: str, version: str, marker: Path, tag: str) -> Path:
    """An sdist whose setup.py appends one JSON line to `marker` each time it runs (the canary:
    it proves build-time execution and touches nothing else), then builds a one-module package
    whose TAG says whose code it is."""
    module = normalize(name).replace("-", "_")
    setup_py = (
        "import json, sys\n"
        "from setuptools import setup\n"
        f"with open({str(marker)!r}, 'a') as fh:  # canary: install-time code ran\n"
        f"    fh.write(json.dumps({{'package': {name!r}, 'version': {version!r}, 'argv': sys.argv[1:]}}) + '\\n')\n"
        f"setup(name={name!r}, version={version!r}, py_modules=[{module!r}])\n"
    )
    files = {
        "setup.py": setup_py.encode(),
        "pyproject.toml": b'[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n',
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{module}.py": f"TAG = {tag!r}\n".encode(),
    }
    dest.mkdir(parents=True, exist_ok=True)
    base = f"{module}-{version}"
    path = dest / f"{base}.tar.gz"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for rel, data in files.items():
            _tar_add(tf, f"{base}/{rel}", data)
    import gzip

    path.write_bytes(gzip.compress(raw.getvalue(), mtime=0))
    return path


def repack_installed(dest: Path, dist_name: str) -> Path:
    """A wheel of an installed pure-Python distribution, made from its installed files (its
    RECORD lists them): how the loopback index serves setuptools without downloading it."""
    dist = metadata.distribution(dist_name)
    version = dist.version
    files: dict[str, bytes] = {}
    for entry in dist.files or []:
        rel = str(entry)
        if rel.startswith("..") or "__pycache__" in rel or rel.endswith((".pyc", "/RECORD", "/INSTALLER", "/REQUESTED")):
            continue
        if rel.endswith("direct_url.json"):
            continue
        src = Path(dist.locate_file(entry))
        if src.is_file():
            files[rel] = src.read_bytes()
    info = f"{dist_name.replace('-', '_')}-{version}.dist-info"
    if f"{info}/WHEEL" not in files:
        raise ValueError(f"{dist_name} {version} was not installed from a wheel: no {info}/WHEEL to repack")
    record = "".join(f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\n"
                     for p, d in sorted(files.items()))
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"{dist_name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(files):
            zf.writestr(zipfile.ZipInfo(p, EPOCH), files[p])
    return wheel


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def project_of(filename: str) -> str:
    """The normalized project name of a wheel or sdist file name."""
    stem = filename.removesuffix(".tar.gz").removesuffix(".whl")
    return normalize(stem.split("-")[0])


def write_simple_index(root: Path) -> list[str]:
    """PEP 503 pages under root/simple for every file in root/files, with #sha256= fragments."""
    by_project: dict[str, list[Path]] = {}
    for f in sorted((root / "files").iterdir()):
        by_project.setdefault(project_of(f.name), []).append(f)
    simple = root / "simple"
    simple.mkdir(parents=True, exist_ok=True)
    for project, dists in by_project.items():
        links = "".join(f'<a href="../../files/{html.escape(f.name)}#sha256={sha256(f)}">{html.escape(f.name)}</a><br>\n'
                        for f in dists)
        (simple / project).mkdir(exist_ok=True)
        (simple / project / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    listing = "".join(f'<a href="{p}/">{p}</a><br>\n' for p in sorted(by_project))
    (simple / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{listing}</body></html>\n")
    return sorted(by_project)


# --- typos ---------------------------------------------------------------------------------
KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


def _neighbours(ch: str) -> str:
    for r, row in enumerate(KEYBOARD):
        c = row.find(ch)
        if c >= 0:
            out = row[max(0, c - 1):c] + row[c + 1:c + 2]
            for rr in (r - 1, r + 1):
                if 0 <= rr < len(KEYBOARD):
                    out += KEYBOARD[rr][max(0, c - 1):c + 1]
            return out
    return ""


def one_edit_typos(name: str) -> dict[str, str]:
    """Typos one keystroke away from `name` (omission, swap of neighbours, doubled letter, a
    neighbouring key), each with its kind; names that normalize back to `name` are not typos."""
    base = normalize(name)
    out: dict[str, str] = {}

    def add(candidate: str, kind: str) -> None:
        if candidate and _NAME.match(candidate) and normalize(candidate) != base and candidate not in out:
            out[candidate] = kind

    for i, ch in enumerate(name):
        add(name[:i] + name[i + 1:], "omission")
        if i + 1 < len(name) and name[i + 1] != ch:
            add(name[:i] + name[i + 1] + ch + name[i + 2:], "transposition")
        if ch.isalpha():
            add(name[:i] + ch + name[i:], "doubling")
            for n in _neighbours(ch):
                add(name[:i] + n + name[i + 1:], "neighbour-key")
    return out


def separator_variants(name: str) -> list[str]:
    """Spellings a person might type that PEP 503 treats as the same project (not typos)."""
    variants = {name.replace("-", "_"), name.replace("-", "."), name.title(), name.upper()}
    return sorted(v for v in variants if v != name and _NAME.match(v))


def canary_lines(marker: Path) -> list[dict]:
    if not marker.exists():
        return []
    return [json.loads(line) for line in marker.read_text().splitlines() if line.strip()]
