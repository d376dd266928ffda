"""Layerwise distillation set-up (the Quantum Neuron Selection recipe: a wide student pruned to match a teacher).

A trained MLP teacher with Linear layers d0→d1→…→dL and a wider, deeper random
student: teacher layer i is matched by a student block of ``depth`` Linear
layers (width ``width·d_i``) whose wide output is reduced back to d_i by
pooling (mean of consecutive groups) or magnitude (the d_i rows of largest
norm). Because every block then maps teacher-width inputs to teacher-width
outputs, block i is fed the teacher's own input to layer i and each block is
an independent set of local problems: the block's last layer gets the
teacher's pre-activations as targets (unit u → teacher unit of its group),
the inner layers reconstruct their own dense outputs.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..errors import QSelectError
from .activations import collect_activations, model_device
from .local import LocalProblem
from .select import Selection, build_masks, make_solver, solve_problems
from .weights import weight_problems


class WidthReduce(nn.Module):
    """Wide block output → teacher width: "pool" (group means) or "magnitude" (chosen units)."""

    def __init__(self, wide: int, narrow: int, mode: str = "pool", index=None):
        super().__init__()
        if mode not in ("pool", "magnitude"):
            raise QSelectError(f"width reduction must be 'pool' or 'magnitude', got {mode!r}")
        if mode == "pool" and wide % narrow:
            raise QSelectError(f"pooling needs the wide width {wide} to be a multiple of {narrow}")
        self.wide, self.narrow, self.mode = wide, narrow, mode
        idx = torch.arange(narrow) if index is None else torch.as_tensor(index, dtype=torch.long)
        self.register_buffer("index", idx)

    def unit_target(self, u: int) -> int | None:
        """Teacher unit that wide unit u is trained towards (None: dropped by the reduction).

        Parameters
        ----------
        u : int
            Unit of the wide layer.

        Returns
        -------
        int or None
        """
        if self.mode == "pool":
            return u // (self.wide // self.narrow)
        hits = (self.index == u).nonzero()
        return int(hits[0, 0]) if hits.numel() else None

    def forward(self, x):
        """Map a wide teacher activation to the student's narrower width.

        Parameters
        ----------
        x : torch.Tensor, shape (..., wide)

        Returns
        -------
        torch.Tensor, shape (..., narrow)
            Mean over groups (``mode="pool"``) or the selected units.
        """
        if self.mode == "pool":
            return x.reshape(*x.shape[:-1], self.narrow, self.wide // self.narrow).mean(-1)
        return x.index_select(-1, self.index)


def teacher_linears(teacher: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The teacher's ``nn.Linear`` layers in module order.

    Parameters
    ----------
    teacher : torch.nn.Module
        An MLP.

    Returns
    -------
    list of (str, torch.nn.Linear)

    Raises
    ------
    QSelectError
        If the teacher has no Linear layer or contains a convolution.
    """
    lins = [(n, m) for n, m in teacher.named_modules() if isinstance(m, nn.Linear)]
    if not lins:
        raise QSelectError("the teacher has no nn.Linear layer; layerwise distillation needs an MLP teacher")
    if any(isinstance(m, nn.Conv2d) for m in teacher.modules()):
        raise QSelectError("layerwise distillation supports MLP teachers (Linear layers) only")
    return lins


def build_student(teacher: nn.Module, width: int = 2, depth: int = 2, reduce: str = "pool",
                  activation: type[nn.Module] = nn.ReLU, seed: int = 0) -> nn.Sequential:
    """A random student ``width``× wider and ``depth``× deeper than the MLP teacher.

    Layout: ``flatten``, then ``block{i}`` = Sequential of ``depth`` Linear
    layers (activations between), a ``WidthReduce`` and, except after the
    last block, the activation. Same seed, same student.

    Parameters
    ----------
    teacher : torch.nn.Module
        An MLP (Linear layers only).
    width : int
        Width multiplier.
    depth : int
        Linear layers per teacher layer.
    reduce : {"pool", "magnitude"}
        How a block's wide output is reduced to the teacher's width: group
        means, or the units of largest magnitude.
    activation : type of torch.nn.Module
    seed : int

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    QSelectError
        If the teacher is not an MLP or an argument is out of range.
    """
    if int(width) < 1 or int(depth) < 2:
        raise QSelectError(f"the student must be at least as wide (width ≥ 1) and twice as deep "
                           f"(depth ≥ 2) as the teacher, got width={width}, depth={depth}")
    lins = teacher_linears(teacher)
    gen = torch.Generator().manual_seed(int(seed))
    parts: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    for i, (_, t) in enumerate(lins):
        wide = int(width) * t.out_features
        layers: list[nn.Module] = []
        d_in = t.in_features
        for _ in range(int(depth)):
            lin = nn.Linear(d_in, wide)
            bound = 1.0 / d_in ** 0.5  # torch's default init, drawn from our own generator
            with torch.no_grad():
                lin.weight.uniform_(-bound, bound, generator=gen)
                lin.bias.uniform_(-bound, bound, generator=gen)
            layers += [lin, activation()]
            d_in = wide
        layers.pop()  # no activation before the reduction
        index = None
        if reduce == "magnitude":
            norms = layers[-1].weight.norm(dim=1)
            index = torch.sort(torch.argsort(-norms, stable=True)[: t.out_features]).values
        layers.append(WidthReduce(wide, t.out_features, reduce, index))
        if i + 1 < len(lins):
            layers.append(activation())
        parts[f"block{i}"] = nn.Sequential(*layers)
    return nn.Sequential(parts).to(model_device(teacher))


