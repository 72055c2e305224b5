"""Recipes registered through the entry-point group ``robustlab.recipes`` (``name = "module:RECIPE"``)."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from robustlab.common.errors import ConfigError, RobustlabError
from robustlab.common.recipes.base import Recipe

__all__ = ["RECIPE_GROUP", "get_recipe", "recipe_entry_points", "recipe_names"]

RECIPE_GROUP = "robustlab.recipes"


def recipe_entry_points(package: str | None = None) -> dict[str, EntryPoint]:
    """Registered recipes by name, without importing them.

    Args:
        package: keep only recipes whose module lies in this package (``"robustlab.ecg"``), for a domain's own
            ``reproduce`` command.
    """
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=RECIPE_GROUP):
        module = ep.value.split(":", 1)[0]
        if package and not (module == package or module.startswith(package + ".")):
            continue
        found.setdefault(ep.name, ep)  # the same distribution seen twice on sys.path: the first wins
    return dict(sorted(found.items()))


def recipe_names(package: str | None = None) -> list[str]:
    """The names of the registered recipes, sorted."""
    return list(recipe_entry_points(package))


def get_recipe(name: str, *, package: str | None = None) -> Recipe:
    """Load a registered recipe by name.

    Raises:
        ConfigError: no recipe has this name (the message lists the registered ones).
        RobustlabError: the recipe's module fails to import, or its entry point is not a :class:`Recipe` named
            ``name``.
    """
    eps = recipe_entry_points(package)
    if name not in eps:
        known = ", ".join(eps) or "none"
        raise ConfigError(f"unknown recipe {name!r}; registered recipes: {known}")
    ep = eps[name]
    try:
        obj = ep.load()
    except Exception as e:
        raise RobustlabError(f"recipe {name!r} ({ep.value}) could not be loaded: {type(e).__name__}: {e}") from e
    if not isinstance(obj, Recipe):
        raise RobustlabError(f"recipe entry point {name!r} ({ep.value}) is a {type(obj).__name__}, not a Recipe")
    if obj.name != name:
        raise RobustlabError(f"recipe entry point {name!r} ({ep.value}) holds a recipe named {obj.name!r}")
    return obj
