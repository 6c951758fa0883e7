"""``rrrnet.cost`` and ``rrrnet.train`` are both a module and the function of that name.

Importing a submodule binds it to the package attribute of its name, so a plain function
``rrrnet.cost`` would be replaced by the module as soon as anything imports ``rrrnet.cost``.
Instead the module itself answers calls as its function: ``rrrnet.cost(...)`` and
``rrrnet.train(...)`` work whatever was imported first, and ``from rrrnet.cost import cost``
works too.
"""
from __future__ import annotations

import sys
import types
from typing import Any, Callable


def callable_module(name: str, function: Callable[..., Any]) -> None:
    """Make the module ``name`` (already in ``sys.modules``) call ``function`` when called."""
    class CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    CallableModule.__call__.__doc__ = function.__doc__
    sys.modules[name].__class__ = CallableModule
