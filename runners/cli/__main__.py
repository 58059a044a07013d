"""`python -m runners.cli ...` is `lra ...` (where the console script is not on PATH)."""

from runners.cli import main

main(prog_name="lra")
