"""Kill a fit at chosen instants, in real processes, cheaply (tests/test_hostile.py).

Run as ``python tests/crash_harness.py SPEC.json``. The harness imports rrrnet once and runs
nothing of torch's itself, then forks one child per step (a fork needs no new interpreter:
the steps cost their work only). A child runs ``rrrnet fit`` through :func:`rrrnet.cli.main`
and is killed:

* ``{"file": NAME, "when": "before"|"after", "nth": N, "signal": SIG}``: by itself, just
  before or just after its N-th rename onto ``NAME`` (os.replace, the commit point of every
  atomic write): the windows a timer rarely hits, such as between a checkpoint's rename and
  the manifest's;
* ``{"after_s": T, "signal": SIG}``: by the harness, T seconds after it started;
* ``{}``: not at all (the last step finishes the run).

The spec holds ``chains``: each an ``argv`` and its ``kills``, one child per kill, run one
after another on the same run folder, each with ``--resume`` but the first. Prints one JSON
line: per chain, every child's exit (``exit``: its code, or ``-SIG`` when a signal ended it)
and its last line of stderr.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time


def child(argv: list[str], kill: dict) -> None:
    from rrrnet import cli
    # Ctrl-C as a terminal delivers it: Python raises KeyboardInterrupt on SIGINT only if SIGINT
    # was not ignored when it started, and a shell without job control starts background
    # commands with SIGINT ignored (`(make test &)`), where a SIGINT kill would do nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sig = getattr(signal, kill.get("signal", "SIGKILL"))
    real, seen = os.replace, {}

    def replace(src, dst, *args, **kwargs):
        name = os.path.basename(os.fspath(dst))
        seen[name] = seen.get(name, 0) + 1
        hit = kill.get("file") == name and seen[name] == kill.get("nth", 1)
        if hit and kill["when"] == "before":
            os.kill(os.getpid(), sig)
        result = real(src, dst, *args, **kwargs)
        if hit and kill["when"] == "after":
            os.kill(os.getpid(), sig)
        return result

    os.replace = replace
    code = cli.main(argv)
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    import rrrnet.cli  # noqa: F401  (imported once, before any fork)
    import rrrnet.training.fit  # noqa: F401
    print(json.dumps([run_chain(chain["argv"], chain["kills"], spec["tmp"])
                      for chain in spec["chains"]]))


def run_chain(argv: list[str], kills: list[dict], tmp: str) -> list[dict]:
    results = []
    for i, kill in enumerate(kills):
        err = os.path.join(tmp, f"stderr-{os.getpid()}-{time.monotonic_ns()}.txt")
        pid = os.fork()
        if pid == 0:
            fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            try:
                child(argv + (["--resume"] if i else []), kill)
            finally:
                os._exit(99)
        if "after_s" in kill:
            deadline = time.monotonic() + kill["after_s"]
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.01)
            else:
                os.kill(pid, getattr(signal, kill["signal"]))
                _, status = os.waitpid(pid, 0)
        else:
            _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        lines = [ln for ln in open(err).read().splitlines() if ln.startswith("rrrnet")]
        results.append({"kill": kill, "exit": code, "stderr": lines[-1] if lines else ""})
    return results


if __name__ == "__main__":
    main()
