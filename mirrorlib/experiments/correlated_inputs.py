"""Correlated inputs for the linear-regression experiment (Fig 2), sampled exactly by FFT.

The paper's inputs are ``x = L z + u`` with ``z ~ N(0, I_D)``, ``u ~ U(-0.5, 0.5)^D`` and
``L L^T = C``, the Toeplitz covariance

    C_ij = c(|i - j|),   c(k) = (-1)^k / (1 + k^p),

short-range for ``p = 2`` and long-range for ``p = 1``. Instead of a dense ``D x D`` Cholesky
factor, ``C`` is embedded in a symmetric circulant matrix of size ``M >= 2 (D - 1)``, whose first
row is ``c(min(k, M - k))``, ``k = 0 .. M-1`` (Dietrich & Newsam 1997; Wood & Chan 1994). A
circulant matrix is diagonalised by the discrete Fourier transform: its eigenvalues are
``lambda = FFT(first row)``. When all ``lambda_j >= 0``, for complex noise ``xi = a + i b`` with
``a, b ~ N(0, I_M)`` independent,

    y = FFT(sqrt(lambda / M) * xi)

has ``E[y y^*] = 2 C_M`` and ``E[y y^T] = 0``: ``Re y`` and ``Im y`` are two independent
``N(0, C_M)`` vectors, and their first ``D`` coordinates are ``N(0, C)`` (the top-left block of
``C_M`` is ``C``). The process is stationary, so the first ``D' < D`` coordinates of a sample are
``N(0, C_D')``: smaller problems are nested slices of one draw. Cost per sample: ``M`` normal
numbers and half an FFT of length ``M``, against ``D^2`` flops for ``L z``.

Non-negativity: for every ``p > 0``, ``|c(k)| = 1/(1 + k^p)`` is decreasing and convex on the
integers (``c(0) - 2|c(1)| + |c(2)| = |c(2)| > 0``, and ``1/(1 + x^p)`` is convex for
``x >= 1``), so the circulant built from ``|c(0)|, ..., |c(M/2)|`` is non-negative definite for
every even ``M`` (Craigmile 2003); the factor ``(-1)^k`` only shifts its spectrum by ``M/2``.
:func:`circulant_embedding` still checks every eigenvalue and refuses a negative one rather
than clipping it. The default size is the smallest even ``M >= 2 (D - 1)`` with small prime
factors (:func:`fft_size`), for a fast FFT.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import fft, linalg

__all__ = [
    "CirculantEmbedding",
    "circulant_embedding",
    "correlated_inputs",
    "embedding_table",
    "fft_size",
    "toeplitz_covariance",
    "toeplitz_row",
]


def _check_power(p: float) -> float:
    if isinstance(p, bool) or not (isinstance(p, numbers.Real) and math.isfinite(p) and p > 0):
        raise ValueError(f"the correlation power p must be a finite number > 0, got {p!r}")
    return float(p)


def toeplitz_row(D: int, p: float) -> np.ndarray:
    """``c(k) = (-1)^k / (1 + k^p)`` for ``k = 0 .. D-1`` (float64): the first row of ``C``."""
    p = _check_power(p)
    k = np.arange(int(D), dtype=np.float64)
    return np.where(k % 2 == 0, 1.0, -1.0) / (1.0 + k**p)


def toeplitz_covariance(D: int, p: float) -> np.ndarray:
    """The dense ``D x D`` covariance ``C_ij = c(|i - j|)`` (float64)."""
    return linalg.toeplitz(toeplitz_row(D, p))


@dataclass(frozen=True, eq=False)
class CirculantEmbedding:
    """The covariance ``C`` of size ``D`` embedded in a circulant matrix of size ``M = size``.

    ``eigenvalues`` are the circulant's ``M`` eigenvalues (float64, all ``>= 0``).
    Build it with :func:`circulant_embedding`.
    """

    D: int
    p: float
    size: int
    eigenvalues: np.ndarray

    @property
    def min_eigenvalue(self) -> float:
        """The smallest eigenvalue of the circulant (``>= 0`` by construction)."""
        return float(self.eigenvalues.min())

    def _scale(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``sqrt(lambda / M)`` as an ``(M, 1)`` real tensor, to scale noise viewed as real."""
        scale = np.sqrt(self.eigenvalues / self.size)
        return torch.as_tensor(scale, dtype=dtype, device=device).unsqueeze(-1)

    def _rows(self, scaled: torch.Tensor) -> torch.Tensor:
        """``y = FFT(scaled)``; the rows ``[Re y[:, :D]; Im y[:, :D]]``."""
        y = torch.fft.fft(scaled)[:, : self.D]
        return torch.cat([y.real, y.imag])

    def transform(self, noise: torch.Tensor) -> torch.Tensor:
        """Map complex noise to Gaussian rows: ``(n, M)`` complex -> ``(2 n, D)`` real.

        ``y = FFT(sqrt(lambda / M) * noise)``; returns ``[Re y[:, :D]; Im y[:, :D]]``. For
        ``noise = a + i b`` with ``a, b`` independent standard normal, the ``2 n`` rows are
        independent ``N(0, C)``. A linear map: :meth:`covariance` applies it to the identity.
        """
        if noise.dim() != 2 or noise.shape[-1] != self.size or not noise.is_complex():
            raise ValueError(f"noise must be complex of shape (n, {self.size})")
        real = torch.view_as_real(noise)
        scaled = real * self._scale(real.dtype, real.device)
        return self._rows(torch.view_as_complex(scaled))

    def sample(
        self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """``n`` independent ``N(0, C)`` rows, shape ``(n, D)``, on the generator's device.

        :meth:`transform` of ``ceil(n / 2)`` rows of ``M`` complex standard normal numbers
        (``M`` real normals per returned row; scaled in place), first ``n`` rows. The normal
        numbers are drawn in float32 and cast to ``dtype``, so float32 and float64 samples
        from the same generator state differ only by rounding.
        """
        pairs = (int(n) + 1) // 2
        noise = torch.empty(pairs, self.size, 2, dtype=torch.float32, device=generator.device)
        noise = noise.normal_(generator=generator).to(dtype)
        noise.mul_(self._scale(dtype, noise.device))
        return self._rows(torch.view_as_complex(noise))[: int(n)]

    def _unit_images(self) -> tuple[np.ndarray, np.ndarray]:
        """``transform`` of the ``M`` real unit vectors, split into its ``Re`` and ``Im`` rows."""
        rows = self.transform(torch.eye(self.size, dtype=torch.complex128)).numpy()
        return rows[: self.size], rows[self.size :]

    def covariance(self) -> np.ndarray:
        """The covariance of the rows of :meth:`sample`, computed exactly (no sampling).

        :meth:`transform` is linear: with ``A_re, A_im`` the real and imaginary rows it gives
        for the real unit vectors (float64), one sample is ``Re y = A_re^T a - A_im^T b``, so
        its covariance is ``A_re^T A_re + A_im^T A_im``. Equals ``C`` up to rounding.
        """
        a_re, a_im = self._unit_images()
        return a_re.T @ a_re + a_im.T @ a_im

    def cross_covariance(self) -> np.ndarray:
        """``Cov(Re y, Im y) = A_re^T A_im - A_im^T A_re``: zero, the pair is independent."""
        a_re, a_im = self._unit_images()
        return a_re.T @ a_im - a_im.T @ a_re


def _check_eigenvalues(eigenvalues: np.ndarray, D: int, p: float, size: int) -> None:
    """Refuse a circulant with a negative eigenvalue (it is not a covariance); never clip."""
    smallest = float(eigenvalues.min())
    if smallest < 0:
        raise ValueError(
            f"the circulant embedding of size {size} for D={D}, p={p:g} has a negative "
            f"eigenvalue {smallest:.3e}: it is not a covariance. Pass a larger even size "
            f"(e.g. size={2 * size}) to circulant_embedding"
        )


def fft_size(D: int) -> int:
    """The default embedding size: the smallest even FFT-friendly ``M >= 2 (D - 1)``.

    ``scipy.fft.next_fast_len`` (few small prime factors): ``2 (D - 1)`` itself can have a large
    prime factor (``39998 = 2 * 7 * 2857`` for ``D = 20000``), which makes the FFT several
    times slower than at ``40000 = 2^6 * 5^4``.
    """
    size = fft.next_fast_len(max(2 * (int(D) - 1), 2), real=False)
    while size % 2:
        size = fft.next_fast_len(size + 1, real=False)
    return size


def circulant_embedding(D: int, p: float, size: int | None = None) -> CirculantEmbedding:
    """Embed ``C`` (size ``D``, power ``p``) in a circulant of size ``M``.

    ``size`` defaults to :func:`fft_size`; any ``M >= 2 (D - 1)`` is valid (the first row is
    padded with ``c(k)`` for ``D <= k <= M/2``; ``M = 1`` when ``D = 1``). The eigenvalues
    ``FFT(c(min(k, M - k)))`` are computed in float64; a negative one raises ``ValueError``
    (it is never clipped).
    """
    if not (isinstance(D, (int, np.integer)) and D >= 1):
        raise ValueError(f"D must be a positive integer, got {D!r}")
    D, p = int(D), _check_power(p)
    if D == 1:
        size = 1
    elif size is None:
        size = fft_size(D)
    elif int(size) < 2 * (D - 1):
        raise ValueError(
            f"the embedding size must be at least 2 (D - 1) = {2 * (D - 1)}, got {size}"
        )
    size = int(size)
    k = np.arange(size)
    row = toeplitz_row(size // 2 + 1, p)[np.minimum(k, size - k)]
    eigenvalues = np.fft.fft(row).real
    _check_eigenvalues(eigenvalues, D, p, size)
    return CirculantEmbedding(D, p, size, eigenvalues)


def correlated_inputs(
    n: int,
    embedding: CirculantEmbedding,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``n`` inputs ``x = L z + u`` of size ``D``, shape ``(n, D)``, on the generator's device.

    ``L z ~ N(0, C)`` comes from :meth:`CirculantEmbedding.sample`, then ``u ~ U(-0.5, 0.5)``
    is added (so ``Cov(x) = C + I / 12``; ``u`` is drawn in float32, like the normal numbers).
    Deterministic given the generator's state.
    """
    x = embedding.sample(n, generator, dtype)
    u = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    x.add_(u.uniform_(-0.5, 0.5, generator=generator))
    return x


def embedding_table(dims, powers=(2.0, 1.0)) -> pd.DataFrame:
    """The check that every embedding is a valid covariance, for each ``D`` and power ``p``.

    Columns ``corr_power, D, size, min_eigenvalue, max_eigenvalue``; sizes from :func:`fft_size`.
    """
    rows = []
    for p in powers:
        for D in dims:
            emb = circulant_embedding(int(D), p)
            rows.append(
                {
                    "corr_power": float(p),
                    "D": int(D),
                    "size": emb.size,
                    "min_eigenvalue": emb.min_eigenvalue,
                    "max_eigenvalue": float(emb.eigenvalues.max()),
                }
            )
    return pd.DataFrame(rows)
