"""A small CNN in PyTorch with a twin in Flax (``twin_flax.py``): same layers, same names.

Strided stem with bias, BatchNorm, a residual block with a grouped and a
dilated convolution, a 1x1 head, global mean pool and a linear classifier.
The adapter contract suite and the cross-framework test build it in both
frameworks; ``twin_flax.flax_variables`` copies the weights across.
"""
import torch
import torch.nn.functional as F
from torch import nn


class TwinBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, groups=2, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=2, dilation=2, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + x)


class TorchTwin(nn.Module):
    """Inputs (n, 3, H, W), logits (n, n_classes)."""

    def __init__(self, n_classes=5):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.block = TwinBlock(6)
        self.head = nn.Conv2d(6, 8, 1, bias=False)
        self.fc = nn.Linear(8, n_classes)

    def forward(self, x):
        x = self.block(F.relu(self.bn(self.stem(x))))
        return self.fc(F.relu(self.head(x)).mean((2, 3)))


def torch_twin(seed=0, n_classes=5, dtype=torch.float32):
    """A :class:`TorchTwin` in eval mode with random weights and BatchNorm statistics (not the defaults)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = TorchTwin(n_classes)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    return model.to(dtype).eval()


def numpy_state(model):
    """The model's state dict as float numpy arrays (for ``twin_flax.flax_variables``)."""
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items() if v.is_floating_point()}
