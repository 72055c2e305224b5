"""Recipes of robustlab-seismic: one module per paper table, registered under the entry-point group
``robustlab.recipes`` (``linville2020 = "robustlab.seismic.recipes.linville2020:RECIPE"``).

Importing this package imports nothing heavy; ``robustlab reproduce linville2020`` loads the recipe by its name.
"""

__all__: list[str] = []
