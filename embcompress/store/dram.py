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

A batch costs about its own rows, whatever the tier's size (a pass over the held rows each batch
took 0.1-0.4 s at 4M held rows). ``lru`` keeps its slots in a queue in the order of their last
use (``last_used`` is each slot's place in it; a slot used again is queued again, its old entry
left behind and dropped when the queue is compacted, about 12 bytes a held row in all), so the
least recently used are at its head. ``lfu`` keeps apart a set of its least counted slots
(``LOW_ROWS`` at least, found by one pass over the held rows when they run short) with the count
at or above which every other held row lies; counts only grow, so the least counted are among
those still at or under it.
"""

from __future__ import annotations

import numpy as np

POLICIES = ("frequency", "lru", "lfu")
LOW_ROWS = 1 << 14  # lfu: least counted slots kept apart at least (see the module docstring)


class DramTier:
    """``capacity`` row records of ``row_bytes`` for a table of ``n_rows`` rows."""

    def __init__(self, n_rows: int, row_bytes: int, capacity: int, policy: str):
        self.n_rows, self.row_bytes, self.capacity, self.policy = n_rows, row_bytes, capacity, policy
        self.data = np.zeros((capacity, row_bytes), dtype=np.uint8)
        self.slot_of = np.full(n_rows, -1, dtype=np.int32 if capacity < 2**31 else np.int64)
        self.row_of = np.full(capacity, -1, dtype=np.int64)
        self.n_used = 0
        self._n_held = 0  # (kept as rows come and go: stats() reads it, a count of row_of a pass)
        self.clock = 0
        # lru: each slot's place in the recency queue (``_queue[i]`` is the slot queued at place
        # ``_base + i``; an entry is live when the slot's last_used is its place); places from
        # ``_mark`` on were queued this batch.
        self.last_used = np.full(capacity, -1, dtype=np.int64) if policy == "lru" else None
        if policy == "lru":
            self._queue = np.empty(capacity + max(capacity // 2, 1024), dtype=np.int32 if capacity < 2**31 else np.int64)
            self._base = self._head = self._tail = self._mark = self._n_now = 0
        self.counts = np.zeros(n_rows, dtype=np.float64) if policy == "lfu" else None
        self._low, self._tau = None, np.inf  # lfu: least counted slots, and the count bounding the rest

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

    def seed_counts(self, frequencies: np.ndarray, rows: np.ndarray | None = None) -> None:
        """``lfu``: start every row's count at its given (mined) access count; others: nothing.
        ``rows``: the tier's row of each count (a reordered file's positions of original rows;
        the counts are kept by the rows the tier is asked for)."""
        if self.counts is not None:
            if rows is None:
                self.counts[:] = frequencies
            else:
                self.counts[rows] = frequencies
            self._low = None

    def note_access(self, rows: np.ndarray, counts: np.ndarray, slots: np.ndarray) -> None:
        """Record one batch's accesses (unique ``rows``, their ``counts`` and current ``slots``)."""
        self.clock += 1
        if self.policy == "lru":
            self._mark, self._n_now = self._base + self._tail, 0
            self._use(slots[slots >= 0])
        elif self.policy == "lfu":
            self.counts[rows] += counts

    # -- lru: the recency queue ----------------------------------------------------------------------
    def _use(self, slots: np.ndarray) -> None:
        """Queue ``slots`` (distinct) as used now."""
        n = len(slots)
        if self._tail + n > len(self._queue):
            self._compact(n)
        self._n_now += int(np.count_nonzero(self.last_used[slots] < self._mark))  # (first use this batch)
        self._queue[self._tail : self._tail + n] = slots
        self.last_used[slots] = self._base + self._tail + np.arange(n, dtype=np.int64)
        self._tail += n

    def _compact(self, room: int) -> None:
        """Drop the queue's dead entries (slots queued again since), leaving room for ``room`` more."""
        q = self._queue[self._head : self._tail].astype(np.int64)
        place = self._base + np.arange(self._head, self._tail, dtype=np.int64)
        live = self.last_used[q] == place
        q, place = q[live], place[live]
        size = max(len(self._queue), len(q) + room + max(self.capacity // 2, 1024))
        queue = np.empty(size, dtype=self._queue.dtype)
        queue[: len(q)] = q
        base = self._base + self._tail  # places only grow: no stale one can match a new entry
        self._mark = base + int(np.count_nonzero(place < self._mark))
        self.last_used[q] = base + np.arange(len(q), dtype=np.int64)
        self._queue, self._base, self._head, self._tail = queue, base, 0, len(q)

    def _least_recent(self, n: int) -> np.ndarray:
        """The ``n`` least recently used slots not used this batch (fewer if there are not so many),
        taken off the queue."""
        out, got = [], 0
        stop = min(self._tail, self._mark - self._base)  # (entries from the mark on are this batch's)
        while got < n and self._head < stop:
            end = min(stop, self._head + max(2 * (n - got), 1024))
            q = self._queue[self._head : end].astype(np.int64)
            live = np.flatnonzero(self.last_used[q] == self._base + self._head + np.arange(end - self._head))
            take = live[: n - got]
            out.append(q[take])
            got += len(take)
            self._head = self._head + int(take[-1]) + 1 if got == n and len(take) else end
        victims = np.concatenate(out) if out else np.zeros(0, np.int64)
        self.last_used[victims] = -1  # (queued again by the caller)
        return victims

    def admit(self, rows: np.ndarray, records: np.ndarray, counts: np.ndarray) -> None:
        """Offer missed ``rows`` (unique, not held; asked ``counts`` times) with their records."""
        if self.policy == "frequency" or len(rows) == 0:
            return
        free = self.capacity - self.n_used
        if self.policy == "lru":
            # Rows hit in this batch are the most recent and stay. A sequential LRU would keep the
            # batch's last-referenced rows; the rows asked most often in the batch stand in for them.
            take = min(len(rows), free + self.n_used - self._n_now)  # (held rows not used this batch)
            if take == 0:
                return
            if take < len(rows):
                pick = np.sort(np.argsort(-counts, kind="stable")[:take])
                rows, records = rows[pick], records[pick]
            n_free = min(free, take)
            slots = np.arange(self.n_used, self.n_used + n_free, dtype=np.int64)
            if take > n_free:
                victims = self._least_recent(take - n_free)
                slots = np.concatenate([slots, victims])
                rows, records = rows[: len(slots)], records[: len(slots)]
            self._place(rows, records, slots)
            self._use(slots)
            return
        # LFU: fill free slots with the most counted candidates, then swap while a candidate's
        # count beats the least counted held row's.
        order = np.argsort(-self.counts[rows], kind="stable")
        rows, records = rows[order], records[order]
        n_free = min(free, len(rows))
        if n_free:
            slots = np.arange(self.n_used, self.n_used + n_free, dtype=np.int64)
            self._place(rows[:n_free], records[:n_free], slots)
            if self._low is not None:  # (rows counted under the bound join the least counted)
                under = slots[self.counts[rows[:n_free]] <= self._tau]
                self._low = np.concatenate([self._low, under])
            rows, records = rows[n_free:], records[n_free:]
        if len(rows) == 0:
            return
        k = min(len(rows), self.n_used)
        victims, held_counts = self._least_counted(k)
        n = int(np.sum(self.counts[rows[: len(victims)]] > held_counts))
        if n:
            self._place(rows[:n], records[:n], victims[:n])

    def _least_counted(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``lfu``: the ``k`` held slots of the lowest counts, lowest first (ties: any), and their counts."""
        for _ in range(2):
            if self._low is None:
                n = self.n_used
                size = min(n, max(LOW_ROWS, 2 * k))
                if size == n:
                    self._low, self._tau = np.arange(n, dtype=np.int64), np.inf
                else:
                    counts = self.counts[self.row_of[:n]]
                    self._low = np.argpartition(counts, size - 1)[:size].astype(np.int64)
                    self._tau = float(counts[self._low].max())  # every other held row counts at least this
                    del counts
            low = self._low
            counts = self.counts[self.row_of[low]]
            under = counts <= self._tau
            if int(np.count_nonzero(under)) >= k or len(low) == self.n_used:
                break
            self._low = None  # too few left under the bound: find the least counted again
        low, counts = low[under], counts[under]
        if k < len(low):
            pick = np.argpartition(counts, k - 1)[:k]
            low, counts = low[pick], counts[pick]
        first = np.argsort(counts, kind="stable")
        return low[first], counts[first]

    def _place(self, rows: np.ndarray, records: np.ndarray, slots: np.ndarray) -> None:
        old = self.row_of[slots]
        self.slot_of[old[old >= 0]] = -1
        self._n_held += len(slots) - int(np.count_nonzero(old >= 0))
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
        self.n_used = self._n_held = 0
        self._low = None
        if self.last_used is not None:
            self.last_used[:] = -1
            self._base += self._tail + 1
            self._head = self._tail = self._n_now = 0
            self._mark = self._base

    def fill(self, rows: np.ndarray, records: np.ndarray) -> None:
        """Add ``rows`` (not held) in the slots after the last used one (a hot set loaded a chunk
        at a time after :meth:`clear`, so that its records are never all in memory twice)."""
        if len(rows):
            slots = np.arange(self.n_used, self.n_used + len(rows), dtype=np.int64)
            self._place(rows, records, slots)
            self._low = None
            if self.last_used is not None:
                self._use(slots)

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
        self._n_held -= len(leaving)
        if len(entering):
            # Empty slots below n_used first (just freed, or left by an earlier swap), then the rest.
            free = np.concatenate([np.flatnonzero(self.row_of[: self.n_used] < 0),
                                   np.arange(self.n_used, self.capacity, dtype=np.int64)])
            self._place(entering, records, free[: len(entering)].astype(np.int64))

    def replace(self, leaving: np.ndarray, entering: np.ndarray, records: np.ndarray) -> None:
        """Hold the rows ``entering`` (not held; with their ``records``) in place of the rows
        ``leaving``: a refresh that knows what changed, so no pass over the held rows (as
        :meth:`swap_hot` makes) is needed. Slots left over stay empty; more rows than the leaving
        ones free take the other empty slots."""
        slots = self.find(leaving)
        slots = slots[slots >= 0]
        self.slot_of[self.row_of[slots]] = -1
        self.row_of[slots] = -1
        self._n_held -= len(slots)
        if len(entering) > len(slots):  # (the rows leaving were not all held: any free slot)
            slots = np.concatenate([slots, np.flatnonzero(self.row_of[: self.n_used] < 0),
                                    np.arange(self.n_used, self.capacity, dtype=np.int64)])
            slots = np.unique(slots)  # (the freed ones are among the holes too)
        if len(entering):
            self._place(entering, records, slots[: len(entering)].astype(np.int64))

    def write_through(self, rows: np.ndarray, records: np.ndarray) -> None:
        """Replace the held copies of updated ``rows`` with their new records."""
        slots = self.find(rows)
        held = slots >= 0
        self.data[slots[held]] = records[held]

    @property
    def held_rows(self) -> np.ndarray:
        return self.row_of[: self.n_used][self.row_of[: self.n_used] >= 0]

    @property
    def n_held(self) -> int:
        """How many rows are held (``len(held_rows)``, without a pass over the slots)."""
        return self._n_held

