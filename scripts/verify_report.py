#!/usr/bin/env python3
"""Print the figures of the last `make verify` run as docs/testing.md's table.

Reads the JSON lines the security suites append (one per pytest run and database, and
the wall time, commit and date last): `make verify` prints this at its end, and
`make verify-docs` (`--write docs/testing.md`) puts it between the file's two
`verify-figures` markers, so the numbers there are always those of a real run.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections import defaultdict
from contextlib import redirect_stdout
from pathlib import Path

#: (figure, how docs/testing.md names it), in its order.
ROWS = [
    ("route matrix: endpoints", "routes (endpoints of `app.url_map`)"),
    ("route matrix: roles", "roles"),
    (
        "route matrix: cases (endpoint, method, <any> word)",
        "route cases (endpoint, method, `<any>` word)",
    ),
    ("route matrix: cells", "route matrix cells checked (case × role × whose objects)"),
    ("csrf: unsafe routes", "POST routes checked for CSRF"),
    ("csrf: refused requests", "requests without a valid token, all refused"),
    ("faults: SIGKILL rounds", "SIGKILL rounds"),
    ("faults: workers killed", "workers killed"),
    ("faults: messages under SIGKILL", "messages ingested under SIGKILL"),
    ("faults: Dovecot restarts under a worker", "Dovecot restarts under a worker"),
    ("faults: two-worker rounds", "two-worker rounds"),
    ("faults: two-worker refusals (lease visible)", "times the second worker saw the lease"),
    ("hostile mail: vectors", "XSS vectors"),
    ("hostile mail: classes", "XSS vector classes"),
    ("hostile mail: placements", "vector placements (5 per vector)"),
    ("hostile mail: mails ingested", "hostile mails ingested"),
    ("hostile mail: pages opened", "pages opened in Chromium"),
    ("fuzz parser: messages", "generated mails through the parser"),
    ("fuzz pipeline: messages", "generated mails through the pipeline"),
    ("form fuzz: forms found", "forms found and fuzzed"),
    ("form fuzz: requests", "fuzzed form submissions"),
    ("url fuzz: requests", "fuzzed GET requests (path ids, query parameters)"),
]


#: The full-size pathological cases, by the name the suite records them under.
PATHOLOGICAL = {
    "big": "a 25 MB message",
    "many": "1,000 attachments",
    "nested": "10,000-level nested multipart",
    "header": "1 MB header lines",
    "nul": "NUL bytes",
    "base64": "invalid base64",
}


MARKERS = re.compile(
    r"(<!-- verify-figures: begin -->\n).*?(<!-- verify-figures: end -->)", re.DOTALL
)


def report(path: str) -> None:
    runs: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    run: dict[str, object] = {}
    for line in Path(path).read_text().splitlines():
        record = json.loads(line)
        if "verify_seconds" in record:
            run = record
            continue
        database = record.pop("database")
        for name, value in record.items():
            runs[database][name] += value
    databases = [d for d in ("sqlite", "postgresql") if d in runs]
    print(
        "| | "
        + " | ".join(
            d.replace("sqlite", "SQLite").replace("postgresql", "PostgreSQL") for d in databases
        )
        + " |"
    )
    print("|---|" + "---:|" * len(databases))
    for name, label in ROWS:
        values = [runs[d].get(name) for d in databases]
        if any(v is not None for v in values):
            print(
                f"| {label} | " + " | ".join("–" if v is None else f"{v:,}" for v in values) + " |"
            )
    # "pathological mail: <case>: <figure>", one set per full-size case.
    patho = sorted(
        {
            name.split(": ")[1]
            for d in databases
            for name in runs[d]
            if name.startswith("pathological mail: ") and name.count(": ") == 2
        }
    )
    for case in patho:
        cells = []
        for d in databases:
            figures = runs[d]
            prefix = f"pathological mail: {case}: "
            outcome = "stored" if figures.get(prefix + "stored") else "quarantined"
            cells.append(
                f"{figures.get(prefix + 'KiB', 0):,} KiB, {outcome}, "
                f"{figures.get(prefix + 'worker seconds', 0)} s, "
                f"+{figures.get(prefix + 'worker peak MB over idle', 0)} MB"
            )
        label = PATHOLOGICAL.get(case, case)
        print(f"| pathological mail: {label}¹ | " + " | ".join(cells) + " |")
    if patho:
        print(
            "\n¹ size of the mail; stored or quarantined; the worker's whole pass (start-up"
            " included); its peak memory over an idle pass's."
        )
    if run:
        seconds = int(run["verify_seconds"])
        print(
            f"\n`make verify` at commit {run.get('commit') or '(unknown)'} on {run.get('date')}:"
            f" passed on both databases in {seconds // 60} min {seconds % 60} s."
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figures", nargs="?", default="instance/verify-figures.jsonl")
    parser.add_argument("--write", metavar="DOC", help="replace the table between the markers")
    args = parser.parse_args(argv)
    if not Path(args.figures).exists():
        print(f"no figures at {args.figures}: run `make verify` first", file=sys.stderr)
        return 1
    if not args.write:
        report(args.figures)
        return 0
    table = io.StringIO()
    with redirect_stdout(table):
        report(args.figures)
    doc = Path(args.write)
    text = doc.read_text(encoding="utf-8")
    if not MARKERS.search(text):
        print(f"{doc} has no verify-figures markers", file=sys.stderr)
        return 1
    doc.write_text(
        MARKERS.sub(lambda m: m.group(1) + table.getvalue() + m.group(2), text), encoding="utf-8"
    )
    print(f"wrote the figures into {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
