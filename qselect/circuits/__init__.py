"""QAOA circuits for qiskit and PennyLane.

qiskit is imported only in ``qselect.circuits.qiskit`` and PennyLane only in
``qselect.circuits.pennylane``; import those submodules explicitly.
"""
