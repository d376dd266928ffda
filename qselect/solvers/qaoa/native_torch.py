"""PyTorch statevector engine (CPU or CUDA): lean, in place, batched, adjoint gradients.

Same conventions and layer structure as ``native.NumpyQAOA`` (little-endian
index, angles ``[γ_1..γ_p, β_1..β_p]``, layer ``exp(-iβB) exp(-iγC)``, XY ring
pairs in ring order). The engine holds ``B ≥ 1`` problems of one size as a
``(B, 2^n)`` state, so a layer's blocks run as one batch on a GPU.

Memory (complex64, float32 costs, per problem): every operation works in
place on the state in slices of at most ``chunk`` amplitudes, so no full-state
temporary is ever made:

* ⟨C⟩ / probabilities: state 8 + costs 4 = 12 bytes per amplitude
  (n=30: 12 GiB; n=32: 48 GiB);
* ⟨C⟩ and its gradient (adjoint method, Jones & Gacon 2020, arXiv:2009.02823):
  state + adjoint state + costs = 20 bytes per amplitude (n=30: 20 GiB,
  n=32: 80 GiB) — the gradient costs one forward and one backward sweep
  whatever p is (the XY mixer's gradient adds a quarter-state temporary per
  pair product: +2 bytes per amplitude);

plus the slice temporaries (a few × ``chunk`` amplitudes, 2^24 by default:
~0.5 GiB). complex128 doubles every figure. The cost phase is applied slice
by slice as ``ψ ← ψ·(cos γc − i sin γc)``; the X mixer ⊗ exp(-iβX) acts on
groups of m = 5 qubits as one (2^m × 2^m) complex matrix per problem, slice
by slice; the XY ring rotates the |01>, |10> amplitudes of each pair in place.

References
----------
Farhi, Goldstone & Gutmann (2014), arXiv:1411.4028; Hadfield et al. (2019),
arXiv:1709.03489 (XY mixer); Jones & Gacon (2020), arXiv:2009.02823 (adjoint
gradients).
"""
from __future__ import annotations

import numpy as np
import torch

from ...ansatz import check_mixer, dicke_state, ring_pairs
from ...devices import resolve_device
from ...errors import QSelectError
from .native import _groups, _hamming, check_observable

_GROUP = 5
_CHUNK = 1 << 24  # amplitudes per in-place slice (per problem row): 128 MiB of complex64


def _slices(total: int, step: int):
    for a in range(0, total, step):
        yield slice(a, min(a + step, total))


