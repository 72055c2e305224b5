"""Recipes of robustlab-vision: one module per paper table, registered under the entry-point group
``robustlab.recipes`` (``liu2020_ldce = "robustlab.vision.recipes.liu2020_ldce:RECIPE"``).

Importing this package imports nothing heavy; ``robustlab reproduce liu2020_ldce`` loads the recipe by its name.
"""

__all__: list[str] = []
