"""Generates pages at build time (mkdocs-gen-files): the CLI reference from the commands' own parsers (so it
never disagrees with ``--help``), the results format from results/README.md and the reference figures."""

import importlib
from pathlib import Path

import mkdocs_gen_files

COMMANDS = ["run", "study", "tuning", "check", "report", "race", "layout", "levels", "same_results"]

with mkdocs_gen_files.open("cli-reference.md", "w") as page:
    page.write("# CLI reference\n\nEach command's `--help`, generated from its parser when the docs are built.\n")
    for name in COMMANDS:
        parser = importlib.import_module(f"suite.{name}").build_parser()
        page.write(f"\n## `python -m suite.{name}`\n\n```text\n{parser.format_help()}```\n")

# The results format page is results/README.md itself (one source), and the reference figures are the
# committed ones: results/reference/plots/ (the round-1 set) as img/, each set under results/reference/
# (v2, scaling, penalty) as img/<set>/.
with mkdocs_gen_files.open("results-format.md", "w") as page:
    page.write(Path("results/README.md").read_text())
for plot in sorted(Path("results/reference").glob("**/plots/*.png")):
    subset = plot.parent.parent.relative_to("results/reference")
    with mkdocs_gen_files.open(str(Path("img") / subset / plot.name), "wb") as image:
        image.write(plot.read_bytes())
