"""The services' SQLite store: idempotency records and the outbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiltstore.storage import Database


def test_effect_outbox_and_processed_id_commit_together(tmp_path: Path) -> None:
    db = Database(tmp_path / "svc.sqlite3", "CREATE TABLE IF NOT EXISTS t (x INTEGER);")
    with db.transaction() as tx:
        assert not tx.is_processed("m1")
        tx.execute("INSERT INTO t VALUES (1)")
        tx.publish("orders", "order.valid.web", b"{}", message_id="o:valid",
                   content_type="application/json", type="t.v1", headers={"a": 1})
        tx.mark_processed("m1", "q")
    unsent = db.unsent()
    assert [(m.message_id, m.headers) for m in unsent] == [("o:valid", {"a": 1})]
    db.mark_sent(unsent[0].id)
    assert db.unsent() == []
    # The same file opened again (a restarted service) remembers the message.
    db.close()
    again = Database(tmp_path / "svc.sqlite3")
    with again.transaction() as tx:
        assert tx.is_processed("m1")


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    db = Database(tmp_path / "svc.sqlite3", "CREATE TABLE IF NOT EXISTS t (x INTEGER);")
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.execute("INSERT INTO t VALUES (1)")
        tx.publish("orders", "k", b"", message_id="m", content_type="", type="")
        tx.mark_processed("m1", "q")
        raise RuntimeError("crash before commit")
    assert db.query("SELECT * FROM t") == []
    assert db.unsent() == []
    with db.transaction() as tx:
        assert not tx.is_processed("m1")
