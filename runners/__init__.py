"""runners: training one run, the suite of runs, and the efficiency benchmarks."""
