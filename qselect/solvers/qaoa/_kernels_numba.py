"""The numba kernels behind :mod:`qselect.solvers.qaoa.kernels` (imported on first use only).

Module-level functions, so numba's on-disk cache (``cache=True``) keeps them compiled between
processes. Arrays are the interleaved real views (re, im, re, im, ...) of complex states in the
rotated frame; ``h`` counts floats, so the lowest qubit's pairs are ``h = 2`` apart. Entry points
(called from Python) release the GIL (``nogil=True``).
"""
import numpy as np
from numba import njit, uint64


@njit(inline="always")
def _rot(a, b, c, s):
    return c * a + s * b, c * b - s * a


@njit(boundscheck=False, cache=True)
def _one_qubit(g, h, c, s):
    L = uint64(g.size)
    base = uint64(0)
    while base < L:
        for k in range(h):
            i0 = base + k
            i1 = i0 + h
            a0, a1 = _rot(np.float64(g[i0]), np.float64(g[i1]), c, s)
            g[i0] = a0
            g[i1] = a1
        base += uint64(2) * h


@njit(boundscheck=False, cache=True)
def _two_qubits(g, h, c, s):
    L = uint64(g.size)
    base = uint64(0)
    while base < L:
        for k in range(h):
            i0 = base + k
            i1 = i0 + h
            i2 = i1 + h
            i3 = i2 + h
            a0, a1 = _rot(np.float64(g[i0]), np.float64(g[i1]), c, s)
            a2, a3 = _rot(np.float64(g[i2]), np.float64(g[i3]), c, s)
            a0, a2 = _rot(a0, a2, c, s)
            a1, a3 = _rot(a1, a3, c, s)
            g[i0] = a0
            g[i1] = a1
            g[i2] = a2
            g[i3] = a3
        base += uint64(4) * h


@njit(inline="always")
def _butterfly8(g, i0, h, c, s):
    # the three qubits whose pairs lie h, 2h and 4h floats apart, on the 8 floats i0 + m h (m = 0..7)
    i1 = i0 + h
    i2 = i1 + h
    i3 = i2 + h
    i4 = i3 + h
    i5 = i4 + h
    i6 = i5 + h
    i7 = i6 + h
    a0, a1 = _rot(np.float64(g[i0]), np.float64(g[i1]), c, s)
    a2, a3 = _rot(np.float64(g[i2]), np.float64(g[i3]), c, s)
    a4, a5 = _rot(np.float64(g[i4]), np.float64(g[i5]), c, s)
    a6, a7 = _rot(np.float64(g[i6]), np.float64(g[i7]), c, s)
    a0, a2 = _rot(a0, a2, c, s)
    a1, a3 = _rot(a1, a3, c, s)
    a4, a6 = _rot(a4, a6, c, s)
    a5, a7 = _rot(a5, a7, c, s)
    a0, a4 = _rot(a0, a4, c, s)
    a1, a5 = _rot(a1, a5, c, s)
    a2, a6 = _rot(a2, a6, c, s)
    a3, a7 = _rot(a3, a7, c, s)
    g[i0] = a0
    g[i1] = a1
    g[i2] = a2
    g[i3] = a3
    g[i4] = a4
    g[i5] = a5
    g[i6] = a6
    g[i7] = a7


@njit(boundscheck=False, cache=True)
def _three_qubits(g, h, c, s):
    L = uint64(g.size)
    base = uint64(0)
    while base < L:
        for k in range(h):
            _butterfly8(g, base + k, h, c, s)
        base += uint64(8) * h


@njit(boundscheck=False, cache=True)
def _three_lowest(g, c, s):
    # _three_qubits at h = 2 (qubits 0-2), the same operations: two 16-float blocks per step, their re and im
    # lanes as four independent chains (a loop of two lanes per block does not vectorise)
    L = g.size
    base = 0
    while base + 32 <= L:
        for k in (0, 1, 16, 17):
            _butterfly8(g, base + k, 2, c, s)
        base += 32
    if base < L:  # one block left (a 3-qubit state)
        _butterfly8(g, base, 2, c, s)
        _butterfly8(g, base + 1, 2, c, s)


