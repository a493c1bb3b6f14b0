"""Choosing the device a model runs on: CUDA, Apple MPS or the CPU."""

from __future__ import annotations

import datetime
import os

import torch

from .errors import GusaError

__all__ = ["resolve_device", "available_devices", "configure_cpu_threads", "DistContext", "setup_distributed"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Turn a device name into a usable ``torch.device``.

    Parameters
    ----------
    spec : str or torch.device or None
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:N"`` or ``"mps"``. ``None`` means ``"auto"``.

    Returns
    -------
    torch.device

    Raises
    ------
    GusaError
        When the requested device is absent or the name is not understood.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available():
            raise GusaError("device 'mps' was requested but Apple MPS is not available on this machine; use --device cpu or auto")
        return torch.device("mps")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise GusaError(
                f"device {text!r} was requested but CUDA is not available "
                f"(torch {torch.__version__}, no usable NVIDIA GPU or driver); use --device cpu or auto"
            )
        index = torch.cuda.current_device()
        if ":" in text:
            try:
                index = int(text.split(":", 1)[1])
            except ValueError:
                raise GusaError(f"device {spec!r} is not understood: expected cuda:N with N a number") from None
        count = torch.cuda.device_count()
        if not 0 <= index < count:
            raise GusaError(f"device {text!r} was requested but only {count} CUDA device(s) exist (cuda:0 .. cuda:{count - 1})")
        return torch.device("cuda", index)
    raise GusaError(f"device {spec!r} is not understood: use auto, cpu, cuda, cuda:N or mps")


def available_devices() -> list[tuple[str, str]]:
    """List the devices a model can run on, for a menu.

    Returns
    -------
    list of (str, str)
        ``(id, label)`` pairs, the CPU first, e.g.
        ``[("cpu", "CPU (2 threads)"), ("cuda:0", "NVIDIA H100 (80 GB)")]``.
    """
    out = [("cpu", f"CPU ({torch.get_num_threads()} threads)")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            out.append((f"cuda:{i}", f"{props.name} ({props.total_memory / 2**30:.0f} GB)"))
    if _mps_available():
        out.append(("mps", "Apple GPU (MPS)"))
    return out


def configure_cpu_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to a sensible number and return it.

    Parameters
    ----------
    threads : int, optional
        Explicit count. By default ``OMP_NUM_THREADS`` if set, else the
        CPUs this process may use (oversubscription slows training down).
    """
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        if env.isdigit() and int(env) > 0:
            threads = int(env)
        else:
            try:
                threads = len(os.sched_getaffinity(0))
            except AttributeError:  # macOS, Windows
                threads = os.cpu_count() or 1
    threads = max(1, int(threads))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


class DistContext:
    """Where this process stands in data-parallel training (torchrun's environment).

    Attributes
    ----------
    world_size, rank, local_rank : int
        ``1, 0, 0`` without data parallelism.
    device : torch.device
        This process's device (``cuda:LOCAL_RANK`` under DDP on CUDA).
    initialised : bool
        Whether :func:`setup_distributed` created the process group (and so
        destroys it in :meth:`cleanup`).
    """

    def __init__(self, world_size: int, rank: int, local_rank: int, device: torch.device, initialised: bool):
        self.world_size = world_size
        self.rank = rank
        self.local_rank = local_rank
        self.device = device
        self.initialised = initialised

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def any_flag(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank (for stop requests)."""
        if not self.enabled:
            return bool(flag)
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def cleanup(self) -> None:
        if self.initialised:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.initialised = False

    def __repr__(self) -> str:
        return f"DistContext(rank={self.rank}/{self.world_size}, device={self.device})"


def setup_distributed(device: str | torch.device | None = "auto", *, timeout: float | None = None) -> DistContext:
    """Join torchrun's process group when ``WORLD_SIZE > 1``; otherwise a single-process context.

    Uses NCCL on CUDA and gloo on the CPU; on CUDA each process takes
    ``cuda:LOCAL_RANK``. ``timeout`` (seconds) bounds joining and every collective
    (PyTorch's default is 30 minutes for gloo, 10 for NCCL).
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = int(os.environ.get("RANK", "0") or 0)
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    dev = resolve_device(device)
    if world <= 1:
        return DistContext(1, 0, 0, dev, False)
    import torch.distributed as dist

    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if dist.is_initialized():
        return DistContext(dist.get_world_size(), dist.get_rank(), local, dev, False)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    kw = {} if timeout is None else {"timeout": datetime.timedelta(seconds=float(timeout))}
    dist.init_process_group(backend=backend, world_size=world, rank=rank, **kw)
    return DistContext(world, rank, local, dev, True)
