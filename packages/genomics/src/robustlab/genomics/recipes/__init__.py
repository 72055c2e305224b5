"""Recipes of robustlab.genomics, one file per paper table, registered under the ``robustlab.recipes`` group.

- :mod:`~robustlab.genomics.recipes.koo2019`: Koo et al. (2019), shallow and deep CNNs × six training variants
  × two data set sizes, the authors' protocol: classification, interpretability of saliency and SmoothGrad maps,
  filter and TF-MoDISco motif recovery, and the paper's claims decided with a paired test.
"""
