"""Full float32 precision for the duration of a gradient-norm computation.

PyTorch lets cuDNN run float32 convolutions in TensorFloat-32 by default (a
10-bit mantissa), and a user may let oneDNN (CPU) run them in bfloat16. On an
H200, TF32 put a median relative error of 1.2e-2 into ResNet-50's per-sample
gradient norms and made float32 rows depend on the batch size (about 1e-3
relative on a three-layer CNN), so
:func:`~evtools_torch.filter_gradient_norms` computes in IEEE float32 unless
asked for TF32.

The switches are PyTorch's and process-wide: while a call runs, other threads'
float32 cuDNN, cuBLAS and oneDNN work runs in full precision too (more exact,
slower), never less. They are restored when the last of any concurrent calls
ends.
"""
import contextlib
import threading

import torch

# torch >= 2.9: per-backend ``fp32_precision`` strings; reading the legacy ``allow_tf32`` flags after a user
# set these raises, so the legacy flags are used only where the new ones do not exist.
_FAMILIES = ("cuda.matmul", "cudnn.conv", "cudnn.rnn", "mkldnn.matmul", "mkldnn.conv", "mkldnn.rnn")
_LEGACY = ("cuda.matmul", "cudnn")
_lock = threading.Lock()
_users = 0
_saved = None


def _backend(path):
    obj = torch.backends
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _has_fp32_precision(family):
    try:
        return hasattr(_backend(family), "fp32_precision")
    except AttributeError:
        return False


def _read():
    if _has_fp32_precision("cuda.matmul"):
        return [("fp32_precision", family, _backend(family).fp32_precision)
                for family in _FAMILIES if _has_fp32_precision(family)]
    return [("allow_tf32", family, _backend(family).allow_tf32) for family in _LEGACY]


def _write(settings):
    for attribute, family, value in settings:
        setattr(_backend(family), attribute, value)


def _ieee(settings):
    return [(attribute, family, "ieee" if attribute == "fp32_precision" else False)
            for attribute, family, _ in settings]


@contextlib.contextmanager
def full_float32(enabled=True):
    """Run float32 convolutions and matrix products in IEEE float32 inside the block (no-op if not ``enabled``)."""
    global _users, _saved
    if not enabled:
        yield
        return
    with _lock:
        if _users == 0:
            _saved = _read()
            _write(_ieee(_saved))
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _write(_saved)
                _saved = None
