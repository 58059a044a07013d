"""What this installation can do: versions, devices, attention backends, data locations (`lra info`)."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

import attention_zoo
from attention_zoo.mita import triton_usable
from lra.tasks import default_data_dir

from .provenance import git_commit, installed_version

ENV_VARIABLES = (
    "LRA_DATA_DIR",
    "LRA_CACHE_DIR",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "TFDS_DATA_DIR",
    "TRITON_INTERPRET",
    "MITA_DETERMINISTIC",
    "OMP_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    # the CPU pinning (runners/cpu_pinning.py) and its opt-out
    "LRA_CPU_PIN",
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_CBWR",
)


def flex_attention_available() -> bool:
    """Whether this torch has FlexAttention (`torch.nn.attention.flex_attention`), which the top-k and
    MoBA `flex` backends run on CUDA."""
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def environment_info() -> dict[str, Any]:
    """A flat description of the environment, for bug reports and run provenance."""
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    info: dict[str, Any] = {
        "lra-arena": installed_version("lra-arena"),
        "git commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "triton": installed_version("triton"),
        "numpy": installed_version("numpy"),
        "datasets (extra hf)": installed_version("datasets"),
        "tensorflow-datasets (extra tfds)": installed_version("tensorflow-datasets"),
        "submitit (extra slurm)": installed_version("submitit"),
        "cpu cores": os.cpu_count(),
        "torch threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if cuda else "not available",
        "gpus": ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        if cuda
        else "none",
        "attentions": ", ".join(attention_zoo.names()),
        "mita backends": "torch" + (", triton" if triton_usable(device) else " (triton: needs CUDA)"),
        "topk / moba backends": "torch"
        + (", flex" if cuda and flex_attention_available() else " (flex: needs CUDA)"),
        "data dir": os.path.abspath(default_data_dir()),
    }
    for name in ENV_VARIABLES:
        if name in os.environ:
            info[f"${name}"] = os.environ[name]
    return info
