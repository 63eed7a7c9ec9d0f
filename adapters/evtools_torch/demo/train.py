"""Seeded training, evaluation and a config-keyed cache of the demo models.

:func:`train` fits any classifier on ``(x, y)`` with AdamW and a one-cycle
learning-rate schedule, deterministically given its seed. :class:`DemoConfig`
names everything that determines a trained demo model (architecture, data
sizes, schedule, seed); :func:`load_or_train` trains it once and afterwards
loads the weights from a cache file whose name carries a hash of the config.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from evtools.adapter import InvalidInputError, positive_int

from .._model import device_dtype, evaluate
from .data import make_shapes
from .models import resnet_small, vgg_small

# Bump when the data generator, the models or the training loop change in a
# way that changes the trained weights: old cache files are then ignored.
CACHE_VERSION = 1

ARCHITECTURES = ("vgg", "resnet")
"""Architectures accepted by :class:`DemoConfig`."""


@contextmanager
def _deterministic():
    """Run the body with ``torch.use_deterministic_algorithms(True)``, then restore."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _as_xy(data, device, dtype):
    """Validate ``data = (x, y)`` and return tensors on ``device``, ``x`` as ``dtype``."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise InvalidInputError("data must be a pair (x, y) of images (N, C, H, W) and labels (N,)")
    x = torch.as_tensor(data[0], dtype=dtype, device=device)
    y = torch.as_tensor(data[1], device=device)
    if x.ndim != 4:
        raise InvalidInputError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise InvalidInputError(f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise InvalidInputError(f"y must hold integer class labels, got dtype {y.dtype}")
    return x, y.long()


def train(model, data, *, epochs, lr, seed, batch_size=128, weight_decay=5e-4, progress=True):
    """Train a classifier in place with AdamW, a one-cycle schedule and cross-entropy.

    Deterministic given ``seed``: the batch order comes from a generator seeded
    with it and deterministic algorithms are enforced during training, so the
    same model initialisation, data, seed, torch version and thread count give
    bit-identical weights. The model's initial weights are not drawn here: seed
    torch before building the model (as :meth:`DemoConfig.build_model` does).

    Parameters
    ----------
    model : torch.nn.Module
        Maps ``(B, C, H, W)`` float images to ``(B, n_classes)`` logits. Trained
        in place, then left in eval mode.
    data : tuple of (array_like, array_like)
        Images ``(N, C, H, W)`` (float) and labels ``(N,)`` (int), numpy or torch.
    epochs : int
        Passes over the data.
    lr : float
        Peak learning rate of the one-cycle schedule.
    seed : int
        Seed of the batch order.
    batch_size : int
        Images per step; the last, smaller batch of each epoch is dropped.
    weight_decay : float
        AdamW's decoupled weight decay.
    progress : bool
        Show a tqdm bar over the steps.

    Returns
    -------
    dict
        ``"loss"``: ndarray (epochs,), mean training loss per epoch;
        ``"accuracy"``: ndarray (epochs,), running training accuracy per epoch;
        ``"seconds"``: float, wall-clock training time.

    Notes
    -----
    Models this small gain little from a second torch thread, and on a busy
    machine threads that wait on each other can be many times slower than
    one: consider ``torch.set_num_threads(1)`` around the call.
    """
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    if not (np.isfinite(lr) and lr > 0):
        raise InvalidInputError(f"lr must be a positive number, got {lr!r}")
    x, y = _as_xy(data, *device_dtype(model))
    steps_per_epoch = x.shape[0] // batch_size
    if steps_per_epoch < 1:
        raise InvalidInputError(f"need at least batch_size={batch_size} images, got {x.shape[0]}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch
    )
    generator = torch.Generator().manual_seed(int(seed))
    losses, accuracies = np.zeros(epochs), np.zeros(epochs)
    start = time.perf_counter()
    model.train()
    with _deterministic(), tqdm(total=epochs * steps_per_epoch, desc="train", disable=not progress) as bar:
        for epoch in range(epochs):
            order = torch.randperm(x.shape[0], generator=generator).to(x.device)
            total_loss, correct = 0.0, 0
            for step in range(steps_per_epoch):
                idx = order[step * batch_size:(step + 1) * batch_size]
                logits = model(x[idx])
                loss = F.cross_entropy(logits, y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total_loss += loss.item()
                correct += int((logits.argmax(1) == y[idx]).sum())
                bar.update()
            losses[epoch] = total_loss / steps_per_epoch
            accuracies[epoch] = correct / (steps_per_epoch * batch_size)
            bar.set_postfix(loss=f"{losses[epoch]:.3f}", acc=f"{accuracies[epoch]:.3f}")
    optimizer.zero_grad(set_to_none=True)  # hand the model back without stale gradients
    model.eval()
    return {"loss": losses, "accuracy": accuracies, "seconds": time.perf_counter() - start}


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Everything that determines a trained demo model.

    The defaults are the full VGG; use the presets :meth:`quick` (for tests:
    seconds) and :meth:`full` (about 99 % clean test accuracy in under a
    minute).

    Parameters
    ----------
    arch : {"vgg", "resnet"}
        :func:`~evtools_torch.demo.vgg_small` or :func:`~evtools_torch.demo.resnet_small`.
    width : int
        Channels of the first stage.
    depth : int
        ``convs_per_stage`` (VGG) or ``blocks_per_stage`` (ResNet).
    n_train, n_test : int
        Sizes of the source-domain training and test sets.
    epochs : int
        Training epochs.
    lr : float
        Peak learning rate.
    batch_size : int
        Training batch size.
    weight_decay : float
        AdamW weight decay.
    seed : int
        Seeds the model initialisation, the data and the batch order.
    """

    arch: str = "vgg"
    width: int = 16
    depth: int = 2
    n_train: int = 5000
    n_test: int = 2000
    epochs: int = 6
    lr: float = 5e-3
    batch_size: int = 128
    weight_decay: float = 5e-4
    seed: int = 0

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise InvalidInputError(f"arch must be one of {ARCHITECTURES}, got {self.arch!r}")

    @classmethod
    def quick(cls, arch="vgg", seed=0):
        """Small and fast, for tests and CI: width 8, 2000 training images, 8 epochs.

        VGG (6 convs) and ResNet (9 convs) reach about 97 % and 93 % clean
        test accuracy in 4-6 seconds on one CPU thread.
        """
        return cls(arch=arch, width=8, depth=2 if arch == "vgg" else 1, n_train=2000, n_test=1000,
                   epochs=8, lr=1e-2, seed=seed)

    @classmethod
    def full(cls, arch="vgg", seed=0):
        """The demo model: width 16, 5000 training images, 6 epochs.

        VGG (6 convs, 224 filters) and ResNet (9 convs, 336 filters) reach about
        99 % clean test accuracy in 20-30 seconds on one CPU thread.
        """
        return cls(arch=arch, depth=2 if arch == "vgg" else 1, seed=seed)

    def build_model(self):
        """A freshly initialised model, seeded with ``seed`` (torch's global RNG is left untouched)."""
        factory = vgg_small if self.arch == "vgg" else resnet_small
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return factory(self.width, 10, self.depth)

    def data(self, split="train"):
        """The source-domain ``(x, y)`` of a split (``"train"`` or ``"test"``), from the config's seed."""
        if split not in ("train", "test"):
            raise InvalidInputError(f"split must be 'train' or 'test', got {split!r}")
        n = self.n_train if split == "train" else self.n_test
        return make_shapes(n, seed=(self.seed, 0 if split == "train" else 1))

    def key(self):
        """Hex digest (16 characters) of the config and ``CACHE_VERSION``."""
        text = json.dumps({"version": CACHE_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_cache_dir():
    """``$EVTOOLS_CACHE_DIR`` if set, else ``~/.cache/evtools``."""
    return Path(os.environ.get("EVTOOLS_CACHE_DIR", Path.home() / ".cache" / "evtools"))


def load_or_train(config, cache_dir=None, *, progress=True):
    """Load a demo model trained with ``config`` from the cache, training it if absent.

    Parameters
    ----------
    config : DemoConfig
        What to train.
    cache_dir : str or os.PathLike, optional
        Folder of the cache files (created if needed); default
        :func:`default_cache_dir`. Files are named ``demo-{arch}-{config.key()}.pt``
        and written atomically, so concurrent processes do not corrupt them.
    progress : bool
        Show the training progress bar.

    Returns
    -------
    model : torch.nn.Module
        The trained model in eval mode, on the CPU.
    info : dict
        ``"test_accuracy"`` (float, on ``config.data("test")``), ``"train_seconds"``
        (float, of the original training run), ``"path"`` (Path of the cache
        file) and ``"cached"`` (bool, whether it was loaded rather than trained).
    """
    if not isinstance(config, DemoConfig):
        raise InvalidInputError(f"config must be a DemoConfig, got {type(config).__name__}")
    cache_dir = Path(default_cache_dir() if cache_dir is None else cache_dir)
    path = cache_dir / f"demo-{config.arch}-{config.key()}.pt"
    model = config.build_model()
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["state_dict"])
        model.eval()
        return model, {"test_accuracy": saved["test_accuracy"], "train_seconds": saved["train_seconds"],
                       "path": path, "cached": True}
    history = train(model, config.data("train"), epochs=config.epochs, lr=config.lr, seed=config.seed,
                    batch_size=config.batch_size, weight_decay=config.weight_decay, progress=progress)
    accuracy = evaluate(model, *config.data("test"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save({"state_dict": model.state_dict(), "config": dataclasses.asdict(config),
                "test_accuracy": accuracy, "train_seconds": history["seconds"]}, tmp)
    os.replace(tmp, path)
    return model, {"test_accuracy": accuracy, "train_seconds": history["seconds"], "path": path, "cached": False}
