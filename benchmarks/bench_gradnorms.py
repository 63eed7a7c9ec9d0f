"""Time evtools_torch.filter_gradient_norms against its peers, measured in the same run.

For small ResNet-style networks (stage widths 16 to 64, inputs 32 and 64
pixels, 256 samples) it prints the time of

* ``ours``: :func:`evtools_torch.filter_gradient_norms` (per reduction),
* ``loop``: the reference procedure, one forward/backward per sample reading
  ``weight.grad`` (``tests/reference/torch_naive.py``),
* ``floor``: a plain batched forward + backward (cross-entropy, parameter
  gradients), the least any batched method can cost,

and the ratios ``ours / floor`` (goal: at most 1.5) and ``ours / loop``
(goal: below 1), for each batch size of ``--batch-sizes`` (ours and the floor
use the same one). Times are the best of ``--repeats`` runs, the methods
taking turns so that a change of machine load hits all alike. On a CPU,
batches of 64 images of 64 pixels overflow the caches and even the floor can
be slower than the one-sample loop; batches of 8 to 16 are the fast ones there.

Then (``--jax also``, the default; ``--jax only`` for this part alone) the
same networks in Flax time :func:`evtools_jax.filter_gradient_norms` against
the JAX one-sample loop (``tests/reference/jax_naive.py``: a compiled
per-sample gradient, reduced on the host) and a plain batched ``jit(grad)`` of
the mean loss (the floor), in the same run; skipped with a note when JAX or
Flax is not installed. ``--threads 1`` turns XLA's multithreaded Eigen off;
other values leave XLA's own thread pool.

``--resnet50`` (or ``--resnet50 only``) adds a hand-written ResNet-50
(``benchmarks/resnet50.py``: 53 convolutions, 26,560 filters) at 224 pixels on
``--device`` (``cpu`` or ``cuda``), in IEEE float32, on CUDA also with PyTorch's default
TensorFloat-32 convolutions (``tf32``: ours with ``tf32=True``), and under bfloat16 autocast:
ours, the floor and the loop over one batch of ``--r50-batch`` samples, their
ratios, the peak extra memory of each (CUDA: ``max_memory_allocated``; CPU: the
resident set sampled every 2 ms), and the accuracy of ours and the loop (float32,
tf32) against the loop of the same model in float64.

Run from the repository root::

    python benchmarks/bench_gradnorms.py              # 1 thread
    python benchmarks/bench_gradnorms.py --threads 4
    python benchmarks/bench_gradnorms.py --jax only
    python benchmarks/bench_gradnorms.py --resnet50 only --r50-batch 8 --repeats 2
    python benchmarks/bench_gradnorms.py --resnet50 only --device cuda --r50-batch 64
"""
import argparse
import copy
import os
import sys
import threading
import time

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _machine import machine_report  # noqa: E402  (benchmarks/_machine.py)

from evtools_torch import filter_gradient_norms  # noqa: E402
from evtools_torch._precision import full_float32  # noqa: E402
from tests.reference.torch_naive import filter_gradient_norms_loop  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnet50 import ResNet50  # noqa: E402


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        out += x if self.down is None else self.down(x)
        return F.relu(out, inplace=True)


class ResNet(nn.Module):
    """Stem 3x3 conv, one basic block per stage (stride 2 from the second), global pool, linear."""

    def __init__(self, widths, n_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]))
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(c, w, 1 if i == 0 else 2))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, n_classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.stem(x), inplace=True))
        return self.fc(x.mean((2, 3)))


