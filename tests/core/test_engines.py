"""Inference engines: CPU facts, the precision rule, OpenVINO vs onnxruntime, the agreement gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gusa_core.engines as engines
from gusa_core.engines import OnnxRuntimeEngine, OpenVinoEngine, choose_engine, choose_precision, cpu_info
from gusa_core.engines.agreement import (
    RECORD_NAME,
    AgreementRecord,
    check_agreement,
    gate,
    load_records,
    sha256_file,
    softmax,
)
from gusa_core.engines.cpu import CpuInfo, parse_proc_cpuinfo
from gusa_core.errors import CheckpointError, GusaError

H, W = 48, 64

_X86 = """processor\t: 0
vendor_id\t: {vendor}
model name\t: {model}
flags\t\t: {flags}

processor\t: 1
vendor_id\t: {vendor}
model name\t: {model}
flags\t\t: {flags}
"""
_BASE = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma"
SAPPHIRE = _X86.format(vendor="GenuineIntel", model="Intel(R) Xeon(R) Platinum 8488C",
                       flags=f"{_BASE} avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile amx_int8")
ZEN4 = _X86.format(vendor="AuthenticAMD", model="AMD EPYC 9R14", flags=f"{_BASE} avx2 avx512f avx512_bf16")
ZEN3 = _X86.format(vendor="AuthenticAMD", model="AMD EPYC 7R13", flags=f"{_BASE} avx2")
GRAVITON = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics bf16 i8mm
CPU implementer\t: 0x41
"""


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch):
    monkeypatch.delenv("GUSA_PRECISION", raising=False)
    monkeypatch.delenv("GUSA_ENGINE", raising=False)


# ------------------------------------------------------------------ CPU and precision rule
def test_proc_cpuinfo_is_parsed():
    info = parse_proc_cpuinfo(SAPPHIRE)
    assert info.model == "Intel(R) Xeon(R) Platinum 8488C" and info.vendor == "GenuineIntel"
    assert info.cores == 2 and info.source == "/proc/cpuinfo"
    assert info.avx2 and info.avx512f and info.avx512_bf16 and info.amx_bf16 and info.amx_tile
    zen = parse_proc_cpuinfo(ZEN4, cores=7)
    assert zen.cores == 7 and zen.avx512_bf16 and not zen.amx_bf16 and not zen.amx_tile
    arm = parse_proc_cpuinfo(GRAVITON)
    assert arm.vendor == "arm" and not arm.avx2 and "bf16" in arm.flags
    assert "avx512_bf16" in zen.summary() and "amx" not in zen.summary()


@pytest.mark.parametrize(
    ("text", "expected", "why"),
    [
        (SAPPHIRE, "bf16", "AMX-BF16 reported by the CPU"),
        (ZEN4, "bf16", "AVX-512 BF16 reported by the CPU (no AMX)"),
        (ZEN3, "fp32", "no AVX-512 BF16/AMX: fp32"),
        (GRAVITON, "fp32", "no AVX-512 BF16/AMX: fp32"),
        ("", "fp32", "no AVX-512 BF16/AMX: fp32"),
    ],
)
def test_precision_follows_the_cpu(text, expected, why):
    precision, reason = choose_precision(parse_proc_cpuinfo(text))
    assert precision == expected and why in reason
    assert choose_precision(parse_proc_cpuinfo(text), engine="onnxruntime")[0] == "fp32"


def test_unknown_cpu_runs_fp32():
    assert choose_precision(CpuInfo())[0] == "fp32"


def test_precision_env_override(monkeypatch):
    monkeypatch.setenv("GUSA_PRECISION", "bf16")
    precision, reason = choose_precision(parse_proc_cpuinfo(ZEN3))
    assert precision == "bf16" and "GUSA_PRECISION=bf16" in reason
    assert choose_precision(parse_proc_cpuinfo(ZEN3), engine="onnxruntime") == (
        "fp32", "GUSA_PRECISION=bf16 ignored: onnxruntime runs fp32 on the CPU")
    monkeypatch.setenv("GUSA_PRECISION", "fp32")
    assert choose_precision(parse_proc_cpuinfo(SAPPHIRE))[0] == "fp32"
    monkeypatch.setenv("GUSA_PRECISION", "auto")
    assert choose_precision(parse_proc_cpuinfo(SAPPHIRE))[0] == "bf16"
    monkeypatch.setenv("GUSA_PRECISION", "fp8")
    with pytest.raises(GusaError, match="GUSA_PRECISION"):
        choose_precision(parse_proc_cpuinfo(SAPPHIRE))


