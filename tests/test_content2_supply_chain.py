"""Content II evidence modules (supply chain and integrity), tested piece by piece: the data gate,
model signing, the write-once registry, the AI BOM, the canary payloads against a real scanner,
hand-built wheels and the loopback hub. The full runs are `fmbuild verify` territory; the smoke
runs are in test_modules_smoke.py."""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from evidence_imports import load

GATE = load("dataset-integrity", "gate")["gate"]
SIGNING_MODS = load("model-signing", "signing", "registry")
SIGNING, REGISTRY = SIGNING_MODS["signing"], SIGNING_MODS["registry"]
BOM = load("ai-bom", "bom")["bom"]
DESER = load("unsafe-deserialization", "payloads", "scanners")
FREEZE = load("dependency-freezing", "wheels", "hub")


# --- dataset integrity gate ------------------------------------------------------------------------


@pytest.fixture()
def dataset(tmp_path: Path) -> tuple[Path, Path, str]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_text("x,label\n1,0\n")
    (data / "b.csv").write_text("x,label\n2,1\n")
    manifest = tmp_path / "data.sha256"
    return data, manifest, GATE.write_manifest(data, manifest)


def test_gate_passes_untouched_data(dataset) -> None:
    data, manifest, pinned = dataset
    assert GATE.coreutils_check(data, manifest).ok
    assert GATE.full_check(data, manifest, pinned).ok


def test_gate_catches_changed_byte_with_both_checks(dataset) -> None:
    data, manifest, pinned = dataset
    (data / "a.csv").write_text("x,label\n1,1\n")
    assert not GATE.coreutils_check(data, manifest).ok
    result = GATE.full_check(data, manifest, pinned)
    assert result.findings == ["a.csv: digest mismatch"]


def test_added_file_passes_sha256sum_but_not_the_gate(dataset) -> None:
    data, manifest, pinned = dataset
    (data / "c.csv").write_text("x,label\n3,7\n")
    assert GATE.coreutils_check(data, manifest).ok  # the one-liner's blind spot, kept honest
    assert GATE.full_check(data, manifest, pinned).findings == ["c.csv: not in manifest"]


def test_rewritten_manifest_is_caught_only_by_the_pin(dataset) -> None:
    data, manifest, pinned = dataset
    (data / "a.csv").write_text("x,label\n1,1\n")
    GATE.write_manifest(data, manifest)
    assert GATE.coreutils_check(data, manifest).ok
    assert "manifest digest differs from the pinned one" in GATE.full_check(data, manifest, pinned).findings


def test_gate_reports_missing_file_and_malformed_line(dataset) -> None:
    data, manifest, _ = dataset
    (data / "b.csv").unlink()
    manifest.write_text(manifest.read_text() + "not a digest line\n")
    findings = GATE.full_check(data, manifest, GATE.sha256_file(manifest)).findings
    assert "b.csv: missing" in findings
    assert any("malformed" in f for f in findings)


# --- signing and the registry ---------------------------------------------------------------------


@pytest.fixture()
def signed_model(tmp_path: Path):
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    (folder / "config.json").write_text('{"classes": 10}')
    key = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
    SIGNING.sign(folder, "digits-mlp", "1.0.0", key)
    trusted = {SIGNING.key_id(key.public_key()): key.public_key()}
    return folder, key, trusted


def test_signature_verifies_genuine_model(signed_model) -> None:
    folder, _, trusted = signed_model
    verified = SIGNING.verify(folder, trusted, "digits-mlp")
    assert (verified.name, verified.version) == ("digits-mlp", "1.0.0")


def test_one_flipped_bit_is_refused(signed_model) -> None:
    folder, _, trusted = signed_model
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[100] ^= 0x01
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(SIGNING.VerificationError, match="content differs"):
        SIGNING.verify(folder, trusted)


