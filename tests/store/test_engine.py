from pathlib import Path

from watchkeeper.store.engine import WAL_AUTOCHECKPOINT_PAGES, for_writing, make_engine


def test_sqlite_connections_keep_full_sync_and_checkpoint_a_long_wal(tmp_path: Path) -> None:
    engine = for_writing(make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}", pool_size=1))
    try:
        with engine.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == WAL_AUTOCHECKPOINT_PAGES
    finally:
        engine.dispose()