def test_cpu_info_of_this_machine_is_cached():
    info = cpu_info()
    assert info is cpu_info() and info.cores >= 1 and info.model


def test_engine_choice(monkeypatch):
    amx, avx2 = parse_proc_cpuinfo(SAPPHIRE), parse_proc_cpuinfo(ZEN3)
    monkeypatch.setattr(engines, "available_engines", lambda: ("openvino", "onnxruntime"))
    assert choose_engine(amx)[:2] == ("openvino", "bf16")
    name, precision, reason = choose_engine(avx2)
    assert (name, precision) == ("openvino", "fp32") and "fp32" in reason
    monkeypatch.setenv("GUSA_ENGINE", "onnxruntime")
    assert choose_engine(amx)[:2] == ("onnxruntime", "fp32")
    monkeypatch.setenv("GUSA_ENGINE", "tensorrt")
    with pytest.raises(GusaError, match="GUSA_ENGINE"):
        choose_engine(amx)
    monkeypatch.delenv("GUSA_ENGINE")
    monkeypatch.setattr(engines, "available_engines", lambda: ("onnxruntime",))
    name, precision, reason = choose_engine(amx)
    assert (name, precision) == ("onnxruntime", "fp32") and "not installed" in reason
    monkeypatch.setenv("GUSA_ENGINE", "openvino")
    with pytest.raises(GusaError, match="not installed"):
        choose_engine(amx)
    monkeypatch.delenv("GUSA_ENGINE")
    monkeypatch.setattr(engines, "available_engines", lambda: ())
    with pytest.raises(GusaError, match="neither"):
        choose_engine(amx)


def test_both_engines_are_available_here():
    assert set(engines.available_engines()) == {"openvino", "onnxruntime"}


# ------------------------------------------------------------------ engines on a real export
@pytest.fixture(scope="module")
def exported(export_random_fa_gusa):
    """A random fa-gusa exported at 64x48, with its torch outputs on a batch of 3 (the oracle)."""
    return export_random_fa_gusa(3, size=(W, H))


