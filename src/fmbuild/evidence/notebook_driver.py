"""Execute an evidence notebook inside the sandbox: `python -m fmbuild.evidence.notebook_driver NB`.

The notebook runs top to bottom in a fresh `python3` kernel (ipykernel) with the module folder as
its working directory and the runner's FMBUILD_* environment. Each cell has its own timeout; the
runner enforces the whole-run timeout from outside. Cell output streams are echoed to stdout so
the run's log reads like a script's, and the executed notebook is always saved to
`$FMBUILD_OUT/notebook.executed.ipynb`, also when a cell fails (that is where the error shows).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

EXECUTED_NAME = "notebook.executed.ipynb"


def _echo_outputs(cell: Any, **_: Any) -> None:
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            text = output.get("text", "")
            stream = sys.stderr if output.get("name") == "stderr" else sys.stdout
            stream.write(text if isinstance(text, str) else "".join(text))
        elif kind == "error":
            sys.stdout.write("\n".join(output.get("traceback", [])) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--cell-timeout", type=int, default=600)
    args = parser.parse_args(argv)

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = args.notebook.resolve()
    out = Path(os.environ.get("FMBUILD_OUT") or path.parent / "out")
    out.mkdir(parents=True, exist_ok=True)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for a broken file
        print(f"fmbuild: cannot read {path.name}: {exc}", file=sys.stderr)
        return 2
    client = NotebookClient(
        nb,
        timeout=args.cell_timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_executed=_echo_outputs,
    )
    status = 0
    try:
        client.execute()
    except CellTimeoutError as exc:
        print(f"fmbuild: a notebook cell exceeded the cell timeout of {args.cell_timeout} s: {exc}", file=sys.stderr)
        status = 3
    except CellExecutionError as exc:
        print(f"fmbuild: a notebook cell raised an error:\n{exc}", file=sys.stderr)
        status = 1
    except DeadKernelError as exc:
        print(f"fmbuild: the notebook kernel died (memory limit?): {exc}", file=sys.stderr)
        status = 4
    finally:
        nbformat.write(nb, out / EXECUTED_NAME)
    return status


if __name__ == "__main__":
    sys.exit(main())
