"""Least-squares refit of the kept weights of every output row, for any mask.

For a row with dense weights w, kept set S and calibration inputs X
(H = XᵀX), the refit solves the damped normal equations

    v = argmin ‖X_S v − X w‖² + λ‖v − w_S‖²  ⇔  (H_SS + λI) v = (H w)_S + λ w_S,

λ = damping · mean(diag H): the objective SparseGPT and OBC optimise with their
dampened Hessian (Frantar & Alistarh 2023, Eq. 2–3; Frantar, Singh & Alistarh
2022, §4), restricted to the given mask, so a refit of an OBC mask changes
nothing. With damping 0 it is ordinary least squares (minimum-norm when X_S
is rank deficient), as ``numpy.linalg.lstsq`` on the kept columns.
"""
from __future__ import annotations

import torch

from ..errors import QSelectError
from .layerwise import damped


def refit_rows(W: torch.Tensor, H: torch.Tensor, mask: torch.Tensor, *, damping: float = 0.01,
               rows: int | None = None, name: str = "layer") -> torch.Tensor:
    """Refit every row's kept weights on the calibration Gram matrix.

    Parameters
    ----------
    W : torch.Tensor
        (out, cols) dense weights (the refit target is the dense output X w).
    H : torch.Tensor
        (cols, cols) XᵀX of the calibration inputs.
    mask : torch.Tensor
        (out, cols) 0/1, 1 = kept.
    damping : float
        λ as a fraction of mean diag(H); 0 = plain least squares.
    rows : int, optional
        Number of calibration rows behind H; a row keeping more weights than
        this is underdetermined and refused.
    name : str
        Layer name for messages.

    Returns
    -------
    torch.Tensor
        (out, cols) float64 refitted weights, zero outside the mask.

    Raises
    ------
    QSelectError
        Fewer calibration rows than kept weights in a row, or bad shapes.

    References
    ----------
    Frantar, Singh & Alistarh, "Optimal Brain Compression", NeurIPS 2022.
    """
    W = W.to(torch.float64)
    H = H.to(W.device, torch.float64)
    mask = torch.as_tensor(mask).to(W.device, torch.float64)
    if mask.shape != W.shape or H.shape != (W.shape[1], W.shape[1]):
        raise QSelectError(f"refit of {name!r}: weights {tuple(W.shape)}, mask {tuple(mask.shape)} and "
                           f"XᵀX {tuple(H.shape)} do not match; the mask must have the weight's shape")
    kept = mask.sum(dim=1).long()
    if rows is not None and kept.numel() and int(kept.max()) > int(rows):
        raise QSelectError(f"refit of layer {name!r}: a row keeps {int(kept.max())} weights but there are only "
                           f"{int(rows)} calibration rows, so the least squares is underdetermined; pass more "
                           "calibration inputs or prune without refit")
    Hd, lam = damped(H, damping)
    rhs_full = W @ H.T + lam * W  # (out, cols): (H w)_j + λ w_j for every row
    out = torch.zeros_like(W)
    for s in torch.unique(kept).tolist():
        if s == 0:
            continue
        rows_s = torch.nonzero(kept == s).reshape(-1)
        idx = torch.argsort(-mask[rows_s], dim=1, stable=True)[:, :s]  # kept columns of each row
        idx, _ = torch.sort(idx, dim=1)
        A = Hd[idx[:, :, None], idx[:, None, :]]  # (r, s, s)
        b = torch.gather(rhs_full[rows_s], 1, idx).unsqueeze(-1)
        if lam > 0:
            L, info = torch.linalg.cholesky_ex(A)
            v = torch.cholesky_solve(b, L)
            bad = info != 0
            if bool(bad.any()):
                v[bad] = torch.linalg.lstsq(A[bad].cpu(), b[bad].cpu(), driver="gelsd").solution.to(v)
        else:
            v = torch.linalg.lstsq(A.cpu(), b.cpu(), driver="gelsd").solution.to(W)
        out[rows_s.unsqueeze(1), idx] = v.squeeze(-1)
    return out
