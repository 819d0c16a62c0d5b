"""Figures the sturdiness tests measure (faults injected, cases tried, messages
acknowledged and stored). Each is printed, and written as JSON to $CHATD_RELIABILITY_DIR
when it is set, where `make reliability` gathers them into one table."""
import json
import os
import re

import conftest


def record(name, **values):
    backend = conftest.BACKEND
    print(f"\n{name} [{backend}]: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    out = os.environ.get("CHATD_RELIABILITY_DIR")
    if not out:
        return
    os.makedirs(out, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    with open(os.path.join(out, f"{slug}-{backend}.json"), "w") as f:
        json.dump({"name": name, "backend": backend, "values": values}, f, indent=1)
