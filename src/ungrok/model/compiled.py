"""torch.compile for our model, refused in one line where Inductor cannot build its kernels."""

from __future__ import annotations

import shutil

import torch
from torch import nn

from ungrok.errors import UngrokError


def compiled(net: nn.Module, option: str, dynamic: bool | None = None) -> nn.Module:
    """`net` behind torch.compile; `option` names the setting that asked for it, for the error.

    Inductor writes C++ kernels for the CPU, so without a compiler the first call would fail
    deep inside torch; here it fails before any work with what to change. `dynamic=True`
    compiles one graph for every batch shape (a scorer's batches differ in rows and width).
    """
    if not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")):
        raise UngrokError(f"{option} needs a C++ compiler (g++, c++ or clang++) on PATH; turn it off")
    return torch.compile(net, dynamic=dynamic)
