"""Provenance: the code hash, the configuration hash, UTC time stamps and file-name slugs."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from lra.io import slug
from runners import provenance


def test_code_hash_follows_the_sources(tmp_path):
    (tmp_path / "runners").mkdir()
    (tmp_path / "runners" / "bench.py").write_text("x = 1\n")
    (tmp_path / "README.md").write_text("not code")
    first = provenance.code_hash(tmp_path)
    (tmp_path / "README.md").write_text("edited, still not code")
    assert provenance.code_hash(tmp_path) == first and len(first) == 16
    (tmp_path / "runners" / "bench.py").write_text("x = 2\n")
    assert provenance.code_hash(tmp_path) != first
    (tmp_path / "runners" / "bench.py").write_text("x = 1\n")
    assert provenance.code_hash(tmp_path) == first
    (tmp_path / "lra").mkdir()
    (tmp_path / "lra" / "new.py").write_text("")
    assert provenance.code_hash(tmp_path) != first  # a new (untracked) module counts too


def test_config_hash_is_the_sha256_prefix_of_the_canonical_json():
    config = {"task": "listops", "preset": {"train": {"lr": 1e-3}}, "seed": 0}
    expected = hashlib.sha256(
        b'{"preset": {"train": {"lr": 0.001}}, "seed": 0, "task": "listops"}'
    ).hexdigest()[:16]
    assert provenance.config_hash(config) == expected
    reordered = json.loads(json.dumps({"seed": 0, "preset": {"train": {"lr": 1e-3}}, "task": "listops"}))
    assert provenance.config_hash(reordered) == expected
    assert provenance.config_hash({**config, "seed": 1}) != expected


def test_utc_now_is_iso_8601_in_utc_to_the_second():
    stamp = provenance.utc_now()
    parsed = dt.datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == dt.timedelta(0) and parsed.microsecond == 0 and stamp.endswith("+00:00")


def test_slug_keeps_attention_labels_readable_and_replaces_the_rest():
    assert slug("mita-num_landmarks=8-topk=8") == "mita-num_landmarks=8-topk=8"
    assert slug("avgpool+learned") == "avgpool+learned"
    assert slug("NVIDIA H200 (SXM) / 141GB") == "NVIDIA-H200-SXM-141GB"
    assert slug(" / ") == "none"
