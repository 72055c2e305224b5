"""Recipes of robustlab.genomics, one file per paper table, registered under the ``robustlab.recipes`` group.

- :mod:`~robustlab.genomics.recipes.koo2019`: Koo et al. (2019), shallow and deep CNNs × four training variants
  × two data set sizes: classification and interpretability of saliency and SmoothGrad maps.
"""
