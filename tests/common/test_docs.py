"""Every regime carries a citation and a runnable ``Examples::`` block, and the examples (of the regimes and
the documented helper modules) run."""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

from robustlab.common import regimes

MODULES = sorted({inspect.getmodule(getattr(regimes, name)).__name__ for name in regimes.__all__}
                 | {"robustlab.common.training", "robustlab.common.tasks", "robustlab.common.modelfile",
                    "robustlab.common.progress", "robustlab.common.testing.fuzz", "robustlab.common.losses",
                    "robustlab.common.recipes.base", "robustlab.common.data.datasets",
                    "robustlab.common.data.cache", "robustlab.common.metrics.generative",
                    "robustlab.common.metrics.localization"})


@pytest.mark.parametrize("name", regimes.__all__)
def test_every_regime_has_a_citation_and_an_example(name):
    cls = getattr(regimes, name)
    assert isinstance(cls.citation, str) and len(cls.citation) > 20, f"{name} needs a citation"
    assert "Examples::" in (cls.__doc__ or ""), f"{name}'s docstring needs an Examples:: block"


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {module} failed"
