"""model/compiled.py: torch.compile behind one check that names the option which asked for it."""

from __future__ import annotations

import pytest
import torch

from ungrok.errors import UngrokError
from ungrok.model.compiled import compiled


def test_no_cxx_compiler_is_one_line_naming_the_option(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(UngrokError, match=r"^--compile needs a C\+\+ compiler .* on PATH; turn it off$"):
        compiled(torch.nn.Linear(2, 2), "--compile")


def test_the_compiled_module_wraps_the_same_parameters():
    net = torch.nn.Linear(3, 2)
    out = compiled(net, "x", dynamic=True)
    assert out is not net and out._orig_mod is net
    assert [p.data_ptr() for p in out.parameters()] == [p.data_ptr() for p in net.parameters()]
