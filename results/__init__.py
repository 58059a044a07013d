"""results: result records, the leaderboard, comparisons and plots.

Reads records only: building tables and figures from finished runs needs no torch.
"""
