"""The frame capture methods of :class:`~kiltmq.testing.BrokerFixture` (see
:mod:`kiltmq.testing.frames`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kiltmq.testing.frames import FrameInfo, capture_of, conversation

if TYPE_CHECKING:
    from kiltmq.broker import Broker
    from kiltmq.testing.broker_loop import BrokerLoop

__all__ = ["FixtureFrames"]


class FixtureFrames:
    """Recording and reading the frames of the broker's connections."""

    broker: Broker
    vhost: str
    _loop: BrokerLoop

    def capture_frames(self) -> None:
        """Record every frame of the broker's connections from now on, both ways, until
        :meth:`stop_capture` (the plugin stops it after the test)."""
        capture = capture_of(self.broker)
        self._loop.call(capture.start)

    def carry_capture_over(self, old: Broker) -> None:
        """After a restart: if frames were recorded on ``old`` (stopped), record them
        on the fixture's new broker too, the old recordings first."""
        previous = capture_of(old)
        if not previous.active:
            return
        recordings = list(previous.recordings)
        previous.stop()  # takes its methods off the old, closed connections
        capture = capture_of(self.broker)

        def start() -> None:
            capture.recordings[:0] = recordings
            capture.start()

        self._loop.call(start)

    @property
    def capturing(self) -> bool:
        """Whether frames are being recorded."""
        return capture_of(self.broker).active

    def stop_capture(self) -> None:
        """Stop recording, and forget what was recorded."""
        capture = capture_of(self.broker)

        def stop() -> None:
            capture.stop()
            capture.recordings.clear()

        self._loop.call(stop)

    def frames(self, connection: str | None = None) -> list[FrameInfo]:
        """The recorded frames of ``connection`` (its client-given ``connection_name``
        or its "host:port"; None: every connection of this fixture's vhost), in order,
        after :meth:`capture_frames` (RuntimeError before)."""
        capture = capture_of(self.broker)

        def collect() -> list[FrameInfo]:
            if not capture.active:
                raise RuntimeError("no frames captured: call amqp_broker.capture_frames()")
            return [f for r in capture.find(connection, self.vhost) for f in r.frames]

        return self._loop.call(collect)

    def conversation(self, connection: str | None = None) -> str:
        """The recorded frames as text, a connection after the other (what a failed test's
        report shows)."""
        capture = capture_of(self.broker)
        return self._loop.call(lambda: conversation(capture.find(connection, self.vhost)))