@pytest.mark.parametrize("case", ["unsigned", "foreign_key", "garbled", "other_name", "extra_file"])
def test_unverifiable_models_are_refused(signed_model, case: str) -> None:
    folder, _, trusted = signed_model
    expect = "digits-mlp"
    if case == "unsigned":
        (folder / SIGNING.SIGNATURE_FILE).unlink()
    elif case == "foreign_key":
        SIGNING.sign(folder, "digits-mlp", "1.0.0", Ed25519PrivateKey.from_private_bytes(b"\x02" * 32))
    elif case == "garbled":
        (folder / SIGNING.SIGNATURE_FILE).write_text("{not json")
    elif case == "other_name":
        expect = "fraud-scorer"
    else:
        (folder / "extra.py").write_text("print('hello')")
    with pytest.raises(SIGNING.VerificationError):
        SIGNING.verify(folder, trusted, expect)


def test_registry_is_write_once_and_tamper_evident(signed_model, tmp_path: Path) -> None:
    folder, _, trusted = signed_model
    registry = REGISTRY.Registry(tmp_path / "registry")
    registry.publish("digits-mlp", "1.0.0", folder, actor="ci")
    with pytest.raises(REGISTRY.RegistryError, match="immutable"):
        registry.publish("digits-mlp", "1.0.0", folder, actor="mallory")
    fetched = registry.fetch("digits-mlp", "1.0.0", tmp_path / "fetched")
    SIGNING.verify(fetched, trusted, "digits-mlp")
    assert registry.audit_intact() == (True, 0)

    entry = json.loads((registry.index / "digits-mlp@1.0.0.json").read_text())
    blob = registry.blobs / entry["files"]["model.safetensors"]
    blob.chmod(0o644)
    blob.write_bytes(b"swapped")
    with pytest.raises(REGISTRY.RegistryError, match="no longer matches"):
        registry.fetch("digits-mlp", "1.0.0", tmp_path / "fetched-again")

    lines = registry.audit.read_text().splitlines()
    record = json.loads(lines[1])
    record["actor"] = "ci"
    lines[1] = json.dumps(record, sort_keys=True)
    registry.audit.write_text("\n".join(lines) + "\n")
    assert registry.audit_intact() == (False, 2)


def test_registry_refuses_unsigned_upload(tmp_path: Path) -> None:
    folder = tmp_path / "unsigned"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(REGISTRY.RegistryError, match="unsigned"):
        REGISTRY.Registry(tmp_path / "registry").publish("m", "1", folder, actor="x")


# --- AI BOM -----------------------------------------------------------------------------------------


def _lineage(tmp_path: Path, commit: str = "unknown", source: str = "unknown"):
    model, data, code = tmp_path / "model.safetensors", tmp_path / "data.csv", tmp_path / "train.py"
    for path, text in ((model, "weights"), (data, "x,y\n1,0\n"), (code, "print('train')\n")):
        path.write_text(text)
    return BOM.Lineage(model, GATE.sha256_file(model), "toy-data", GATE.sha256_file(data), 1, code,
                       GATE.sha256_file(code), commit, source, {"algorithm": "toy"})


def test_bom_validates_and_links_model_to_data_and_code(tmp_path: Path) -> None:
    document, refs = BOM.build(_lineage(tmp_path), ["numpy"])
    text = BOM.to_json(document)
    assert BOM.validate(text) is None
    doc = json.loads(text)
    assert doc["metadata"]["component"]["type"] == "machine-learning-model"
    deps = next(d for d in doc["dependencies"] if d["ref"] == refs["model"])["dependsOn"]
    assert refs["data"] in deps and refs["code"] in deps
    assert BOM.hashes_by_ref(text)[refs["data"]] == GATE.sha256_file(tmp_path / "data.csv")


def test_bom_validator_rejects_a_broken_document(tmp_path: Path) -> None:
    doc = json.loads(BOM.to_json(BOM.build(_lineage(tmp_path), [])[0]))
    doc["metadata"]["component"]["hashes"][0]["content"] = "not-a-digest"
    assert BOM.validate(json.dumps(doc)) is not None


