"""A metric over the threshold on seeds 0 and 1 and under it on seed 2."""
from fmbuild.evidence import kit

run = kit.start(__file__)
run.metric("recall", [0.91, 0.90, 0.85][run.seed % 3])
run.finish()
