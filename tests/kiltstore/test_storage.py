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


def test_databases_of_the_previous_version_are_upgraded(tmp_path: Path) -> None:
    """Written before Return Addresses, order tokens and card masking: the outbox gains
    its columns and forgets sent bodies, web orders get a token and lose the card
    number, phone slips lose it too."""
    import json
    import sqlite3

    from kiltstore.config import Settings
    from kiltstore.services.phone import PhoneOrders
    from kiltstore.services.webstore import WebStore

    card = "4242424242424242"
    blob = f"X'{card.encode().hex()}'"
    old_outbox = (
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL,"
        " exchange TEXT NOT NULL, routing_key TEXT NOT NULL, body BLOB NOT NULL,"
        " content_type TEXT NOT NULL, type TEXT NOT NULL, headers TEXT NOT NULL,"
        " created_at REAL NOT NULL, sent_at REAL);"
        f"INSERT INTO outbox VALUES (1, 'web-1', 'intake', 'web', {blob}, 'a', 't', '{{}}',"
        " 1, 2);"
        f"INSERT INTO outbox VALUES (2, 'web-2', 'intake', 'web', {blob}, 'a', 't', '{{}}',"
        " 1, NULL);"
    )
    document = json.dumps({"order_number": 1, "card_number": card, "customer": {}})
    with sqlite3.connect(tmp_path / "webstore.sqlite3") as conn:
        conn.executescript(
            old_outbox + "CREATE TABLE orders (number INTEGER PRIMARY KEY AUTOINCREMENT,"
            " created TEXT NOT NULL, document TEXT NOT NULL, state TEXT NOT NULL,"
            " updated TEXT NOT NULL);"
        )
        conn.execute("INSERT INTO orders VALUES (1, 'c', ?, 'placed', 'u')", (document,))
    with sqlite3.connect(tmp_path / "phone.sqlite3") as conn:
        conn.executescript("CREATE TABLE slips (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                           " taken TEXT NOT NULL, text TEXT NOT NULL);")
        conn.execute("INSERT INTO slips VALUES (1, 't', ?)", (f"Card: {card}\n",))

    settings = Settings(data_dir=tmp_path)
    webstore = WebStore(settings)
    webstore.upgrade()
    unsent = webstore.db.unsent()
    assert [(m.message_id, m.body, m.reply_to) for m in unsent] == [("web-2", card.encode(), "")]
    sent = webstore.db.query_one("SELECT body FROM outbox WHERE id = 1")
    assert sent is not None and bytes(sent["body"]) == b""
    row = webstore.db.query_one("SELECT * FROM orders WHERE number = 1")
    assert row is not None and len(row["token"]) >= 20
    assert json.loads(row["document"])["card_last4"] == "4242"
    assert card not in row["document"]
    status = webstore.status(row["token"])
    assert status is not None and status["order_id"] == "web-1"
    phone = PhoneOrders(settings)
    phone.upgrade()
    slip = phone.db.query_one("SELECT text FROM slips")
    assert slip is not None and slip["text"] == "Card: …4242\n"
    webstore.db.close()
    phone.db.close()


def _blank_cards(folder: Path, *, secure_delete: bool | None = None) -> list[Path]:
    """Outbox bodies and rows holding a card number, then blanked and scrubbed; the
    files of the database that are left."""
    card = b"4242424242424242"
    db = Database(folder / "shop.sqlite3", "CREATE TABLE notes (text BLOB NOT NULL);")
    if secure_delete is not None:
        db.conn.execute(f"PRAGMA secure_delete={'ON' if secure_delete else 'OFF'}")
    for number in range(20):
        with db.transaction() as tx:
            tx.publish("intake", "web", b'{"card_number": "%s", "pad": "%s"}' % (
                card, b"x" * 3000), message_id=f"web-{number}", content_type="a", type="t")
            tx.execute("INSERT INTO notes VALUES (?)", (b"card " + card,))
    db.scrub()  # checkpointed into the database file while the number was there
    assert any(card in path.read_bytes() for path in folder.iterdir())
    for message in db.unsent():
        db.mark_sent(message.id)
    with db.transaction() as tx:
        tx.execute("DELETE FROM notes")
    db.scrub()
    setting = db.query_one("PRAGMA secure_delete")
    assert setting is not None and setting[0] == (secure_delete is not False)
    names = {path.name for path in folder.iterdir()}
    assert names == {"shop.sqlite3", "shop.sqlite3-wal", "shop.sqlite3-shm"}, names
    kept = [path for path in folder.iterdir() if card in path.read_bytes()]  # while open
    db.close()
    return kept


def test_a_blanked_card_number_leaves_no_copy_in_any_file(tmp_path: Path) -> None:
    """Sent, an outbox body is blanked, and neither the database file nor its write-ahead
    log (nor its index) keeps an old copy; nor does a row deleted and scrubbed."""
    assert _blank_cards(tmp_path) == []


def test_without_secure_delete_the_database_file_would_keep_it(tmp_path: Path) -> None:
    """Why :class:`Database` turns ``secure_delete`` on (some SQLite builds have it off by
    default): without it, the freed space of the database file keeps the old bytes."""
    assert [path.name for path in _blank_cards(tmp_path, secure_delete=False)] == [
        "shop.sqlite3"]