@njit(boundscheck=False, cache=True)
def _rotate_row(g, c, s):
    L = uint64(g.size)
    h = uint64(2)  # floats per half-block of the lowest qubit (one complex amplitude)
    if L >= uint64(16):
        _three_lowest(g, c, s)
        h = uint64(16)
    while h * uint64(8) <= L:
        _three_qubits(g, h, c, s)
        h = h * uint64(8)
    if h * uint64(4) <= L:
        _two_qubits(g, h, c, s)
        h = h * uint64(4)
    if h < L:
        _one_qubit(g, h, c, s)


@njit(fastmath={"reassoc"}, boundscheck=False, cache=True)
def _pair_sum(lam, psi, h):
    # Σ over the pairs (i, i+h) of one qubit: λ_i ψ_{i+h} − λ_{i+h} ψ_i, in float64 (vectorised sum)
    L = uint64(lam.size)
    two_h = uint64(2) * h
    acc = 0.0
    base = uint64(0)
    while base < L:
        for k in range(h):
            i = base + k
            j = i + h
            acc += np.float64(lam[i]) * np.float64(psi[j]) - np.float64(lam[j]) * np.float64(psi[i])
        base += two_h
    return acc


@njit(fastmath={"reassoc"}, boundscheck=False, cache=True)
def _quad_sum(lam, psi, h):
    # the pair sums of two qubits (pairs at distance h and 2h) in one pass over the blocks of 4h
    L = uint64(lam.size)
    four_h = uint64(4) * h
    acc = 0.0
    base = uint64(0)
    while base < L:
        for k in range(h):
            i0 = base + k
            i1 = i0 + h
            i2 = i1 + h
            i3 = i2 + h
            l0 = np.float64(lam[i0])
            l1 = np.float64(lam[i1])
            l2 = np.float64(lam[i2])
            l3 = np.float64(lam[i3])
            p0 = np.float64(psi[i0])
            p1 = np.float64(psi[i1])
            p2 = np.float64(psi[i2])
            p3 = np.float64(psi[i3])
            acc += (l0 * p1 - l1 * p0) + (l2 * p3 - l3 * p2) + (l0 * p2 - l2 * p0) + (l1 * p3 - l3 * p1)
        base += four_h
    return acc


@njit(fastmath={"reassoc"}, boundscheck=False, cache=True)
def _quad_sum_lowest(lam, psi):
    # _quad_sum at h = 2 (qubits 0 and 1): two 8-float blocks per step, their re and im lanes as four chains
    L = lam.size
    acc = 0.0
    base = 0
    while base + 16 <= L:
        for k in (0, 1, 8, 9):
            i = base + k
            l0 = np.float64(lam[i])
            l1 = np.float64(lam[i + 2])
            l2 = np.float64(lam[i + 4])
            l3 = np.float64(lam[i + 6])
            p0 = np.float64(psi[i])
            p1 = np.float64(psi[i + 2])
            p2 = np.float64(psi[i + 4])
            p3 = np.float64(psi[i + 6])
            acc += (l0 * p1 - l1 * p0) + (l2 * p3 - l3 * p2) + (l0 * p2 - l2 * p0) + (l1 * p3 - l3 * p1)
        base += 16
    if base < L:  # a 2-qubit state (L = 8): the loop above did not run
        acc += _quad_sum(lam, psi, uint64(2))
    return acc


@njit(boundscheck=False, cache=True)
def _generator_dot(lam, psi):
    L = uint64(lam.size)
    acc = 0.0
    h = uint64(2)
    if h * uint64(4) <= L:
        acc += _quad_sum_lowest(lam, psi)
        h = uint64(8)
    while h * uint64(4) <= L:
        acc += _quad_sum(lam, psi, h)
        h = h * uint64(4)
    if h < L:
        acc += _pair_sum(lam, psi, h)
    return acc


# sin/cos kernels on [-pi/4, pi/4] and the three-part pi/2 (fdlibm's __kernel_sin, __kernel_cos,
# __ieee754_rem_pio2 medium path): branch-free, so the phase loop vectorises (no libm calls)
_PIO2_1 = 1.57079632673412561417e+00
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_2T = 2.02226624879595063154e-21
_INVPIO2 = 6.36619772367581382433e-01
_S1, _S2, _S3 = -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04
_S4, _S5, _S6 = 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10
_C1, _C2, _C3 = 4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05
_C4, _C5, _C6 = -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11
_REDUCTION_LIMIT = 1647099.0  # 2^20 pi/2: where fdlibm's medium-size reduction stops


