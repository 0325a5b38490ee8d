"""The local broker's cluster ids."""

def test_cluster_ids_never_start_with_a_dash() -> None:
    """StorageTool reads `-t -abc…` as an option: a cluster id must not start with '-' (seen in CI)."""
    from perfwatch.tooling.local import new_cluster_id

    ids = [new_cluster_id() for _ in range(5000)]  # about 78 of them would start with '-' unguarded
    assert all(not c.startswith("-") and len(c) == 22 for c in ids)
