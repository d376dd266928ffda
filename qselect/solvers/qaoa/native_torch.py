"""PyTorch statevector engine (CPU or CUDA) with autograd gradients.

Same conventions and layer structure as ``native.NumpyQAOA``: phase =
elementwise multiply by exp(-iγc); X mixer = one batched matmul per group of
m qubits with ⊗exp(-iβX) built from β by torch ops, so autograd gives exact
gradients for all angles. complex64 by default (GPU-friendly), complex128 on
request.
"""
from __future__ import annotations

import numpy as np
import torch

from ...devices import resolve_device
from ...errors import QSelectError
from ...ansatz import check_mixer, dicke_state, ring_pairs
from .native import _hamming

_GROUP = 5


class TorchQAOA:
    """QAOA statevector engine in PyTorch (CPU or CUDA), gradients by autograd.

    Parameters
    ----------
    costs : array_like of float, shape (2**n,)
        The (normalised) cost vector, little-endian index.
    p : int
        Depth.
    mixer : {"x", "xy"}
        Transverse field, or the XY ring started from the Dicke state.
    k : int or None
        Hamming weight for ``mixer="xy"``.
    dtype : torch.complex64 or torch.complex128
    device : str, torch.device or None
        ``None``/``"auto"``: CUDA when present (``qselect.devices.resolve_device``).

    Raises
    ------
    QSelectError
        If the dtype is not complex64/complex128, the cost length is not a
        power of two, or the mixer/k combination is invalid.

    References
    ----------
    E. Farhi, J. Goldstone, S. Gutmann, "A Quantum Approximate Optimization
    Algorithm", arXiv:1411.4028 (2014).
    """
    def __init__(self, costs, p: int, mixer: str = "x", k: int | None = None,
                 dtype=torch.complex64, device=None):
        self.device = resolve_device(device)
        if isinstance(dtype, np.dtype) or dtype in (np.complex64, np.complex128):
            dtype = torch.complex64 if np.dtype(dtype) == np.complex64 else torch.complex128
        if dtype not in (torch.complex64, torch.complex128):
            raise QSelectError(f"torch engine dtype must be complex64 or complex128, got {dtype}")
        self.dtype = dtype
        self.rdtype = torch.float32 if dtype == torch.complex64 else torch.float64
        costs = np.asarray(costs)
        N = costs.size
        n = N.bit_length() - 1
        if N != 1 << n:
            raise QSelectError(f"cost vector must have length 2^n, got {N}")
        check_mixer(mixer, k, need_k=True)
        self.n, self.N, self.p, self.mixer, self.k = n, N, int(p), mixer, k
        self.costs = torch.as_tensor(costs, dtype=self.rdtype, device=self.device)
        self._groups = [(q, min(_GROUP, n - q)) for q in range(0, n, _GROUP)]
        self._ham = {m: torch.as_tensor(_hamming(m), device=self.device) for _, m in self._groups}
        self._pairs = ring_pairs(n)

    def initial_state(self) -> torch.Tensor:
        """|+⟩^n (X mixer) or the Dicke state |D^n_k⟩ (XY mixer), shape (2**n,), on the engine's device."""
        if self.mixer == "xy":
            return torch.as_tensor(dicke_state(self.n, self.k), device=self.device).to(self.dtype)
        return torch.full((self.N,), 1.0 / np.sqrt(self.N), dtype=self.dtype, device=self.device)

    def _x_mixer(self, psi, beta):
        c = torch.cos(beta).to(self.dtype)
        s = (-1j * torch.sin(beta)).to(self.dtype)
        for q0, m in self._groups:
            d = self._ham[m]
            M = c ** (m - d) * s ** d
            psi = torch.matmul(M, psi.reshape(-1, 1 << m, 1 << q0)).reshape(-1)
        return psi

    def _xy_mixer(self, psi, beta):
        c = torch.cos(beta).to(self.dtype)
        s = (-1j * torch.sin(beta)).to(self.dtype)
        # autograd saves the quarters it multiplies, so only a no-grad pass (⟨C⟩, probabilities)
        # may overwrite psi; there a pair costs two quarter temporaries instead of a full copy
        inplace = not (psi.requires_grad or beta.requires_grad)
        for i, j in self._pairs:
            lo, hi = min(i, j), max(i, j)
            v = psi.reshape(self.N >> (hi + 1), 2, 1 << (hi - lo - 1), 2, 1 << lo)
            a, b = v[:, 0, :, 1, :], v[:, 1, :, 0, :]
            if inplace:
                t = s * b
                b.mul_(c).add_(s * a)
                a.mul_(c).add_(t)
            else:
                v = v.clone()
                v[:, 0, :, 1, :] = c * a + s * b
                v[:, 1, :, 0, :] = c * b + s * a
                psi = v.reshape(-1)
        return psi

    def state(self, angles) -> torch.Tensor:
        """The QAOA state Π_l exp(−iβ_l B) exp(−iγ_l C)|ψ_0⟩.

        Parameters
        ----------
        angles : array_like, shape (2p,)
            ``[γ_1..γ_p, β_1..β_p]`` in radians.

        Returns
        -------
        torch.Tensor, complex, shape (2**n,)

        Raises
        ------
        QSelectError
            If the number of angles is not 2p.
        """
        a = torch.as_tensor(angles, dtype=self.rdtype, device=self.device).reshape(-1)
        if a.numel() != 2 * self.p:
            raise QSelectError(f"QAOA at p={self.p} needs {2 * self.p} angles [γ_1..γ_p, β_1..β_p], got {a.numel()}")
        psi = self.initial_state()
        for l in range(self.p):
            psi = psi * torch.polar(torch.ones_like(self.costs), -a[l] * self.costs)
            psi = self._x_mixer(psi, a[self.p + l]) if self.mixer == "x" else self._xy_mixer(psi, a[self.p + l])
        return psi

    def probabilities(self, angles) -> np.ndarray:
        """Probabilities of the QAOA state.

        Parameters
        ----------
        angles : array_like, shape (2p,)
            ``[γ_1..γ_p, β_1..β_p]`` in radians.

        Returns
        -------
        numpy.ndarray of float64, shape (2**n,)
        """
        with torch.no_grad():
            psi = self.state(angles)
            return (psi.real ** 2 + psi.imag ** 2).double().cpu().numpy()

    def expectation(self, angles, weights=None) -> float:
        """⟨C⟩ (or Σ_x |ψ_x|² w_x for other weights) of the QAOA state.

        Parameters
        ----------
        angles : array_like, shape (2p,)
            ``[γ_1..γ_p, β_1..β_p]`` in radians.
        weights : array_like, shape (2**n,), or None
            Default: the cost vector.

        Returns
        -------
        float
        """
        w = self.costs if weights is None else torch.as_tensor(weights, dtype=self.rdtype, device=self.device)
        with torch.no_grad():
            psi = self.state(angles)
            return float(torch.dot(psi.real ** 2 + psi.imag ** 2, w))

    def value_and_grad(self, angles, weights=None) -> tuple[float, np.ndarray]:
        """⟨C⟩ and its gradient with respect to the 2p angles (autograd).

        Parameters
        ----------
        angles : array_like, shape (2p,)
            ``[γ_1..γ_p, β_1..β_p]`` in radians.
        weights : array_like, shape (2**n,), or None
            Default: the cost vector.

        Returns
        -------
        value : float
        grad : numpy.ndarray of float64, shape (2p,)
        """
        w = self.costs if weights is None else torch.as_tensor(weights, dtype=self.rdtype, device=self.device)
        a = torch.tensor(np.asarray(angles, dtype=np.float64), dtype=self.rdtype, device=self.device,
                         requires_grad=True)
        psi = self.state(a)
        val = torch.dot(psi.real ** 2 + psi.imag ** 2, w)
        val.backward()
        return float(val.detach()), a.grad.double().cpu().numpy()
