"""Whether a test run executes the GPU tests on the CUDA emulator, and turning it on.

The real CuPy always wins: the stand-in (``stand_in/cupy``) goes on the import
path only when a run asks for it and no usable GPU is there. A run asks for
it with ``FASTMOMENTS_GPU_EMULATOR=1`` (``0`` forbids it), or by running
under ``CI=true`` (as CI does), so GPU tests execute there instead of
skipping. Never imported by the package: only by the tests' conftest files.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

STAND_IN = Path(__file__).resolve().parent / "stand_in"
_TRUE = {"1", "true", "yes", "on"}


def requested() -> bool:
    flag = os.environ.get("FASTMOMENTS_GPU_EMULATOR", "").strip().lower()
    if flag:
        return flag in _TRUE
    return os.environ.get("CI", "").strip().lower() in _TRUE


def _real_gpu() -> bool:
    """A real CuPy that sees a device, tried in a child so this process never
    imports it (the stand-in could not replace it afterwards)."""
    spec = importlib.util.find_spec("cupy")
    if spec is None or (spec.origin and Path(spec.origin).resolve().is_relative_to(STAND_IN)):
        return False
    probe = "import cupy, sys; sys.exit(0 if cupy.cuda.runtime.getDeviceCount() > 0 else 1)"
    try:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def activate() -> str:
    """Put the stand-in first on the path (here and for child processes) if
    asked and no real GPU is there; returns a line for the test report."""
    if not requested():
        return "GPU emulator: off (set FASTMOMENTS_GPU_EMULATOR=1 to run the GPU tests on the CPU)"
    if "cupy" in sys.modules and not getattr(sys.modules["cupy"], "__fmemu__", False):
        return "GPU emulator: off (the real CuPy is already imported)"
    if _real_gpu():
        return "GPU emulator: off (a real GPU and CuPy are here: the GPU tests run on the device)"
    missing = [tool for tool in ("g++", "nm") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("FASTMOMENTS_GPU_EMULATOR", "").strip().lower() in _TRUE:
            raise RuntimeError(f"FASTMOMENTS_GPU_EMULATOR=1 but {' and '.join(missing)} not found: the emulator compiles kernels with g++")
        return f"GPU emulator: off ({' and '.join(missing)} not found)"
    if not os.environ.get("FASTMOMENTS_EMU_SEED"):
        os.environ["FASTMOMENTS_EMU_SEED"] = str(random.SystemRandom().randrange(1, 2**31))
    path = str(STAND_IN)
    if path not in sys.path:
        sys.path.insert(0, path)
    pp = os.environ.get("PYTHONPATH", "")
    if path not in pp.split(os.pathsep):
        os.environ["PYTHONPATH"] = path + (os.pathsep + pp if pp else "")
    import cupy

    assert getattr(cupy, "__fmemu__", False), cupy
    return (
        "GPU emulator: on (CUDA kernels run on the CPU); thread and block orders from "
        f"FASTMOMENTS_EMU_SEED={os.environ['FASTMOMENTS_EMU_SEED']}"
    )
