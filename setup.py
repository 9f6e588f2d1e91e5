"""Build hook: the event-processing modules are compiled with mypyc when a C compiler is available.

Processing an error event (normalise, scrub, group) is plain Python walking a ~25 KB document: half a
millisecond of CPU per event, most of what ingest costs. Compiled by mypyc (as black and mypy ship
themselves) the same source runs about a third faster. Compilation is an optimisation, never a
requirement: with no compiler, with ``WATCHKEEPER_PURE_PYTHON=1``, or in an editable install
(``pip install -e``, where a compiled module would shadow the source you edit) the package is pure
Python and behaves the same. The server logs at start which one it runs.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

# Pure functions over event documents: no pickled classes cross processes from these modules except
# ScrubbingRules, which pickles by its fields (see its __reduce__).
COMPILED = [
    "src/watchkeeper/errors/interfaces.py",
    "src/watchkeeper/errors/normalize.py",
    "src/watchkeeper/errors/pii_patterns.py",
    "src/watchkeeper/errors/scrubbing.py",
    "src/watchkeeper/errors/grouping.py",
]


class OptionalBuildExt(build_ext):
    """Compiles when it can; a failure leaves the pure-Python modules in place."""

    def run(self) -> None:
        if self.inplace or getattr(self, "editable_mode", False):
            print("watchkeeper: editable install, event processing stays pure Python", file=sys.stderr)
            return
        try:
            super().run()
        except Exception as exc:  # no compiler, no Python headers: still a working install
            # All or nothing: the modules share one compiled library, and a module half built would
            # fail to import where its source would have worked.
            for output in self.get_outputs():
                if os.path.exists(output):
                    os.remove(output)
            print(f"watchkeeper: not compiled ({exc}); event processing runs as pure Python", file=sys.stderr)


def _ext_modules() -> list[object]:
    if os.environ.get("WATCHKEEPER_PURE_PYTHON") or "editable_wheel" in sys.argv:
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        return []
    try:
        # Only the compiled modules' own imports are type-checked: the build environment has mypy,
        # not the project's dependencies.
        options = ["--ignore-missing-imports", "--config-file", os.devnull]
        return list(mypycify([*options, *COMPILED], opt_level="3", group_name="watchkeeper"))
    except Exception as exc:  # mypyc could not translate: pure Python is still correct
        print(f"watchkeeper: mypyc failed ({exc}); event processing runs as pure Python", file=sys.stderr)
        return []


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
