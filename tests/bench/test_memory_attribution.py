"""bench.memory_attribution names the function of a source line, innermost definition first."""

from __future__ import annotations

from pathlib import Path

from bench.memory_attribution import function_at

SOURCE = '''\
class Outer:
    def method(self):
        x = 1

        def inner():
            return x

        return inner


def top():
    return 2
'''


def test_function_at_names_the_innermost_definition(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text(SOURCE)
    name = str(path)
    assert function_at(name, 3) == "mod.py:Outer.method"
    assert function_at(name, 6) == "mod.py:Outer.method.inner"
    assert function_at(name, 8) == "mod.py:Outer.method"
    assert function_at(name, 12) == "mod.py:top"
    assert function_at(name, 10) == "mod.py:<module>"
