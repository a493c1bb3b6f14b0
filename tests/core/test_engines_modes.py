"""How OpenVINO spends the cores per call (the stream rule), overlapping submissions, and int8 behind the gate."""

from __future__ import annotations

import numpy as np
import pytest

import gusa_core.engines as engines
from gusa_core.engines import OpenVinoEngine, choose_engine, choose_precision
from gusa_core.engines.agreement import RECORD_NAME, load_records, softmax
from gusa_core.engines.cpu import CpuInfo, parse_proc_cpuinfo
from gusa_core.engines.modes import LATENCY, THROUGHPUT, choose_mode, describe_rule
from gusa_core.errors import GusaError

H, W = 48, 64
_CPU = "processor\t: {i}\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\nflags\t\t: avx2 avx512f avx512_bf16\n\n"


def _cpu(cores: int) -> CpuInfo:
    return parse_proc_cpuinfo("".join(_CPU.format(i=i) for i in range(cores)))


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch):
    monkeypatch.delenv("GUSA_PRECISION", raising=False)
    monkeypatch.delenv("GUSA_ENGINE", raising=False)


# ------------------------------------------------------------------ the rule, with mocked CPUs
@pytest.mark.parametrize(
    ("cores", "streams", "batch", "hint", "why"),
    [
        (1, None, 4, LATENCY, "one core"),  # a single core has nothing to share
        (1, 1, 1, LATENCY, "one core"),
        (2, 2, 1, LATENCY, "one image"),  # THROUGHPUT would leave a core idle
        (2, None, 4, THROUGHPUT, "several streams may share"),  # not compiled yet: ask for the streams
        (2, 2, 2, THROUGHPUT, "fill 2 streams equally"),
        (2, 2, 4, THROUGHPUT, "fill 2 streams equally"),
        (2, 2, 3, LATENCY, "not a multiple of 2"),  # 2 + 1: a stream idles for the last image
        (2, 1, 4, LATENCY, "runs one stream"),
        (16, 4, 2, LATENCY, "not a multiple of 4"),
        (16, 4, 8, THROUGHPUT, "fill 4 streams"),
        (16, 4, 6, LATENCY, "not a multiple of 4"),
    ],
)
def test_stream_rule_follows_cores_streams_and_batch(cores, streams, batch, hint, why):
    info = _cpu(cores)
    assert info.cores == cores
    got, reason = choose_mode(batch, cores=info.cores, streams=streams)
    assert got == hint and why in reason
    assert choose_mode(batch, cores=info.cores, streams=streams, load=1.5 * cores) == (got, reason)  # not busy


@pytest.mark.parametrize(("batch", "streams"), [(1, 2), (3, 2), (1, None)])
def test_an_oversubscribed_machine_runs_streams_for_every_batch(batch, streams):
    hint, reason = choose_mode(batch, cores=2, streams=streams, load=15.0)
    assert hint == THROUGHPUT and ("load average 15.0 on 2 cores" in reason or streams is None)
    assert choose_mode(batch, cores=1, streams=streams, load=15.0)[0] == LATENCY  # one core: nothing to share
    assert choose_mode(4, cores=2, streams=1, load=15.0)[0] == LATENCY  # OpenVINO made one stream


def test_rule_is_described_for_the_user(monkeypatch):
    assert describe_rule(1) == "one stream on the one core"
    assert "all 8 cores" in describe_rule(8) and "N streams" in describe_rule(8)
    assert "2 streams" in describe_rule(2, 2)
    monkeypatch.setattr(engines, "available_engines", lambda: ("openvino", "onnxruntime"))
    name, precision, reason = choose_engine(_cpu(4))  # what About shows
    assert (name, precision) == ("openvino", "bf16") and "all 4 cores" in reason


# ------------------------------------------------------------------ the engine on a real export
@pytest.fixture(scope="module")
def exported(export_random_fa_gusa):
    """A random fa-gusa exported at 64x48, with its torch logits on 4 images (the oracle)."""
    return export_random_fa_gusa(4, size=(W, H))


