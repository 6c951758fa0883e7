"""The ``rrrnet`` command's groups, one module each: their options, and for each command the one
library call it makes (typed arguments) and how its result is printed. The work itself is in the
library; :mod:`rrrnet.cli` assembles the parser and dispatches. Nothing here imports torch at
import time, so that ``rrrnet --help`` answers at once."""
from . import analysis, data, demo, deploy, experiments, fit, model, report  # noqa: F401
