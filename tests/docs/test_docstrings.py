"""Every public class and method of the Host, the OracleNode and the Protocol says what it does."""

from __future__ import annotations

import inspect

import pytest

from p2p.host import Host
from oracle.node import OracleNode
from oracle.protocol import Protocol


@pytest.mark.parametrize("cls", [Host, OracleNode, Protocol])
def test_public_api_has_docstrings(cls: type) -> None:
    assert inspect.getdoc(cls)
    missing = []
    for name, obj in vars(cls).items():
        if name.startswith("_") and name not in ("__init__", "__aenter__", "__aexit__"):
            continue
        fn = obj.fget if isinstance(obj, property) else obj
        if isinstance(fn, (staticmethod, classmethod)):
            fn = fn.__func__
        if inspect.isfunction(fn) and not (fn.__doc__ or "").strip():
            missing.append(name)
    assert missing == [], f"{cls.__name__}: no docstring on {missing}"
