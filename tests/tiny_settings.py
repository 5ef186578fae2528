"""Tiny settings shared by the test files (imported by name: pytest puts this folder on the
path, as it has no ``__init__.py``)."""

from __future__ import annotations

from mirrorlib.experiments import deep_networks as dn


def tiny_deep_networks_config(*, lr_overrides, **overrides) -> dn.DeepNetworksConfig:
    """The ``ci`` deep-network sweep cut to one MLP pretrained on sklearn's training digits and
    finetuned on N = 150 held-out ones, two seeds, a few seconds a run; ``lr_overrides`` (which
    the test files set differently) and ``overrides`` replace its fields."""
    settings = dict(
        networks=(
            dn.NetworkSetup(
                "mlp-32", "digits", pretrain_data="digits", new_head=False, n_samples=150
            ),
        ),  # fmt: skip
        n_seeds=2, epochs=10, extra_epochs=10, max_epochs=150, stop_at_100=True, batch_size=32,
        lrs=(0.03,), lr_overrides=lr_overrides, pretrain_epochs=10, pretrain_examples=None,
        n_boot=20, threads=1, objectives=("supervised",), ssl_networks=(),
    )  # fmt: skip
    settings.update(overrides)
    return dn.config("ci", **settings)
