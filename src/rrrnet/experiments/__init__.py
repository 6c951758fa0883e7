"""Experiments composed from the library: the paper's methods A-E, forward block selection, the
branch sweep, the multi-dataset benchmark (local or Ray), tuning, and the pruning study."""
