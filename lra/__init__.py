"""lra: the Long Range Arena tasks, data sources, offline generators, task models and presets.

Imports stay lazy here so that light modules (`lra.io`) can be used without torch.
"""
