"""The command line of the LRA arena from a checkout: `python cli.py ...` is the installed `lra ...`.

Both are `runners.cli.main`, the same program: it pins the CPU's floating-point order before any
command imports torch (runners/cpu_pinning.py; every command but `lra bench`), and importing it
imports no torch. This file is not installed (a top-level module named `cli` in site-packages would
shadow other projects' own); the console script `lra` is `runners.cli:main`.

    python cli.py run listops --attention mita
    python cli.py suite --preset quick
"""

from runners.cli import main

if __name__ == "__main__":
    main(prog_name="lra")
