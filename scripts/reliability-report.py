#!/usr/bin/env python3
"""Prints one table of the sturdiness figures (README, "Sturdiness"):
  - what the fault, bad-input and attack tests recorded (tests/integration/figures.py writes
    one JSON file per check and backend into FIGURES_DIR);
  - the fuzzing figures of the last `make fuzz` (FUZZ_RESULTS, when it exists).
With --markdown FILE the same table is also written there as Markdown.

  reliability-report.py FIGURES_DIR [--fuzz FUZZ_RESULTS] [--markdown FILE]"""
import argparse
import glob
import json
import os
import sys


def load_figures(folder):
    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        with open(path) as f:
            rows.append(json.load(f))
    return rows


def load_fuzz(path):
    """The per-target figures of `make fuzz`: a list of objects, or an object of targets."""
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        data = json.load(f)
    if isinstance(data, dict):
        data = data.get("targets", data)
    if isinstance(data, dict):
        data = [dict(v, target=k) for k, v in data.items()]
    return data


def describe(values):
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in values.items())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("figures")
    ap.add_argument("--fuzz")
    ap.add_argument("--markdown")
    args = ap.parse_args()

    table = []
    for row in load_figures(args.figures):
        table.append((row["name"], row["backend"], describe(row["values"])))
    fuzz = load_fuzz(args.fuzz)
    for t in fuzz:
        name = t.get("target") or t.get("name")
        execs = t.get("executions", t.get("execs"))
        rate = t.get("exec_per_second", t.get("execs_per_sec"))
        found = t.get("findings", t.get("crashes", 0))
        table.append((f"Fuzzing: {name}", "libFuzzer",
                      f"executions {execs}, exec/s {rate}, findings {found}"))
    if not table:
        print("no figures recorded: run make reliability", file=sys.stderr)
        return 1

    widths = [max(len(r[i]) for r in table + [("Check", "Backend", "Figures")]) for i in range(3)]
    line = "  ".join("{:<%d}" % w for w in widths)
    print(line.format("Check", "Backend", "Figures"))
    print(line.format(*("-" * w for w in widths)))
    for r in table:
        print(line.format(*r))
    if not fuzz:
        print("\n(fuzzing figures appear after `make fuzz`)")

    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("# Sturdiness figures\n\n"
                    "Written by `make reliability` (README, \"Sturdiness\"); every figure is "
                    "what the tests measured in that run.\n\n")
            f.write("| Check | Backend | Figures |\n|---|---|---|\n")
            for r in table:
                f.write("| " + " | ".join(x.replace("|", "\\|") for x in r) + " |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
