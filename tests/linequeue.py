"""A child process's stdout as a queue of lines, for tests that wait on what a child prints."""

from __future__ import annotations

import queue
import subprocess
import threading


def stdout_lines(proc: subprocess.Popen[bytes]) -> queue.Queue[bytes]:
    """The lines `proc` prints on stdout, as they come (a daemon thread reads them, so the child
    never blocks on a full pipe); an empty line (b"") once stdout ends."""
    lines: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(b"")

    threading.Thread(target=pump, daemon=True).start()
    return lines
