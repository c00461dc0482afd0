"""The tx class: publishes and settlements buffered (in
:class:`~kiltmq.broker.channel.state.Tx`) until tx.commit, dropped by tx.rollback."""

from __future__ import annotations

from kiltmq.broker.channel.publishing import Publishing
from kiltmq.broker.channel.settlement import Settlement
from kiltmq.broker.channel.state import Tx
from kiltmq.protocol import spec
from kiltmq.protocol.errors import PreconditionFailed

__all__ = ["Transactions"]


class Transactions(Publishing, Settlement):
    """tx.select, tx.commit and tx.rollback."""

    __slots__ = ()

    def tx_select(self, m: spec.TxSelect) -> None:
        if self.confirm:
            raise PreconditionFailed("PRECONDITION_FAILED - cannot switch from confirm to tx mode")
        if self.tx is None:
            self.tx = Tx()
        self.send(spec.TxSelectOk())

    def _next_tx(self) -> Tx:
        """The transaction so far, replaced by a new one; 406 if not in tx mode."""
        tx = self.tx
        if tx is None:
            raise PreconditionFailed("PRECONDITION_FAILED - channel is not transactional")
        self.tx = Tx()
        return tx

    def tx_commit(self, m: spec.TxCommit) -> None:
        tx = self._next_tx()
        for queues, message, mandatory in tx.publishes:
            live = tuple(q for q in queues if not q.deleted)
            self._enqueue(live, message, mandatory)
        for kind, records in tx.settles:
            self._settle(records, kind)
        store = self.vhost.store
        if store.defers_confirms and (tx.publishes or tx.settles):
            # commit-ok once the transaction's persistent messages and acks are on disk
            self._reply_after_commit(spec.TxCommitOk())
        else:
            self.send(spec.TxCommitOk())

    def tx_rollback(self, m: spec.TxRollback) -> None:
        tx = self._next_tx()
        if tx.settles:
            restored = dict(self.unacked)
            for _kind, records in tx.settles:
                restored.update(records)
            self.unacked = dict(sorted(restored.items()))
        self.send(spec.TxRollbackOk())
