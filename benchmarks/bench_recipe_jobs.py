"""A recipe's grid run with ``run_recipe(jobs=1)`` and with ``jobs=N`` worker processes, side by side.

Both run the same profile into their own temporary folder, in one invocation (``--repeats`` interleaved rounds,
medians); the run files must hold the same results (status, metrics and extras, exact floats) and the tables
(``results.md``, ``results.csv``) must be the same text, else the script exits 1. Printed: both wall times and
their ratio (jobs=1 / jobs=N; above 1 the workers are faster), and the sum of the runs' own times (the
``seconds`` of each run file: it grows when the workers compete for cores, memory bandwidth or other users'
jobs). jobs=1 runs in this process with ``--threads`` torch threads; each worker has one thread. The wall time of
jobs=N includes starting the workers (spawn, import of torch and the recipe), a fixed cost that a smoke grid of
sub-second runs does not repay.

Only the chosen recipe is loaded: ``--recipe khalooei2022_moons`` needs robustlab-common alone.

    .venv/bin/python benchmarks/bench_recipe_jobs.py                                   # koo2019, smoke
    .venv/bin/python benchmarks/bench_recipe_jobs.py --recipe khalooei2022_moons --profile quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Nothing heavy at the top: the workers (spawn) import this script as their main module.


def _run_seconds(folder: Path) -> float:
    """The sum of the ``seconds`` the runs of ``folder`` took, each in its own process."""
    return sum(json.loads(path.read_text(encoding="utf-8")).get("seconds", 0.0)
               for path in (folder / "runs").glob("*.json"))


def _results(folder: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Each run's status, metrics and extras, and the text of the table files: what must not depend on jobs."""
    runs = {}
    for path in sorted((folder / "runs").glob("*.json")):
        rec = json.loads(path.read_text(encoding="utf-8"))
        runs[path.stem] = (rec.get("status"), rec.get("metrics"), rec.get("extras"))
    tables = {name: (folder / name).read_text(encoding="utf-8") for name in ("results.md", "results.csv")
              if (folder / name).exists()}
    return runs, tables


def _differences(a: tuple[dict[str, Any], dict[str, str]], b: tuple[dict[str, Any], dict[str, str]]) -> list[str]:
    (runs_a, tables_a), (runs_b, tables_b) = a, b
    diffs = [f"run {rid}" for rid in sorted(set(runs_a) | set(runs_b)) if runs_a.get(rid) != runs_b.get(rid)]
    diffs += [name for name in sorted(set(tables_a) | set(tables_b)) if tables_a.get(name) != tables_b.get(name)]
    return diffs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="koo2019", help="a registered recipe (default: koo2019)")
    p.add_argument("--profile", default="smoke", help="a profile of the recipe (default: smoke)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a profile value (repeatable), as 'robustlab reproduce --set'")
    p.add_argument("--jobs", type=int, default=2, help="worker processes of the parallel side (default: 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the jobs=1 side (default: 1)")
    p.add_argument("--repeats", type=int, default=1, help="interleaved rounds; medians are printed (default: 1)")
    args = p.parse_args()
    for name in ("jobs", "threads", "repeats"):
        if getattr(args, name) < 1 or (name == "jobs" and args.jobs < 2):
            p.error(f"--{name} must be >= {2 if name == 'jobs' else 1}, got {getattr(args, name)}")

    import torch

    from robustlab.common.errors import RobustlabError
    from robustlab.common.recipes import get_recipe, resolve_profile, run_recipe

    try:
        recipe = get_recipe(args.recipe)
        resolve_profile(recipe, args.profile, overrides=args.overrides)
    except RobustlabError as e:
        p.error(str(e))
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}; recipe {recipe.name}, profile {args.profile}"
          + (f" ({', '.join(args.overrides)})" if args.overrides else "")
          + f"; jobs=1 with {torch.get_num_threads()} thread(s) vs jobs={args.jobs} with 1 thread each", flush=True)

    sides = {1: f"jobs=1 ({args.threads} thread{'s' if args.threads > 1 else ''})", args.jobs: f"jobs={args.jobs}"}
    times: dict[int, list[float]] = {jobs: [] for jobs in sides}
    busy: dict[int, list[float]] = {jobs: [] for jobs in sides}
    results: dict[int, tuple[dict[str, Any], dict[str, str]]] = {}
    runs = 0
    with tempfile.TemporaryDirectory(prefix="bench_recipe_jobs.") as tmp:
        for round_ in range(args.repeats):
            for jobs in sides:
                out = Path(tmp) / f"round{round_}-jobs{jobs}"
                t0 = time.perf_counter()
                report = run_recipe(recipe, profile=args.profile, out_dir=out, overrides=args.overrides,
                                    progress=False, jobs=jobs)
                times[jobs].append(time.perf_counter() - t0)
                busy[jobs].append(_run_seconds(out))
                runs = len(report.ran)
                found = _results(out)
                if jobs in results and _differences(results[jobs], found):
                    print(f"note: {sides[jobs]} gave other results in round {round_ + 1} than in round 1: "
                          f"{', '.join(_differences(results[jobs], found))}", flush=True)
                results.setdefault(jobs, found)
    serial, parallel = (statistics.median(times[j]) for j in sides)
    diffs = _differences(results[1], results[args.jobs])

    width = max(len(s) for s in sides.values())
    head = f"wall s (median of {args.repeats})"
    print(f"\n| {'side':<{width}} | runs | {head} | sum of the runs' own s |")
    print(f"|{'-' * (width + 2)}|------|{'-' * (len(head) + 2)}|{'-' * 24}|")
    for jobs, label in sides.items():
        print(f"| {label:<{width}} | {runs:>4} | {statistics.median(times[jobs]):>{len(head)}.2f} "
              f"| {statistics.median(busy[jobs]):>22.2f} |")
    print(f"\nratio jobs=1 / jobs={args.jobs}: {serial / parallel:.2f}x")
    if diffs:
        print(f"results DIFFER between jobs=1 and jobs={args.jobs}: {', '.join(diffs)}")
        return 1
    print(f"results identical: the {runs} run files (status, metrics, extras) and results.md, results.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
