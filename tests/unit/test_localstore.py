"""Unit tests for the check of the worker's local store against its cluster."""

from __future__ import annotations

import pytest

from riskstream.errors import UsageError
from riskstream.localstore import check_cluster, marker_path


def test_first_start_records_cluster(tmp_path):
    check_cluster(tmp_path / "data", "app", "cluster-a")

    assert marker_path(tmp_path / "data", "app").read_text() == "cluster-a\n"


def test_same_cluster_accepted(tmp_path):
    check_cluster(tmp_path, "app", "cluster-a")

    check_cluster(tmp_path, "app", "cluster-a")

    assert marker_path(tmp_path, "app").read_text() == "cluster-a\n"


def test_other_cluster_rejected(tmp_path):
    check_cluster(tmp_path, "app", "cluster-a")

    with pytest.raises(UsageError) as caught:
        check_cluster(tmp_path, "app", "cluster-b")

    message = str(caught.value)
    assert message.startswith(f"data_dir: {tmp_path} contains the tables of app 'app'")
    assert "cluster cluster-a" in message
    assert "cluster-b" in message
    assert "pass another --data-dir" in message


def test_other_app_has_own_marker(tmp_path):
    check_cluster(tmp_path, "app-1", "cluster-a")

    check_cluster(tmp_path, "app-2", "cluster-b")

    assert marker_path(tmp_path, "app-2").read_text() == "cluster-b\n"


def test_unknown_cluster_not_checked(tmp_path):
    check_cluster(tmp_path, "app", None)

    assert not marker_path(tmp_path, "app").exists()
