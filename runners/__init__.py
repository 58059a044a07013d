"""runners: the commands' library, one room per command -- `train/` (one run), `suite/` (a grid of runs),
`bench/` (efficiency, `kernels/` for the MiTA kernels), `experiments/` (MiTA sweeps and swaps) and `cli/`
(the `lra` command) -- over what they share: attention specs (`specs`), devices, provenance, the CPU
pinning, the plugin smoke check and the default output folders."""
