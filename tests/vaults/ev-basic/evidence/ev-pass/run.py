"""Writes fixed metrics through the kit: the happy path."""
from fmbuild.evidence import kit

run = kit.start(__file__)
run.log("fixture.start", scale=run.scale)
run.metric("accuracy", 0.97)
run.metric("attack.fgsm_accuracy", 0.30)
run.metric("attack.robust_accuracy", 0.81)
run.metric("format", "safetensors")
run.metric("safe", True)
run.metric("count", 12)
run.metric("seen_device", run.device)
run.metric("seen_seed", run.seed)
run.metric("param_size", run.params.get("size", 0))
with open(run.artifact("table.json"), "w") as handle:
    handle.write('{"rows": 3}\n')
run.finish()
