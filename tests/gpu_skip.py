"""What the GPU test modules share: whether CuPy can run here, and their marks.

``from gpu_skip import REASON, cupy, pytestmark`` in a test module marks all
its tests ``gpu`` and skips them, with the reason, where CuPy or a device is
missing (under the CPU emulator, activated by conftest.py, they run).
"""

from __future__ import annotations

import pytest


def _gpu_unavailable():
    try:
        import cupy
    except Exception as e:  # ImportError, or a broken CUDA install
        return f"CuPy is not installed ({type(e).__name__}: {e})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return f"no usable CUDA device ({type(e).__name__}: {e})"
    if n < 1:
        return "no CUDA device"
    return None


REASON = _gpu_unavailable()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=str(REASON))]

if REASON is None:
    import cupy
else:
    cupy = None
