"""QAOA solvers and engines.

QAOA: native statevector engines (NumPy, torch), qiskit Aer/Statevector and PennyLane backends, angle schedules,
objectives, optimisers and angle transfer across a layer.
"""
from .angles import initial_angles, interpolate, linear_ramp, random_angles
from .solver import BACKENDS, QAOAResult, QAOASolver
from .transfer import LayerQAOAResult, solve_layer

__all__ = ["QAOASolver", "QAOAResult", "BACKENDS", "linear_ramp", "random_angles", "interpolate",
           "initial_angles", "solve_layer", "LayerQAOAResult"]
