"""Recipes: one paper table each, run by one runner that resumes, shards, merges and writes the table.

A recipe (:class:`Recipe`) names its paper, the table it reproduces, the paper's own numbers
(:class:`PaperNumbers`), its profiles (``smoke`` for tests, ``quick`` for a laptop CPU, ``paper`` for the full
protocol on a GPU), its grid of runs and how to run one of them. Recipes are registered under the entry-point
group ``robustlab.recipes`` and run with ``robustlab reproduce <name>`` or :func:`run_recipe`.
"""

from robustlab.common.recipes.base import (
    REQUIRED_PROFILES,
    Paper,
    PaperNumbers,
    Recipe,
    Table,
    mean_std_cell,
    mean_std_table,
    plot_bars,
    run_id,
    seed_everything,
)
from robustlab.common.recipes.registry import RECIPE_GROUP, get_recipe, recipe_entry_points, recipe_names
from robustlab.common.recipes.runner import (
    RecipeReport,
    merge_results,
    resolve_profile,
    run_recipe,
    shard_from_env,
    write_results,
)

__all__ = [
    "REQUIRED_PROFILES",
    "RECIPE_GROUP",
    "Paper",
    "PaperNumbers",
    "Recipe",
    "RecipeReport",
    "Table",
    "get_recipe",
    "mean_std_cell",
    "mean_std_table",
    "merge_results",
    "plot_bars",
    "recipe_entry_points",
    "recipe_names",
    "resolve_profile",
    "run_id",
    "run_recipe",
    "seed_everything",
    "shard_from_env",
    "write_results",
]
