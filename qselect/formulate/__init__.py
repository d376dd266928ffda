"""Layer → local problems (weight, neuron, NK, refit formulations), solved and turned into PyTorch masks.

Formulations: weight selection per output neuron (``weights``), neuron
selection per layer (``neurons``), NK exact local loss (``nk``), layerwise
distillation (``distill``); cardinality penalties (``cardinality``); problems
over the qubit budget are decomposed (``decompose``). ``select_masks`` runs
the whole path.
"""
from .activations import collect_activations, prunable_layers
from .cardinality import add_cardinality, auto_penalty, keep_count, max_flip_change
from .decompose import BlockSolver
from .distill import WidthReduce, build_student, distill_masks, distillation_problems
from .local import LocalProblem
from .neurons import neuron_problem
from .nk import nk_problems
from .refit import RefitCost, refit_problems
from .select import Selection, build_masks, masks_from_solutions, select_masks
from .weights import weight_problems

__all__ = ["collect_activations", "prunable_layers", "add_cardinality", "auto_penalty", "keep_count",
           "max_flip_change", "BlockSolver", "WidthReduce", "build_student", "distill_masks",
           "distillation_problems", "LocalProblem", "neuron_problem", "nk_problems", "Selection",
           "build_masks", "masks_from_solutions", "select_masks", "weight_problems", "RefitCost",
           "refit_problems"]