def distillation_problems(teacher: nn.Module, student: nn.Sequential, inputs, *, sparsity: float = 0.5,
                          penalty="auto") -> list[LocalProblem]:
    """Per-block weight problems; targets of each block's last layer = teacher pre-activations.

    Parameters
    ----------
    teacher : torch.nn.Module
    student : torch.nn.Sequential
        From :func:`build_student`.
    inputs : torch.Tensor or iterable
        Calibration inputs.
    sparsity : float
        Fraction removed, in [0, 1).
    penalty : "auto", None or float
        Cardinality penalty λ: "auto"/None = :func:`~qselect.formulate.cardinality.auto_penalty`
        (provably keeps k), a number = λ itself.

    Returns
    -------
    list of LocalProblem
    """
    lins = teacher_linears(teacher)
    blocks = [(n, m) for n, m in student.named_children() if n.startswith("block")]
    if len(blocks) != len(lins):
        raise QSelectError(f"student has {len(blocks)} blocks for {len(lins)} teacher layers; "
                           "build it with build_student(teacher)")
    t_acts = collect_activations(teacher, inputs, [n for n, _ in lins])
    problems: list[LocalProblem] = []
    for (bname, block), (tname, _) in zip(blocks, lins):
        x_in, t_pre = t_acts[tname]
        if not isinstance(block[-1], WidthReduce) and not isinstance(block[-2], WidthReduce):
            raise QSelectError(f"student block {bname!r} has no WidthReduce; build it with build_student")
        red = next(m for m in block if isinstance(m, WidthReduce))
        s_lins = [(n, m) for n, m in block.named_children() if isinstance(m, nn.Linear)]
        s_acts = collect_activations(block, x_in.reshape(x_in.shape[0], -1), [n for n, _ in s_lins])
        for li, (lname, lin) in enumerate(s_lins):
            full = f"{bname}.{lname}"
            if li + 1 < len(s_lins):
                problems += weight_problems(full, lin, s_acts[lname][0], sparsity=sparsity, penalty=penalty)
                continue
            units = [u for u in range(lin.out_features) if red.unit_target(u) is not None]
            targets = torch.zeros_like(s_acts[lname][1])
            for u in units:
                targets[:, u] = t_pre[:, red.unit_target(u)]
            for lp in weight_problems(full, lin, s_acts[lname][0], sparsity=sparsity, targets=targets,
                                      penalty=penalty, neurons=units):
                lp.info["teacher_unit"] = red.unit_target(lp.index)
                lp.info["teacher_layer"] = tname
                problems.append(lp)
    return problems


def distill_masks(teacher: nn.Module, student: nn.Sequential, inputs, *, sparsity: float = 0.5,
                  solver=None, qubits: int = 12, seed: int = 0, executor=None, penalty=None,
                  max_sweeps: int = 10, progress: bool = False) -> Selection:
    """Solve the distillation problems; units a magnitude reduction drops are pruned entirely.

    Parameters
    ----------
    teacher : torch.nn.Module
    student : torch.nn.Sequential
    inputs : torch.Tensor or iterable
    sparsity : float
        Fraction removed, in [0, 1).
    solver : str, Solver or None
    qubits : int
        Block size.
    seed : int
    executor : Executor, str or None
    penalty : "auto", None or float
        Cardinality penalty λ: "auto"/None = :func:`~qselect.formulate.cardinality.auto_penalty`
        (provably keeps k), a number = λ itself.
    max_sweeps : int
    progress : bool

    Returns
    -------
    Selection
        Masks for the student's Linear layers.
    """
    problems = distillation_problems(teacher, student, inputs, sparsity=sparsity,
                                     penalty="auto" if penalty is None else penalty)
    block = make_solver(solver, int(qubits), seed, max_sweeps)
    results = solve_problems(problems, block, executor, progress)
    names = [n for n, m in student.named_modules() if isinstance(m, nn.Linear)]
    masks = build_masks(student, problems, results, names)
    for bname, blk in student.named_children():
        red = next((m for m in blk.modules() if isinstance(m, WidthReduce)), None)
        if red is None or red.mode != "magnitude":
            continue
        last = [n for n, m in blk.named_children() if isinstance(m, nn.Linear)][-1]
        drop = [u for u in range(red.wide) if red.unit_target(u) is None]
        masks[f"{bname}.{last}.weight"][drop] = 0.0
    return Selection(masks, problems, results, "distill", float(sparsity),
                     info={"qubits": int(qubits), "seed": seed})
