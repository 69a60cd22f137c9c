"""Run one target under atheris (libFuzzer) in this process: `python -m fuzz.one NAME [libFuzzer args]`.

The stack is imported inside `atheris.instrument_imports`, so coverage feedback covers `p2p` and
`oracle`. An escaping exception that is not the target's typed error makes atheris print the
traceback, save the input as a crash artifact and exit non-zero; a slow input trips `-timeout`.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["p2p", "oracle", "fuzz.targets"]):
    from fuzz.targets import TARGETS


def main() -> None:
    name = sys.argv[1]
    target = TARGETS[name]
    allowed = target.allowed()
    run = target.run

    def one_input(data: bytes) -> None:
        try:
            run(data)
        except allowed:
            pass

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
