import importlib.util
from pathlib import Path

_EMULATOR_LINE = ""


def pytest_configure(config):
    # The CuPy-chunk test runs on the core's CUDA emulator when asked (CI=true,
    # FASTMOMENTS_GPU_EMULATOR=1) and no GPU is here; see tests/gpu_emu/activate.py.
    global _EMULATOR_LINE
    path = Path(__file__).resolve().parents[3] / "tests" / "gpu_emu" / "activate.py"
    spec = importlib.util.spec_from_file_location("fastmoments_gpu_emu_activate", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    _EMULATOR_LINE = mod.activate()


def pytest_report_header(config):
    return _EMULATOR_LINE
