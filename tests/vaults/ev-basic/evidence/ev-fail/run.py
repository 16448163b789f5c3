"""Plain Python, no kit: metrics that miss the note's claims."""
import json
import os
from pathlib import Path

out = Path(os.environ.get("FMBUILD_OUT", Path(__file__).parent / "out"))
out.mkdir(parents=True, exist_ok=True)
(out / "metrics.json").write_text(json.dumps({"accuracy": 0.42, "nested": {"value": 1}}))
print("wrote metrics")
