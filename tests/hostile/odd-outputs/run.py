"""Leaves traps in its output folder for the runner to read back on the host: links to host files,
hard links, a FIFO, metrics that are huge, deep, NaN or hold endless numbers. `mode` picks one."""
import json
import os
from pathlib import Path

params = json.loads(os.environ.get("FMBUILD_PARAMS", "{}"))
out = Path(os.environ["FMBUILD_OUT"])
mode = params["mode"]
target = params.get("target", "")
tried: dict[str, object] = {"mode": mode, "value": 1}

if mode == "symlink-metrics":
    os.symlink(target, out / "metrics.json")
    raise SystemExit(0)
if mode == "symlink-dir-metrics":
    os.symlink(os.path.dirname(target), out / "sub")
    os.symlink("sub/" + os.path.basename(target), out / "metrics.json")
    raise SystemExit(0)
if mode == "fifo-metrics":
    os.mkfifo(out / "metrics.json")
    raise SystemExit(0)
if mode == "hardlink-metrics":
    try:
        os.link(target, out / "metrics.json")
        tried["linked"] = True
    except OSError as exc:
        tried["link_error"] = exc.strerror
        (out / "metrics.json").write_text(json.dumps({**tried, "linked": False}))
    raise SystemExit(0)
if mode == "artifacts":
    os.symlink(target, out / "stolen.txt")
    os.symlink(os.path.dirname(target), out / "hostdir")
    os.mkfifo(out / "pipe")
    (out / "own.txt").write_text("mine\n")
    os.link(out / "own.txt", out / "own-again.txt")  # two names: neither is trusted
    (out / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\n")
elif mode == "nan":
    (out / "metrics.json").write_text('{"value": NaN}')
    raise SystemExit(0)
elif mode == "infinity":
    (out / "metrics.json").write_text('{"value": -Infinity}')
    raise SystemExit(0)
elif mode == "overflow":
    (out / "metrics.json").write_text('{"value": 1e999}')
    raise SystemExit(0)
elif mode == "long-number":
    (out / "metrics.json").write_text('{"value": ' + "9" * 5000 + "}")
    raise SystemExit(0)
elif mode == "deep":
    (out / "metrics.json").write_text('{"value": ' + "[" * 100000 + "]" * 100000 + "}")
    raise SystemExit(0)
elif mode == "huge":
    with open(out / "metrics.json", "w") as handle:
        handle.write('{"value": 1, "pad": "')
        chunk = "x" * (1 << 20)
        for _ in range(int(params.get("mb", 20))):
            handle.write(chunk)
        handle.write('"}')
    raise SystemExit(0)
(out / "metrics.json").write_text(json.dumps(tried))
