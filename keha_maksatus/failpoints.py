"""Named points where a test can kill the process (SIGKILL) to prove crash safety.

Set KEHA_FAILPOINT=<name> and the process kills itself the moment it reaches that point;
without the variable a failpoint does nothing.
"""

from __future__ import annotations

import os
import signal

ENV = "KEHA_FAILPOINT"
NAMES = ("ingest", "validate", "kpi", "publish", "outputs")


def reach(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