def _best_interleaved(fns, repeats):
    """Best time of each callable, the callables taking turns so that load changes hit all alike."""
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def _plain(model, x, y, batch_size):
    model.eval()
    for start in range(0, x.shape[0], batch_size):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[start:start + batch_size]), y[start:start + batch_size]).backward()
    model.zero_grad(set_to_none=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch-sizes", default="16,64", help="comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-loop", action="store_true", help="skip the slow one-sample loop")
    parser.add_argument("--jax", choices=("also", "only", "off"), default="also",
                        help="time evtools_jax too (skipped with a note if JAX or Flax is missing)")
    parser.add_argument("--resnet50", choices=("off", "also", "only"), default="off", const="also", nargs="?",
                        help="time the 224-pixel ResNet-50 too (or only)")
    parser.add_argument("--r50-batch", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="device of the ResNet-50 section")
    args = parser.parse_args()
    print(machine_report())
    torch.set_num_threads(args.threads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.resnet50 == "only":
        return bench_resnet50(args)
    if args.jax == "only":
        return bench_jax(args, batch_sizes)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.samples} samples, best of {args.repeats}")
    header = f"{'widths':>12} {'px':>3} {'batch':>5} {'reduction':>9} {'ours s':>7} {'floor s':>7} {'loop s':>7} " \
             f"{'ours/floor':>10} {'ours/loop':>9}"
    print(header)
    print("-" * len(header))
    for widths in [(16, 32, 64), (32, 64, 64)]:
        for px in (32, 64):
            torch.manual_seed(0)
            model = ResNet(widths)
            x = torch.randn(args.samples, 3, px, px)
            y = torch.randint(0, 10, (args.samples,))
            fns = {} if args.no_loop else {"loop": lambda: filter_gradient_norms_loop(model, x, y)}
            for b in batch_sizes:
                fns[("floor", b)] = lambda b=b: _plain(model, x, y, b)
                for reduction in ("mean_abs", "l2"):
                    fns[(reduction, b)] = lambda b=b, r=reduction: filter_gradient_norms(
                        model, (x, y), reduction=r, batch_size=b, progress=False
                    )
            best = _best_interleaved(fns, args.repeats)
            loop = best.get("loop", float("nan"))
            for b in batch_sizes:
                floor = best[("floor", b)]
                for reduction in ("mean_abs", "l2"):
                    ours = best[(reduction, b)]
                    print(f"{'-'.join(map(str, widths)):>12} {px:>3} {b:>5} {reduction:>9} {ours:7.3f} "
                          f"{floor:7.3f} {loop:7.3f} {ours / floor:10.2f} {ours / loop:9.3f}", flush=True)
    if args.jax == "also":
        bench_jax(args, batch_sizes)
    if args.resnet50 == "also":
        bench_resnet50(args)


class _PeakMemory:
    """Peak extra memory of a call in MiB: CUDA's allocator statistics, or the CPU resident set sampled."""

    def __init__(self, device):
        self.device = torch.device(device)

    def measure(self, fn):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            fn()
            torch.cuda.synchronize(self.device)
            return (torch.cuda.max_memory_allocated(self.device) - base) / 2**20
        try:  # hand freed memory back to the system first, so that the resident set shows this call's peak
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        page = os.sysconf("SC_PAGE_SIZE")
        rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page  # noqa: E731
        base, peak, done = rss(), [0], threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss())
                time.sleep(0.002)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            fn()
        finally:
            done.set()
            sampler.join()
        return max(0, max(peak[0], rss()) - base) / 2**20


