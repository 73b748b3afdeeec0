"""``cupy.cuda`` of the stand-in: one emulated device, streams that do nothing."""

from __future__ import annotations

from types import SimpleNamespace

from . import Device  # noqa: F401  (cupy.cuda.Device)
from ._emu import EmulatorError


class _Runtime:
    """``cupy.cuda.runtime``: device 0, the only one."""

    CUDARuntimeError = EmulatorError

    @staticmethod
    def getDevice():
        return 0

    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def setDevice(device):
        Device(device)

    @staticmethod
    def getDeviceProperties(device):
        Device(device)
        return {"name": b"CUDA executor on the CPU (fastmoments tests)", "warpSize": 32,
                "maxThreadsPerBlock": 1024, "sharedMemPerBlock": 48 * 1024, "major": 9, "minor": 0,
                "multiProcessorCount": 1, "totalGlobalMem": 0}

    @staticmethod
    def deviceSynchronize():
        pass

    @staticmethod
    def runtimeGetVersion():
        return 13000

    @staticmethod
    def driverGetVersion():
        return 13000


runtime = _Runtime()
driver = SimpleNamespace(CUDADriverError=EmulatorError)


class Stream:
    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.ptr = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass

    def use(self):
        return self


Stream.null = Stream(null=True)


def get_current_stream(device_id=-1):
    return Stream.null


def get_device_id():
    return 0
