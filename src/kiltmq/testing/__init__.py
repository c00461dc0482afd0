"""Testing helpers for users of kiltmq (an embedded broker fixture, a fake clock)."""