def test_engines_run_without_torch(exported, tmp_path):
    path, x, logits, _ = exported
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now raises
        import numpy as np
        from gusa_core.engines import OnnxRuntimeEngine, OpenVinoEngine, choose_engine
        x = np.load({str(tmp_path / "x.npy")!r})
        a = OpenVinoEngine({str(path)!r}, precision="fp32", threads=1, cache_dir={str(tmp_path / "c")!r}).run(x)
        b = OnnxRuntimeEngine({str(path)!r}, threads=1).run(x)
        choose_engine()
        assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
        np.save({str(tmp_path / "out.npy")!r}, np.stack([a["logits"], b["logits"]]))
    """)
    env = dict(os.environ, GUSA_PRECISION="auto")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)
    out = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(out[0], logits, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(out[1], logits, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ the thread's alternate signal stack
def test_compiling_keeps_the_threads_signal_stack(exported):
    from gusa_core.engines.openvino import signal_stack

    before = signal_stack()
    if before is None:
        pytest.skip("no sigaltstack in this C library")
    OpenVinoEngine(exported[0], precision="fp32", threads=1, cache=False)
    assert signal_stack() == before


def test_signals_after_a_dropped_engine_do_not_crash(exported, tmp_path):
    """OpenVINO's CPU plugin left the thread on a freed alternate signal stack: the next SIGCHLD crashed."""
    script = textwrap.dedent(f"""
        import gc, signal, subprocess, sys
        import numpy as np
        from gusa_core.engines import OpenVinoEngine
        signal.signal(signal.SIGCHLD, lambda *a: None)  # what torch's DataLoader installs
        x = np.zeros((2, 3, {H}, {W}), np.float32)
        for precision in ("fp32", "auto", "fp32"):
            engine = OpenVinoEngine({str(exported[0])!r}, precision=precision, threads=1, cache=False)
            engine.run(x)
        del engine
        gc.collect()
        for _ in range(5):
            subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])


def test_openvino_fp32_matches_onnxruntime_and_torch(exported, tmp_path):
    path, x, logits, roi = exported
    ov = OpenVinoEngine(path, precision="fp32", threads=1, cache_dir=tmp_path / "cache")
    ort = OnnxRuntimeEngine(path, threads=1)
    assert (ov.name, ov.precision, ort.precision) == ("openvino", "fp32", "fp32")
    assert ov.output_names == ort.output_names == ["logits", "attention"]
    assert ov.reason == "fp32 asked for" and ov.device_name
    got, ref = ov.run(x), ort(x)  # batch 3 through a graph traced at batch 1
    for name in ov.output_names:
        assert got[name].dtype == np.float32 and got[name].shape == ref[name].shape
        np.testing.assert_allclose(got[name], ref[name], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got["logits"], logits, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got["attention"], roi, atol=1e-4)
    first = got["logits"].copy()
    ov.run(x[:1] * 0)
    np.testing.assert_array_equal(got["logits"], first)  # results are copies, not the request's buffers


def test_openvino_gives_every_class_map_of_a_linear_head_variant(tmp_path):
    import torch

    from gusa_core.inference.export import export_model_onnx
    from gusa_core.models import build_model

    torch.manual_seed(0)
    path = export_model_onnx(build_model("baseline").eval(), tmp_path / "b.onnx", input_size=(96, 64))
    x = np.random.default_rng(2).standard_normal((2, 3, 64, 96)).astype(np.float32)
    got = OpenVinoEngine(path, precision="fp32", threads=1, cache=False).run(x)
    ref = OnnxRuntimeEngine(path, threads=1).run(x)
    assert list(got) == ["logits", "attention", "cam"] and got["cam"].shape == (2, 4, 2, 3)
    for name in got:
        np.testing.assert_allclose(got[name], ref[name], atol=1e-4, rtol=1e-4)


def test_openvino_throughput_splits_a_batch_among_its_streams(exported):
    path, x, logits, roi = exported
    ov = OpenVinoEngine(path, precision="fp32", threads=2, hint="THROUGHPUT", cache=False)
    got = ov.run(x)  # 3 images over as many requests as OpenVINO runs at once
    np.testing.assert_allclose(got["logits"], logits, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got["attention"], roi, atol=1e-4)
    with pytest.raises(GusaError, match="FAST"):
        OpenVinoEngine(path, hint="FAST")


def test_openvino_bf16_stays_close(exported, tmp_path):
    path, x, logits, _ = exported
    ov = OpenVinoEngine(path, precision="bf16", threads=1, cache=False)
    assert ov.precision in ("bf16", "fp32")  # fp32 where the CPU has no bf16 path, with the reason
    if ov.precision == "fp32":
        assert "compiled fp32" in ov.reason
    ok, detail = check_agreement(softmax(logits), softmax(ov.run(x)["logits"]), max_diff=0.05)
    assert ok, detail


def test_openvino_cache_is_reused_and_follows_the_onnx_file(exported, tmp_path):
    import torch

    from gusa_core.inference.export import export_model_onnx
    from gusa_core.models import build_model

    path, x, _, _ = exported
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(path.read_bytes())
    first = OpenVinoEngine(onnx, precision="fp32", threads=1)
    assert first.cache_dir == tmp_path / "ov-cache" and len(list(first.cache_dir.glob("*.blob"))) == 1
    again = OpenVinoEngine(onnx, precision="fp32", threads=1)
    np.testing.assert_array_equal(again.run(x)["logits"], first.run(x)["logits"])
    torch.manual_seed(5)  # new weights in the same file: the cache must not answer with the old ones
    export_model_onnx(build_model("fa-gusa").eval(), onnx, input_size=(W, H))
    fresh = OpenVinoEngine(onnx, precision="fp32", threads=1)
    assert len(list(fresh.cache_dir.glob("*.blob"))) == 1  # the old weights' blob was pruned
    np.testing.assert_allclose(fresh.run(x)["logits"], OnnxRuntimeEngine(onnx, threads=1).run(x)["logits"],
                               atol=1e-4, rtol=1e-4)


def test_engines_reject_bad_input(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    for cls in (OpenVinoEngine, OnnxRuntimeEngine):
        with pytest.raises(CheckpointError, match="bad.onnx"):
            cls(bad, precision="fp32", cache=False)
    with pytest.raises(CheckpointError, match="missing.onnx"):
        OpenVinoEngine(tmp_path / "missing.onnx")
    with pytest.raises(GusaError, match="fp16"):
        OpenVinoEngine(bad, precision="fp16")
    with pytest.raises(GusaError, match="fp32"):
        OnnxRuntimeEngine(bad, precision="bf16")
    with pytest.raises(GusaError, match="tensorrt"):
        engines.create_engine("tensorrt", bad)


# ------------------------------------------------------------------ agreement
def test_check_agreement_rule():
    ref = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    assert check_agreement(ref, ref + [[-0.01, 0.01, 0.0], [0, 0, 0]]) == (
        True, "2 images: top-1 identical, max |Δp| 0.0100")
    ok, detail = check_agreement(ref, ref + [[-0.02, 0.02, 0.0], [0, 0, 0]])
    assert not ok and "0.0200 > 0.01" in detail
    flipped = np.array([[0.7, 0.2, 0.1], [0.1, 0.455, 0.445]])
    ok, detail = check_agreement(ref, flipped)
    assert not ok and "top-1 differs on 1" in detail
    assert not check_agreement(ref, ref[:1])[0]
    assert not check_agreement(ref, ref * np.nan)[0]


class _FakeEngine:
    """Gives fixed probabilities (as logits) whatever the input; counts its calls."""

    def __init__(self, probs, *, name="openvino", precision="bf16", version="v1"):
        self.probs, self.name, self.precision, self.version = np.asarray(probs), name, precision, version
        self.reason, self.calls = f"{precision} for the test", 0

    def run(self, batch):
        self.calls += 1
        start = int(batch[0, 0, 0, 0])
        return {"logits": np.log(self.probs[start:start + len(batch)])}


def _images(n):
    x = np.zeros((n, 3, 2, 2), np.float32)
    x[:, 0, 0, 0] = np.arange(n)  # each image tells the fake engine which row it is
    return x


REF = np.array([[0.70, 0.20, 0.05, 0.05], [0.10, 0.60, 0.20, 0.10], [0.25, 0.25, 0.40, 0.10],
                [0.05, 0.05, 0.10, 0.80], [0.40, 0.30, 0.20, 0.10]])


class _Factory:
    def __init__(self, make):
        self.make, self.built = make, []

    def __call__(self):
        self.built.append(self.make())
        return self.built[-1]


def test_gate_passes_fp32_against_fp32_and_reuses_the_record(exported, tmp_path):
    path, x, _, _ = exported
    record_path = tmp_path / RECORD_NAME
    candidate = _Factory(lambda: OpenVinoEngine(path, precision="fp32", threads=1, cache=False))
    reference = _Factory(lambda: OnnxRuntimeEngine(path, threads=1))
    engine, record = gate(candidate, reference, x, record_path=record_path, weights_sha256=sha256_file(path),
                          batch_size=2)
    assert engine is candidate.built[0] and record.ok and len(reference.built) == 1
    assert (record.engine, record.precision, record.weights_sha256) == ("openvino", "fp32", sha256_file(path))
    assert "3 images: top-1 identical" in record.detail and "agrees with fp32" in record.reason
    stored = json.loads(record_path.read_text(encoding="utf-8"))
    assert stored["checks"]["openvino/fp32"]["ok"] is True and not list(tmp_path.glob("*.tmp"))
    engine, again = gate(candidate, reference, x, record_path=record_path, weights_sha256=sha256_file(path))
    assert again == record and len(reference.built) == 1  # the verdict is read, nothing re-run


@pytest.mark.parametrize(
    ("delta", "why"),
    [([-0.02, 0.02, 0.0, 0.0], "0.0200 > 0.01"), ([-0.40, 0.40, 0.0, 0.0], "top-1 differs on 1")],
)
def test_gate_falls_back_to_fp32_when_the_candidate_disagrees(tmp_path, delta, why):
    bad = REF.copy()
    bad[0] += delta
    record_path = tmp_path / "fold-0" / RECORD_NAME
    candidate = _Factory(lambda: _FakeEngine(bad))
    reference = _Factory(lambda: _FakeEngine(REF, precision="fp32"))
    engine, record = gate(candidate, reference, _images(5), record_path=record_path, weights_sha256="aa",
                          batch_size=2)
    assert engine is reference.built[0] and engine.precision == "fp32"
    assert not record.ok and why in record.detail and "fp32 is used" in record.reason
    # a later start reads the failure and builds the fp32 engine without checking again
    engine, again = gate(candidate, reference, _images(5), record_path=record_path, weights_sha256="aa")
    assert again == record and engine is reference.built[1] and reference.built[1].calls == 0
    assert load_records(record_path)["openvino/bf16"] == record


def test_gate_checks_again_for_new_weights_or_engine_version(tmp_path):
    record_path = tmp_path / RECORD_NAME
    reference = _Factory(lambda: _FakeEngine(REF, precision="fp32"))
    good = _Factory(lambda: _FakeEngine(REF + 0.001))
    _, first = gate(good, reference, _images(5), record_path=record_path, weights_sha256="aa")
    assert first.ok and reference.built[0].calls == 2  # 5 images in batches of 4
    bad = REF.copy()
    bad[2] = [0.25, 0.25, 0.10, 0.40]
    worse = _Factory(lambda: _FakeEngine(bad))
    engine, second = gate(worse, reference, _images(5), record_path=record_path, weights_sha256="bb")
    assert not second.ok and second.weights_sha256 == "bb" and engine.precision == "fp32"
    newer = _Factory(lambda: _FakeEngine(REF, version="v2"))
    engine, third = gate(newer, reference, _images(5), record_path=record_path, weights_sha256="bb")
    assert third.ok and third.engine_version == "v2" and engine is newer.built[0]
    assert len(reference.built) == 3  # every change of weights or version ran the reference again


def test_damaged_record_means_check_again(tmp_path):
    record_path = tmp_path / RECORD_NAME
    record_path.write_text("{not json")
    assert load_records(record_path) == {}
    reference = _Factory(lambda: _FakeEngine(REF, precision="fp32"))
    _, record = gate(_Factory(lambda: _FakeEngine(REF)), reference, _images(5), record_path=record_path,
                     weights_sha256="aa")
    assert record.ok and isinstance(load_records(record_path)["openvino/bf16"], AgreementRecord)


def test_open_engine_gates_a_reduced_precision_only(exported, tmp_path, monkeypatch):
    path, x, _, _ = exported
    asked = []

    def images():
        asked.append(1)
        return x

    record_path = tmp_path / RECORD_NAME
    monkeypatch.setenv("GUSA_PRECISION", "fp32")
    engine, record = engines.open_engine(path, record_path=record_path, weights_sha256="aa",
                                         validation_images=images, threads=1)
    assert engine.precision == "fp32" and record is None and not asked and not record_path.exists()
    monkeypatch.setenv("GUSA_PRECISION", "bf16")
    engine, record = engines.open_engine(path, record_path=record_path, weights_sha256="aa",
                                         validation_images=images, threads=1)
    if engine.name == "openvino" and record is not None:  # a CPU where OpenVINO compiles bf16
        assert asked == [1] and record.precision == "bf16" and record_path.is_file()
        if record.ok:
            assert engine.precision == "bf16" and "GUSA_PRECISION=bf16 set by the user" in record.reason
        else:
            assert engine.precision == "fp32" and "fp32 is used" in record.reason
        again, same = engines.open_engine(path, record_path=record_path, weights_sha256="aa",
                                          validation_images=images, threads=1)
        assert same == record and asked == [1]
