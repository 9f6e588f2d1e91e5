"""Write (or check) constraints.txt: the exact versions of every package the tested venv holds.

The README's commands and .ci/run install with `-c constraints.txt`, so a fresh machine gets the set the
tests passed with, not whatever was released last night. After changing a dependency in pyproject.toml:

    .venv/bin/pip install -e '.[dev,bench]' && .venv/bin/python scripts/lock.py

`--check` (run by .ci/run) fails when the venv holds a package the file does not pin, or another version.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "constraints.txt"
HEADER = """\
# Every package of the tested venv (pip install -e '.[dev,bench]'), pinned. Made by scripts/lock.py;
# the README's commands and .ci/run install with `-c constraints.txt`.
"""
OWN = {"watchkeeper", "pip", "setuptools", "wheel"}


def installed() -> dict[str, str]:
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower().replace("_", "-") not in OWN:
            found[name.lower().replace("_", "-")] = dist.version
    return found


def pinned() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the venv differs from constraints.txt")
    args = parser.parse_args()
    have = installed()
    if not args.check:
        LOCK.write_text(HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(have.items())))
        print(f"wrote {len(have)} pins to {LOCK}")
        return 0
    pins = pinned()
    wrong = [f"{name} {version} (constraints.txt: {pins.get(name, 'not pinned')})"
             for name, version in sorted(have.items()) if pins.get(name) != version]
    if wrong:
        print("the venv holds packages constraints.txt does not pin at that version:\n  " + "\n  ".join(wrong))
        print("run `.venv/bin/python scripts/lock.py` after changing a dependency")
        return 1
    print(f"constraints.txt pins all {len(have)} installed packages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
