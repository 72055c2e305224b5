"""robustlab.common.testing.require_peer: a missing peer library skips a test outside CI and fails it in CI."""

from __future__ import annotations

import json

import pytest

from robustlab.common.testing import require_peer

MISSING = "robustlab_no_such_peer_library"


def test_an_installed_module_is_returned(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert require_peer("json") is json
    assert require_peer("json.decoder", what="anything") is json.decoder


@pytest.mark.parametrize("ci", ["true", "1", "yes"])
def test_a_missing_peer_fails_under_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=MISSING):
        require_peer(MISSING)


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_a_missing_peer_skips_outside_ci(monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match=f"peer library {MISSING} cannot be imported"):
        require_peer(MISSING)


def test_the_message_says_what_the_peer_is_for_and_how_to_install_it(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        require_peer(MISSING, what="the reference the tests check against")
    assert "(the reference the tests check against)" in str(info.value) and "make install" in str(info.value)
    # a known peer names its own install command (a missing submodule: the same whether or not it is installed)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"pip install --no-deps torchattacks==3\.5\.1"):
        require_peer("torchattacks.robustlab_no_such_module")
    with pytest.raises(pytest.fail.Exception, match=r"packages/common\[test\]"):
        require_peer("captum.robustlab_no_such_module")
