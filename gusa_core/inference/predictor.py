"""A trained run's models as one classifier: probabilities and attention maps.

A :class:`Predictor` holds the model of one fold or the ensemble of all folds
of a run (eq. 10: the mean of the folds' softmax outputs). Each model brings
its own pre-processing settings (input size, Reinhard reference, mean and
std) from its ``model.json``, so settings and weights never disagree.

Attention maps are ỹ itself for the RoI variants (``"roi"``) and Grad-CAM of
the predicted class for the others (``"gradcam"``), up-sampled bilinearly to
the image's own resolution; the ensemble's map is the mean of its folds' maps.

Calibration: a run stores the temperature fitted on its out-of-fold
validation predictions at the end of training (``run.json``'s
``calibration``, see :mod:`gusa_core.training.calibrate`). :meth:`Predictor.from_run`
applies it by default: ``softmax(log p̄ / T)`` of the ensemble mean ``p̄``
(one ensemble temperature, never a mean of per-fold-scaled members), or of
the fold's own softmax with its own T for one fold. The argmax is unchanged.

Backends (:mod:`.backends`): ``"torch"`` (eval mode, ``inference_mode``,
channels-last; autocast fp16 on CUDA), and the CPU engines ``"openvino"`` and
``"onnxruntime"`` (``"onnx"``) over each fold's ``<fold>/model.onnx``, exported
once and re-exported when the SHA-256 of its weights or the export
settings differ from what ``model.onnx.json`` records. ``"auto"`` picks the engine
:func:`gusa_core.engines.choose_engine` names for this CPU (OpenVINO, bf16
behind the agreement gate) whenever the ONNX graph yields every output needed,
and torch otherwise or on a GPU. With a fresh export and the CPU, torch is
never imported. Engines are imported when a backend is set up, not with this
module (the app imports it on its GUI thread).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..calibration import apply_temperature
from ..checkpoint import forget_onnx_cache, load_model, onnx_cache_path, read_model_meta, record_onnx_cache, weights_path
from ..errors import GusaError, ModelOutputError
from ..imageio import read_image_for_size
from ..models_registry import ROI_VARIANTS
from ..preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess_array
from ..runs import model_folders, stored_temperature
from ..stain import ReinhardNormalizer
from . import backends as _backends
from .outputs import Prediction
from .outputs import upsample_map as _upsample

__all__ = ["Prediction", "Predictor"]

# --------------------------------------------------------------- predictor
@dataclass
class _Member:
    """One fold model and its pre-processing."""

    folder: Path | None
    meta: dict
    model: object = None  # nn.Module (torch backend; None when an engine runs a fresh export)
    onnx: object = None  # OpenVinoEngine or OnnxRuntimeEngine
    info: object = None  # backends.EngineInfo
    group: int = 0  # index of its pre-processing settings


@dataclass
class _Prep:
    input_size: tuple[int, int]
    normalizer: object
    mean: tuple[float, float, float] | None  # None = ImageNet, what data.preprocess applies
    std: tuple[float, float, float] | None
    members: list[int] = field(default_factory=list)


def _prep_key(meta: dict):
    return (tuple(meta.get("input_size") or ()), json.dumps(meta.get("reinhard"), sort_keys=True),
            json.dumps(meta.get("mean")), json.dumps(meta.get("std")))


class Predictor:
    """Classifies images with one fold model or the ensemble of a run's folds.

    Build it with :meth:`from_run`. Thread-compatible: :meth:`prepare` may run
    in a background thread while :meth:`predict_prepared` runs the network.

    Parameters
    ----------
    models : list of (nn.Module, dict)
        Fold models and their ``model.json`` dicts (see
        :func:`gusa_core.checkpoint.load_model`).
    device : str or torch.device
    backend : {"auto", "openvino", "onnxruntime", "torch"}
        ``"onnx"`` is ``"onnxruntime"``.
    folders : list of path, optional
        The fold folders, where ONNX exports are cached (needed by the engines).
    temperature : float, optional
        Applied to the (ensemble's) softmax; None = 1.
    precision : {"auto", "fp32", "bf16", "int8"}
        OpenVINO's precision: ``"auto"`` follows the CPU (and ``GUSA_PRECISION``);
        bf16 and int8 are used only once they agree with fp32
        (:func:`gusa_core.engines.open_engine`). Ignored by the other backends.

    Attributes
    ----------
    backend : {"openvino", "onnxruntime", "torch"}
        The backend in use.
    engine_info : EngineInfo
        Backend, precision, the reason for them and the processor.
    temperature : float
        Temperature applied to the (ensemble's) softmax; 1 = none.
    """

    def __init__(self, models, *, device="auto", backend: str = "auto", folders=None, temperature: float | None = None,
                 precision: str = "auto"):
        if not models:
            raise GusaError("no model to predict with")
        backend = _backends.normalize_backend(backend)
        self.device = _backends.resolve_device(device, backend)
        metas = [meta for _, meta in models]
        self.class_names = [str(c) for c in metas[0]["class_names"]]
        self.variant = str(metas[0].get("variant"))
        self.input_size = tuple(int(v) for v in metas[0]["input_size"])
        for meta in metas[1:]:
            if [str(c) for c in meta["class_names"]] != self.class_names:
                raise GusaError(f"the folds of this run disagree on the classes: {meta['class_names']} vs {self.class_names}")
            if str(meta.get("variant")) != self.variant:
                raise GusaError(f"the folds of this run disagree on the variant: {meta.get('variant')} vs {self.variant}")
        folders = list(folders) if folders is not None else [None] * len(models)
        self._members = [_Member(Path(f) if f else None, meta, model) for (model, meta), f in zip(models, folders)]
        first = models[0][0]
        self.has_roi = bool(getattr(first, "has_roi", metas[0].get("variant") in ROI_VARIANTS))
        self.attention_kind = "roi" if self.has_roi else "gradcam"
        self.temperature = 1.0 if temperature is None else float(temperature)
        if not self.temperature > 0:
            raise GusaError(f"temperature must be positive, got {temperature}")
        self._preps = self._make_preps()
        self.precision_asked = str(precision or "auto").lower()
        self.backend = self._choose_backend(backend)
        self._lock = threading.Lock()

    # .......................................................... building
    @classmethod
    def from_run(
        cls, run_dir, *, fold: int | None = None, device="auto", backend: str = "auto",
        temperature: float | str = "stored", precision: str = "auto",
    ) -> "Predictor":
        """Load a run (all its folds: the ensemble) or one fold of it.

        Parameters
        ----------
        run_dir : path-like
            A run folder (``run.json`` + ``fold-*/``) or one fold folder
            (``model.safetensors`` + ``model.json``).
        fold : int, optional
            Use only this fold of the run; ``None`` = the ensemble.
        device : str
            ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        backend : {"auto", "openvino", "onnxruntime", "torch"}
            With a CPU engine and every fold's export fresh, the weights are
            not loaded and torch is not imported.
        temperature : float or "stored"
            ``"stored"``: the run's calibration (the ensemble's T, or the
            fold's own; 1.0 when the run stored none); a number overrides it
            (1.0: raw softmax).
        precision : {"auto", "fp32", "bf16", "int8"}
            OpenVINO's precision (see the class).

        Raises
        ------
        CheckpointError
            When the folder holds no finished model, or not the fold asked for.
        """
        folders = model_folders(run_dir, fold=fold)
        name = _backends.normalize_backend(backend)
        if (name != "torch" and _backends.resolve_device(device, name) is _backends.CPU
                and all(_backends.export_is_fresh(f) for f in folders)):
            models = [(None, read_model_meta(f)) for f in folders]
        else:
            models = [_load_model(f) for f in folders]
        if temperature == "stored":
            temperature = stored_temperature(run_dir, fold=fold) if len(folders) > 1 else stored_temperature(folders[0])
        return cls(models, device=device, backend=backend, folders=folders, temperature=temperature,
                   precision=precision)

    def _make_preps(self) -> list[_Prep]:
        preps: dict = {}
        out: list[_Prep] = []
        for i, member in enumerate(self._members):
            key = _prep_key(member.meta)
            if key not in preps:
                meta = member.meta
                ref = meta.get("reinhard")
                normalizer = ReinhardNormalizer.from_dict(ref) if ref else None
                mean = tuple(float(v) for v in meta.get("mean") or IMAGENET_MEAN)
                std = tuple(float(v) for v in meta.get("std") or IMAGENET_STD)
                same = np.allclose(mean, IMAGENET_MEAN) and np.allclose(std, IMAGENET_STD)
                size = tuple(int(v) for v in meta["input_size"])
                preps[key] = len(out)
                out.append(_Prep(size, normalizer, None if same else mean, None if same else std))
            member.group = preps[key]
            out[member.group].members.append(i)
        return out

    # ------------------------------------------------ backend choice (see .backends)
    def _choose_backend(self, backend: str) -> str:
        if backend != "torch" and (backend != "auto" or self.device.type == "cpu"):
            try:
                self._setup_engines(backend)
                return self._members[0].info.backend
            except Exception as exc:
                if backend != "auto":
                    if isinstance(exc, GusaError):
                        raise
                    raise GusaError(f"cannot run this model with {backend}: {exc}") from exc
                for m in self._members:
                    m.onnx = None
                why = f"no CPU engine could run it ({exc}): torch is used"
                self._setup_torch()
                self._members[0].info = _backends.EngineInfo("torch", "fp32", why, str(self.device))
                return "torch"
        self._setup_torch()
        precision = "fp16" if self.device.type == "cuda" else "fp32"
        why = "torch asked for" if backend == "torch" else f"torch on {self.device}"
        self._members[0].info = _backends.EngineInfo("torch", precision, why, str(self.device))
        return "torch"

    def _setup_torch(self) -> None:
        import torch

        if not isinstance(self.device, torch.device):
            self.device = torch.device(self.device.type)
        for m in self._members:
            if m.model is None:
                m.model, _ = _load_model(m.folder)
            model = m.model
            model.eval()
            model.to(self.device)
            if self.device.type in ("cpu", "cuda"):
                model.to(memory_format=torch.channels_last)

    def _setup_engines(self, backend: str) -> None:
        """Export (or reuse) each fold's ONNX graph and open its engine; raise if one cannot give logits + attention."""
        for m in self._members:
            if m.folder is None:
                raise GusaError("the CPU engines need the model's folder to cache its export")
            if not _backends.export_is_fresh(m.folder, m.meta):
                from .export import export_model_onnx

                if m.model is None:
                    m.model, _ = _load_model(m.folder)
                if not self.has_roi and not _cam_is_exact(m.model):
                    raise GusaError(f"the class activation map of {self.variant} is not its Grad-CAM; torch is used")
                m.model.eval()
                forget_onnx_cache(m.folder)
                export_model_onnx(m.model.to("cpu"), onnx_cache_path(m.folder), input_size=tuple(m.meta["input_size"]))
                record_onnx_cache(m.folder, _backends.export_settings(m.meta))
            prep = self._preps[m.group]
            m.onnx, m.info = _backends.open_fold_engine(m.folder, m.meta, backend,
                                                        lambda im, p=prep: self._prepare_one(im, p),
                                                        precision=self.precision_asked)
            needed = {"logits", "attention"} if self.has_roi else {"logits", "cam"}
            missing = needed - set(m.onnx.output_names)
            if missing:
                raise GusaError(f"{onnx_cache_path(m.folder)} lacks the output(s) {', '.join(sorted(missing))}")
        for m in self._members:  # the engine gives every output: the torch copies are not needed
            m.model = None

    @property
    def engine_info(self) -> "_backends.EngineInfo":
        """What runs the network: backend, precision, why, and on which processor.

        For an ensemble whose folds ended on different precisions, the reasons are joined.
        """
        infos = [_current(m.info, m.onnx) for m in self._members if m.info is not None]
        first = infos[0]
        if all(i.precision == first.precision for i in infos):
            return first
        precisions = "/".join(i.precision for i in infos)
        reason = "; ".join(f"fold {k}: {i.reason}" for k, i in enumerate(infos))
        return _backends.EngineInfo(first.backend, precisions, reason, first.device, first.mode)

    # ......................................................... properties
    @property
    def n_models(self) -> int:
        """Number of fold models averaged (1 for a single fold)."""
        return len(self._members)

    @property
    def metas(self) -> list[dict]:
        """The ``model.json`` dicts of the fold models."""
        return [m.meta for m in self._members]

    @property
    def folders(self) -> list[Path | None]:
        """The fold folders the models came from."""
        return [m.folder for m in self._members]

    # ...................................................... pre-processing
    def prepare(self, image: np.ndarray, *, shape: tuple[int, int] | None = None):
        """Pre-process one image for every distinct input setting of the members.

        Parameters
        ----------
        image : ndarray of shape (H, W, 3), uint8
        shape : (int, int), optional
            ``(H, W)`` of the full image when ``image`` is a reduced decode of
            it (:func:`gusa_core.imageio.read_image_for_size`); the attention
            map is up-sampled to it. ``image.shape[:2]`` if None.

        Returns
        -------
        tuple
            ``((H, W), [ndarray (3, h, w) float32 per setting])``; pass a list of these
            to :meth:`predict_prepared`.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise GusaError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
        shape = tuple(int(v) for v in (shape if shape is not None else image.shape[:2]))
        return shape, [self._prepare_one(image, prep) for prep in self._preps]

    def prepare_path(self, path) -> tuple:
        """Read and pre-process an image file, decoding no more of it than the inputs need.

        The same as ``prepare(read_image(path))`` within one grey level of
        the network input (a JPEG is decoded at a reduced scale in its DCT,
        an uncompressed TIFF memory-mapped: :func:`gusa_core.imageio.read_image_for_size`),
        at a fraction of the work for a large image.

        Raises
        ------
        ImageReadError
            Naming the file, as :func:`gusa_core.imageio.read_image`.
        """
        width = max(p.input_size[0] for p in self._preps)
        height = max(p.input_size[1] for p in self._preps)
        image, shape = read_image_for_size(path, (width, height))
        return self.prepare(image, shape=shape)

    @staticmethod
    def _prepare_one(image: np.ndarray, prep: _Prep) -> np.ndarray:
        x = preprocess_array(image, prep.input_size, prep.normalizer)
        if prep.mean is None:
            return x
        im_mean = np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]
        im_std = np.asarray(IMAGENET_STD, np.float32)[:, None, None]
        raw = x * im_std + im_mean
        return ((raw - np.asarray(prep.mean, np.float32)[:, None, None])
                / np.asarray(prep.std, np.float32)[:, None, None]).astype(np.float32)

    # ........................................................... network
    def predict(self, images: Sequence[np.ndarray], *, paths: Sequence[str | None] | None = None) -> list[Prediction]:
        """Classify a batch of images.

        Parameters
        ----------
        images : sequence of ndarray (H, W, 3) uint8
            Any sizes; each is resized to the model's input size.
        paths : sequence of str or None, optional
            Stored in each :class:`Prediction`.

        Returns
        -------
        list of Prediction
        """
        prepared = [self.prepare(im) for im in images]
        return self.predict_prepared(prepared, paths=paths)

    def predict_image(self, image: np.ndarray) -> Prediction:
        """Classify one image (see :meth:`predict`)."""
        return self.predict([image])[0]

    def predict_prepared(self, prepared: Sequence, *, paths: Sequence[str | None] | None = None) -> list[Prediction]:
        """Run the network on the outputs of :meth:`prepare` (one batch)."""
        return self.submit_prepared(prepared, paths=paths)()

    def submit_prepared(self, prepared: Sequence, *, paths: Sequence[str | None] | None = None):
        """Start the network on a batch of :meth:`prepare` outputs; call the result for its predictions.

        With OpenVINO this returns as soon as the batch is queued, so the next
        batch can be queued behind it before this one is collected and the
        cores never wait for the caller in between
        (:func:`gusa_core.inference.classify_paths` does so); the other
        backends run the batch before returning.

        Returns
        -------
        callable
            ``() -> list of Prediction``, to call once.
        """
        if not prepared:
            return lambda: []
        shapes = [p[0] for p in prepared]
        paths = None if paths is None else [None if p is None else str(p) for p in paths]
        batches = [np.stack([np.asarray(p[1][g], dtype=np.float32) for p in prepared]) for g in range(len(self._preps))]
        if self.backend == "torch":
            with self._lock:
                outs = [self._run_torch_forward(m, batches[m.group]) for m in self._members]
                probs, maps = self._combine(outs, batches)
            preds = self._predictions(probs, maps, shapes, paths)
            return lambda: preds
        with self._lock:
            waits = [_submit(m.onnx, batches[m.group]) for m in self._members]

        def wait() -> list[Prediction]:
            outs = [self._engine_outputs(w()) for w in waits]
            probs, maps = self._combine(outs, batches)
            return self._predictions(probs, maps, shapes, paths)

        return wait

    def _predictions(self, probs: np.ndarray, maps: np.ndarray, shapes, paths) -> list[Prediction]:
        preds = []
        for i, shape in enumerate(shapes):
            lowres = np.ascontiguousarray(maps[i], dtype=np.float32)
            at_input = _upsample(lowres, (16 * lowres.shape[0], 16 * lowres.shape[1]))
            index = int(np.argmax(probs[i]))
            preds.append(
                Prediction(
                    class_names=list(self.class_names),
                    probs=probs[i],
                    index=index,
                    label=self.class_names[index],
                    attention_kind=self.attention_kind,
                    roi_fraction=float(np.count_nonzero(at_input > 0.5) / at_input.size),
                    path=None if paths is None else paths[i],
                    attention_lowres=lowres,
                    image_shape=tuple(int(v) for v in shape),
                )
            )
        return preds

    def _combine(self, outs: list, batches: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble: mean softmax (eq. 10) and mean attention of the folds' outputs, low resolution."""
        for m, (p, _) in zip(self._members, outs):  # NaN never becomes a prediction
            if not np.isfinite(p).all():
                raise ModelOutputError(
                    weights_path(m.folder) if m.folder else "(model in memory)",
                    "the model gives NaN or infinite probabilities (diverged or damaged weights): "
                    "retrain with a lower learning rate or restore the folder")
        probs = np.mean([o[0] for o in outs], axis=0).astype(np.float64)
        probs = probs / probs.sum(axis=1, keepdims=True)
        if self.temperature != 1.0:
            probs = apply_temperature(np.log(np.clip(probs, 1e-300, None)), self.temperature)
        index = probs.argmax(axis=1)
        maps = []
        for m, (_, att) in zip(self._members, outs):
            if self.has_roi:
                maps.append(att)
            elif att is not None:  # class activation maps of every class: keep the ensemble's class
                maps.append(np.ascontiguousarray(att[np.arange(len(index)), index], dtype=np.float32))
            else:
                maps.append(self._run_torch_gradcam(m, batches[m.group], index))
        shapes = {mp.shape[1:] for mp in maps}
        if len(shapes) > 1:  # folds with different input sizes: average on the finest grid
            h = max(s[0] for s in shapes)
            w = max(s[1] for s in shapes)
            maps = [np.stack([_upsample(x, (h, w)) for x in mp]) for mp in maps]
        return probs, np.mean(maps, axis=0).astype(np.float32)

    def _engine_outputs(self, out: dict):
        probs = _softmax(np.asarray(out["logits"], dtype=np.float64))
        if self.has_roi:
            att = np.asarray(out["attention"], dtype=np.float32)
            return probs, att.reshape(att.shape[0], *att.shape[-2:])
        # every class's map: an ensemble shows its own predicted class, which a fold may not share
        return probs, np.asarray(out["cam"], dtype=np.float32)

    def _run_torch_forward(self, member: _Member, x: np.ndarray):
        """Logits and, in one pass, ỹ or the class activation maps (Grad-CAM of a linear head)."""
        import torch

        model = member.model
        xt = torch.from_numpy(x).to(self.device)
        if self.device.type in ("cpu", "cuda"):
            xt = xt.contiguous(memory_format=torch.channels_last)
        weight = None if self.has_roi else model.linear_cam_weight()
        with torch.inference_mode(), _autocast(self.device):
            if weight is None:
                out = model(xt)
                logits, roi, cams = out.logits, out.roi, None
            else:
                from .gradcam import cam_from_features

                logits, roi, features = model.forward_with_features(xt)
                cams = cam_from_features(features.float(), weight.float())
        probs = torch.softmax(logits.float(), dim=1).cpu().numpy().astype(np.float64)
        if self.has_roi:
            return probs, roi.float().reshape(roi.shape[0], *roi.shape[-2:]).cpu().numpy()
        return probs, None if cams is None else cams.float().cpu().numpy()

    def _run_torch_gradcam(self, member: _Member, x: np.ndarray, index: np.ndarray) -> np.ndarray:
        import torch

        from .gradcam import grad_cam

        if member.model is None:
            raise GusaError(f"{self.variant}: Grad-CAM needs the torch model")
        dev = next(member.model.parameters()).device
        cams = grad_cam(member.model, torch.from_numpy(x).to(dev), class_idx=torch.as_tensor(index))
        return np.asarray(cams.float().cpu().numpy(), dtype=np.float32)


def _submit(engine, x: np.ndarray):
    """``engine.submit(x)`` where the engine queues work (OpenVINO); else the outputs of a call now."""
    submit = getattr(engine, "submit", None)
    if submit is not None:
        return submit(x)
    out = engine(x)
    return lambda: out


def _load_model(folder):
    """A fold model on the CPU; a clear message where torch is missing (an inference-only install)."""
    try:
        return load_model(folder, device="cpu")
    except ImportError as exc:
        if "torch" not in str(exc):
            raise
        raise GusaError(f"torch is not installed, and {folder} has no up-to-date ONNX export to predict "
                        "with: predict this run once where torch is installed") from exc


def _current(info, engine):
    """``info`` with the engine's present account of how it runs (OpenVINO learns its stream count on first use)."""
    describe = getattr(engine, "describe_mode", None)
    if describe is None or not info.mode:
        return info
    mode = describe()
    base = info.reason[:-len(info.mode) - 2] if info.reason.endswith(f"; {info.mode}") else info.reason
    return dataclasses.replace(info, reason=f"{base}; {mode}", mode=mode)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _autocast(device):
    import contextlib

    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _cam_is_exact(model) -> bool:
    """Whether Grad-CAM equals the class activation map for this model (a linear head after ``cam_layer``)."""
    return getattr(model, "linear_cam_weight", lambda: None)() is not None