def test_commit_is_taken_from_the_runner_or_recorded_unknown(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FMBUILD_COMMIT", "0123abcd" * 5)
    assert BOM.code_commit(tmp_path) == ("0123abcd" * 5, "env")
    monkeypatch.delenv("FMBUILD_COMMIT")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert BOM.code_commit(tmp_path) == ("unknown", "unknown")


def test_distribution_names_compare_as_pep503() -> None:
    assert BOM.normalize("Typing_Extensions") == BOM.normalize("typing.extensions") == "typing-extensions"


# --- payloads and a real scanner --------------------------------------------------------------------


def test_textbook_payload_is_flagged_and_evasion_is_called_clean_yet_runs(tmp_path: Path) -> None:
    payloads, scanners = DESER["payloads"], DESER["scanners"]
    textbook = tmp_path / "exec.pkl"
    textbook.write_bytes(pickle.dumps({"w": [1.0], "x": payloads.exec_payload(tmp_path / "a.txt", "test")}))
    evasion = tmp_path / "gzip.pkl"
    marker = tmp_path / "canary-gzip.txt"
    evasion.write_bytes(pickle.dumps({"w": [1.0], "x": payloads.gzip_open_payload(marker)}))

    assert scanners.scan("picklescan", textbook).status == "flagged"
    assert scanners.scan("picklescan", evasion).status == "clean"
    assert not marker.exists()  # scanning is static
    pickle.loads(evasion.read_bytes())  # the canary's only effect: a marker inside tmp_path
    assert marker.exists()


def test_fickling_parse_failure_is_an_error_not_a_detection(tmp_path: Path) -> None:
    """fickling cannot read a zip-format torch checkpoint ("No pickle files detected") nor raw NumPy
    bytes; those are errors, and only a finding in a pickle it could analyse counts as flagged."""
    torch = pytest.importorskip("torch")
    scanners, payloads = DESER["scanners"], DESER["payloads"]
    zipped = tmp_path / "state-dict.pt"
    torch.save({"w": torch.ones(3)}, zipped)
    verdict = scanners.scan("fickling", zipped)
    assert verdict.status == "error" and "No pickle files detected" in verdict.detail
    raw = tmp_path / "weights.npy"
    raw.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }" + bytes(24))
    assert scanners.scan("fickling", raw).status == "error"
    textbook = tmp_path / "exec.pkl"
    textbook.write_bytes(pickle.dumps({"w": [1.0], "x": payloads.exec_payload(tmp_path / "a.txt", "test")}))
    flagged = scanners.scan("fickling", textbook)
    assert flagged.status == "flagged" and "(" in flagged.detail  # names the analysis that found it


def test_scanner_crash_is_an_error_verdict_not_an_exception(tmp_path: Path) -> None:
    scanners = DESER["scanners"]
    assert scanners.scan("picklescan", tmp_path / "missing.pkl").status in {"error", "skipped"}


# --- wheels and the hub ------------------------------------------------------------------------------


def test_hand_built_wheel_is_deterministic_and_has_a_record(tmp_path: Path) -> None:
    wheels = FREEZE["wheels"]
    one = wheels.build_wheel(tmp_path / "a", "fm-demo", "1.0.0", "TAG = 'x'\n")
    two = wheels.build_wheel(tmp_path / "b", "fm-demo", "1.0.0", "TAG = 'x'\n")
    assert wheels.sha256(one) == wheels.sha256(two)
    names = zipfile.ZipFile(one).namelist()
    assert "fm_demo-1.0.0.dist-info/RECORD" in names and "fm_demo/__init__.py" in names


def test_hub_download_follows_latest_unless_pinned(tmp_path: Path) -> None:
    hub = FREEZE["hub"]
    server = hub.Hub(tmp_path / "hub")
    try:
        server.publish("lab/m", "rev1", b"genuine")
        server.publish("lab/m", "rev2", b"poisoned")
        assert hub.download(server.url, "lab/m") == (b"poisoned", "rev2")
        pinned_sha = hashlib.sha256(b"genuine").hexdigest()
        assert hub.download(server.url, "lab/m", "rev1", pinned_sha)[0] == b"genuine"
        server.publish("lab/m", "rev1", b"rewritten", move_latest=False)
        with pytest.raises(hub.PinError):
            hub.download(server.url, "lab/m", "rev1", pinned_sha)
    finally:
        server.close()
