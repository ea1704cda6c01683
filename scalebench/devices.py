"""Whether this build of torch can run on a device, checked before a sweep writes anything."""

from __future__ import annotations

from scalebench.errors import UsageError


def check_device(device: str) -> None:
    """Raise UsageError (one line naming the device and the fix) unless torch can use `device`.

    The spec parser already accepts only cpu, mps, cuda and cuda:N; this asks torch (not for cpu,
    which every build runs: the rerun of a finished CPU sweep imports no torch).
    """
    if device == "cpu":
        return
    import torch

    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            why = "was built without MPS" if mps is None or not mps.is_built() else "finds no MPS device"
            raise UsageError(f"device 'mps' is not available: this torch {torch.__version__} {why}; use --device cpu")
        return
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "was built without CUDA" if torch.version.cuda is None else "sees no CUDA device"
            raise UsageError(f"device {device!r} is not available: this torch {torch.__version__} {why}; "
                             "use --device cpu")
        index = int(device.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise UsageError(f"device {device!r} is out of range: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}; use one of them or --device cpu")
        return
    raise UsageError(f"device {device!r} is not a device; use 'cpu' or 'cuda' (or 'cuda:N')")