def bench_resnet50(args):
    """Ours, the floor and the loop on a 224-pixel ResNet-50, float32 and bfloat16 autocast."""
    import numpy as np

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = ResNet50().to(device).eval()
    b = args.r50_batch
    x = torch.randn(b, 3, 224, 224, device=device)
    y = torch.randint(0, 1000, (b,), device=device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    memory = _PeakMemory(device)
    print(f"\nResNet-50, 224 px, batch {b}, {device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"best of {args.repeats}")
    header = f"{'precision':>9} {'reduction':>9} {'ours s':>7} {'floor s':>7} {'loop s':>7} {'ours/floor':>10} " \
             f"{'loop/ours':>9} {'ours MiB':>8} {'floor MiB':>9} {'loop MiB':>8}"
    print(header)
    print("-" * len(header))
    precisions = ("float32", "tf32", "bfloat16") if device.type == "cuda" else ("float32", "bfloat16")
    for precision in precisions:
        def context():
            """float32: every method in IEEE float32 (ours by default, the others in full_float32); tf32: the
            process's default TF32 settings for all (ours with tf32=True); bfloat16: autocast for all."""
            if precision == "bfloat16":
                return torch.autocast(device.type, dtype=torch.bfloat16)
            return full_float32(precision == "float32")

        def run(fn):
            def timed():
                with context():
                    fn()
                sync()
            return timed

        fns = {"floor": run(lambda: _plain(model, x, y, b))}
        if not args.no_loop:
            fns["loop"] = run(lambda: filter_gradient_norms_loop(model, x, y))
        for reduction in ("mean_abs", "l2"):
            fns[reduction] = run(lambda r=reduction: filter_gradient_norms(
                model, (x, y), reduction=r, batch_size=b, progress=False, tf32=precision == "tf32"))
        fns["floor"]()  # warm-up
        best = _best_interleaved(fns, args.repeats)
        peaks = {name: memory.measure(fn) for name, fn in fns.items()}
        for reduction in ("mean_abs", "l2"):
            ours, floor, loop = best[reduction], best["floor"], best.get("loop", float("nan"))
            print(f"{precision:>9} {reduction:>9} {ours:7.2f} {floor:7.2f} {loop:7.2f} {ours / floor:10.2f} "
                  f"{loop / ours:9.2f} {peaks[reduction]:8.0f} {peaks['floor']:9.0f} {peaks.get('loop', 0):8.0f}",
                  flush=True)
    if not args.no_loop:  # accuracy: against the one-sample loop of the same model in float64
        ref = filter_gradient_norms_loop(copy.deepcopy(model).double(), x.double(), y)
        rows = {}
        for precision in precisions[:-1]:
            with full_float32(precision == "float32"):
                rows[f"loop {precision}"] = filter_gradient_norms_loop(model, x, y)
            rows[f"ours {precision}"] = filter_gradient_norms(model, (x, y), batch_size=b, progress=False,
                                                              tf32=precision == "tf32")[0]
        for name, G in rows.items():
            relative = np.abs(G - ref) / np.maximum(ref, np.finfo(np.float32).tiny)
            print(f"{name:>13} vs the float64 loop: median relative error {np.median(relative):.1e}, largest "
                  f"difference {np.abs(G - ref).max() / np.abs(ref).max():.1e} of the largest entry")


def bench_jax(args, batch_sizes):
    """The table above for evtools_jax on the same ResNets in Flax (inputs NHWC)."""
    if args.threads == 1:  # single-threaded convolutions and matrix products; before JAX starts its backend
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    try:
        import jax
        import jax.numpy as jnp
        from flax import linen
    except ImportError as exc:
        print(f"\nJAX section skipped: {exc} (pip install 'evtools[jax]')")
        return
    import numpy as np

    from evtools_jax import filter_gradient_norms as jax_gradient_norms
    from tests.reference.jax_naive import filter_gradient_norms_loop as jax_loop

    def bn():
        return linen.BatchNorm(use_running_average=True, epsilon=1e-5)

    class FlaxBlock(linen.Module):
        c: int
        stride: int

        @linen.compact
        def __call__(self, x):
            out = linen.relu(bn()(linen.Conv(self.c, (3, 3), self.stride, padding=1, use_bias=False)(x)))
            out = bn()(linen.Conv(self.c, (3, 3), padding=1, use_bias=False)(out))
            if self.stride != 1 or x.shape[-1] != self.c:
                x = bn()(linen.Conv(self.c, (1, 1), self.stride, use_bias=False)(x))
            return linen.relu(out + x)

    class FlaxResNet(linen.Module):
        widths: tuple

        @linen.compact
        def __call__(self, x):
            x = linen.relu(bn()(linen.Conv(self.widths[0], (3, 3), padding=1, use_bias=False)(x)))
            for i, w in enumerate(self.widths):
                x = FlaxBlock(w, 1 if i == 0 else 2)(x)
            return linen.Dense(10)(x.mean((1, 2)))

    def mean_loss(params, stats, model, x, y):
        logits = model.apply({"params": params, "batch_stats": stats}, x)
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1).mean()

    floor_grad = jax.jit(jax.grad(mean_loss), static_argnums=2)

    def plain(model, variables, x, y, batch_size):
        for start in range(0, x.shape[0], batch_size):
            grads = floor_grad(variables["params"], variables["batch_stats"], model,
                               x[start:start + batch_size], y[start:start + batch_size])
        jax.block_until_ready(grads)

    print(f"\njax {jax.__version__} on {jax.default_backend()}, "
          f"{'single-threaded Eigen' if args.threads == 1 else 'XLA default threads'}, {args.samples} samples, "
          f"best of {args.repeats} after a compiling call")
    header = f"{'widths':>12} {'px':>3} {'batch':>5} {'reduction':>9} {'ours s':>7} {'floor s':>7} {'loop s':>7} " \
             f"{'ours/floor':>10} {'ours/loop':>9}"
    print(header)
    print("-" * len(header))
    for widths in [(16, 32, 64), (32, 64, 64)]:
        for px in (32, 64):
            rng = np.random.default_rng(0)
            model = FlaxResNet(widths)
            x = rng.standard_normal((args.samples, px, px, 3)).astype(np.float32)
            y = rng.integers(0, 10, args.samples)
            variables = model.init(jax.random.key(0), x[:1])
            fns = {} if args.no_loop else {"loop": lambda: jax_loop(model.apply, variables, x, y)}
            for b in batch_sizes:
                fns[("floor", b)] = lambda b=b: plain(model, variables, x, y, b)
                for reduction in ("mean_abs", "l2"):
                    fns[(reduction, b)] = lambda b=b, r=reduction: jax_gradient_norms(
                        model.apply, variables, (x, y), reduction=r, batch_size=b, progress=False
                    )
            for name, fn in fns.items():  # compile
                if name == "loop":
                    jax_loop(model.apply, variables, x[:1], y[:1])
                else:
                    fn()
            best = _best_interleaved(fns, args.repeats)
            loop = best.get("loop", float("nan"))
            for b in batch_sizes:
                floor = best[("floor", b)]
                for reduction in ("mean_abs", "l2"):
                    ours = best[(reduction, b)]
                    print(f"{'-'.join(map(str, widths)):>12} {px:>3} {b:>5} {reduction:>9} {ours:7.3f} "
                          f"{floor:7.3f} {loop:7.3f} {ours / floor:10.2f} {ours / loop:9.3f}", flush=True)


if __name__ == "__main__":
    main()
