"""Filter-to-JASPAR matching (memelite's Tomtom through ``match_motifs``) against ground truth, on JASPAR 2016.

Ground truth: the five koo2019 core motifs (SP1, Gabpa, CEBPB, MAX, YY1), each as given and reverse-complemented,
exactly, as PWMs estimated from ``--sites`` sampled instances (whole matrices, ``trim=None``), and as those
estimates inside 19-column filters with nearly uniform flanks (the default trimming, as for a model's filters);
``--seeds`` draws of the sampled ones. Printed per case: how often the motif is its own top hit, how often it is
a hit at q < 0.05, its worst rank and q-value. The null: random 19-column matrices (Dirichlet(alpha) columns):
the fraction left out as uninformative and the fraction with a best hit, and with a core-motif hit, at q < 0.05
(about 5% expected for the best hit when nothing is related). Last, the time of one ``match_motifs`` call on 24
filters (the first call in a process loads memelite's compiled numba functions).

    .venv/bin/python benchmarks/compare_tomtom.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from robustlab.genomics.data.motifs import KOO2019_CORE_MOTIFS, jaspar_motifs
from robustlab.genomics.interpret import match_motifs


def _sampled(pwm: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    sites = np.stack([rng.choice(4, size=n, p=col) for col in pwm.T], axis=1)
    counts = np.stack([np.bincount(sites[:, j], minlength=4) for j in range(pwm.shape[1])], axis=1)
    return (counts + 0.1) / (n + 0.4)


def _random(rng: np.random.Generator, width: int, alpha: float) -> np.ndarray:
    return rng.dirichlet(np.full(4, alpha), size=width).T


def _in_filter(core: np.ndarray, rng: np.random.Generator, width: int = 19) -> np.ndarray:
    filt = _random(rng, width, 50.0)
    start = int(rng.integers(0, width - core.shape[1] + 1))
    filt[:, start : start + core.shape[1]] = core
    return filt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=20, help="draws of the sampled estimates")
    p.add_argument("--sites", type=int, default=50, help="instances behind each estimated PWM")
    p.add_argument("--n-random", type=int, default=200, help="random matrices per alpha")
    args = p.parse_args()

    motifs = jaspar_motifs(release=2016)
    names, pwms = [m.name for m in motifs], [m.pwm() for m in motifs]
    core = [names.index(n) for n in KOO2019_CORE_MOTIFS]
    print(f"JASPAR 2016 CORE vertebrates: {len(names)} motifs; core {', '.join(KOO2019_CORE_MOTIFS)}")

    exact = [q for i in core for q in (pwms[i], pwms[i][::-1, ::-1].copy())]
    cases = {"exact": [match_motifs(exact, pwms, names, true_names=KOO2019_CORE_MOTIFS)]}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        estimates = []
        for i in core:
            estimate = _sampled(pwms[i], args.sites, rng)
            estimates += [estimate, estimate[::-1, ::-1].copy()]
        cases.setdefault(f"{args.sites} sites, whole matrix", []).append(
            match_motifs(estimates, pwms, names, trim=None)
        )
        filters = np.stack([_in_filter(e, rng) for e in estimates])
        cases.setdefault(f"{args.sites} sites, in a 19-column filter, trimmed", []).append(
            match_motifs(filters, pwms, names, true_names=KOO2019_CORE_MOTIFS)
        )
    truth = np.repeat(core, 2)
    rows = np.arange(len(truth))
    print("\nGround truth (per query: motif and its reverse complement, 10 queries per draw):")
    for label, results in cases.items():
        top = np.concatenate([r.index == truth for r in results])
        q_own = np.concatenate([r.q_values[rows, truth] for r in results])
        rank = np.concatenate([(r.p_values < r.p_values[rows, truth][:, None]).sum(1) + 1 for r in results])
        misses: dict[str, int] = {}
        for r in results:
            for k in np.flatnonzero(r.index != truth):
                key = f"{names[truth[k]]}->{r.name[k]}"
                misses[key] = misses.get(key, 0) + 1
        print(
            f"  {label}: own top hit {top.mean():.3f}, own q<0.05 {np.mean(q_own < 0.05):.3f}, "
            f"worst rank {rank.max()}, worst own q {q_own.max():.1e}; top hits elsewhere: {misses or 'none'}"
        )

    print("\nNull: random 19-column matrices, Dirichlet(alpha) columns:")
    rng = np.random.default_rng(1)
    for alpha in (0.5, 1.0, 2.0, 5.0):
        queries = [_random(rng, 19, alpha) for _ in range(args.n_random)]
        res = match_motifs(queries, pwms, names, true_names=KOO2019_CORE_MOTIFS)
        live = ~res.uninformative
        print(
            f"  alpha {alpha}: uninformative {res.uninformative.mean():.3f}; of the compared ({live.sum()}): "
            f"best hit q<0.05 {res.significant[live].mean() if live.any() else float('nan'):.3f}, "
            f"a core motif at q<0.05 {res.true_match[live].mean() if live.any() else float('nan'):.3f}"
        )

    filters = np.stack(
        [_in_filter(_sampled(pwms[i], args.sites, rng), rng) for i in core for _ in range(5)][:24]
    )
    start = time.perf_counter()
    match_motifs(filters, pwms, names)
    print(f"\nmatch_motifs, 24 filters x {len(names)} motifs: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
