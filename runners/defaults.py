"""Default output folders of the commands, in one torch-free place (the command line shows them)."""

# Runs, suites and efficiency records: where `lra leaderboard`, `lra plot` and `lra compare` look.
DEFAULT_RUNS_DIR = "lra_runs"
# Sweeps and swaps, kept apart so that short experiment runs never mix into a suite's leaderboard.
EXPERIMENTS_OUT = "lra_experiments"