@njit(inline="always")
def _sincos(x):
    k = np.floor(x * _INVPIO2 + 0.5)
    r = ((x - k * _PIO2_1) - k * _PIO2_2) - k * _PIO2_2T
    z = r * r
    sr = r + r * z * (_S1 + z * (_S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))))
    cr = 1.0 - 0.5 * z + z * z * (_C1 + z * (_C2 + z * (_C3 + z * (_C4 + z * (_C5 + z * _C6)))))
    q = k - 4.0 * np.floor(k * 0.25)  # k mod 4, exact, kept in floating point (no integer conversion)
    odd = (q == 1.0) | (q == 3.0)
    sn = cr if odd else sr
    cs = sr if odd else cr
    sn = -sn if q >= 2.0 else sn
    cs = -cs if ((q == 1.0) | (q == 2.0)) else cs
    return sn, cs


@njit(boundscheck=False, cache=True)
def _phases(c, gamma, out):
    # out = exp(-i gamma c) interleaved (cos, sin) in float64. The three-part pi/2 reduction is
    # exact for |gamma c| < 2^20 pi/2; beyond (never for normalised costs at sensible angles) libm's
    # cos and sin, whose reduction is exact for any argument
    big = 0.0
    for j in range(c.size):
        big = max(big, abs(gamma * np.float64(c[j])))
    if big < _REDUCTION_LIMIT:
        for j in range(c.size):
            sn, cs = _sincos(-gamma * np.float64(c[j]))
            out[2 * j] = cs
            out[2 * j + 1] = sn
    else:
        for j in range(c.size):
            x = -gamma * np.float64(c[j])
            out[2 * j] = np.cos(x)
            out[2 * j + 1] = np.sin(x)


