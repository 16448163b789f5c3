"""Concept drift on river's Agrawal loan stream: input monitors stay quiet, error detectors see it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from fmbuild.evidence import kit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import drift_lab as lab  # noqa: E402

run = kit.start(__file__)
rng = np.random.default_rng(run.seed)
OLD, NEW, NOISE = 2, 8, 0.05
N = run.pick(full=6000, smoke=1500)
STREAMS = run.pick(full=8, smoke=2)
WINDOW = run.pick(full=500, smoke=250)
DELAY = run.pick(full=500, smoke=100)
WIDTH = run.pick(full=1500, smoke=300)
DETECTORS = ["adwin", "ddm", "page_hinkley"]
run.metric("settings.old_rule", OLD)
run.metric("settings.new_rule", NEW)
run.metric("settings.label_noise", NOISE)
run.metric("settings.stream_length", N)
run.metric("settings.streams", STREAMS)
run.metric("settings.window", WINDOW)
run.metric("settings.label_delay", DELAY)
run.metric("settings.gradual_width", WIDTH)

# The model: trained on the old rule; the reference inputs are its training inputs.
base = 1000 * run.seed
x_train, y_train = lab.concept_stream(OLD, OLD, base + 1, run.pick(full=5000, smoke=1500), 0, 0, NOISE, rng)
model = HistGradientBoostingClassifier(random_state=run.seed).fit(x_train, y_train)
run.log("model.trained", rule=OLD, samples=len(y_train))


def streams(kind: str):
    for k in range(STREAMS):
        start = int(rng.integers(N // 3, N // 2))
        if kind == "none":
            x, y = lab.concept_stream(OLD, OLD, base + 100 + k, N, N, 0, NOISE, rng)
            start = N
        else:
            x, y = lab.concept_stream(OLD, NEW, base + 200 + k, N, start, WIDTH if kind == "gradual" else 0, NOISE, rng)
        yield k, start, x, y


acc = {"before": [], "after": []}
monitor = {(m, seg): [] for m in ("ks", "psi") for seg in ("before", "after")}
delays = {(d, kind): [] for d in DETECTORS for kind in ("abrupt", "gradual")}
false_streams = dict.fromkeys(DETECTORS, 0)
false_alarms = dict.fromkeys(DETECTORS, 0)
pre_change_samples = 0
curves = {}
for kind in ("none", "abrupt", "gradual"):
    for k, start, x, y in streams(kind):
        errors = (model.predict(x) != y).astype(int)
        pre_change_samples += start
        if kind == "abrupt":
            acc["before"].append(1 - errors[:start].mean())
            acc["after"].append(1 - errors[start:].mean())
            for w0 in range(0, N - WINDOW + 1, WINDOW):
                seg = "before" if w0 + WINDOW <= start else "after" if w0 >= start else None
                if seg is None:  # a window that straddles the change belongs to neither side
                    continue
                r = lab.input_drift(x_train, x[w0:w0 + WINDOW])
                monitor[("ks", seg)].append(r["ks_alarm"])
                monitor[("psi", seg)].append(r["psi_alarm"])
                if k == 0:
                    run.log("monitor.input_drift", stream=k, window_start=w0, segment=seg,
                            window_accuracy=round(1 - errors[w0:w0 + WINDOW].mean(), 3), **r)
        for d in DETECTORS:
            alarms = lab.detect(errors, d)
            early = [a for a in alarms if a < start]
            false_alarms[d] += len(early)
            if kind == "none":
                false_streams[d] += bool(early)
                for a in early:
                    run.log("drift.false_alarm", detector=d, stream=k, labelled_sample=a, at_step=a + DELAY)
                continue
            late = [a for a in alarms if a >= start]
            if late:
                delays[(d, kind)].append(late[0] - start)
                if k == 0:
                    run.log("drift.alert", detector=d, stream=kind, drift_start=start, labelled_sample=late[0],
                            at_step=late[0] + DELAY, steps_after_change=late[0] - start + DELAY,
                            label_delay=DELAY,
                            error_rate_last_200=round(float(errors[max(0, late[0] - 199):late[0] + 1].mean()), 3))
        if k == 0 and kind != "none":
            curves[kind] = (start, np.convolve(1 - errors, np.ones(200) / 200, mode="valid"))

run.metric("model.accuracy_before", float(np.mean(acc["before"])))
run.metric("model.accuracy_after", float(np.mean(acc["after"])))
run.metric("model.accuracy_drop", float(np.mean(acc["before"]) - np.mean(acc["after"])))
for m in ("ks", "psi"):
    for seg in ("before", "after"):
        run.metric(f"input_monitor.{m}.{seg}_alarm_rate", float(np.mean(monitor[(m, seg)])))
    run.metric(f"input_monitor.{m}.windows_after", len(monitor[(m, "after")]))

# Positive control: the same monitor on windows whose inputs did move (salaries up 20%), so a
# quiet monitor above is the concept change's doing, not a monitor that never fires.
ctrl_x, _ = lab.concept_stream(OLD, OLD, base + 900, WINDOW * STREAMS, 0, 0, NOISE, rng)
ctrl_x[:, 0] *= 1.2
ctrl = [lab.input_drift(x_train, ctrl_x[i * WINDOW:(i + 1) * WINDOW]) for i in range(STREAMS)]
run.metric("input_monitor.ks.covariate_shift_alarm_rate", float(np.mean([c["ks_alarm"] for c in ctrl])))
run.metric("input_monitor.psi.covariate_shift_alarm_rate", float(np.mean([c["psi_alarm"] for c in ctrl])))
run.log("monitor.control", salary_scale=1.2, **ctrl[0])

for d in DETECTORS:
    run.metric(f"detector.{d}.false_alarm_stream_rate", false_streams[d] / STREAMS)
    run.metric(f"detector.{d}.false_alarms_per_10k", 1e4 * false_alarms[d] / pre_change_samples)
    for kind in ("abrupt", "gradual"):
        found = delays[(d, kind)]
        run.metric(f"detector.{d}.{kind}.detection_rate", len(found) / STREAMS)
        # A change never found counts as found at the stream's end, so a miss cannot look fast.
        worst = found + [N] * (STREAMS - len(found))
        run.metric(f"detector.{d}.{kind}.median_delay", float(np.median(worst)))
        run.metric(f"detector.{d}.{kind}.max_delay", float(max(worst)))
        run.metric(f"detector.{d}.{kind}.median_steps_to_alarm", float(np.median(worst)) + DELAY)
    run.log("detector.summary", detector=d, false_alarm_streams=false_streams[d], streams=STREAMS,
            abrupt_delays=delays[(d, "abrupt")], gradual_delays=delays[(d, "gradual")], label_delay=DELAY)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
for ax, kind in zip(axes, ("abrupt", "gradual")):
    start, curve = curves[kind]
    ax.plot(np.arange(len(curve)) + 200, curve, label="accuracy (200-sample mean)")
    ax.axvline(start, color="red", ls="--", label="concept change")
    ax.axvline(start + DELAY, color="grey", ls=":", label=f"first new label arrives (+{DELAY})")
    ax.set_title(f"{kind} concept change, stream 0")
    ax.set_xlabel("stream position")
axes[0].set_ylabel("accuracy")
axes[0].legend(loc="lower left", fontsize=8)
run.figure(fig, "accuracy-across-concept-change")
run.finish()
