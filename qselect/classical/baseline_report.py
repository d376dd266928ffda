"""Reproduce the classical pipeline's figures on digits: train, prune, fine-tune, edge-popup.

    python -m qselect.classical.baseline_report [--seed 0] [--json out.json] [--device auto]

Prints a markdown table (the numbers quoted in the README's classical-pipeline section).
"""
from __future__ import annotations

import argparse
import copy
import time

import torch

from . import metrics
from .baselines import anti_random_masks, magnitude_masks, random_masks
from .data import load_dataset, make_loader
from .edge_popup import edge_popup
from .flops import count_flops, count_parameters
from .masks import apply_masks, mask_sparsity
from .metrics import disagreement, ensemble_probs, output_correlation, pairwise_kl
from .models import build_model
from .train import TrainConfig, evaluate, predict_proba, train


def run(seed: int = 0, device: str = "auto", progress: bool = False) -> dict:
    """Train a dense MLP on digits and measure the classical pruning baselines.

    Dense model; magnitude (layer and global scope) and random pruning at 50 %
    and 90 %, each with and without a 3-epoch fine-tune; edge-popup on a
    random Kaiming-normal network; an anti-random pair ensemble.

    Parameters
    ----------
    seed : int
        Seed of the data split, the models and the masks.
    device : str
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
    progress : bool
        Show training progress bars.

    Returns
    -------
    dict
        ``rows`` (one per method: accuracy, NLL, ECE, sparsity, parameters,
        FLOPs per sample, seconds), ``anti_random_pair``, and the device,
        AMP flag, thread count and split sizes.
    """
    d = load_dataset("digits", seed=seed)
    tl = make_loader(d.train, 64, shuffle=True, seed=seed)
    vl, te = make_loader(d.val, 512), make_loader(d.test, 512)
    sample = d.test.tensors[0][:1]
    rows = []

    def row(name, model, seconds, masks=None):
        ev = evaluate(model, te)
        s = mask_sparsity(model)["overall"]
        fl = count_flops(model, sample)
        rows.append({"method": name, "test_accuracy": ev["accuracy"], "nll": ev["nll"], "ece": ev["ece"],
                     "sparsity": s, "params_effective": count_parameters(model)["effective"],
                     "flops_effective": fl["effective"], "flops_dense": fl["dense"], "seconds": seconds})

    cfg = TrainConfig(epochs=15, lr=0.1, seed=seed, device=device, progress=progress)
    parent = build_model("mlp", d.input_shape, 10, seed=seed, hidden=(64, 64))
    t = time.perf_counter()
    hist = train(parent, tl, cfg, val_loader=vl)
    row("dense MLP 64-64 (15 epochs)", parent, time.perf_counter() - t)

    ft = TrainConfig(epochs=3, lr=0.02, seed=seed, device=device)
    for sparsity in (0.5, 0.9):
        for scope in ("layer", "global"):
            m = copy.deepcopy(parent)
            t = time.perf_counter()
            apply_masks(m, magnitude_masks(m, sparsity, scope=scope))
            row(f"magnitude {scope} {sparsity:.0%}", m, time.perf_counter() - t)
            t = time.perf_counter()
            train(m, tl, ft)
            row(f"magnitude {scope} {sparsity:.0%} + 3-epoch fine-tune", m, time.perf_counter() - t)
        m = copy.deepcopy(parent)
        apply_masks(m, random_masks(m, sparsity, seed=seed))
        row(f"random layer {sparsity:.0%}", m, 0.0)

    rnd = build_model("mlp", d.input_shape, 10, seed=seed + 1, hidden=(128, 128), init="kaiming_normal")
    row("random MLP 128-128 (kaiming normal), untrained", rnd, 0.0)
    t = time.perf_counter()
    masks = edge_popup(rnd, tl, 0.5, epochs=10, lr=0.1, seed=seed, device=device)
    m = copy.deepcopy(rnd)
    apply_masks(m, masks)
    row("edge-popup 50% on it (10 epochs, weights frozen)", m, time.perf_counter() - t)

    # two anti-random siblings (Prune-and-Tune style), fine-tuned, as a tiny ensemble
    a, b = anti_random_masks(parent, 0.5, seed=seed)
    kids = []
    for i, mk in enumerate((a, b)):
        k = copy.deepcopy(parent)
        apply_masks(k, mk)
        train(k, tl, TrainConfig(epochs=3, lr=0.05, seed=seed + i, device=device))
        kids.append(predict_proba(k, te)[0])
    labels = d.test.tensors[1].numpy()
    ens = ensemble_probs(kids)
    ensemble = {"accuracy": metrics.accuracy(ens, labels), "nll": metrics.nll(ens, labels),
                "ece": metrics.ece(ens, labels), "members_accuracy": [metrics.accuracy(p, labels) for p in kids],
                "disagreement": disagreement(kids), "pairwise_kl": pairwise_kl(kids),
                "output_correlation": output_correlation(kids)}
    return {"seed": seed, "device": hist["device"], "amp": hist["amp"], "threads": torch.get_num_threads(),
            "splits": d.sizes(), "rows": rows, "anti_random_pair": ensemble}


def _table(res: dict) -> str:
    out = ["| method | test acc | NLL | ECE | sparsity | params | FLOPs/sample | time (s) |",
           "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        out.append(f"| {r['method']} | {r['test_accuracy']:.3f} | {r['nll']:.3f} | {r['ece']:.3f} | "
                   f"{r['sparsity']:.2f} | {r['params_effective']} | {r['flops_effective']:.0f} | "
                   f"{r['seconds']:.2f} |")
    e = res["anti_random_pair"]
    out.append("")
    out.append(f"anti-random pair (50% + complement, 3-epoch fine-tune each): ensemble acc {e['accuracy']:.3f}, "
               f"NLL {e['nll']:.3f}, ECE {e['ece']:.3f}; "
               f"members {', '.join(f'{v:.3f}' for v in e['members_accuracy'])}; "
               f"disagreement {e['disagreement']:.3f}, pairwise KL {e['pairwise_kl']:.3f}, "
               f"output correlation {e['output_correlation']:.3f}")
    out.append(f"device {res['device']} (amp {res['amp']}), torch threads {res['threads']}, splits {res['splits']}")
    return "\n".join(out)


def main(argv=None) -> int:
    """Command-line entry point (``python -m qselect.classical.baseline_report``); returns the exit code.

    Parameters
    ----------
    argv : list of str or None
        ``--seed``, ``--device``, ``--threads``, ``--json FILE``, ``--progress``.
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (tiny models: 1 is fastest)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = run(args.seed, args.device, args.progress)
    print(_table(res))
    if args.json:
        from ..io import atomic_write_json

        atomic_write_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
