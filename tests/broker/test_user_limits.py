"""Per-user limits kept with the user: through definitions (a later import without
limits keeps them, as RabbitMQ), a new password, and a restart, also for a user the
broker is configured with."""

from __future__ import annotations

from pathlib import Path

import pika
import pytest

from kiltmq.broker import Broker
from kiltmq.broker.admin import Admin, AdminError


def _user(name: str, **extra: object) -> dict[str, object]:
    return {"name": name, "password_hash": "", "tags": [], **extra}


def test_definitions_set_and_keep_user_limits() -> None:
    with Broker(port=0) as broker:
        admin = Admin(broker)
        broker.call_in_loop(lambda: admin.import_definitions(
            {"users": [_user("app", limits={"max-connections": 3})]}
        ))
        broker.call_in_loop(lambda: admin.import_definitions(
            {"users": [_user("app", limits={"max-channels": 9})]}
        ))
        broker.call_in_loop(lambda: admin.import_definitions({"users": [_user("app")]}))
        assert broker.call_in_loop(lambda: admin.user_limits("app")) == [
            ("app", {"max-connections": 3, "max-channels": 9})
        ]
        exported = broker.call_in_loop(admin.export_definitions)
        assert [u["limits"] for u in exported["users"] if u["name"] == "app"] == [
            {"max-connections": 3, "max-channels": 9}
        ]
        with pytest.raises(AdminError, match=r"user 'bad'.*max-queues"):
            broker.call_in_loop(lambda: admin.import_definitions(
                {"users": [_user("bad", limits={"max-queues": 1})]}
            ))


def test_a_configured_user_keeps_limits_set_at_run_time(tmp_path: Path) -> None:
    options = {"port": 0, "users": {"app": "pw"}, "loopback_users": (), "data_dir": tmp_path}
    with Broker(**options) as broker:  # type: ignore[arg-type]
        admin = Admin(broker)
        broker.call_in_loop(lambda: admin.set_user_limits("app", '{"max-connections": 0}'))
        broker.call_in_loop(lambda: admin.change_password("app", "pw"))
    with Broker(**options) as broker:  # type: ignore[arg-type]
        params = pika.ConnectionParameters(
            "127.0.0.1", broker.port, "/", pika.PlainCredentials("app", "pw"),
            connection_attempts=1, socket_timeout=10,
        )
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as refused:
            pika.BlockingConnection(params)
        assert "user connection limit (0) is reached" in str(refused.value)
