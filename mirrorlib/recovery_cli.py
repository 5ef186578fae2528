"""Recover the geometry of plasticity from weights before and after learning.

Reads two files of weights (.npy, .npz, .csv, .pt/.pth: an array, or named tensors such as a
state dict), computes the exact Delta-CDF of the dual change for each candidate potential and
prints the ranking with bootstrap confidence. Example:

  python -m mirrorlib recover before.pt after.pt --exclude '^fc\\.'
  python -m mirrorlib recover --candidates=ne,2-norm before.pt after.pt

Exit codes: 0 success, 2 bad input (one line on stderr naming the problem).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``recover`` arguments to ``parser``."""
    parser.add_argument("before", help="weights before learning (.npy, .npz, .csv, .pt, .pth)")
    parser.add_argument("after", help="weights after learning, same layout as BEFORE")
    parser.add_argument(
        "--candidates",
        nargs="+",
        metavar="NAME",
        help="candidate potentials (default: negative_entropy and 1.1-norm ... 3.0-norm), "
        "separated by spaces or commas, e.g. ne 1.5-norm 2-norm 'hypentropy(beta=0.1)' or "
        "ne,1.5-norm,2-norm; it takes every word that follows, so put it after BEFORE and "
        "AFTER, or before them as one word: --candidates=ne,1.5-norm,2-norm",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="drop named tensors whose name matches this regular expression (repeatable), "
        "e.g. '^fc\\.' for the final classifier",
    )
    parser.add_argument(
        "--min-ndim",
        type=int,
        default=None,
        help="for named tensors, keep those with at least this many dimensions "
        "(default: 2 when any tensor is a matrix, so biases and norms are skipped)",
    )
    parser.add_argument(
        "--n-boot",
        type=int,
        default=200,
        help="bootstrap replicates (0: skip; else at least 1 / (1 - confidence), 20 at 0.95; "
        "default 200)",
    )
    parser.add_argument(
        "--confidence", type=float, default=0.95, help="confidence level (default 0.95)"
    )
    parser.add_argument(
        "--uncentered",
        action="store_true",
        help="do not centre the dual change (the paper's statistic; default: centred)",
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        return _json_value(v.item())
    return v


def candidate_names(words: list[str] | None) -> list[str] | None:
    """The ``--candidates`` words split at commas (``ne,2-norm 3-norm`` is three names)."""
    if words is None:
        return None
    return [name.strip() for word in words for name in word.split(",") if name.strip()]


def main(args: argparse.Namespace) -> int:
    """Run ``recover``; returns the exit code."""
    from mirrorlib.io import load_weights
    from mirrorlib.recovery import InputError, scan_geometry

    try:
        before = load_weights(args.before)
        after = load_weights(args.after)
        table = scan_geometry(
            before,
            after,
            candidate_names(args.candidates),
            exclude=args.exclude,
            min_ndim=args.min_ndim,
            n_boot=args.n_boot,
            confidence=args.confidence,
            centered=not args.uncentered,
            seed=args.seed,
        )
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        payload = {
            **{k: _json_value(v) for k, v in table.attrs.items()},
            "candidates": [
                {k: _json_value(v) for k, v in row.items()}
                for row in table.to_dict(orient="records")
            ],
        }
        print(json.dumps(payload, indent=2))
        return 0
    shown = table.drop(columns=["excluded"])
    shown["p"] = shown["p"].map(lambda p: "-" if math.isnan(p) else f"{p:g}")
    print(f"{table.attrs['n_weights']} weights; finite-sample floor {table.attrs['floor']:.4f}")
    print(shown.to_string(index=False, float_format=lambda x: f"{x:.4f}", na_rep="-"))
    print(table.attrs["verdict"])
    return 0
