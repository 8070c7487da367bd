"""``context.transaction()``: the exactly-once path, where a job's own writes and its
completion commit in one transaction.

It writes the completion itself, beside the ``Completer``, on purpose: the completer batches
outcomes on a connection of its own and commits them apart from the handler, so a completion
sent through it could commit without the handler's writes, or they without it. Here the
completion is the store's ``complete_jobs`` (the statement the completer batches, fenced the
same way by worker and attempt) run on the handler's connection inside its transaction; the
completer is then only told the outcome is written (``completed_elsewhere``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from uuid import UUID

from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction

from pgqueue.errors import ClaimLost
from pgqueue.rows import ClaimedJob
from pgqueue.store import JobStore


class CompletingTransaction:
    """``context.transaction()``: the handler's writes commit together with the job's completion
    (result included) when handle() returns, and roll back if it raises or the claim was lost."""

    def __init__(self, store: JobStore, claimed: ClaimedJob, worker_id: UUID) -> None:
        self._store = store
        self._claimed = claimed
        self._worker_id = worker_id
        self._lent = contextlib.AsyncExitStack()
        self._connection: PoolConnectionProxy | None = None
        self._transaction: Transaction | None = None
        self.committed = False

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[PoolConnectionProxy]:
        if self._connection is not None:
            raise RuntimeError("context.transaction() can be opened once per attempt")
        self._connection = await self._lent.enter_async_context(self._store.lend_connection())
        self._transaction = self._connection.transaction()
        await self._transaction.start()
        yield self._connection  # an exception here reaches run(), which rolls back

    async def commit_with(self, result: str | None) -> None:
        if self._connection is None or self._transaction is None:
            return
        written = await self._store.complete_jobs(
            ids=[self._claimed.id],
            attempts=[self._claimed.attempt],
            results=[result],
            worker_id=self._worker_id,
            connection=self._connection,
        )
        if not written:
            raise ClaimLost(self._claimed.id)  # rolls the handler's writes back with it
        await self._transaction.commit()
        self.committed = True

    async def close(self) -> None:
        """Roll back unless committed, then give the connection back (reset: the handler may
        have left session state on it)."""
        if self._connection is None:
            return
        self._connection = None
        try:
            if not self.committed and self._transaction is not None:
                with contextlib.suppress(Exception):  # the connection may be gone already
                    await self._transaction.rollback()
        finally:
            await self._lent.aclose()
