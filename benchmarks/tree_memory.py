"""Peak memory of a whole process tree (a command and every process it starts), the house's
measure (../shared/reference.md): summed PSS, each shared page divided among the processes that
map it, sampled from /proc/PID/smaps_rollup; summed RSS beside it (shared pages counted once
per process, so torch's pages count once per DataLoader worker).

Used by benchmarks/large_data.py, and as a wrapper around any command:

    python benchmarks/tree_memory.py --out memory.json -- rrrnet fit FOLDER --out RUN

runs the command (its output passes through), then writes its exit status, wall seconds and
peak PSS/RSS of its tree to --out (and prints them); exits with the command's status.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def _tree(root: int) -> list[int]:
    """``root`` and its descendants, from the parent ids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _rollup(pid: int) -> dict[str, int]:
    """Rss, Pss, Pss_Anon, Pss_File of one process, in kB ({} when it has gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                if name in ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem"):
                    out[name] = int(rest.split()[0])
    except (OSError, ValueError):
        return {}
    return out


class TreeSampler(threading.Thread):
    """Samples a process tree's summed memory every ``every`` seconds until stopped."""

    def __init__(self, root: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.root, self.every, self.samples = root, every, []
        self.halt = threading.Event()

    def run(self) -> None:
        started = time.perf_counter()
        while not self.halt.is_set():
            pids = _tree(self.root)
            rollups = [r for r in map(_rollup, pids) if r]
            if rollups:
                total = {k: sum(r.get(k, 0) for r in rollups)
                         for k in ("Rss", "Pss", "Pss_Anon", "Pss_File")}
                self.samples.append({"t": round(time.perf_counter() - started, 2),
                                     "processes": len(rollups), **total})
            self.halt.wait(self.every)

    def peaks(self) -> dict:
        gib = 1024 ** 2  # kB per GiB

        def peak(key):
            best = max(self.samples, key=lambda s: s[key])
            return round(best[key] / gib, 3), best

        pss, at_pss = peak("Pss")
        rss, _ = peak("Rss")
        return {"peak_pss_gib": pss, "peak_rss_gib": rss,
                "at_peak_pss": {"anon_gib": round(at_pss["Pss_Anon"] / gib, 3),
                                "file_gib": round(at_pss["Pss_File"] / gib, 3),
                                "processes": at_pss["processes"], "t_s": at_pss["t"]},
                "peak_processes": max(s["processes"] for s in self.samples),
                "samples": len(self.samples)}



def measure(command: list[str], every: float = 0.5) -> dict:
    """Run ``command``, sampling its process tree's memory; its status, seconds and peaks."""
    started = time.perf_counter()
    process = subprocess.Popen(command)
    sampler = TreeSampler(process.pid, every)
    sampler.start()
    status = process.wait()
    sampler.halt.set()
    sampler.join()
    return {"command": command, "returncode": status,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "sampled_every_s": every, **(sampler.peaks() if sampler.samples else {})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s [--out FILE] [--every S] -- COMMAND ...")
    parser.add_argument("--out", type=Path, help="JSON file to write the figures to")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    figures = measure(command, args.every)
    text = json.dumps(figures, indent=2)
    print(text, file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return figures["returncode"]


if __name__ == "__main__":
    sys.exit(main())
