"""A module whose committed record the playbook's steps read: three alerts, two rules."""
import json
import os
import pathlib

out = pathlib.Path(os.environ["FMBUILD_OUT"])
events = [{"event": "siem.alert", "rule": "r1"}, {"event": "siem.alert", "rule": "r2"}, {"event": "other"},
          {"event": "siem.alert", "rule": "r1"}]
(out / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
(out / "metrics.json").write_text(json.dumps({"alerts": sum(e["event"] == "siem.alert" for e in events)}))
