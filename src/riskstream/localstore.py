"""The worker's local table store, and the Kafka cluster it was built from.

A RocksDB store records how far it has read each changelog. Against another
cluster, or the same cluster after its topics were deleted, those offsets are
past the end of the new changelogs, and Faust stops the worker with a
``ConsistencyError`` deep in its recovery. The worker therefore writes the
cluster's id next to its tables, and a later start against another cluster
is rejected at once with the fix.
"""

from __future__ import annotations

from pathlib import Path

from riskstream.errors import UsageError


def marker_path(data_dir: str | Path, app_id: str) -> Path:
    """Return the file that records which cluster the app's tables came from."""
    return Path(data_dir) / f"{app_id}.kafka-cluster-id"


def check_cluster(data_dir: str | Path, app_id: str, cluster_id: str | None) -> None:
    """Reject a local store built from another Kafka cluster, or record this one.

    Nothing is checked when the broker does not report a cluster id.

    Raises:
        UsageError: the store's tables came from a cluster with another id.
    """
    if not cluster_id:
        return
    marker = marker_path(data_dir, app_id)
    if marker.is_file():
        recorded = marker.read_text(encoding="utf-8").strip()
        if recorded and recorded != cluster_id:
            raise UsageError(
                f"data_dir: {data_dir} contains the tables of app {app_id!r} from "
                f"Kafka cluster {recorded}, but the broker belongs to cluster "
                f"{cluster_id}; delete {data_dir} or pass another --data-dir, "
                "and the worker rebuilds its tables from this cluster's "
                "changelogs"
            )
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(cluster_id + "\n", encoding="utf-8")
