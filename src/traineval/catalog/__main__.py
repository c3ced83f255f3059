"""``python -m traineval.catalog --write DIR``: regenerate the docs page of every code."""

from __future__ import annotations

import argparse
from pathlib import Path

from traineval.catalog import all_rules, render_index, render_markdown


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m traineval.catalog")
    parser.add_argument("--write", metavar="DIR", required=True, help="folder of the pages")
    args = parser.parse_args()
    out = Path(args.write)
    out.mkdir(parents=True, exist_ok=True)
    wanted = {f"{r.code}.md" for r in all_rules()}
    for stale in out.glob("TE*.md"):
        if stale.name not in wanted:
            stale.unlink()
    for rule in all_rules():
        (out / f"{rule.code}.md").write_text(render_markdown(rule), encoding="utf-8")
    (out / "index.md").write_text(render_index(), encoding="utf-8")
    print(f"wrote {len(wanted)} pages and index.md to {out}")


if __name__ == "__main__":
    main()
