"""Slowing password guessing without locking anyone out: the one writer of ``login_failures``.

Wrong passwords are counted per client address and per username. After ``free`` of them in a
row, each further attempt on that key waits ``base`` seconds, doubling per failure, capped at
``cap``: a guesser gets a few tries a minute, while the real user, whose right password is never
refused, waits at most ``cap`` seconds (and only for the username's count when signing in from
another address). A client trying many usernames is slowed by its address's count; one trying
one username from many addresses, by the username's. A key quiet for ``window`` starts again.

The counts live in the database, so every worker process of the app (and every restart) sees
the same ones: the review app's workers are separate processes, and a count kept in one of them
let a guesser spread attempts over the others. Each failure is one atomic upsert (no lost
increments between workers); rows quiet for longer than ``window`` are deleted as failures are
recorded, so a flood of made-up names does not grow the table without bound.

What stays per process is the cap on attempts *waiting at once* from one address (``enter`` /
``leave``): it stops one client from opening many parallel requests to dodge the delay, and
with N workers a client can have at most N x ``max_waiting`` waiting, each still delayed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, case, delete, select

from pipeline.store.schema import login_failures
from pipeline.store.upsert import dialect_insert

KEY_LENGTH = 200  # the column's width; a longer typed username is cut, not refused


def _keys(address: str, username: str) -> tuple[str, str]:
    return (
        f"address:{address}"[:KEY_LENGTH],
        f"user:{username.strip().lower()}"[:KEY_LENGTH],
    )


class LoginThrottle:
    """Delays before checking a password, from the failures recorded in ``engine``."""

    def __init__(
        self,
        engine: Engine,
        *,
        free: int = 3,
        base: float = 0.25,
        cap: float = 4.0,
        window: timedelta = timedelta(minutes=15),
        max_waiting: int = 3,
    ):
        self.engine = engine
        self.free = free
        self.base = base
        self.cap = cap
        self.window = window
        self.max_waiting = max_waiting
        self._waiting: dict[str, int] = {}

    def _delay(self, count: int) -> float:
        if count < self.free:
            return 0.0
        exponent = min(count - self.free, 32)  # 2**32 * base is past any cap already
        return min(self.cap, self.base * 2**exponent)

    def failures(self, address: str, username: str, now: datetime) -> tuple[int, int]:
        """The live counts of (the address, the username): 0 for a key quiet for ``window``."""
        keys = _keys(address, username)
        with self.engine.connect() as connection:
            rows = dict(
                connection.execute(
                    select(login_failures.c.key, login_failures.c.failures).where(
                        login_failures.c.key.in_(keys),
                        login_failures.c.last_failed_at > now - self.window,
                    )
                ).all()
            )
        return rows.get(keys[0], 0), rows.get(keys[1], 0)

    def delay(self, address: str, username: str, now: datetime) -> float:
        """Seconds the next attempt from ``address`` for ``username`` waits before it is checked."""
        return max(self._delay(n) for n in self.failures(address, username, now))

    def failed(self, address: str, username: str, now: datetime) -> None:
        """Count a wrong password against the address and the username (one transaction)."""
        quiet_since = now - self.window
        with self.engine.begin() as connection:
            connection.execute(
                delete(login_failures).where(login_failures.c.last_failed_at <= quiet_since)
            )
            for key in _keys(address, username):
                stmt = dialect_insert(connection, login_failures).values(
                    key=key, failures=1, last_failed_at=now
                )
                connection.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["key"],
                        set_={
                            # A key quiet for the window starts again at one.
                            "failures": case(
                                (login_failures.c.last_failed_at <= quiet_since, 1),
                                else_=login_failures.c.failures + 1,
                            ),
                            "last_failed_at": now,
                        },
                    )
                )

    def succeeded(self, username: str) -> None:
        """The right password: that username's count starts again (its address's does not, or a
        guesser with one account of their own could wipe their slate between guesses)."""
        with self.engine.begin() as connection:
            connection.execute(
                delete(login_failures).where(login_failures.c.key == _keys("", username)[1])
            )

    def enter(self, address: str) -> bool:
        """Start waiting out a delay for ``address``; False when ``max_waiting`` of its attempts
        already wait in this process (parallel guesses must not dodge the delay). Pair with
        ``leave``."""
        if self._waiting.get(address, 0) >= self.max_waiting:
            return False
        self._waiting[address] = self._waiting.get(address, 0) + 1
        return True

    def leave(self, address: str) -> None:
        left = self._waiting.get(address, 1) - 1
        if left > 0:
            self._waiting[address] = left
        else:
            self._waiting.pop(address, None)


__all__ = ["LoginThrottle"]