@pytest.fixture
def quiet(monkeypatch):
    """A machine with nothing else running (the rule's load input), whatever the test machine's load."""
    import gusa_core.engines.openvino as ov_module

    load = {"value": 0.0}
    monkeypatch.setattr(ov_module, "machine_load", lambda: load["value"])
    return load


def test_auto_hint_runs_each_batch_on_the_mode_the_rule_names(exported, quiet):
    path, x, logits, roi = exported
    engine = OpenVinoEngine(path, precision="fp32", threads=2, cache=False)
    assert engine.hint == "auto" and engine.streams is None  # only LATENCY is compiled at first
    one = engine.run(x[:1])
    assert engine.last_mode[0] == LATENCY
    np.testing.assert_allclose(one["logits"], logits[:1], atol=1e-4, rtol=1e-4)
    four = engine.run(x)
    assert engine.streams is not None and engine.streams >= 1
    assert engine.last_mode == choose_mode(4, cores=2, streams=engine.streams)
    np.testing.assert_allclose(four["logits"], logits, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(four["attention"], roi, atol=1e-4)
    three = engine.run(x[:3])
    assert engine.last_mode[0] == LATENCY or engine.streams in (1, 3)
    np.testing.assert_allclose(three["logits"], logits[:3], atol=1e-4, rtol=1e-4)
    text = engine.describe_mode()
    assert "last call" in text and "cores" in text
    single = OpenVinoEngine(path, precision="fp32", threads=1, cache=False)
    single.run(x)
    assert single.last_mode[0] == LATENCY and single.streams is None  # one core: the streams never compiled
    quiet["value"] = 40.0  # other work everywhere: one image goes to a stream of its own
    np.testing.assert_allclose(engine.run(x[:1])["logits"], logits[:1], atol=1e-4, rtol=1e-4)
    assert engine.last_mode[0] == (THROUGHPUT if engine.streams > 1 else LATENCY)
    with pytest.raises(GusaError, match="FAST"):
        OpenVinoEngine(path, hint="FAST")


def test_submitted_batches_overlap_and_each_gets_its_own_outputs(exported, quiet):
    path, x, logits, _ = exported
    engine = OpenVinoEngine(path, precision="fp32", threads=2, cache=False)
    first = engine.submit(x[:2])
    second = engine.submit(x[2:])  # queued before the first is collected
    third = engine.submit(x[:1])
    np.testing.assert_allclose(second()["logits"], logits[2:], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(first()["logits"], logits[:2], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(third()["logits"], logits[:1], atol=1e-4, rtol=1e-4)
    with pytest.raises(GusaError, match="already collected"):
        first()
    # the requests went back to the pool: later calls reuse them
    np.testing.assert_allclose(engine.run(x)["logits"], logits, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ int8
def test_int8_is_asked_for_never_chosen(monkeypatch):
    zen4 = _cpu(2)
    assert choose_precision(zen4)[0] == "bf16"
    monkeypatch.setenv("GUSA_PRECISION", "int8")
    assert choose_precision(zen4) == ("int8", "GUSA_PRECISION=int8 set by the user")
    assert choose_precision(zen4, engine="onnxruntime")[0] == "fp32"


def test_int8_without_nncf_falls_back_to_the_cpus_precision(exported, tmp_path, monkeypatch):
    import gusa_core.engines.int8 as int8

    path, x, _, _ = exported
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(path.read_bytes())
    monkeypatch.setattr(int8, "nncf_available", lambda: False)
    engine, record = engines.open_engine(onnx, record_path=tmp_path / RECORD_NAME, weights_sha256="ab",
                                         validation_images=lambda: x, threads=1, precision="int8",
                                         info=CpuInfo())
    assert engine.precision == "fp32" and record is None
    assert "int8 asked for but NNCF is not installed" in engine.reason
    with pytest.raises(GusaError, match="NNCF"):
        int8.quantize_model(onnx, x, tmp_path / "q.xml")


class _Shifted:
    """Claims int8 and moves the logits of a real fp32 engine: what a quantisation that went wrong gives."""

    def __init__(self, inner, shift):
        self.inner, self.shift = inner, np.asarray(shift, np.float32)
        self.name, self.precision, self.reason = "openvino", "int8", "int8 asked for"
        self.version, self.device_name, self.output_names = inner.version, inner.device_name, inner.output_names

    def run(self, batch):
        out = dict(self.inner.run(batch))
        out["logits"] = out["logits"] + self.shift
        return out

    __call__ = run


def test_int8_that_disagrees_falls_back_to_fp32_and_is_not_quantised_again(exported, tmp_path, monkeypatch):
    import gusa_core.engines.int8 as int8

    path, x, _, _ = exported
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(path.read_bytes())
    quantised = []

    def fake_quantized_model(onnx_path, *, cache_dir, weights_sha256, images):
        quantised.append(weights_sha256)
        images = images() if callable(images) else images
        return onnx_path  # stands for the quantised IR

    real = engines.create_engine

    def create(name, model_path, *, precision="auto", threads=None, cache_dir=None):
        if precision == "int8":
            return _Shifted(real(name, model_path, precision="fp32", threads=threads), [9.0, 0.0, 0.0, 0.0])
        return real(name, model_path, precision=precision, threads=threads, cache_dir=cache_dir)

    monkeypatch.setattr(int8, "quantized_model", fake_quantized_model)
    monkeypatch.setattr(engines, "create_engine", create)
    monkeypatch.setenv("GUSA_PRECISION", "int8")
    record_path = tmp_path / RECORD_NAME
    engine, record = engines.open_engine(onnx, record_path=record_path, weights_sha256="cd",
                                         validation_images=lambda: (x, "four test images"), threads=1)
    assert engine.precision == "fp32" and not record.ok and record.precision == "int8"
    assert "int8 disagrees with fp32" in record.reason and "fp32 is used" in record.reason
    assert "four test images" in record.reason
    assert load_records(record_path)["openvino/int8"] == record
    again, same = engines.open_engine(onnx, record_path=record_path, weights_sha256="cd",
                                      validation_images=lambda: x, threads=1)
    assert again.precision == "fp32" and same == record and quantised == ["cd"]  # the verdict stands


def test_int8_quantised_by_nncf_passes_or_fails_the_gate_with_its_reason(exported, tmp_path):
    pytest.importorskip("nncf")
    from gusa_core.engines.int8 import quantized_path

    path, x, logits, _ = exported
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(path.read_bytes())
    calib = np.random.default_rng(7).standard_normal((6, 3, H, W)).astype(np.float32)
    engine, record = engines.open_engine(onnx, record_path=tmp_path / RECORD_NAME, weights_sha256="ef" * 32,
                                         validation_images=lambda: x, calibration_images=lambda: (calib, "noise"),
                                         threads=1, precision="int8")
    xml = quantized_path(tmp_path / "ov-cache", "ef" * 32)
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    assert record.precision == "int8" and record.key == "openvino/int8"
    if record.ok:  # top-1 identical and max |dp| <= 0.01 on the 4 images
        assert engine.precision == "int8" and "int8 agrees with fp32" in record.reason
        diff = np.abs(softmax(engine.run(x)["logits"]) - softmax(logits)).max()
        assert diff <= 0.01 + 1e-6
    else:
        assert engine.precision == "fp32" and "fp32 is used" in record.reason
    mtime = xml.stat().st_mtime_ns
    engines.open_engine(onnx, record_path=tmp_path / RECORD_NAME, weights_sha256="ef" * 32,
                        validation_images=lambda: x, threads=1, precision="int8")
    assert xml.stat().st_mtime_ns == mtime  # quantised once per weights