@njit(boundscheck=False, cache=True)
def _phase_mul(src, h, dst):
    # dst = src * h elementwise (complex, interleaved; h float64), in float64, one rounding; indexed by
    # amplitude (a stride-2 loop does not vectorise)
    for j in range(src.size // 2):
        a = np.float64(src[2 * j])
        b = np.float64(src[2 * j + 1])
        c = h[2 * j]
        s = h[2 * j + 1]
        dst[2 * j] = a * c - b * s
        dst[2 * j + 1] = a * s + b * c


@njit(fastmath={"reassoc"}, boundscheck=False, cache=True)
def _expect_and_adjoint(psi, w, lam):
    # <psi|W|psi> in float64 (vectorised sum) and lam = W psi
    acc = 0.0
    for j in range(w.size):
        a = np.float64(psi[2 * j])
        b = np.float64(psi[2 * j + 1])
        x = np.float64(w[j])
        acc += (a * a + b * b) * x
        lam[2 * j] = a * x
        lam[2 * j + 1] = b * x
    return acc


@njit(fastmath={"reassoc"}, boundscheck=False, cache=True)
def _unphase_and_cost_dot(lam, h, k, c):
    # lam *= conj(h), then Im Σ conj(lam_j) c_j k_j (the state k before this layer's phase), in float64
    acc = 0.0
    for j in range(c.size):
        i = 2 * j
        lr = np.float64(lam[i])
        li = np.float64(lam[i + 1])
        hc = h[i]
        hs = h[i + 1]
        lam[i] = lr * hc + li * hs
        lam[i + 1] = li * hc - lr * hs
        lr = np.float64(lam[i])
        li = np.float64(lam[i + 1])
        acc += np.float64(c[j]) * (lr * np.float64(k[i + 1]) - li * np.float64(k[i]))
    return acc


@njit(boundscheck=False, cache=True)
def _value_and_grad_row(psi0, c, w, gam, cs, K, P, lam, grad):
    # One whole X-mixer QAOA value and adjoint gradient, the p+1 layer states kept: psi0 (2N,) start state;
    # c (N,) the phase generator, w (N,) the observable; gam (p,) gamma; cs (p, 2) (cos beta_l, sin beta_l);
    # K (p+1, 2N), P (p, 2N), lam (2N,) scratch; grad (2p,) out. Returns the value.
    p = gam.size
    K[0, :] = psi0
    for l in range(p):
        _phases(c, gam[l], P[l])
        _phase_mul(K[l], P[l], K[l + 1])
        _rotate_row(K[l + 1], cs[l, 0], cs[l, 1])
    val = _expect_and_adjoint(K[p], w, lam)
    for l in range(p - 1, -1, -1):
        grad[p + l] = 2.0 * _generator_dot(lam, K[l + 1])
        _rotate_row(lam, cs[l, 0], -cs[l, 1])
        grad[l] = 2.0 * _unphase_and_cost_dot(lam, P[l], K[l], c)
    return val


@njit(nogil=True, boundscheck=False, cache=True)
def _value_and_grad_rows(psi0, C, W, rows, G, CS, val, grad):
    # _value_and_grad_row per row: C (B, N), W (B, N), rows (b,) which of them; G (b, p) gamma;
    # CS (b, p, 2) (cos beta_l, sin beta_l); val (b,), grad (b, 2p)
    p = G.shape[1]
    n2 = psi0.size
    K = np.empty((p + 1, n2), psi0.dtype)
    P = np.empty((p, n2))
    lam = np.empty(n2, psi0.dtype)
    for r in range(rows.size):
        val[r] = _value_and_grad_row(psi0, C[rows[r]], W[rows[r]], G[r], CS[r], K, P, lam, grad[r])


@njit(nogil=True, fastmath={"reassoc"}, boundscheck=False, cache=True)
def _expectations(F, W, rows, out):
    # out[r] = sum_j W[rows[r], j] |psi_r,j|^2 in float64, F (b, 2N) the states
    for r in range(rows.size):
        w = W[rows[r]]
        g = F[r]
        acc = 0.0
        for j in range(w.size):
            a = np.float64(g[2 * j])
            b = np.float64(g[2 * j + 1])
            acc += (a * a + b * b) * np.float64(w[j])
        out[r] = acc


@njit(nogil=True, boundscheck=False, cache=True)
def _states_rows(psi0, C, rows, G, CS, out):
    # the final X-mixer QAOA state of each row (the forward sweep of _value_and_grad_rows), into out (b, 2N)
    p = G.shape[1]
    P = np.empty(psi0.size)
    for r in range(rows.size):
        out[r, :] = psi0
        for l in range(p):
            _phases(C[rows[r]], G[r, l], P)
            _phase_mul(out[r], P, out[r])
            _rotate_row(out[r], CS[r, l, 0], CS[r, l, 1])


@njit(boundscheck=False, cache=True)
def _two_loop_row(g, S, Y, rho, T, alpha, out):
    # out = -H g by the L-BFGS two-loop recursion over the row's T newest pairs (newest first)
    d = g.size
    for j in range(d):
        out[j] = g[j]
    for t in range(T):
        a = 0.0
        for j in range(d):
            a += S[t, j] * out[j]
        a *= rho[t]
        alpha[t] = a
        for j in range(d):
            out[j] -= a * Y[t, j]
    gamma = 1.0
    if T > 0:
        yy = 0.0
        sy = 0.0
        for j in range(d):
            yy += Y[0, j] * Y[0, j]
            sy += S[0, j] * Y[0, j]
        if yy > 0:
            gamma = sy / yy
    for j in range(d):
        out[j] *= gamma
    for t in range(T - 1, -1, -1):
        bc = 0.0
        for j in range(d):
            bc += Y[t, j] * out[j]
        bc = alpha[t] - rho[t] * bc
        for j in range(d):
            out[j] += bc * S[t, j]
    for j in range(d):
        out[j] = -out[j]


# ---- batched L-BFGS, one row at a time (the state machine of optimizers.minimize_batch) ----------
# status: 0 running, 1 relative reduction of f <= ftol, 2 gradient max-norm <= gtol, 3 iteration
# limit, 4 line search gave up

@njit(boundscheck=False, cache=True)
def _new_direction(r, G, S, Y, rho, count, D, slope, step, backtracks, alpha):
    d = G.shape[1]
    _two_loop_row(G[r], S[r], Y[r], rho[r], count[r], alpha, D[r])
    sl = 0.0
    for j in range(d):
        sl += D[r, j] * G[r, j]
    if not (sl < 0):  # not a descent direction: restart from steepest descent
        sl = 0.0
        for j in range(d):
            D[r, j] = -G[r, j]
            sl -= G[r, j] * G[r, j]
        count[r] = 0
    slope[r] = sl
    if count[r] == 0:
        nrm = 0.0
        for j in range(d):
            nrm += D[r, j] * D[r, j]
        step[r] = min(1.0, 1.0 / max(np.sqrt(nrm), 1e-300))
    else:
        step[r] = 1.0
    backtracks[r] = 0


@njit(boundscheck=False, cache=True)
def _accept(r, xn, fn, gn, X, f, G, S, Y, rho, count, it, status, D, slope, step, backtracks, has_lo,
            extended, ftol, gtol, maxiter, alpha):
    m, d = S.shape[1], S.shape[2]
    sy = 0.0
    yy = 0.0
    for j in range(d):
        sj = xn[j] - X[r, j]
        yj = gn[j] - G[r, j]
        sy += sj * yj
        yy += yj * yj
    if sy > 1e-10 * yy:  # keep the pair (newest first)
        for t in range(m - 1, 0, -1):
            rho[r, t] = rho[r, t - 1]
            for j in range(d):
                S[r, t, j] = S[r, t - 1, j]
                Y[r, t, j] = Y[r, t - 1, j]
        for j in range(d):
            S[r, 0, j] = xn[j] - X[r, j]
            Y[r, 0, j] = gn[j] - G[r, j]
        rho[r, 0] = 1.0 / sy
        count[r] = min(count[r] + 1, m)
    f_old = f[r]
    gmax = 0.0
    for j in range(d):
        X[r, j] = xn[j]
        G[r, j] = gn[j]
        a = abs(gn[j])
        if a > gmax or a != a:  # NaN propagates, as np.max does
            gmax = a
    f[r] = fn
    it[r] += 1
    has_lo[r] = False
    extended[r] = 0
    if (f_old - fn) <= ftol * max(max(abs(f_old), abs(fn)), 1.0):
        status[r] = 1
    elif gmax <= gtol:
        status[r] = 2
    elif it[r] >= maxiter:
        status[r] = 3
    else:
        _new_direction(r, G, S, Y, rho, count, D, slope, step, backtracks, alpha)


@njit(boundscheck=False, cache=True)
def _start_row(r, G, S, Y, rho, count, status, D, slope, step, backtracks, gtol, alpha):
    gmax = 0.0
    for j in range(G.shape[1]):
        a = abs(G[r, j])
        if a > gmax or a != a:
            gmax = a
    if gmax <= gtol:
        status[r] = 2
    else:
        _new_direction(r, G, S, Y, rho, count, D, slope, step, backtracks, alpha)


@njit(nogil=True, boundscheck=False, cache=True)
def _lbfgs_start(G, S, Y, rho, count, status, D, slope, step, backtracks, gtol):
    alpha = np.empty(S.shape[1])
    for r in range(G.shape[0]):
        _start_row(r, G, S, Y, rho, count, status, D, slope, step, backtracks, gtol, alpha)


@njit(boundscheck=False, cache=True)
def _advance_row(r, xt, fk, gt, X, f, G, S, Y, rho, count, it, status, D, slope, step, backtracks, has_lo,
                 X_lo, f_lo, G_lo, extended, ftol, gtol, maxiter, max_backtracks, alpha):
    # take row r's trial point xt (value fk, gradient gt): accept, extend or shrink
    d = X.shape[1]
    armijo = np.isfinite(fk) and fk <= f[r] + 1e-4 * step[r] * slope[r]
    bad = (not armijo) or (has_lo[r] and fk >= f_lo[r])
    gd = 0.0
    for j in range(d):
        gd += gt[j] * D[r, j]
    steep = gd < 0.9 * slope[r]  # the curvature condition is not met yet
    if not bad and steep and extended[r] < 10:  # extend the step, remembering this Armijo point
        has_lo[r] = True
        for j in range(d):
            X_lo[r, j] = xt[j]
            G_lo[r, j] = gt[j]
        f_lo[r] = fk
        extended[r] += 1
        step[r] *= 4.0
    elif not bad:
        _accept(r, xt, fk, gt, X, f, G, S, Y, rho, count, it, status, D, slope, step, backtracks,
                has_lo, extended, ftol, gtol, maxiter, alpha)
    elif has_lo[r]:  # an extension overshot: take the best point seen
        _accept(r, X_lo[r].copy(), f_lo[r], G_lo[r].copy(), X, f, G, S, Y, rho, count, it, status, D, slope,
                step, backtracks, has_lo, extended, ftol, gtol, maxiter, alpha)
    else:  # backtrack: minimiser of the quadratic through f(0), f'(0), f(t), kept in [0.1 t, 0.5 t]
        backtracks[r] += 1
        t = step[r]
        den = 2.0 * (fk - f[r] - slope[r] * t)
        tq = -slope[r] * t * t / den if (np.isfinite(fk) and den > 0) else 0.5 * t
        step[r] = min(max(tq, 0.1 * t), 0.5 * t)
        if backtracks[r] > max_backtracks:
            status[r] = 4


@njit(nogil=True, boundscheck=False, cache=True)
def _lbfgs_advance(idx, Xt, ft, Gt, X, f, G, S, Y, rho, count, it, status, D, slope, step, backtracks, has_lo,
                   X_lo, f_lo, G_lo, extended, ftol, gtol, maxiter, max_backtracks):
    # take the trial points Xt (values ft, gradients Gt) of the rows idx
    alpha = np.empty(S.shape[1])
    for k in range(idx.size):
        _advance_row(idx[k], Xt[k], ft[k], Gt[k], X, f, G, S, Y, rho, count, it, status, D, slope, step, backtracks,
                     has_lo, X_lo, f_lo, G_lo, extended, ftol, gtol, maxiter, max_backtracks, alpha)


@njit(boundscheck=False, cache=True)
def _rotation_pairs(beta, cs):
    # (cos beta_l, sin beta_l) per layer from libm, as kernels.rotation_pairs (math.cos/sin) gives them
    for l in range(beta.size):
        if np.isfinite(beta[l]):
            cs[l, 0] = np.cos(beta[l])
            cs[l, 1] = np.sin(beta[l])
        else:
            cs[l, 0] = np.nan
            cs[l, 1] = np.nan


@njit(nogil=True, boundscheck=False, cache=True)
def _lbfgs_rows(psi0, C, W, X, f, evals, status, memory, ftol, gtol, maxiter, max_backtracks, lo, hi):
    # Rows lo..hi-1 of a batch, each minimised whole: minimize_batch's state machine (_start_row, _advance_row)
    # for one row at a time, its evaluations (_value_and_grad_row) in between, with no return to Python.
    # C, W (B, N); X (B, 2p) the start points in, the best points out; f, evals, status (B,) out.
    d = X.shape[1]
    p = d // 2
    n2 = psi0.size
    K = np.empty((p + 1, n2), psi0.dtype)
    P = np.empty((p, n2))
    lam = np.empty(n2, psi0.dtype)
    cs = np.empty((p, 2))
    xt = np.empty(d)
    gt = np.empty(d)
    alpha = np.empty(memory)
    # one row's L-BFGS state, as row 0 of minimize_batch's per-batch arrays
    Xr, fr, Gr = np.empty((1, d)), np.empty(1), np.empty((1, d))
    S, Y, rho = np.empty((1, memory, d)), np.empty((1, memory, d)), np.empty((1, memory))
    count, it, st = np.empty(1, np.int64), np.empty(1, np.int64), np.empty(1, np.int64)
    D, slope, step = np.empty((1, d)), np.empty(1), np.empty(1)
    backtracks, extended = np.empty(1, np.int64), np.empty(1, np.int64)
    has_lo = np.empty(1, np.bool_)
    X_lo, f_lo, G_lo = np.empty((1, d)), np.empty(1), np.empty((1, d))
    for k in range(lo, hi):
        S[:] = 0.0
        Y[:] = 0.0
        rho[:] = 0.0
        D[:] = 0.0
        X_lo[:] = 0.0
        G_lo[:] = 0.0
        count[0] = it[0] = st[0] = backtracks[0] = extended[0] = 0
        slope[0] = step[0] = f_lo[0] = 0.0
        has_lo[0] = False
        c, w = C[k], W[k]
        for j in range(d):
            Xr[0, j] = X[k, j]
        _rotation_pairs(Xr[0, p:], cs)
        fr[0] = _value_and_grad_row(psi0, c, w, Xr[0, :p], cs, K, P, lam, Gr[0])
        ne = 1
        _start_row(0, Gr, S, Y, rho, count, st, D, slope, step, backtracks, gtol, alpha)
        while st[0] == 0:
            for j in range(d):
                xt[j] = Xr[0, j] + step[0] * D[0, j]
            _rotation_pairs(xt[p:], cs)
            fk = _value_and_grad_row(psi0, c, w, xt[:p], cs, K, P, lam, gt)
            ne += 1
            _advance_row(0, xt, fk, gt, Xr, fr, Gr, S, Y, rho, count, it, st, D, slope, step, backtracks, has_lo,
                         X_lo, f_lo, G_lo, extended, ftol, gtol, maxiter, max_backtracks, alpha)
        for j in range(d):
            X[k, j] = Xr[0, j]
        f[k] = fr[0]
        evals[k] = ne
        status[k] = st[0]


# ---- reading answers: shots counted and candidates ranked, all rows in one call ----------------------------

@njit(nogil=True, boundscheck=False, cache=True)
def _cumulative_rows(P, cdf):
    # np.cumsum(P, axis=1) (left to right), then every row divided by its last entry
    B, N = P.shape
    for r in range(B):
        acc = P[r, 0]
        cdf[r, 0] = acc
        for j in range(1, N):
            acc += P[r, j]
            cdf[r, j] = acc
        last = cdf[r, N - 1]
        for j in range(N):
            cdf[r, j] /= last


@njit(nogil=True, boundscheck=False, cache=True)
def _offered_rows(cdf, U, top, cand, counts, offsets):
    # Per row r: count each string's draws by merging the sorted uniforms U[r] with the cdf
    # (np.searchsorted(cdf[r], u, side="right"): the first index whose cdf exceeds u); the row's candidates are
    # the strings drawn or flagged in top[r], in index order, written from offsets[r] (offsets (B+1,))
    B, N = cdf.shape
    S = U.shape[1]
    hits = np.zeros(N, np.int64)
    o = 0
    offsets[0] = 0
    for r in range(B):
        u = U[r]
        j = 0
        for s in range(S):
            x = u[s]
            while j < N - 1 and cdf[r, j] <= x:  # cdf[r, N-1] is 1 and every u < 1
                j += 1
            hits[j] += 1
        for j in range(N):
            if hits[j] > 0 or top[r, j]:
                cand[o] = j
                counts[o] = hits[j]
                o += 1
            hits[j] = 0
        offsets[r + 1] = o


@njit(boundscheck=False, cache=True)
def _after(i, j, counts, keys):
    # candidate i ranks after j among equal energies: fewer counts, or as many and a larger key
    return counts[i] < counts[j] or (counts[i] == counts[j] and keys[i] > keys[j])


@njit(nogil=True, boundscheck=False, cache=True)
def _order_rows(e, counts, keys, offsets, perm):
    # Per row, the positions of its candidates lowest energy first, ties by most counts then smallest key
    # (np.lexsort((keys, -counts, e)) within each row), as global positions into perm
    for r in range(offsets.size - 1):
        a = offsets[r]
        m = offsets[r + 1] - a
        idx = np.argsort(e[a:a + m])  # tie runs are ordered below, so any sort will do
        i = 0
        while i < m:
            j = i + 1
            while j < m and e[a + idx[j]] == e[a + idx[i]]:
                j += 1
            if j - i <= 16:
                for t in range(i + 1, j):  # insertion sort of a short tie run
                    v = idx[t]
                    s = t
                    while s > i and _after(a + idx[s - 1], a + v, counts, keys):
                        idx[s] = idx[s - 1]
                        s -= 1
                    idx[s] = v
            else:  # a long run (a flat or degenerate cost): by key, then stably by counts, descending
                run = idx[i:j].copy()
                run = run[np.argsort(keys[a + run])]
                run = run[np.argsort(-counts[a + run], kind="mergesort")]
                idx[i:j] = run
            i = j
        for t in range(m):
            perm[a + t] = a + idx[t]