class TorchQAOA:
    """Statevector QAOA on torch tensors for one problem (costs (2^n,)) or a batch (costs (B, 2^n)).

    Parameters
    ----------
    costs : array_like, shape (2^n,) or (B, 2^n)
        Normalised diagonal cost(s).
    p : int
        Depth.
    mixer : {'x', 'xy'}
    k : int, optional
        Hamming weight (XY mixer).
    dtype : torch.complex64 or torch.complex128 (numpy dtypes accepted)
    device : str or torch.device, optional
        Resolved by ``qselect.devices.resolve_device`` (default: CUDA when available).
    chunk : int
        Amplitudes per in-place slice (bounds the temporaries).

    Notes
    -----
    With a 1-D ``costs`` the methods take angles of shape (2p,) and return a
    scalar / a (2^n,) vector / a (2p,) gradient; with 2-D costs they take
    (B, 2p) (or (2p,), shared) and return per-row arrays.
    """

    def __init__(self, costs, p: int, mixer: str = "x", k: int | None = None,
                 dtype=torch.complex64, device=None, chunk: int = _CHUNK):
        self.device = resolve_device(device)
        if isinstance(dtype, np.dtype) or dtype in (np.complex64, np.complex128):
            dtype = torch.complex64 if np.dtype(dtype) == np.complex64 else torch.complex128
        if dtype not in (torch.complex64, torch.complex128):
            raise QSelectError(f"torch engine dtype must be complex64 or complex128, got {dtype}")
        self.dtype = dtype
        self.rdtype = torch.float32 if dtype == torch.complex64 else torch.float64
        if isinstance(costs, torch.Tensor):
            c = costs.detach().to(self.device, self.rdtype)
        else:
            c = torch.as_tensor(np.asarray(costs), dtype=self.rdtype, device=self.device)
        self.single = c.dim() == 1
        if c.dim() not in (1, 2):
            raise QSelectError(f"costs must have shape (2^n,) or (batch, 2^n), got {tuple(c.shape)}")
        c = c.reshape(1, -1) if self.single else c
        B, N = c.shape
        n = N.bit_length() - 1
        if N != 1 << n:
            raise QSelectError(f"cost vector must have length 2^n, got {N}")
        check_mixer(mixer, k, need_k=True)
        self.n, self.N, self.B, self.p, self.mixer, self.k = n, N, B, int(p), mixer, k
        self.costs = c.contiguous()
        self.chunk = max(1, int(chunk))
        self._groups = _groups(n, _GROUP)
        self._ham = {m: torch.as_tensor(_hamming(m), device=self.device) for _, m in self._groups}
        self._pairs = ring_pairs(n)

    def subset(self, rows) -> "TorchQAOA":
        """The same engine restricted to the problems ``rows`` (a batch view sharing everything else).

        Parameters
        ----------
        rows : array_like of int

        Returns
        -------
        TorchQAOA
        """
        import copy

        idx = torch.as_tensor(np.asarray(rows, dtype=np.int64).reshape(-1), device=self.device)
        out = copy.copy(self)
        out.costs = self.costs.index_select(0, idx)
        out.B, out.single = int(idx.numel()), False
        return out

    # ---- angles and start state ------------------------------------------------
    def _angles(self, angles) -> torch.Tensor:
        a = torch.as_tensor(np.asarray(angles, dtype=np.float64), dtype=torch.float64, device=self.device)
        if a.dim() == 1:
            a = a.reshape(1, -1).expand(self.B, -1)
        if tuple(a.shape) != (self.B, 2 * self.p):
            raise QSelectError(f"QAOA at p={self.p} needs {2 * self.p} angles [γ_1..γ_p, β_1..β_p] per problem "
                               f"({self.B} problems), got shape {tuple(a.shape)}")
        return a

    def initial_state(self) -> torch.Tensor:
        """The start state of every row, shape (B, 2^n): |+>^n, or the Dicke state for the XY mixer."""
        if self.mixer == "xy":
            row = torch.as_tensor(dicke_state(self.n, self.k), device=self.device).to(self.dtype)
            return row.reshape(1, -1).repeat(self.B, 1)
        return torch.full((self.B, self.N), 1.0 / np.sqrt(self.N), dtype=self.dtype, device=self.device)

    # ---- in-place layers ----------------------------------------------------------
    def _phase(self, states, gamma):
        """states[i] *= exp(-iγ_r c_r), slice by slice (γ of shape (B,), float64)."""
        g = (-gamma).to(self.rdtype).reshape(-1, 1)
        for sl in _slices(self.N, self.chunk):
            ang = self.costs[:, sl] * g
            ph = torch.complex(torch.cos(ang), torch.sin(ang))
            del ang
            for s in states:
                s[:, sl].mul_(ph)

    def _group_matrix(self, m: int, beta) -> torch.Tensor:
        """⊗^m exp(-iβ_r X) per row: (B, 2^m, 2^m), entry c^(m-d) (-i s)^d with d the Hamming distance."""
        c = torch.cos(beta).to(self.dtype).reshape(-1, 1)
        s = (-1j * torch.sin(beta)).to(self.dtype).reshape(-1, 1)
        one = torch.ones_like(c)
        cp, sp = [one], [one]  # powers by products: no complex pow (0^0 at β = 0 stays 1)
        for _ in range(m):
            cp.append(cp[-1] * c)
            sp.append(sp[-1] * s)
        table = torch.cat([cp[m - j] * sp[j] for j in range(m + 1)], dim=1)  # (B, m+1): c^(m-j) s^j
        return table[:, self._ham[m]]

    def _apply_groups(self, states, mats):
        """states[i] ← (⊗ groups M_g) states[i] in place; mats[g]: (B, K, K) per group."""
        B = self.B
        for (q0, m), M in zip(self._groups, mats):
            K, L = 1 << m, 1 << q0
            A = self.N // (K * L)
            for s in states:
                if L == 1:  # lowest group: rows of K amplitudes times Mᵀ (one bmm per slice)
                    v = s.view(B, A, K)
                    Mt = M.transpose(1, 2)
                    for sl in _slices(A, max(1, self.chunk // K)):
                        v[:, sl] = torch.matmul(v[:, sl], Mt)
                else:
                    v = s.view(B, A, K, L)
                    if K * L <= self.chunk:
                        Mb = M.unsqueeze(1)
                        for sl in _slices(A, max(1, self.chunk // (K * L))):
                            v[:, sl] = torch.matmul(Mb, v[:, sl])
                    else:  # large groups high up: slices along the low qubits
                        for a in range(A):
                            for sl in _slices(L, max(1, self.chunk // K)):
                                v[:, a, :, sl] = torch.matmul(M, v[:, a, :, sl])

    def _x_mixer(self, states, beta):
        self._apply_groups(states, [self._group_matrix(m, beta) for _, m in self._groups])

    def _pair_views(self, s, i, j):
        lo, hi = min(i, j), max(i, j)
        v = s.view(self.B, self.N >> (hi + 1), 2, 1 << (hi - lo - 1), 2, 1 << lo)
        return v[:, :, 0, :, 1, :], v[:, :, 1, :, 0, :]

    def _xy_mixer(self, states, beta, pairs=None):
        c = torch.cos(beta).to(self.dtype).reshape(-1, 1, 1, 1)
        s = (-1j * torch.sin(beta)).to(self.dtype).reshape(-1, 1, 1, 1)
        for i, j in (self._pairs if pairs is None else pairs):
            self._xy_pair(states, i, j, c, s)

    def _xy_pair(self, states, i, j, c, s):
        lo, hi = min(i, j), max(i, j)
        outer, mid = self.N >> (hi + 1), 1 << (hi - lo - 1)
        per = mid << lo
        for st in states:
            a, b = self._pair_views(st, i, j)
            if per <= self.chunk:
                parts = [(sl,) for sl in _slices(outer, max(1, self.chunk // per))]
            else:
                parts = [(o, sl) for o in range(outer) for sl in _slices(mid, max(1, self.chunk // (1 << lo)))]
            for idx in parts:
                x, y = a[(slice(None),) + idx], b[(slice(None),) + idx]
                shape = (-1,) + (1,) * (x.dim() - 1)
                cc, ss = c.reshape(shape), s.reshape(shape)
                t = y * ss
                y.mul_(cc).add_(x * ss)
                x.mul_(cc).add_(t)

    def _mixer(self, states, beta):
        if self.mixer == "x":
            self._x_mixer(states, beta)
        else:
            self._xy_mixer(states, beta)

    def _forward(self, a) -> torch.Tensor:
        psi = self.initial_state()
        for l in range(self.p):
            self._phase((psi,), a[:, l])
            self._mixer((psi,), a[:, self.p + l])
        return psi

    def _expect(self, psi, w) -> torch.Tensor:
        """Σ |ψ|² w per row, accumulated slice by slice in float64, shape (B,)."""
        out = torch.zeros(self.B, dtype=torch.float64, device=self.device)
        for sl in _slices(self.N, self.chunk):
            z = psi[:, sl]
            pr = z.real.square() + z.imag.square()
            out += (pr * w[:, sl]).sum(dim=1, dtype=torch.float64)
        return out

    def _weights(self, weights):
        """The observable per problem: the costs, or ``weights`` ((2^n,) shared or (B, 2^n)), checked."""
        if weights is None:
            return self.costs
        a = np.asarray(weights)
        if a.ndim == 2 and a.shape == (self.B, self.N):
            a = np.stack([check_observable(row, self.N, np.float64) for row in a])
        else:
            a = check_observable(a, self.N, np.float64)
        w = torch.as_tensor(a, dtype=self.rdtype, device=self.device)
        return w.reshape(1, -1).expand(self.B, -1) if w.dim() == 1 else w

    def _out(self, t: torch.Tensor) -> np.ndarray:
        arr = t.detach().cpu().numpy()
        return arr[0] if self.single else arr

    # ---- public API -----------------------------------------------------------------
    @torch.no_grad()
    def state(self, angles) -> torch.Tensor:
        """The QAOA state(s) on the engine's device: (2^n,) for one problem, else (B, 2^n).

        Parameters
        ----------
        angles : array_like, shape (2p,) or (B, 2p)
            ``[γ_1..γ_p, β_1..β_p]`` per problem.

        Returns
        -------
        torch.Tensor, complex
        """
        psi = self._forward(self._angles(angles))
        return psi[0] if self.single else psi

    @torch.no_grad()
    def probabilities(self, angles) -> np.ndarray:
        """|ψ|² as float64 NumPy (moved to the CPU): (2^n,) or (B, 2^n).

        Parameters
        ----------
        angles : array_like, shape (2p,) or (B, 2p)
            ``[γ_1..γ_p, β_1..β_p]`` per problem.

        Returns
        -------
        numpy.ndarray of float64
        """
        psi = self._forward(self._angles(angles))
        return self._out((psi.real.square() + psi.imag.square()).double())

    @torch.no_grad()
    def expectation(self, angles, weights=None):
        """⟨W⟩ (default: the cost): a float for one problem, else a (B,) float64 array.

        Parameters
        ----------
        angles : array_like, shape (2p,) or (B, 2p)
            ``[γ_1..γ_p, β_1..β_p]`` per problem.
        weights : array_like or None

        Returns
        -------
        float or numpy.ndarray
        """
        psi = self._forward(self._angles(angles))
        v = self._expect(psi, self._weights(weights))
        return float(v[0]) if self.single else v.cpu().numpy()

    @torch.no_grad()
    def value_and_grad(self, angles, weights=None):
        """⟨W⟩ and its exact gradient by the adjoint method: two states in memory, any p.

        Returns (float, (2p,)) for one problem, else ((B,), (B, 2p)) float64 NumPy arrays.

        Parameters
        ----------
        angles : array_like, shape (2p,) or (B, 2p)
            ``[γ_1..γ_p, β_1..β_p]`` per problem.
        weights : array_like or None
        """
        a = self._angles(angles)
        w = self._weights(weights)
        psi = self._forward(a)
        value = self._expect(psi, w)
        lam = psi * w  # the one extra state
        states = (psi, lam)
        grad = torch.zeros(self.B, 2 * self.p, dtype=torch.float64, device=self.device)
        for l in range(self.p - 1, -1, -1):
            beta = a[:, self.p + l]
            if self.mixer == "x":
                # dE/dβ = 2 Im <λ|ΣX|ψ>, group by group: ΣX on a group = G (Hamming-distance-1 adjacency)
                acc = torch.zeros(self.B, dtype=torch.complex128, device=self.device)
                for q0, m in self._groups:
                    G = (self._ham[m] == 1).to(self.dtype).expand(self.B, -1, -1)
                    acc += self._bilinear(lam, psi, q0, m, G)
                grad[:, self.p + l] = 2 * acc.imag
                self._x_mixer(states, -beta)
            else:
                acc = torch.zeros(self.B, dtype=torch.complex128, device=self.device)
                c = torch.cos(-beta).to(self.dtype).reshape(-1, 1, 1, 1)
                s = (-1j * torch.sin(-beta)).to(self.dtype).reshape(-1, 1, 1, 1)
                for i, j in reversed(self._pairs):
                    pa, pb = self._pair_views(psi, i, j)
                    la, lb = self._pair_views(lam, i, j)
                    acc += ((la.conj() * pb).sum(dim=(1, 2, 3))
                            + (lb.conj() * pa).sum(dim=(1, 2, 3))).to(torch.complex128)
                    self._xy_pair(states, i, j, c, s)
                grad[:, self.p + l] = 2 * acc.imag
            # dE/dγ = 2 Im <λ|C|ψ>
            acc = torch.zeros(self.B, dtype=torch.complex128, device=self.device)
            for sl in _slices(self.N, self.chunk):
                acc += (lam[:, sl].conj() * (psi[:, sl] * self.costs[:, sl])).sum(dim=1).to(torch.complex128)
            grad[:, l] = 2 * acc.imag
            self._phase(states, -a[:, l])
        v, g = value.cpu().numpy(), grad.cpu().numpy()
        return (float(v[0]), g[0]) if self.single else (v, g)

    def _bilinear(self, lam, psi, q0, m, G) -> torch.Tensor:
        """<λ|G_group|ψ> per row, slice by slice (G acts on qubits q0..q0+m-1)."""
        K, L = 1 << m, 1 << q0
        A = self.N // (K * L)
        out = torch.zeros(self.B, dtype=torch.complex128, device=self.device)
        if L == 1:
            vp, vl = psi.view(self.B, A, K), lam.view(self.B, A, K)
            Gt = G.transpose(1, 2)
            for sl in _slices(A, max(1, self.chunk // K)):
                out += (vl[:, sl].conj() * torch.matmul(vp[:, sl], Gt)).sum(dim=(1, 2)).to(torch.complex128)
            return out
        vp, vl = psi.view(self.B, A, K, L), lam.view(self.B, A, K, L)
        if K * L <= self.chunk:
            Gb = G.unsqueeze(1)
            for sl in _slices(A, max(1, self.chunk // (K * L))):
                out += (vl[:, sl].conj() * torch.matmul(Gb, vp[:, sl])).sum(dim=(1, 2, 3)).to(torch.complex128)
        else:
            for a in range(A):
                for sl in _slices(L, max(1, self.chunk // K)):
                    out += (vl[:, a, :, sl].conj() * torch.matmul(G, vp[:, a, :, sl])).sum(dim=(1, 2)).to(
                        torch.complex128)
        return out
