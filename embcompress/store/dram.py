"""The DRAM tier: a fixed number of row records held in memory, and the policy that fills it.

Policies:

- ``frequency``: a static hot set, the rows with the most mined accesses (ties to the lower row),
  loaded by the warm-up and replaced only when asked: whole (:meth:`DramTier.set_hot`) or, for a
  refresh, by swapping in only the rows that enter it (:meth:`DramTier.swap_hot`). Misses are not
  admitted, so serving itself never writes the tier.
- ``lru``: missed rows are admitted, evicting the least recently used. Recency is kept per batch
  (all rows of a batch share one timestamp, which is what a batched server sees); rows hit in the
  batch are never evicted by its misses, and when the misses outnumber the room, the ones asked
  most often in the batch are admitted (a sequential LRU keeps the batch's last-referenced rows,
  and a row asked often is likely among them).
- ``lfu``: access counts are kept for every row seen (not only cached ones); a missed row replaces
  the cached row with the lowest count when its own count is higher. Counts given to the store
  (``frequencies``, mined access counts) are where they start (:meth:`DramTier.seed_counts`):
  started at zero, the first row missed once evicted a row the frequencies had loaded as hot.
  (float64: mined counts may be weights, not integers.)

The tier holds ``capacity`` records in one array, a slot index of 4 bytes per table row (not
counted in the budget) and the policy's per-slot or per-row counters. Callers serialize access.
"""

from __future__ import annotations

import numpy as np

POLICIES = ("frequency", "lru", "lfu")


