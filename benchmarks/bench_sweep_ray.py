"""Speed-up of the Ray executor on this machine over the sequential sweep.

The same sweep (the ``ci`` scale's MLP, supervised, ``--seeds`` seeds, one torch thread per
run) runs twice into fresh folders: one run after the other in this process, then as Ray tasks
on a Ray started here with all the machine's cores (as ``finetune --ray`` does). The network's
pretraining is stored first, so both time the runs alone. Prints both wall times and their
ratio; the tables must agree bitwise (but for the timing column).

    python benchmarks/bench_sweep_ray.py --seeds 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from mirrorlib import sweep
from mirrorlib.experiments import deep_networks as dn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    cfg = dn.config("ci", n_seeds=args.seeds, threads=1, objectives=("supervised",))
    specs = dn.select_specs(cfg, architectures=["mlp-32"])
    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    pretrained = root / "pretrained"
    dn.pretrained_network(cfg.setup("mlp-32"), cfg, pretrained, "cpu")  # stored once
    times, tables = {}, {}
    for name, executor in (("sequential", "local"), ("ray", sweep.RayExecutor())):
        out = root / name
        shutil.copytree(pretrained / "pretrained", out / "pretrained")
        if name == "ray":
            executor.connect()  # Ray's start-up is not counted
        start = time.perf_counter()
        report = dn.execute_sweep(cfg, out, "cpu", specs, executor)
        times[name] = time.perf_counter() - start
        assert not report.failed, report.format()
        tables[name] = dn.collect(out, cfg).drop(columns="seconds")
    pd.testing.assert_frame_equal(tables["sequential"], tables["ray"], check_exact=True)
    print(f"{len(specs)} runs, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"sequential {times['sequential']:.1f} s, ray {times['ray']:.1f} s")
    print(f"speed-up {times['sequential'] / times['ray']:.2f}x (tables bitwise equal)")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
