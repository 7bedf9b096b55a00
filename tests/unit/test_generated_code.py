"""The committed protobuf code equals a fresh generation from protos/ (CI regenerates and compares)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def test_generated_code_is_up_to_date() -> None:
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([sys.executable, str(REPO / "protos" / "generate.py"), "--check"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
