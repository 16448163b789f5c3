"""Counts how many of 1,000 seeded random points a fixed threshold flags: quick and deterministic."""
import random

from fmbuild.evidence import kit

run = kit.start(__file__)
rng = random.Random(run.seed)
points = [rng.random() for _ in range(1000)]
flagged = sum(1 for p in points if p > 0.9)
run.log("count.done", points=len(points), flagged=flagged)
run.metric("points", len(points))
run.metric("flagged_rate", flagged / len(points))
run.metric("detector.recall", 1.0 if flagged else 0.0)
# Text from a run is data, never markup: the Edition must show it escaped.
run.metric("banner", "<img src=x onerror=alert(1)>")
run.finish()
