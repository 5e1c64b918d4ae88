"""A longer fuzzing campaign than CI runs: the same checks, many more (and fresh) examples.

    DATABASE_URL=postgres://... .venv/bin/python bench/fuzz_long.py [examples per operation, default 1000]

Prints the pytest summary and the wall time; exits non-zero if any operation failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    examples = sys.argv[1] if len(sys.argv) > 1 else "1000"
    env = {**os.environ, "ALLOW_DEBUG": "1", "FUZZ_EXAMPLES": examples, "FUZZ_RANDOM": "1"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_fuzz.py", "-q", "-p", "no:randomly", "--create-db"],
        cwd=ROOT, env=env, timeout=3600, check=False,
    )
    print(f"fuzz_long: {examples} examples per operation, {time.monotonic() - started:.1f} s, exit {result.returncode}")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
