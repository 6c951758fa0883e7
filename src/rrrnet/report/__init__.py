"""Statistics and figures over results (SciPy, matplotlib)."""
