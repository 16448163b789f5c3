"""Real escape attempts against an agent's file and shell tools, under five execution configurations.

Each attempt is a short sequence of tool calls (planting a symlink with `ln -s`, extracting a tar
with a symlink member, writing a script and running it, racing a symlink swap against the check,
`..`, absolute and /proc paths, percent-encoded and full-width unicode paths). It is judged by
effect: the canary token outside the workspace came back in a tool's output, or a marker landed
outside / the canary changed. All of it happens inside the run's output folder.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from attempts import benign_calls, escaped, make_attempts, prepare, substitute
from sandbox import CONFIGS, ToolBox, ToolError, landlock_abi, openat2_available

from fmbuild.evidence import kit

run = kit.start(__file__)
rng = random.Random(run.seed)
token = f"{rng.getrandbits(64):016x}"
race_reads = run.pick(full=300, smoke=40)
race_deadline = run.pick(full=6.0, smoke=2.0)
benign_rounds = run.pick(full=6, smoke=1)
root = run.out / "labs"
if root.exists():
    shutil.rmtree(root)

abi, abi_why = landlock_abi()
probe = run.artifact("probe")
probe.mkdir(exist_ok=True)
o2_ok, o2_why = openat2_available(probe)
run.log("host.mechanisms", kernel=os.uname().release, landlock_abi=abi, landlock=abi_why, openat2=o2_why)
run.metric("landlock.abi", abi)
available = {"landlock": abi >= 1, "openat2_beneath": o2_ok}
reasons = {"landlock": abi_why, "openat2_beneath": o2_why}


def wait_flipper(ws: Path) -> None:
    if not (ws / "flip.py").exists():
        return
    (ws / ".stop").touch()
    end = time.monotonic() + race_deadline + 5
    while time.monotonic() < end and (ws / "race.txt").is_symlink() and not (ws / ".done").exists():
        time.sleep(0.02)


configs = [c for c in CONFIGS if available.get(c, True)]
for c in CONFIGS:
    if c not in configs:
        run.log("config.skipped", config=c, reason=reasons[c])

results: dict[str, dict] = {}
for config in configs:
    attempts = make_attempts(token, race_reads, race_deadline)
    rng.shuffle(attempts)
    escapes, by_attempt, race_wins = 0, {}, 0
    for att in attempts:
        base = root / config / att.name
        ws, outside = prepare(base, token)
        box = ToolBox(ws, config, abi)
        refusals = 0
        for i, (tool, args) in enumerate(att.steps):
            times = att.repeat_last if i == len(att.steps) - 1 else 1
            for _ in range(times):
                try:
                    att.outputs.append(box.call(tool, substitute(args, ws, outside)))
                except ToolError as exc:
                    refusals += 1
                    last_error = str(exc)
        wait_flipper(ws)
        hit = escaped(att, base, token)
        if att.family == "race":
            race_wins = sum(token in o for o in att.outputs)
            run.metric(f"{config}.race_wins", race_wins)
        escapes += hit
        by_attempt[att.name] = int(hit)
        run.log("escape.attempt", config=config, attempt=att.name, family=att.family, escaped=hit,
                calls=sum(att.repeat_last if i == len(att.steps) - 1 else 1 for i in range(len(att.steps))),
                refused_or_failed=refusals, **({"last_error": last_error[:160]} if refusals else {}))
    n = len(attempts)
    results[config] = {"escapes": escapes, "attempts": n, "by_attempt": by_attempt}
    run.metric(f"{config}.escapes", escapes)
    run.metric(f"{config}.attempts", n)
    run.metric(f"{config}.escape_rate", escapes / n)
    for name, hit in sorted(by_attempt.items()):
        run.metric(f"{config}.by_attempt.{name}", hit)

# Benign workload: utility and per-call time. Rounds interleave the configurations so that the
# load of a shared machine falls on all of them alike; overhead is the median paired difference.
durations: dict[str, list[float]] = {c: [] for c in configs}
ok = {c: 0 for c in configs}
total = {c: 0 for c in configs}
for r in range(benign_rounds):
    text = f"todo {rng.randrange(10**6)}\n"
    for config in configs:
        ws, _ = prepare(root / config / f"benign-{r}", token)
        box = ToolBox(ws, config, abi)
        for tool, args, check in benign_calls(text):
            t0 = time.perf_counter()
            try:
                out = box.call(tool, args)
                good = bool(check(out, ws))
            except (ToolError, OSError, IndexError) as exc:
                good = False
                run.log("benign.failed", config=config, round=r, tool=tool, args=args, error=str(exc)[:160])
            durations[config].append((time.perf_counter() - t0) * 1000)
            ok[config] += good
            total[config] += 1

for config in configs:
    res = results[config]
    res["utility"] = ok[config] / total[config]
    res["median_ms"] = statistics.median(durations[config])
    run.metric(f"{config}.utility", res["utility"])
    run.metric(f"{config}.benign_calls", total[config])
    run.metric(f"{config}.median_ms_per_call", round(res["median_ms"], 3))
    if config != "none":
        paired = [a - b for a, b in zip(durations[config], durations["none"])]
        res["overhead_ms"] = statistics.median(paired)
        run.metric(f"{config}.overhead_ms", round(res["overhead_ms"], 3))
    if config not in ("none", "resolve_fence") and "resolve_fence" in results:
        fence = results["resolve_fence"]["by_attempt"]
        run.metric(f"{config}.stopped_fence_escapes",
                   sum(1 for a, hit in fence.items() if hit and not res["by_attempt"][a]))
    run.log("config.summary", config=config, escapes=res["escapes"], attempts=res["attempts"],
            utility=round(res["utility"], 3), median_ms_per_call=round(res["median_ms"], 2),
            overhead_ms=round(res.get("overhead_ms", 0.0), 2))

# Figure: escapes and utility per configuration.
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(7.5, 3.6))
xs = range(len(configs))
ax.bar([x - 0.2 for x in xs], [results[c]["escapes"] / results[c]["attempts"] for c in configs], 0.4, label="escapes / attempts")
ax.bar([x + 0.2 for x in xs], [results[c]["utility"] for c in configs], 0.4, label="benign calls working")
ax.set_xticks(list(xs), configs, rotation=12)
ax.set_ylim(0, 1.05)
ax.set_title(f"Sandbox escape attempts per tool configuration (seed {run.seed})")
ax.legend(loc="upper right", fontsize=8)
run.figure(fig, "escapes-by-config")
shutil.rmtree(root, ignore_errors=True)
shutil.rmtree(probe, ignore_errors=True)
run.finish()
