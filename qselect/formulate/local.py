"""One local problem and where its bits land in the model's parameters."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..problems import Problem


@dataclass
class LocalProblem:
    """A problem plus the model entries its bits control.

    ``kind`` is "weight" (bit i keeps weight entry ``positions[i]`` of
    ``param``), "neuron" (bit i keeps output unit ``positions[i]``: its weight
    row and bias entry) or "nk" (like "weight"; the unit's other inputs,
    ``zero``, are pruned outright because an NK unit reads only K inputs).
    ``index`` is the output neuron (weight/nk) or block id (neuron).
    """

    problem: Problem
    layer: str
    kind: str
    index: int
    positions: np.ndarray
    k: int | None
    param: str = ""
    zero: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.param:
            self.param = f"{self.layer}.weight" if self.layer else "weight"

    @property
    def n(self) -> int:
        """Number of bits of the local problem."""
        return self.problem.n


def with_scores(problem: Problem, scores) -> Problem:
    """Attach per-variable importance scores (read by MagnitudeSolver / the magnitude start).

    Parameters
    ----------
    problem : Problem
    scores : array_like, shape (n,)
        Larger = keep first (e.g. |w|·‖a‖).

    Returns
    -------
    Problem
    """
    return problem.with_scores(scores)