class DramTier:
    """``capacity`` row records of ``row_bytes`` for a table of ``n_rows`` rows."""

    def __init__(self, n_rows: int, row_bytes: int, capacity: int, policy: str):
        self.n_rows, self.row_bytes, self.capacity, self.policy = n_rows, row_bytes, capacity, policy
        self.data = np.zeros((capacity, row_bytes), dtype=np.uint8)
        self.slot_of = np.full(n_rows, -1, dtype=np.int32 if capacity < 2**31 else np.int64)
        self.row_of = np.full(capacity, -1, dtype=np.int64)
        self.n_used = 0
        self.clock = 0
        self.last_used = np.zeros(capacity, dtype=np.int64) if policy == "lru" else None
        self.counts = np.zeros(n_rows, dtype=np.float64) if policy == "lfu" else None

    @property
    def admits(self) -> bool:
        """Whether serving admits missed rows (``lru``, ``lfu``); ``frequency`` only notes the clock."""
        return self.policy != "frequency"

    def find(self, rows: np.ndarray) -> np.ndarray:
        """Slot of each row (-1 when not held)."""
        return self.slot_of[rows].astype(np.int64, copy=False)

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(records, slots)``: the held record of each row, a copy, and its slot (-1 when not
        held; then the record is some other held row's, for the caller to replace). Needs at least
        one slot."""
        slots = self.slot_of[rows]
        return self.data.take(slots, axis=0, mode="clip"), slots

    def seed_counts(self, frequencies: np.ndarray) -> None:
        """``lfu``: start every row's count at its given (mined) access count; others: nothing."""
        if self.counts is not None:
            self.counts[:] = frequencies

    def note_access(self, rows: np.ndarray, counts: np.ndarray, slots: np.ndarray) -> None:
        """Record one batch's accesses (unique ``rows``, their ``counts`` and current ``slots``)."""
        self.clock += 1
        if self.policy == "lru":
            held = slots[slots >= 0]
            self.last_used[held] = self.clock
        elif self.policy == "lfu":
            self.counts[rows] += counts

    def admit(self, rows: np.ndarray, records: np.ndarray, counts: np.ndarray) -> None:
        """Offer missed ``rows`` (unique, not held; asked ``counts`` times) with their records."""
        if self.policy == "frequency" or len(rows) == 0:
            return
        free = self.capacity - self.n_used
        if self.policy == "lru":
            # Rows hit in this batch are the most recent and stay. A sequential LRU would keep the
            # batch's last-referenced rows; the rows asked most often in the batch stand in for them.
            old = np.flatnonzero(self.last_used[: self.n_used] < self.clock)
            take = min(len(rows), free + len(old))
            if take == 0:
                return
            if take < len(rows):
                pick = np.sort(np.argsort(-counts, kind="stable")[:take])
                rows, records = rows[pick], records[pick]
            n_free = min(free, take)
            slots = np.arange(self.n_used, self.n_used + n_free, dtype=np.int64)
            n_evict = take - n_free
            if n_evict:
                used = self.last_used[old]
                victims = old[np.argpartition(used, n_evict - 1)[:n_evict]] if n_evict < len(old) else old
                slots = np.concatenate([slots, victims.astype(np.int64)])
            self._place(rows, records, slots)
            self.last_used[slots] = self.clock
            return
        # LFU: fill free slots with the most counted candidates, then swap while a candidate's
        # count beats the least counted held row's.
        order = np.argsort(-self.counts[rows], kind="stable")
        rows, records = rows[order], records[order]
        n_free = min(free, len(rows))
        if n_free:
            self._place(rows[:n_free], records[:n_free], np.arange(self.n_used, self.n_used + n_free, dtype=np.int64))
            rows, records = rows[n_free:], records[n_free:]
        if len(rows) == 0:
            return
        held_counts = self.counts[self.row_of[: self.n_used]]
        k = min(len(rows), self.n_used)
        victims = np.argpartition(held_counts, k - 1)[:k] if k < self.n_used else np.arange(self.n_used)
        victims = victims[np.argsort(held_counts[victims], kind="stable")]
        n = int(np.sum(self.counts[rows[:k]] > held_counts[victims]))
        if n:
            self._place(rows[:n], records[:n], victims[:n].astype(np.int64))

    def _place(self, rows: np.ndarray, records: np.ndarray, slots: np.ndarray) -> None:
        old = self.row_of[slots]
        self.slot_of[old[old >= 0]] = -1
        self.data[slots] = records
        self.row_of[slots] = rows
        self.slot_of[rows] = slots
        self.n_used = max(self.n_used, int(slots.max()) + 1) if len(slots) else self.n_used

    def set_hot(self, rows: np.ndarray, records: np.ndarray) -> None:
        """Replace the whole content with ``rows`` (at most ``capacity``), e.g. a new hot set."""
        self.clear()
        self.fill(rows, records)

    def clear(self) -> None:
        """Hold nothing."""
        self.slot_of[self.row_of[: self.n_used]] = -1
        self.row_of[:] = -1
        self.n_used = 0
        if self.last_used is not None:
            self.last_used[:] = 0

    def fill(self, rows: np.ndarray, records: np.ndarray) -> None:
        """Add ``rows`` (not held) in the slots after the last used one (a hot set loaded a chunk
        at a time after :meth:`clear`, so that its records are never all in memory twice)."""
        if len(rows):
            slots = np.arange(self.n_used, self.n_used + len(rows), dtype=np.int64)
            self._place(rows, records, slots)
            if self.last_used is not None:
                self.last_used[slots] = self.clock

    def swap_hot(self, hot: np.ndarray, entering: np.ndarray, records: np.ndarray) -> None:
        """Make the content the rows ``hot`` (at most ``capacity``), given the records of ``entering``.

        ``entering`` are the rows of ``hot`` not held now (with their ``records``); rows held but
        not in ``hot`` leave, rows in both keep their slot and record. A refresh thus reads only
        what changed.
        """
        held = self.row_of[: self.n_used]
        leaving = np.flatnonzero((held >= 0) & ~np.isin(held, hot))
        gone = held[leaving]
        self.slot_of[gone] = -1
        self.row_of[leaving] = -1
        if len(entering):
            # Empty slots below n_used first (just freed, or left by an earlier swap), then the rest.
            free = np.concatenate([np.flatnonzero(self.row_of[: self.n_used] < 0),
                                   np.arange(self.n_used, self.capacity, dtype=np.int64)])
            self._place(entering, records, free[: len(entering)].astype(np.int64))

    def write_through(self, rows: np.ndarray, records: np.ndarray) -> None:
        """Replace the held copies of updated ``rows`` with their new records."""
        slots = self.find(rows)
        held = slots >= 0
        self.data[slots[held]] = records[held]

    @property
    def held_rows(self) -> np.ndarray:
        return self.row_of[: self.n_used][self.row_of[: self.n_used] >= 0]

