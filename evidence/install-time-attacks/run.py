"""Install-time attacks on the real pip, against a package index on loopback.

A PEP 503 simple index is built from files this module makes (genuine wheels, attackers' sdists
whose setup.py writes a canary, and a setuptools wheel repacked from the local installation so
pip's build isolation finds its build backend on the same index) and served on 127.0.0.1. Every
pip call runs with --no-cache-dir and --index-url pointing at that index only, into a throwaway
--target inside the run's folder; each call is logged (command, exit code, first line pip said).

1. Code at install time: the project's `lab-tokenizer` has a reviewed 1.0.0 wheel; the attacker
   (a stolen upload token) publishes 1.0.1 as an sdist only. Install modes: plain by name,
   `--dry-run`, `pip download`, `--prefer-binary`, `--only-binary :all:`, `--require-hashes` with a
   hash-pinned lock, and both. Counted: setup.py executions (canary lines) per mode.
2. Typosquatting: one-keystroke typos of the project's requirement names; the attacker registers
   half of those typed (sdists with the canary). Counted per mode: typos that resolve and install,
   canary runs, refusals by the lock and by an allow-list of normalized names; plus the separator
   and case spellings PEP 503 treats as the genuine name (an allow-list must normalize too).
3. Dependency confusion: an internal index serves `acme-feature-store` 1.2.0; the attacker puts
   99.0.0 of the same name on the public index; pip is given both (`--extra-index-url`).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EVIDENCE = HERE.parent

from fmbuild.evidence import kit

# dependency-freezing's wheel builder and loopback HTTP server (a folder served on 127.0.0.1).
wheels = kit.load_file("df_wheels", EVIDENCE / "dependency-freezing" / "wheels.py")
hub = kit.load_file("df_hub", EVIDENCE / "dependency-freezing" / "hub.py")
sys.path.insert(0, str(HERE))
import pkgindex  # noqa: E402

run = kit.start(__file__)
rng = random.Random(run.seed)
TYPOS_PER_NAME = run.pick(full=2, smoke=1)
# Full scale builds sdists the way pip does by default, in an isolated build environment that pip
# fills from the same loopback index (the repacked setuptools wheel). The smoke run, a code-path
# check only, builds with --no-build-isolation and plays a reduced set of modes.
ISOLATION = run.pick(full=[], smoke=["--no-build-isolation"])
REQUIREMENTS = ["numpy", "requests", "scikit-learn", "safetensors", "lab-tokenizer"]
VERSION = "1.0.0"
INTERNAL = ("acme-feature-store", "1.2.0")
CONFUSION_VERSION = "99.0.0"

run.log("pip.build_mode", build_isolation=not ISOLATION, pip=subprocess.run(
    [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True).stdout.split(" from ")[0])
work = run.out / "work"
shutil.rmtree(work, ignore_errors=True)
(work / "tmp").mkdir(parents=True)
canary = run.out / "canary" / "setup-py-ran.jsonl"
shutil.rmtree(canary.parent, ignore_errors=True)
canary.parent.mkdir(parents=True)

# --- the indexes ----------------------------------------------------------------------------
public, internal = work / "index-public", work / "index-internal"
genuine_wheels = {}
for name in REQUIREMENTS:
    genuine_wheels[name] = wheels.build_wheel(public / "files", name, VERSION, 'TAG = "genuine"\n')
setuptools_wheel = pkgindex.repack_installed(public / "files", "setuptools")
run.log("index.build_backend", wheel=setuptools_wheel.name, sha256=pkgindex.sha256(setuptools_wheel),
        note="repacked from the local installation: pip's build isolation installs it from the loopback index")
# the attacker's release of a real dependency: a higher version, sdist only
pkgindex.build_sdist(public / "files", "lab-tokenizer", "1.0.1", canary, "attacker")

typed: list[tuple[str, str, str]] = []  # (typo, of requirement, kind)
for name in REQUIREMENTS[:run.pick(full=len(REQUIREMENTS), smoke=1)]:
    candidates = pkgindex.one_edit_typos(name)
    for typo in rng.sample(sorted(candidates), TYPOS_PER_NAME):
        typed.append((typo, name, candidates[typo]))
squatted = set(rng.sample([t for t, _, _ in typed], (len(typed) + 1) // 2))
for typo in sorted(squatted):
    pkgindex.build_sdist(public / "files", typo, "1.0.0", canary, "squat")
# spellings of the names whose newest release is a wheel (lab-tokenizer's is the attacker's sdist)
variants = [(rng.choice(pkgindex.separator_variants(name)), name) for name in REQUIREMENTS[:run.pick(full=4, smoke=1)]]

# dependency confusion: the internal package, and the attacker's same name on the public index
internal_wheel = wheels.build_wheel(internal / "files", INTERNAL[0], INTERNAL[1], 'TAG = "genuine"\n')
pkgindex.build_sdist(public / "files", INTERNAL[0], CONFUSION_VERSION, canary, "attacker")
projects = pkgindex.write_simple_index(public)
pkgindex.write_simple_index(internal)
run.log("index.built", public_projects=len(projects), typos_typed=len(typed), typos_squatted=len(squatted),
        squats=sorted(squatted))

lock = work / "requirements.lock"
lock.write_text("".join(f"{n}=={VERSION} --hash=sha256:{pkgindex.sha256(w)}\n" for n, w in genuine_wheels.items()))
internal_lock = work / "internal.lock"
internal_lock.write_text(f"{INTERNAL[0]}=={INTERNAL[1]} --hash=sha256:{pkgindex.sha256(internal_wheel)}\n")
ALLOWED = {pkgindex.normalize(n) for n in REQUIREMENTS}

pip_env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
pip_env.update(HOME=str(work / "home"), TMPDIR=str(work / "tmp"), PIP_CONFIG_FILE=os.devnull, PIP_NO_INPUT="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
calls = {"n": 0, "seconds": 0.0}


def pip(part: str, mode: str, args: list[str], index: str, extra: str | None = None,
        command: str = "install") -> tuple[int, str, Path]:
    """One real pip call against the loopback index only, into a fresh target in the run folder."""
    calls["n"] += 1
    target = work / "targets" / f"{calls['n']:03d}"
    dest = ["--target", str(target)] if command == "install" else ["--dest", str(target)]
    idx = ["--index-url", index] + (["--extra-index-url", extra] if extra else [])
    cmd = [sys.executable, "-m", "pip", command, "--no-cache-dir", *idx, *dest, "--no-deps", "--quiet", *ISOLATION, *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=pip_env, capture_output=True, text=True, timeout=180)
    calls["seconds"] += time.perf_counter() - t0
    said = (proc.stderr or proc.stdout).strip()
    shown = " ".join(a.replace(str(work), "$WORK").replace(sys.executable, "python") for a in cmd)
    run.log("pip.invoke", part=part, mode=mode, cmd=shown, rc=proc.returncode,
            stderr_first=said.splitlines()[0][:200] if said else "")
    return proc.returncode, said, target


def tag_in(target: Path, name: str) -> str:
    """Whose code an install left: the TAG of the one module it put in the target."""
    module = target / f"{pkgindex.normalize(name).replace('-', '_')}.py"
    package = target / pkgindex.normalize(name).replace("-", "_") / "__init__.py"
    for f in (module, package):
        if f.exists():
            return f.read_text().split("=", 1)[1].strip().strip("'\"")
    return "not installed"


def canary_count() -> int:
    return len(pkgindex.canary_lines(canary))


server = hub.Hub(public)
internal_server = hub.Hub(internal)
PUBLIC, INTERNAL_URL = f"{server.url}/simple/", f"{internal_server.url}/simple/"
try:
    # --- 1. code at install time ----------------------------------------------------------
    modes = {
        "plain": ("install", ["lab-tokenizer"]),
        "dry_run": ("install", ["--dry-run", "lab-tokenizer"]),
        "download": ("download", ["lab-tokenizer"]),
        "prefer_binary": ("install", ["--prefer-binary", "lab-tokenizer"]),
        "only_binary": ("install", ["--only-binary", ":all:", "lab-tokenizer"]),
        "hash_lock": ("install", ["--require-hashes", "-r", str(lock)]),
        "wheel_only_hash_lock": ("install", ["--only-binary", ":all:", "--require-hashes", "-r", str(lock)]),
        "only_binary_attacker_version": ("install", ["--only-binary", ":all:", "lab-tokenizer==1.0.1"]),
    }
    if run.smoke:
        modes = {k: modes[k] for k in ("plain", "dry_run", "wheel_only_hash_lock")}
    for mode, (command, args) in modes.items():
        before = canary_count()
        rc, said, target = pip("install_code", mode, args, PUBLIC, command=command)
        runs = canary_count() - before
        got = tag_in(target, "lab-tokenizer") if command == "install" and "--dry-run" not in args else (
            "downloaded " + ",".join(sorted(p.name for p in target.glob("*"))) if target.exists() else "nothing")
        run.metric(f"install_code.{mode}.canary_runs", runs)
        run.metric(f"install_code.{mode}.refused", rc != 0)
        if command == "install" and "--dry-run" not in args:
            run.metric(f"install_code.{mode}.got", got)
        if mode in ("hash_lock", "wheel_only_hash_lock"):
            genuine = sum(tag_in(target, n) == "genuine" for n in REQUIREMENTS)
            run.metric(f"install_code.{mode}.genuine_installed_rate", genuine / len(REQUIREMENTS))
        run.log("install.result", mode=mode, rc=rc, got=got, setup_py_runs=runs,
                hooks=[" ".join(c["argv"]) for c in pkgindex.canary_lines(canary)[before:]])
    m = run.metrics["install_code"]
    by_name = ("plain", "dry_run", "download")
    guarded = ("only_binary", "hash_lock", "wheel_only_hash_lock", "only_binary_attacker_version")
    run.metric("install_code.by_name_canary_runs", sum(m[k]["canary_runs"] for k in by_name if k in m))
    run.metric("install_code.by_name_modes_that_ran_code", sum(m[k]["canary_runs"] > 0 for k in by_name if k in m))
    run.metric("install_code.guarded_canary_runs", sum(m[k]["canary_runs"] for k in guarded if k in m))

    # --- 2. typosquatting -----------------------------------------------------------------
    res = {"plain": [], "only_binary": [], "hash_lock": []}
    plain_canary = 0
    for typo, of, kind in typed:
        before = canary_count()
        rc, _, target = pip("typosquat", "plain", [typo], PUBLIC)
        plain_canary += canary_count() - before
        res["plain"].append(rc == 0 and tag_in(target, typo) == "squat")
        if typo in squatted:  # an unregistered name fails in every mode; only a squat can pass
            rc, _, target = pip("typosquat", "only_binary", ["--only-binary", ":all:", typo], PUBLIC)
        res["only_binary"].append(typo in squatted and rc == 0)
        rc, said, target = pip("typosquat", "hash_lock", ["--require-hashes", "-r", str(lock), typo], PUBLIC)
        res["hash_lock"].append(rc == 0 and tag_in(target, typo) == "squat")
        if rc != 0 and typo in squatted:
            run.log("lock.refused", typo=typo, rc=rc, pip_says=" ".join(said.splitlines()[:2])[:240])
        allowed = pkgindex.normalize(typo) in ALLOWED
        run.log("typo.result", typo=typo, of=of, kind=kind, squatted=typo in squatted, plain_installed=res["plain"][-1],
                lock_installed=res["hash_lock"][-1], allowlist="allowed" if allowed else "refused")
        if allowed:
            raise SystemExit(f"typo generator produced {typo!r}, which normalizes to an allowed name")
    is_squat = [t in squatted for t, _, _ in typed]
    n_squat = sum(is_squat)
    run.metric("typos.typed", len(typed))
    run.metric("typos.squatted", n_squat)
    for mode, installed in res.items():
        run.metric(f"typos.{mode}.installed", sum(installed))
        run.metric(f"typos.{mode}.installed_rate_of_squatted", sum(i for i, s in zip(installed, is_squat) if s) / n_squat)
        run.metric(f"typos.{mode}.installed_unsquatted", sum(i for i, s in zip(installed, is_squat) if not s))
    run.metric("typos.plain.canary_runs", plain_canary)
    run.metric("typos.allowlist.refused_rate", sum(pkgindex.normalize(t) not in ALLOWED for t, _, _ in typed) / len(typed))

    genuine_variant = raw_refused = norm_refused = 0
    for variant, of in variants:
        rc, _, target = pip("typosquat", "separator_variant", [variant], PUBLIC)
        got = tag_in(target, of)
        genuine_variant += rc == 0 and got == "genuine"
        raw_refused += variant not in REQUIREMENTS
        norm_refused += pkgindex.normalize(variant) not in ALLOWED
        run.log("variant.result", typed=variant, of=of, rc=rc, got=got)
    run.metric("variants.plain.resolved_to_genuine_rate", genuine_variant / len(variants))
    run.metric("variants.allowlist_raw.false_rejection_rate", raw_refused / len(variants))
    run.metric("variants.allowlist_normalized.false_rejection_rate", norm_refused / len(variants))

    # --- 3. dependency confusion ----------------------------------------------------------
    confusion = {
        "extra_index": (INTERNAL_URL, PUBLIC, [INTERNAL[0]]),
        "internal_only": (INTERNAL_URL, None, [INTERNAL[0]]),
        "extra_index_hash_lock": (INTERNAL_URL, PUBLIC, ["--require-hashes", "-r", str(internal_lock)]),
    }
    if run.smoke:
        del confusion["internal_only"]
    for mode, (index, extra, args) in confusion.items():
        before = canary_count()
        rc, _, target = pip("confusion", mode, args, index, extra)
        got = tag_in(target, INTERNAL[0])
        run.metric(f"confusion.{mode}.got", got)
        run.metric(f"confusion.{mode}.canary_runs", canary_count() - before)
        run.log("confusion.result", mode=mode, rc=rc, got=got, setup_py_runs=canary_count() - before)
finally:
    server.close()
    internal_server.close()

run.metric("pip.invocations", calls["n"])
run.metric("pip.seconds", round(calls["seconds"], 1))
shutil.copyfile(lock, run.artifact("requirements.lock"))
shutil.rmtree(work, ignore_errors=True)  # indexes, builds and targets: not needed in the record
run.finish()
