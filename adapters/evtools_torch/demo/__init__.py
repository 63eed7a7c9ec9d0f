"""Demo data, models and training for evtools_torch: nothing downloaded, everything seeded.

* ``data``: ten procedurally drawn classes of shapes and textures at
  32x32 (:func:`make_shapes`), ImageNet-C style corruptions (:func:`corrupt`)
  and a shifted domain (``make_shapes(..., domain="shifted")``).
* ``models``: a VGG-like (:func:`vgg_small`) and a ResNet-like
  (:func:`resnet_small`) CNN family with BatchNorm.
* ``train``: seeded training (:func:`train`), :func:`evaluate`,
  :func:`predict`, and :func:`load_or_train` with a cache keyed by a
  :class:`DemoConfig` hash.

Examples
--------
>>> from evtools_torch.demo import DemoConfig, load_or_train, make_shapes       # doctest: +SKIP
>>> model, info = load_or_train(DemoConfig.full("resnet"))                       # doctest: +SKIP
>>> x, y = make_shapes(500, seed=1, domain="shifted")                            # doctest: +SKIP
"""
from .._model import evaluate, predict
from .data import CLASSES, CORRUPTIONS, DOMAINS, as_tensors, corrupt, make_shapes
from .models import ResNetSmall, VGGSmall, resnet_small, vgg_small
from .train import DemoConfig, default_cache_dir, load_or_train, train

__all__ = [
    "CLASSES", "CORRUPTIONS", "DOMAINS", "as_tensors", "corrupt", "make_shapes",
    "ResNetSmall", "VGGSmall", "resnet_small", "vgg_small",
    "DemoConfig", "default_cache_dir", "evaluate", "load_or_train", "predict", "train",
]
