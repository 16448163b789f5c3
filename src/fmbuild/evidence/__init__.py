"""Evidence: running the modules that back the manual's claims, and keeping their records.

    contract.py         a note's evidence block and a module's module.toml, validated
    claims.py           the claim grammar ("<op> <value or metric expression>") and its verdicts
    devices.py          GPU detection without torch, and which device a run gets
    fingerprint.py      the inputs hash, the environment, and the cache key
    isolation.py        executors: bubblewrap, and the weaker subprocess fallback
    limits.py           rlimits and the pids / memory cgroups behind them
    capture.py          a run's output, capped (head and tail kept)
    env_policy.py       which host variables may enter a sandbox (never a credential)
    safe_read.py        reading a run's folder back without following links, FIFOs or hard links
    metrics_file.py     metrics.json read with bounds (size, depth, numbers), no NaN or Infinity
    notebook_driver.py  executes notebook.ipynb modules inside the sandbox
    runner.py           one module run: skip reasons, cache, isolated run, claims, record
    seeds.py            verification across seeds: a runner per seed, merged verdicts, the record
    margins.py          a claim's signed margin (distance to its threshold)
    cache.py            the run cache under .fmbuild/evidence/ (entries MACed with a per-user key)
    records.py          committed records: load_record, is_fresh, evidence_state, write_record
    selection.py        which modules to run: all, named, or changed since a git ref
    report.py           progress, summary table, JSON, JUnit
    kit.py              the helper module authors import (kept light: it runs in every module)

Importing this package imports nothing else, so `from fmbuild.evidence import kit` stays cheap.
"""
