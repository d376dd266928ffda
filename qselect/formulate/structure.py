"""Which units can be removed one by one: the dependency-graph view of a network.

Neuron (channel) selection on a layer needs every removed unit to reach the
layer that reads it as an exact zero, and to reach *only* that layer:

- a Linear/Conv2d unit followed by BatchNorm is removed by masking its weight
  row, its bias *and* the BatchNorm scale γ and shift β of that channel: the
  normalised output is then γ·(…)+β = 0 in eval mode and in train mode alike,
  and a ReLU-like activation keeps it 0. Those BatchNorms are the unit's
  *companions* (:func:`norm_companions`);
- a unit whose channel is added to other layers' channels (a residual sum,
  e.g. a ResNet BasicBlock's ``conv2`` or the stem conv) cannot vanish alone:
  the shortcut still carries the channel. Such layers are **refused** with a
  one-line reason naming the layer they are tied to; the inner layers of a
  block (``conv1 → bn1 → relu → conv2``) are selectable. (Grouping the whole
  residual stream into one bit per channel is what structural pruners do; it
  changes many layers at once and has no exact local QUBO, so it is left out.)
- LayerNorm mixes all units of a token, so units reaching the next layer
  through one are refused too.

The coupling is read from Torch-Pruning's dependency graph (Fang et al.,
"DepGraph: Towards Any Structural Pruning", CVPR 2023): the pruning group of
a layer's output channel lists every other layer and operation tied to it.

References
----------
Fang, G., Ma, X., Song, M., Mi, M. B., Wang, X. "DepGraph: Towards Any
Structural Pruning." CVPR 2023.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import QSelectError

#: normalisations a unit may pass through: masking their per-channel γ and β zeroes the unit
NORM_COMPANIONS = (nn.BatchNorm1d, nn.BatchNorm2d)
#: normalisations that mix units (refused)
_MIXING_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d)


def norm_companions(modules: dict[str, nn.Module], between: list[str]) -> list[str]:
    """The BatchNorm modules among ``between`` (names in call order), each with γ and β.

    Parameters
    ----------
    modules : dict of str -> torch.nn.Module
    between : list of str

    Returns
    -------
    list of str

    Raises
    ------
    QSelectError
        A BatchNorm without affine parameters (nothing to mask).
    """
    out = []
    for b in between:
        m = modules[b]
        if isinstance(m, NORM_COMPANIONS):
            if m.weight is None or m.bias is None:
                raise QSelectError(f"{b!r} is a BatchNorm without affine scale and shift, so a removed unit "
                                   "cannot be zeroed through it; build it with affine=True or use the "
                                   "'weight' formulation")
            out.append(b)
    return out


class DependencyCheck:
    """Torch-Pruning's dependency graph of ``model`` on one example input, built lazily once.

    Parameters
    ----------
    model : nn.Module
    example : torch.Tensor
        One input batch (a single sample is enough), on the model's device.
    """

    def __init__(self, model: nn.Module, example: torch.Tensor):
        self.model = model
        self.example = example
        self._graph = None
        self._failed = None
        self._names = {m: n for n, m in model.named_modules()}

    def graph(self):
        """The DependencyGraph, or None when Torch-Pruning cannot trace the model."""
        if self._graph is None and self._failed is None:
            import warnings

            import torch_pruning as tp  # third-party, imported when a neuron formulation needs it

            was = self.model.training
            self.model.eval()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # unwrapped parameters (class tokens, ...) are reported
                    self._graph = tp.DependencyGraph().build_dependency(self.model, example_inputs=self.example)
            except Exception as exc:  # noqa: BLE001 - any tracing failure means "no graph"
                self._failed = f"{type(exc).__name__}: {exc}"
            finally:
                self.model.train(was)
        return self._graph

    def tied(self, name: str) -> dict[str, list[str]]:
        """What the output channels of layer ``name`` are tied to.

        Parameters
        ----------
        name : str

        Returns
        -------
        dict
            ``readers`` (layers whose input channels read them), ``writers``
            (other layers whose output channels are summed with them),
            ``mixers`` (LayerNorm-like modules they pass through),
            ``params`` (free parameters such as a class token tied to them).
            Empty lists when the graph could not be built.
        """
        out = {"readers": [], "writers": [], "mixers": [], "params": []}
        g = self.graph()
        if g is None:
            return out
        import torch_pruning as tp

        mod = self.model.get_submodule(name)
        fn = tp.prune_conv_out_channels if isinstance(mod, nn.Conv2d) else tp.prune_linear_out_channels
        for dep, _ in g.get_pruning_group(mod, fn, idxs=[0]):
            m = dep.target.module
            if m is mod:
                continue
            n = self._names.get(m)
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                key = "readers" if getattr(dep.handler, "__name__", "") == "prune_in_channels" else "writers"
                out[key].append(n)
            elif isinstance(m, _MIXING_NORMS):
                out["mixers"].append(n)
            elif isinstance(m, nn.Parameter):
                out["params"].append(n or "a free parameter")
        for k in out:
            out[k] = list(dict.fromkeys(out[k]))
        return out

    def check(self, name: str, reader: str) -> None:
        """Raise ``QSelectError`` (one line, naming the layer) unless ``name``'s units reach only ``reader``.

        Parameters
        ----------
        name : str
            The layer whose units are selected.
        reader : str
            The one layer allowed to read them.
        """
        t = self.tied(name)
        if t["writers"]:
            raise QSelectError(
                f"neuron selection on layer {name!r}: its output channels are summed with those of "
                f"{t['writers'][0]!r} (a residual connection), so removing one alone does not remove it "
                "downstream; select the inner layers of a block (e.g. 'conv1' of a BasicBlock) or use the "
                "'weight' formulation")
        if t["mixers"]:
            raise QSelectError(
                f"neuron selection on layer {name!r}: its units pass through {t['mixers'][0]!r} (a "
                f"{type(self.model.get_submodule(t['mixers'][0])).__name__}), which mixes all units; "
                "use the 'weight' formulation for this layer")
        if t["params"]:
            raise QSelectError(
                f"neuron selection on layer {name!r}: its units are tied to {t['params'][0]} (a free "
                "parameter such as a class token or position embedding); use the 'weight' formulation")
        others = [r for r in t["readers"] if r != reader]
        if others:
            raise QSelectError(
                f"neuron selection on layer {name!r}: its units are read by {others[0]!r} as well as "
                f"{reader!r}; neuron selection needs exactly one layer reading them")


def dependency_check(model: nn.Module, calib_inputs) -> DependencyCheck:
    """A :class:`DependencyCheck` on the first sample of ``calib_inputs`` (tensor or batches).

    Parameters
    ----------
    model : torch.nn.Module
    calib_inputs : torch.Tensor or iterable

    Returns
    -------
    DependencyCheck
    """
    from ..devices import model_device
    from .activations import _batches

    x = next(iter(_batches(calib_inputs)))
    return DependencyCheck(model, x[:1].to(model_device(model)))


def between(order: list[str], name: str, reader: str) -> list[str]:
    """Leaf modules the forward pass calls after ``name`` and before ``reader`` (call order).

    Parameters
    ----------
    order : list of str
        Leaf modules in call order.
    name : str
    reader : str

    Returns
    -------
    list of str
    """
    i = order.index(name)
    return order[i + 1:order.index(reader, i + 1)]
