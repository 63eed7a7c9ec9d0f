"""Time evtools.perturb against Captum's Occlusion and Quantus' PixelFlipping, in one run.

On a small CNN (two 3x3 convolutions, 1 x 28 x 28 inputs, 10 classes, seeded
random weights) and a batch of ``--n`` images it runs, with equal settings:

* occlusion: window 4 x 4, stride 2, baseline 0, the probability of class 3;
  ``evtools.perturb.occlusion(batch_size=n * ppe)`` against
  ``captum.attr.Occlusion(...).attribute(perturbations_per_eval=ppe)``, which
  also sends ``n * ppe`` inputs to the model per call;
* deletion: the occlusion map (plus a 1e-6 jitter so that no two pixels tie),
  28 pixels per step, Quantus' ``"black"`` baseline (each image's minimum),
  softmax probability of class 3; ``evtools.perturb.deletion(batch_size=n)``
  against ``quantus.PixelFlipping(features_in_step=28)`` with
  ``batch_size=n``: both send ``n`` inputs to the model per call.

It prints the best time of ``--repeats`` runs of each, the ratio
``peer / evtools`` (above 1: evtools is faster) and the largest difference
between the results (Captum divides in float32; Quantus' curve has no step 0).

Needs torch, captum, and Quantus with its import-time dependencies::

    pip install captum
    pip install quantus --no-deps
    pip install scikit-image opencv-python-headless scikit-learn

Run from the repository root::

    python benchmarks/bench_perturb.py
    python benchmarks/bench_perturb.py --n 32 --threads 2
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _machine import machine_report  # noqa: E402  (benchmarks/_machine.py)

import evtools.perturb as P  # noqa: E402

TARGET = 3


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    ).eval()


def best_time(fn, repeats):
    out, best = None, float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="images in the batch")
    ap.add_argument("--ppe", type=int, default=16, help="Captum's perturbations_per_eval")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    print(machine_report())
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")

    import quantus
    from captum.attr import Occlusion

    net = small_cnn()
    x = torch.rand((args.n, 1, 28, 28), generator=torch.Generator().manual_seed(1))

    def f(b):
        return torch.softmax(net(b), dim=1)[:, TARGET]

    rows = []
    with torch.no_grad():
        t_ours, ours = best_time(
            lambda: P.occlusion(f, x, 4, 2, baseline=0.0, batch_size=args.n * args.ppe), args.repeats
        )
        t_peer, peer = best_time(
            lambda: Occlusion(f).attribute(
                x, sliding_window_shapes=(1, 4, 4), strides=(1, 2, 2), baselines=0.0,
                perturbations_per_eval=args.ppe,
            ),
            args.repeats,
        )
    diff = float((ours - peer[:, 0]).abs().max())
    rows.append(("occlusion 4x4/2", "Captum Occlusion", t_ours, t_peer, diff))

    jitter = 1e-6 * torch.rand(ours.shape, generator=torch.Generator().manual_seed(2))
    a = ours + jitter
    black = x.amin(dim=(1, 2, 3), keepdim=True).expand_as(x)
    y = np.full(args.n, TARGET)
    metric = quantus.PixelFlipping(
        features_in_step=28, perturb_baseline="black", normalise=False, abs=False, disable_warnings=True
    )
    t_ours, curve = best_time(
        lambda: P.deletion(f, x, a, baseline=black, step=28, batch_size=args.n), args.repeats
    )
    t_peer, theirs = best_time(
        lambda: metric(
            model=net, x_batch=x.numpy(), y_batch=y, a_batch=a[:, None].numpy(), device="cpu",
            softmax=True, channel_first=True, batch_size=args.n,
        ),
        args.repeats,
    )
    diff = float(np.abs(curve.scores[:, 1:].numpy() - np.asarray(theirs)).max())
    rows.append(("deletion 28 px/step", "Quantus PixelFlipping", t_ours, t_peer, diff))

    print(f"evtools.perturb vs peers: {args.n} images 1x28x28, small CNN, torch {torch.__version__} CPU, "
          f"{args.threads} thread(s), best of {args.repeats}")
    print(f"{'task':<22}{'peer':<24}{'evtools s':>10}{'peer s':>10}{'peer/ev':>9}{'max |diff|':>12}")
    for task, peer_name, t_e, t_p, d in rows:
        print(f"{task:<22}{peer_name:<24}{t_e:>10.3f}{t_p:>10.3f}{t_p / t_e:>9.2f}{d:>12.2e}")


if __name__ == "__main__":
    main()
