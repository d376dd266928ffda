"""QAOA on IBM Quantum hardware (or its fake_<device> noisy models), with a durable job ledger.

- ``ledger``: append-only job ledger + result cache in the run directory
- ``service``: the service protocol and an in-process ``FakeService`` for tests
- ``jobs``: crash-safe submit / wait / fetch (never resubmits a job it can find)
- ``runtime``: qiskit-ibm-runtime (the only module importing it) and fake backends
- ``runner``: the two strategies (simulator angles + device sampling; SPSA on the device)
- ``report``: per-problem device vs noiseless simulator vs exact optimum
"""
from .ledger import JobRecord, Ledger
from .redact import HardwareError, redact
from .service import FakeService, Service, SimulatedCrash

__all__ = ["Ledger", "JobRecord", "Service", "FakeService", "SimulatedCrash", "HardwareError", "redact",
           "HardwareRun", "HardwareConfig", "get_service", "submit", "fetch", "status", "cancel"]


def __getattr__(name):
    # Lazy: the runner pulls in the QAOA solver and qiskit only when used.
    if name in ("HardwareRun", "HardwareConfig"):
        from . import runner

        return getattr(runner, name)
    if name == "get_service":
        from .runtime import get_service

        return get_service
    if name in ("submit", "fetch", "status", "cancel"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'qselect.hardware' has no attribute {name!r}")
