"""TieredStore: a table file served from a DRAM tier of hot rows, with the file itself behind it.

For each batch the store finds the batch's unique rows, copies those held in DRAM, reads the rest
from the file (:mod:`.scm`: direct, block-aligned, batched reads), lets the DRAM policy admit what
it wants (or, for the ``frequency`` policy with ``refresh_every``, re-ranks the rows by their
mined plus served accesses when a refresh is due and swaps in the rows that enter), and hands the staged rows to the lookup kernel with the indices remapped to them. The
kernel never does I/O; the result is bit for bit what the kernel gives on the whole table, since
each bag still pools the same decoded rows in the same order.

Counters are kept on unique ids per batch (a row asked for twice in one batch is one access):
``hit_rate`` is the share served from a cache tier (DRAM is the only one, so it equals
``dram_hit_rate``); the SCM tier counts rows read, 4 KiB blocks read, bytes read and the read
amplification (bytes read / bytes of the records wanted) and the wall time of its reads
(``scm_seconds``). With a device model the store also accumulates the time that device would take
for the same reads (``device_seconds``), so a run can report what the device would sustain. Rows
read again after another store's or process's update (``rows_reloaded``) are device reads too:
their blocks, bytes, time and device time are in those counters (and their records in the read
amplification's denominator), though not in the hit rates, which stay on the batches' unique ids.
A refresh's reads are counted apart (``refresh_*``), except in ``device_seconds``.

Python threads may share a store. A lock guards the DRAM tier and the counters (held briefly, to
copy hits and to admit); file reads run outside it, under the shared side of a readers-writer
lock whose exclusive side updates and warm-ups take, so reads of several threads overlap and no
read sees a row while it is being written. A refresh reads its entering rows the same way and
swaps them in under the state lock; one runs at a time. The kernel runs outside both. Updates go through a
write-ahead journal (:mod:`.journal`) and replace the cached copies, so no lookup sees a torn row.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..container import PREFIX, PREFIX_SIZE, read_artifact
from ..errors import ArtifactError, ConfigError, MissingArtifactError, param_error
from ..kernels.unique import unique_ids
from . import journal, updlog
from .devices import DeviceModel, get_device
from .dram import POLICIES, DramTier
from .placement import ROW_ORDER, check_counts, invert, param_array, top_rows
from .scm import BLOCK, RowReader

_OWNER = "TieredStore"
_WARM_CHUNK = 1 << 16  # rows per read while loading, reloading or refreshing the hot set
# A refresh pairs the rows entering the hot set with its lowest ranked rows, kept apart at least
# this many at a time (found again by one pass over the hot set when they run short).
_LOW_ROWS = 1 << 14


def _table_identity(art) -> tuple:
    """What a whole-file rewrite by an update keeps of a table file (see ``journal.apply_update``):
    its config (format, shape, ...), the rows section's shape and the row order (its checksum).
    A table of another format or shape written over the path differs in it; a retrained table of
    the same format and shape does not (see ``TieredStore._is_this_table``)."""
    order = art.section(ROW_ORDER).crc32 if ROW_ORDER in art.section_names else None
    return json.dumps(art.config, sort_keys=True), tuple(art.section("rows").shape), order


class _FileLock:
    """Many readers or one writer, writers first (a waiting update is not starved by lookups)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    def shared(self) -> "_Shared":
        return _Shared(self)

    @contextmanager
    def exclusive(self):
        with self._cond:
            self._waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            except BaseException:  # interrupted (Ctrl-C): a writer left counted as waiting blocks every reader
                self._waiting -= 1
                self._cond.notify_all()
                raise
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class _Shared:
    """The shared side of a :class:`_FileLock` (an object, not a generator context manager: a
    lookup takes it once a batch, and the generator's machinery cost a few microseconds)."""

    __slots__ = ("lock",)

    def __init__(self, lock: _FileLock):
        self.lock = lock

    def __enter__(self) -> None:
        lock = self.lock
        with lock._cond:
            while lock._writer or lock._waiting:
                lock._cond.wait()
            lock._readers += 1

    def __exit__(self, *exc) -> None:
        lock = self.lock
        with lock._cond:
            lock._readers -= 1
            if not lock._readers and lock._waiting:  # (only a writer waits for the readers to go)
                lock._cond.notify_all()


class TieredStore:
    """Serve pooled lookups of a table file with ``dram_bytes`` of hot rows in memory.

    ``policy``: ``"frequency"`` (static hot set from ``frequencies``, the rows' mined access
    counts; the file's ``frequencies`` section when not given), ``"lru"`` or ``"lfu"`` (admitted
    and evicted online; ``frequencies``, if given, or the file's, seed the warm-up, and ``lfu``'s
    counts start from them: each ``warm_up`` sets them to its frequencies again).

    ``refresh_every`` (``frequency`` only): every that many batches the store refreshes the hot
    set itself, from ``frequencies`` plus the accesses it has served since (per row, a row asked
    twice in a batch counts twice, the unit of mined counts); only the rows that enter the set are
    read. ``None`` (default) keeps the set static until ``warm_up(new_frequencies)``.
    ``half_life`` (with ``refresh_every``): served accesses lose half their weight every that
    many batches, and so does the prior; ``None`` weighs all alike. The refresh runs on the lookup
    that makes it due and ranks only the hot set and the rows served since the last refresh (the
    result equals ranking every row, see ``_set_score``); its reads are counted apart from the
    lookups' (``refreshes``, ``refresh_rows``, ``refresh_blocks``, ``refresh_seconds``). It keeps
    a float64 score and a flag a table row, outside the budget like the slot index.

    ``device``: a
    :class:`~embcompress.store.devices.DeviceModel` or a name (``"nand"``, ``"3dxp"``) whose read
    time is accumulated for the file reads. Row ids are the table's original ids, also for a file
    written by :func:`~embcompress.store.reorder_rows`.

    ``table_file`` may be any name of the table (a symlink, a relative path): the store serves the
    file it names at open (``path`` is its real path, symlinks resolved), and its updates, journal
    and update log are shared with stores and writers reaching the table through any other name.
    A table left with an interrupted update's journal is finished on open; where this process
    cannot write it, the store refuses it with an ArtifactError naming the fix (as ``open_table``).
    """

    def __init__(self, table_file, *, dram_bytes: int, policy: str = "frequency", frequencies=None,
                 device: DeviceModel | str | None = None, direct_io: bool = True, max_in_flight: int = 8,
                 refresh_every: int | None = None, half_life: float | None = None):
        from ..table import QuantizedTable

        if not isinstance(table_file, (str, os.PathLike)):  # (else Path() raised a raw TypeError)
            raise param_error("table_file", _OWNER, "be a path (str or os.PathLike) to a table file", table_file)
        if policy not in POLICIES:
            raise param_error("policy", _OWNER, f"be one of {POLICIES}", policy)
        if not isinstance(direct_io, (bool, np.bool_)):  # ("no" or "false" is truthy: O_DIRECT silently)
            raise param_error("direct_io", _OWNER, "be a bool", direct_io)
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise param_error("max_in_flight", _OWNER, "be a positive int", max_in_flight)
        if refresh_every is not None:
            if isinstance(refresh_every, bool) or not isinstance(refresh_every, (int, np.integer)) or refresh_every < 1:
                raise param_error("refresh_every", _OWNER, "be a positive int number of batches or None", refresh_every)
            if policy != "frequency":
                raise param_error("refresh_every", _OWNER, f"be None for policy={policy!r} (it refreshes the "
                                  "frequency policy's hot set; lru and lfu admit rows online)", refresh_every)
        if half_life is not None:
            if (isinstance(half_life, bool) or not isinstance(half_life, (int, float, np.integer, np.floating))
                    or not math.isfinite(half_life) or half_life <= 0):
                raise param_error("half_life", _OWNER, "be a positive finite number of batches or None", half_life)
            if refresh_every is None:
                raise param_error("half_life", _OWNER, "be None unless refresh_every is set (it weighs the "
                                  "served accesses a refresh ranks rows by)", half_life)
        if not Path(table_file).exists():
            raise MissingArtifactError(f"No table file at {str(table_file)!r}: the file does not exist. Check the path.")
        # The table's real path (symlinks resolved, absolute): its journal and update log are named
        # from it, so stores and writers reaching one table through several names share them; and
        # the store keeps serving the file it opened if the name is later pointed elsewhere.
        self.path = updlog.real_path(table_file)
        # Finish an update a crash interrupted; refused, with the fix named, where it cannot be
        # (a table or folder this process may not write): its rows may be half written. A store
        # already serving the table serves on instead (see _sync_updates).
        journal.replay_before_open(self.path)
        art = read_artifact(self.path, kind="table")
        sec = art.section("rows")
        self._identity = _table_identity(art)
        cfg = art.config
        try:
            n_rows, dim = cfg["shape"]
            if isinstance(cfg["shape"], str) or not all(type(v) is int for v in (n_rows, dim)):
                raise ValueError(f"its shape {cfg['shape']!r} is not two ints")  # (JSON ints, not bools or floats)
            proto = QuantizedTable(np.zeros((0, sec.shape[1] if len(sec.shape) == 2 else 0), np.uint8), cfg["format"],
                                   (0, dim), block_size=cfg.get("block_size"), scale_mode=cfg.get("scale_mode", "floor"))
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ArtifactError(f"The table file {str(self.path)!r} has an inconsistent header ({exc}). Re-create it.") from None
        if sec.shape != (n_rows, proto.row_bytes) or sec.dtype != np.uint8:
            raise ArtifactError(
                f"The 'rows' section of {str(self.path)!r} is {sec.dtype} {sec.shape}, not uint8 "
                f"{(n_rows, proto.row_bytes)} as its config says. Re-create the table."
            )
        self.fmt, self.shape, self.block_size, self.scale_mode = proto.fmt, (n_rows, dim), proto.block_size, proto.scale_mode
        self.spec, self.row_bytes = proto.spec, proto.row_bytes
        # what the file records of how it was made (export: the bag's mode and include_last_offset,
        # which MXEmbeddingBag over this store serves with, as over the opened file)
        self.inputs = dict(art.inputs) if isinstance(art.inputs, dict) else {}
        table_bytes = n_rows * self.row_bytes
        if isinstance(dram_bytes, bool) or not isinstance(dram_bytes, (int, np.integer)):
            raise param_error("dram_bytes", _OWNER, "be an int number of bytes", dram_bytes)
        if dram_bytes < self.row_bytes:
            raise param_error("dram_bytes", _OWNER, f"hold at least one row ({self.row_bytes} bytes)", int(dram_bytes))
        if dram_bytes > table_bytes:
            raise param_error(
                "dram_bytes", _OWNER,
                f"be at most the table's {table_bytes} bytes (a larger budget has nothing to hold; "
                f"for an all-DRAM table use embcompress.open_table)", int(dram_bytes),
            )
        self.dram_bytes = int(dram_bytes)
        self.policy = policy
        self.device = None if device is None else get_device(device, _OWNER)
        # Original row id -> position in the file (identity unless the file was reordered). The
        # section is read, checked and inverted, not kept: a view of it kept the file mapped (and
        # open) after close(), and kept a file an update replaced whole taking its disk space.
        order = np.asarray(art.array(ROW_ORDER), dtype=np.int64) if ROW_ORDER in art.section_names else None
        self._reordered = order is not None
        self._pos = None if order is None or order.shape != (n_rows,) else invert(order, check=True)
        if order is not None and self._pos is None:
            raise ArtifactError(f"The 'row_order' section of {str(self.path)!r} is not a permutation of its "
                                f"{n_rows} rows: the file is corrupted. Re-create it with reorder_rows.")
        del order
        from_file = frequencies is None and "frequencies" in art.section_names
        if from_file:
            frequencies = self._file_frequencies(art)
        if frequencies is not None:
            try:
                frequencies = check_counts(frequencies, n_rows, _OWNER)
            except ConfigError:
                if not from_file:
                    raise
                # (a header-only open reads no section's data: damage there shows here first)
                raise ArtifactError(
                    f"The frequencies section of {str(self.path)!r} holds negative or non-finite counts: the file "
                    f"is corrupted. Check it with `embcompress verify`, and restore it from a good copy or re-create "
                    f"it (or pass frequencies= to rank the hot set by other counts).") from None
        elif policy == "frequency":
            raise param_error("frequencies", _OWNER, "be given for policy='frequency' (the file holds none); "
                              "pass mined access counts or use policy='lru'", None)
        # Kept for warm_up() only where it needs them: not the file's (read again when it does: a
        # copy kept took 8 bytes a table row beside the budget), nor a refreshing store's prior
        # (its score starts from it).
        self._has_freq = frequencies is not None
        self._freq_in_file = from_file
        self._freq = frequencies if not from_file and refresh_every is None else None
        self._refresh_every = None if refresh_every is None else int(refresh_every)
        self.half_life = None if half_life is None else float(half_life)
        self._decay = 1.0 if half_life is None else 0.5 ** (1.0 / self.half_life)
        self._refreshing = False
        self._warm_ups = 0  # a refresh ranked before a warm-up does not swap after it (see _refresh)
        self._set_score(frequencies)
        self._dram = DramTier(n_rows, self.row_bytes, self.dram_bytes // self.row_bytes, policy)
        self._reader = RowReader(self.path, sec.offset, self.row_bytes, n_rows, direct=direct_io, max_in_flight=max_in_flight)
        self._direct_io, self._max_in_flight = direct_io, max_in_flight
        with self._reader.locked():  # (not while a writer appends: its place is a record's end)
            self._log = updlog.LogCursor(self.path)  # updates through other stores, from now on
        self._lock = threading.RLock()  # DRAM tier and counters
        self._file = _FileLock()  # lookups read the file shared; updates and warm-ups exclusive
        self._warm = False
        self._gen = 0  # updates served (their DRAM copies replaced): a batch's copies are of one
        self._closed = False
        self.reset_stats()

    # -- row source interface (what embcompress.nn.MXEmbeddingBag takes) ---------------------------
    @property
    def direct_io(self) -> bool:
        """Whether the file is read with O_DIRECT (False where the file system refuses it)."""
        return self._reader.direct

    @property
    def id_map(self):
        """The file's id map (raw ids -> the original row numbers this store serves), or None."""
        if not hasattr(self, "_id_map"):
            from ..idmap import IdMap
            from ..tablefile import open_table

            with read_artifact(self.path, kind="table") as art:  # (read on first use, from the file now at the path)
                if not self._closed and not self._is_this_table(art):
                    raise ArtifactError(
                        f"TieredStore.id_map reads the id map of the table file {str(self.path)!r}, which was "
                        f"replaced by another table since the store opened it (its map may send ids to other rows). "
                        f"Open a new TieredStore on the file to serve the new table by raw ids.")
            m = open_table(self.path).id_map
            if m is not None and self._reordered:
                with read_artifact(self.path, kind="table") as art:  # (the store keeps only its inverse)
                    order = art.array(ROW_ORDER)
                    m = IdMap.from_arrays(m.ids, order[m.rows], self.shape[0], fallback_rows=order[m.fallback_rows],
                                          seed=m.seed, config=m.config, inputs=m.inputs, meta=m.meta)
                    del order  # (a view of the mapping: it goes with the artifact)
            elif m is not None:
                # The file's map is a view of its mapping: a copy, so the store holds nothing of the
                # file after close() (the copy is of its arrays; nothing is built again).
                p = m.parts()
                kept = IdMap.from_parts(self.shape[0], *(np.array(p[k]) for k in ("keys", "vals", "fallback")),
                                        p["params"], where=f"of {str(self.path)!r}")
                kept.config, kept.inputs, kept.meta = m.config, m.inputs, m.meta
                m = kept
            self._id_map = m
        return self._id_map

    def _is_this_table(self, art) -> bool:
        """Whether ``art``, the file now at the path, is the table this store serves: the file its
        reader reads, or a file that updates rewrote whole from it (each rewrite records the file
        it replaced: ``journal.REWRITTEN_FROM``). Any other file is another table written over
        the path, even one of the same format and shape (a retrained table)."""
        if _table_identity(art) != self._identity:
            return False
        held = self._reader.file_id
        if os.fstat(art._fd).st_ino == held:
            return True
        # The file the reader reads was replaced, so nothing writes it any more: its header is final.
        mine = [held, PREFIX.unpack(self._reader.head(PREFIX_SIZE))[5]]
        kept = art.meta.get(journal.REWRITTEN_FROM)
        return isinstance(kept, list) and mine in kept

    def _check_open(self, where: str) -> None:
        if self._closed:
            raise ConfigError(f"{where}: the TieredStore over {self.path} is closed (its file and DRAM tier are "
                              f"released). Open a new TieredStore on the file to serve it again.")

    def _positions(self, rows: np.ndarray) -> np.ndarray:
        return rows if self._pos is None else self._pos[rows]

    def _read_chunks(self, positions: np.ndarray):
        """``(rows, records, blocks read, seconds)`` of ``positions`` read from the file
        ``_WARM_CHUNK`` rows at a time: one read's buffer holds every block it touches, for
        scattered rows about the table's size, so the hot set's loads, refreshes and reloads read
        in chunks."""
        for a in range(0, len(positions), _WARM_CHUNK):
            rows = positions[a : a + _WARM_CHUNK]
            t0 = time.perf_counter()
            records, n_blocks = self._reader.read(rows)
            yield rows, records, n_blocks, time.perf_counter() - t0

    def _file_frequencies(self, art) -> np.ndarray:
        """The file's frequencies section by original row: a view of the mapping (a copy for a
        reordered file). Callers check, rank or copy it and do not keep it: a view kept kept the
        file mapped after close(). (A copy to be checked, then another to be ranked, took 16 bytes
        a table row beside the tier's index at open and warm-up: 640 MB for 40M rows.)"""
        f = art.array("frequencies")  # one entry a stored row
        return f if self._pos is None else f[self._pos]  # to original row numbers

    @property
    def refresh_every(self) -> int | None:
        """Batches between the store's own refreshes of the hot set (None: static)."""
        return self._refresh_every

    def _set_score(self, frequencies) -> None:
        # Refresh ranking: the prior plus the served accesses. Decay is kept as a growing gain on
        # new accesses (rescaled when large) instead of multiplying every row's score each batch,
        # so scores only grow between refreshes. Hence a row neither in the last ranking's top nor
        # touched since still has at least that top above it: a refresh ranks only the last top
        # and the rows touched since, not the whole table.
        on = self._refresh_every is not None
        self._score = np.array(frequencies, dtype=np.float64) if on else None
        self._gain = 1.0
        self._since_refresh = 0
        self._hot = np.zeros(0, np.int64)  # original rows of the last ranking's top (set by warm_up), any order
        self._touched = []  # original rows first touched since that ranking
        self._is_touched = np.zeros(self.shape[0] if on else 0, dtype=bool)
        self._tier_is_hot = False  # whether the DRAM tier holds exactly the rows of _hot
        self._low = None  # indices into _hot holding its lowest ranked rows (see _rank_entering)
        self._tau = (math.inf, -1)

    def _note_served(self, rows: np.ndarray, counts: np.ndarray):
        """Add a batch's accesses to the refresh score; the new hot set when a refresh is due.

        Under ``self._lock``. Returns ``(hot, leaving, entering)`` file positions and the warm-ups
        made so far, or None.
        """
        # Rescale before the gain passes 1e150, not after: for a half-life of a small fraction of a
        # batch 1 / decay alone overflows (or decay is 0.0), so the decay is folded into the scores.
        if self._gain > 1e150 * self._decay:
            self._score *= self._decay / self._gain
            self._gain = 1.0
            self._low = None  # (every score scaled: the threshold of the low rows is stale)
        else:
            self._gain /= self._decay
        self._score[rows] += counts * self._gain
        new = rows[~self._is_touched[rows]]
        self._is_touched[new] = True
        self._touched.append(new)
        self._since_refresh += 1
        if self._since_refresh < self._refresh_every or self._refreshing:
            return None
        self._since_refresh = 0
        self._refreshing = True
        touched = np.concatenate(self._touched)
        self._is_touched[touched] = False
        self._touched = []
        if self._tier_is_hot and len(self._hot) == min(self._dram.capacity, self.shape[0]):
            # The tier holds the last top: only the rows touched since can enter it, and only its
            # lowest ranked rows can leave, so the refresh costs the batch's rows, not the tier's.
            leaving, entering = self._rank_entering(touched[self._dram.find(self._positions(touched)) < 0])
            self._tier_is_hot = False  # until the swap is made
            return None, self._positions(leaving), self._positions(entering), self._warm_ups
        # Against the last top, not the tier: a refresh whose read failed ranked but did not swap.
        fresh = touched[~np.isin(touched, self._hot, assume_unique=True)]
        self._hot = top_rows(self._score, self._dram.capacity, rows=np.concatenate([self._hot, fresh]))
        self._low = None
        self._tier_is_hot = False
        hot = self._positions(self._hot)
        return hot, None, np.sort(hot[self._dram.find(hot) < 0]), self._warm_ups

    def _rank_entering(self, fresh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of the last top that leave and the rows of ``fresh`` (not in it) that enter it:
        the top of the last top and ``fresh`` by score, ties to the lower row, as ``top_rows``
        ranks. ``_hot`` is updated in place (an entering row takes a leaving row's index).

        A row enters only by beating a row of the top: the best of ``fresh`` are paired with the
        lowest of the top, worst first. The lowest are kept apart (``_low``, indices into
        ``_hot``, found by one pass over the top when needed) with their threshold ``_tau``: every
        other row of the top ranks above it, and scores only grow between refreshes (a decay's
        rescale, which scales them all, drops ``_low``), so the ``_low`` rows still at or under
        ``_tau`` are the lowest of the top. A refresh looks at those only, and builds ``_low`` again
        when they run short.
        """
        none = np.zeros(0, np.int64)
        if len(fresh) == 0:
            return none, none
        fs = self._score[fresh]
        best = np.lexsort((fresh, -fs))  # best first: score down, row up
        fresh, fs = fresh[best], fs[best]
        for _ in range(2):
            if self._low is None:
                self._build_low(len(fresh))
            low = self._low
            lr = self._hot[low]
            ls = self._score[lr]
            ts, tr = self._tau
            under = (ls < ts) | ((ls == ts) & (lr >= tr))
            low, lr, ls = low[under], lr[under], ls[under]
            k = min(len(fresh), len(low))
            if k < len(low):  # only the k lowest can leave: a partition, then a sort of those
                cut = np.partition(ls, k - 1)[k - 1]
                keep = ls <= cut
                low, lr, ls = low[keep], lr[keep], ls[keep]
            worst = np.lexsort((-lr, ls))[:k]  # worst first: score up, row down
            low, lr, ls = low[worst], lr[worst], ls[worst]
            beats = (fs[:k] > ls) | ((fs[:k] == ls) & (fresh[:k] < lr))
            n = int(beats.sum())  # (a prefix: fresh only gets worse and the top's rows only better)
            if n < k or n == len(fresh) or len(self._low) == len(self._hot):
                self._hot[low[:n]] = fresh[:n]
                return lr[:n], fresh[:n]
            self._low = None  # every low row left: the next-lowest are not among them
        raise AssertionError("unreachable: _low holds the whole top or enough rows after a rebuild")

    def _build_low(self, need: int) -> None:
        """``_low``: the indices of the lowest ``max(_LOW_ROWS, 2 * need)`` rows of ``_hot`` (all of it
        if it has no more), and ``_tau`` the (score, row) of the highest of them (see
        :meth:`_rank_entering`). One pass over the top."""
        n = len(self._hot)
        k = min(n, max(_LOW_ROWS, 2 * need))
        if k == n:
            self._low, self._tau = np.arange(n, dtype=np.int64), (math.inf, -1)
            return
        s = self._score[self._hot]
        kth = np.partition(s, k - 1)[k - 1]
        below, tied = np.flatnonzero(s < kth), np.flatnonzero(s == kth)
        del s
        take = k - len(below)  # of the rows tied at kth, the highest rows rank lowest
        rows = self._hot[tied]
        if take < len(tied):
            pick = np.argpartition(-rows, take - 1)[:take]
            tied, rows = tied[pick], rows[pick]
        self._low = np.concatenate([below, tied])
        self._tau = (float(kth), int(rows.min()))

    def _refresh(self, hot: np.ndarray | None, leaving: np.ndarray | None, entering: np.ndarray,
                 warm_ups: int) -> None:
        """Swap the rows ``entering`` the hot set in (under the shared file lock, not the state lock):
        in place of the rows ``leaving`` it, or (``hot`` given) of every held row not in ``hot``.
        Nothing is swapped when a warm-up came after the ranking (``warm_ups`` made before it)."""
        try:
            records = np.empty((len(entering), self.row_bytes), dtype=np.uint8)
            n_blocks, read_s, a = 0, 0.0, 0
            for rows, chunk, n, secs in self._read_chunks(entering):
                records[a : a + len(rows)] = chunk
                a, n_blocks, read_s = a + len(rows), n_blocks + n, read_s + secs
            with self._lock:
                if warm_ups != self._warm_ups:
                    # A batch served from DRAM ranks a refresh before it takes the file lock, so a
                    # warm-up may have loaded a new set since: this ranking's rows may be held or
                    # find no room now, and the warm-up's set is the newer one.
                    return
                if hot is None:
                    self._dram.replace(leaving, entering, records)
                else:
                    self._dram.swap_hot(hot, entering, records)
                self._tier_is_hot = True
                c = self._c
                c["refreshes"] += 1
                c["refresh_rows"] += len(entering)
                c["refresh_blocks"] += n_blocks
                c["refresh_seconds"] += read_s
                self._count_device_reads(entering)
        finally:
            with self._lock:
                self._refreshing = False

    def warm_up(self, frequencies=None) -> int:
        """Load the hot set (the top rows by frequency) into DRAM; returns the rows loaded.

        New ``frequencies`` replace the old ones (a refresh of the static hot set; with
        ``refresh_every`` they also become the prior the served accesses are added to, and without
        new ones the set is the top by that prior plus what was served). Without any frequencies
        (LRU/LFU not seeded) there is nothing to load. LFU's counts are set to the frequencies
        (what it counted since is dropped with the rows it had admitted).
        """
        with self._file.exclusive(), self._lock:
            self._check_open("TieredStore.warm_up")
            if frequencies is not None:
                f = check_counts(frequencies, self.shape[0], "TieredStore.warm_up")
                self._set_score(f)
                self._freq = f if self._score is None else None  # (a refreshing store ranks by its score)
                self._has_freq, self._freq_in_file = True, False
            self._warm_ups += 1  # (after the checks: a refused warm-up changes nothing)
            self._warm = True
            if not self._has_freq:
                return 0
            if self._score is not None:
                rank = self._score
            elif self._freq is not None:
                rank = self._freq
            else:
                with read_artifact(self.path, kind="table") as art:
                    if not self._is_this_table(art) or "frequencies" not in art.section_names:
                        raise ArtifactError(
                            f"TieredStore.warm_up ranks the hot set by the frequencies of the table file "
                            f"{str(self.path)!r}, which was replaced by another table since the store opened "
                            f"it. Pass frequencies= to warm_up, or open a new TieredStore on the file.")
                    rank = self._file_frequencies(art)
            hot = top_rows(rank, self._dram.capacity)
            # (lfu: counts start from the frequencies, not from zero; the tier counts by file
            # position, the frequencies are by original row)
            self._dram.seed_counts(rank, self._pos)
            del rank
            if self._score is not None:  # the ranking refreshes start from
                self._hot = hot
                self._low = None
                self._is_touched[:] = False
                self._touched = []
            pos = np.sort(self._positions(hot))
            # A chunk at a time into the tier's slots: reading the whole set first took its size
            # again beside the tier (three times, with the reads' own copies). A read that fails
            # leaves part of the set loaded: every row held is the file's (a refresh, or the next
            # warm-up, loads the rest).
            self._tier_is_hot = False
            self._dram.clear()
            for rows, records, _, _ in self._read_chunks(pos):
                self._dram.fill(rows, records)
            self._tier_is_hot = True
            return len(pos)

    def _sync_updates(self) -> None:
        """Read again the held rows that updates through other stores changed (see ``updlog``)."""
        if not self._log.changed():  # (stale reads of a batch are caught under the locks: see _stage_once)
            return
        with self._file.exclusive(), self._lock:
            self._check_open("TieredStore lookup")
            # A writer killed midway (its rows logged, some written) left its journal: finish the
            # update, as opening the file would, rather than serve a mix of its old and new rows.
            try:
                journal.replay(self.path)
            except OSError:  # a server that may only read the table (or a full disk): serve it as it is
                pass
            with self._current_file_locked() as current:  # no update midway while the log and the rows are read
                changed = self._log.read()
                if not current:  # the updates of another table written over the path: none of ours
                    changed = np.zeros(0, np.int64)
                if changed is None:  # a new log, or one that cannot be parsed: every held row
                    held = np.sort(self._dram.held_rows)
                else:
                    changed = changed[(changed >= 0) & (changed < self.shape[0])]
                    held = changed[self._dram.find(changed) >= 0]
                # Real reads of the device: counted with the lookups' (blocks, bytes, time, the
                # device model's), though not as lookups' misses (hit rates stay per batch). A
                # chunk at a time: one read of every held row took a buffer of every block they
                # lie in, for scattered rows about the table's size.
                for rows, records, n_blocks, read_s in self._read_chunks(held):
                    self._c["scm_seconds"] += read_s
                    self._c["blocks_read"] += n_blocks
                    self._count_device_reads(rows)
                    self._dram.write_through(rows, records)
                self._gen += 1  # batches that copied DRAM rows before this copy them again
            self._c["rows_reloaded"] += len(held)

    @contextmanager
    def _current_file_locked(self):
        """The reader on the file now at the path, holding its shared flock; yields True. Where
        another table was written over the path, the reader stays on the file the store opened,
        whose rows nothing changes any more, and it yields False."""
        while True:
            at_path = self._path_inode()
            if at_path != self._reader.file_id and (at_path is None or not self._reopen_reader()):
                with self._reader.locked():  # (removed, or another table: the store serves its own)
                    yield False
                    return
            with self._reader.locked():
                # Looked at again under the lock: a rewrite between the look above and the lock
                # renamed a new file over the path, whose rows (logged) would be reloaded from the
                # replaced one. No rewrite passes the shared lock once it is held.
                if self._path_inode() == self._reader.file_id:
                    yield True
                    return

    def _path_inode(self) -> int | None:
        """The inode of the file now at the path; None when there is none (removed or moved)."""
        try:
            return os.stat(self.path).st_ino
        except FileNotFoundError:
            return None

    def _reopen_reader(self) -> bool:
        """A reader on the file now at the path (an update may have rewritten it whole); False, and
        the reader left as it is, where the file there is another table (see :meth:`_check_table`)."""
        try:
            art = read_artifact(self.path, kind="table")
        except ArtifactError:  # no table there (another kind, damaged, removed): not this store's
            return False
        if not self._is_this_table(art):
            return False
        sec = art.section("rows")
        self._reader.close()
        measured = self._reader.read_seconds  # the same device: keep choosing as measured
        self._reader = RowReader(self.path, sec.offset, self.row_bytes, self.shape[0],
                                 direct=self._direct_io, max_in_flight=self._max_in_flight)
        self._reader.read_seconds = measured
        return True

    def _check_table(self, art) -> None:
        """Refuse to update ``art``, the file now at the path, unless it is this store's table (an
        update may have rewritten it whole): another table written over the path (a new export
        with write_table) got this table's records, of another format or row, with its checksum
        made to match."""
        if not self._is_this_table(art):
            cfg = art.config
            raise ArtifactError(
                f"The table file {str(self.path)!r} was replaced by another table (format "
                f"{cfg.get('format')!r}, shape {cfg.get('shape')}) since this TieredStore opened it: the store "
                f"serves the table it opened, which can no longer be updated through that path. Open a new "
                f"TieredStore on the file to serve and update the new table."
            )

    def _stage(self, rows: np.ndarray, counts: np.ndarray, n_lookups: int) -> np.ndarray:
        """Row records of unique original ``rows`` (int64, asked ``counts`` times), through the tiers."""
        pos = self._positions(rows)
        if not self._warm:
            self.warm_up()
        while True:
            staged = self._stage_once(rows, counts, n_lookups, pos)
            if staged is not None:
                return staged
            self._sync_updates()  # another store's or process's update came: take it in, stage again

    def _stage_once(self, rows: np.ndarray, counts: np.ndarray, n_lookups: int, pos: np.ndarray) -> np.ndarray | None:
        """:meth:`_stage` once; None when another store's or process's update landed between its
        DRAM copies and its file reads (it would have served that update's rows half old, half new),
        or before its DRAM copies were recorded: the caller takes the update in and stages again.

        The update log is looked at once a batch (a ``stat`` or ``fstat``: it was twice for a batch
        that reads the file), after the DRAM copies: under the state lock for a batch served from
        DRAM, under the reader's lock for one that reads."""
        refresh = None
        with self._lock:  # DRAM hits, copied out at once
            self._check_open("TieredStore lookup")
            gen = self._gen
            # Every row's slot gathered in one pass, a missed row's (-1) clipped to slot 0: its
            # record is replaced by the file's below (a mask, a gather and a masked copy took 2-3x
            # as long: 0.34 ms for 7,835 rows, most of a 256-bag call served from DRAM).
            staged, slots = self._dram.gather(pos)
            lack = slots < 0
            all_in_dram = not lack.any()
            if all_in_dram:
                if self._log.changed():  # (an update logged before this look is in no copy served)
                    return None
                # Nothing to read or admit: the batch is recorded in the step that copied its
                # rows, without the file lock and the reader (a third of a small call's time). An
                # update changes held rows under this lock too, so the copy is wholly before or
                # after it.
                self._dram.note_access(pos, counts, slots)
                self._count_batch(n_lookups, len(pos), len(pos), pos[:0], 0, 0.0)
                if self._refresh_every is not None:
                    refresh = self._note_served(rows, counts)
        if all_in_dram:
            if refresh is not None:
                with self._file.shared():  # a refresh reads the rows entering the hot set
                    self._check_open("TieredStore lookup")
                    self._refresh(*refresh)
            return staged
        miss = pos[lack]
        # File reads run outside the state lock, so threads' reads overlap; the shared side of the
        # file lock keeps updates out until this batch's misses are read and admitted.
        with self._file.shared():
            self._check_open("TieredStore lookup")  # closed since the hits were copied
            with self._reader.locked():  # no update from the check to the read
                if self._log.changed():  # another store's or process's: take it in, stage again
                    return None
                if self._gen != gen:
                    # One through this store (another thread) since the copy, and none can come
                    # until this batch ends (it takes the file lock exclusively): copy again.
                    with self._lock:
                        staged, slots = self._dram.gather(pos)
                    lack = slots < 0
                    miss = pos[lack]
                t0 = time.perf_counter()
                records, n_blocks = self._reader.read(miss)
                read_s = time.perf_counter() - t0
            staged[lack] = records
            with self._lock:
                # The batch's accesses are recorded with its admissions, in one step: recorded when
                # its hits were copied, a batch served by another thread meanwhile would move the
                # clock and this batch's hits would look old to its own misses (and a failed read
                # would leave them recorded). The tier may have changed since: look again.
                if self._dram.admits:
                    now = self._dram.find(pos)
                    self._dram.note_access(pos, counts, now)
                    new = now[lack] < 0  # another thread may have admitted some meanwhile
                    self._dram.admit(miss[new], records[new], counts[lack][new])
                else:  # (the frequency policy: serving never changes the tier, only its clock)
                    self._dram.note_access(pos, counts, slots)
                self._count_batch(n_lookups, len(pos), len(pos) - len(miss), miss, n_blocks, read_s)
                if self._refresh_every is not None:
                    refresh = self._note_served(rows, counts)
            if refresh is not None:
                self._refresh(*refresh)
        return staged

    def _count_batch(self, n_lookups: int, n_unique: int, n_hits: int, miss: np.ndarray, n_blocks: int,
                     read_s: float) -> None:
        """Count one batch served (under the state lock)."""
        c = self._c
        c["lookups"] += n_lookups
        c["batches"] += 1
        c["unique_rows"] += n_unique
        c["dram_hits"] += n_hits
        c["scm_rows"] += len(miss)
        c["blocks_read"] += n_blocks
        c["scm_seconds"] += read_s
        self._count_device_reads(miss)

    def _count_device_reads(self, rows: np.ndarray) -> None:
        """Add what the device model would take to read ``rows`` from the file (under the lock)."""
        if self.device is not None and len(rows):
            units = self.device.units_read(self._reader.base + rows * self.row_bytes, self.row_bytes)
            self._c["device_reads"] += units
            self._c["device_seconds"] += self.device.read_seconds(units)

    def pooled_lookup(self, indices, offsets=None, *, mode: str = "sum", per_sample_weights=None,
                      include_last_offset: bool = False, n_threads: int | None = None, out=None) -> np.ndarray:
        """``embcompress.pooled_lookup`` on the whole table, with the rows staged through the tiers."""
        from ..kernels.lookup import check_bags, pool_bags

        self._check_open("TieredStore.pooled_lookup")
        # the kernel's own checks (as pooled_lookup's: [] taken, a ragged list named), before staging:
        # a refused batch leaves the tier and counters as they were; the kernel then runs on the
        # staged rows with these bags, not checked again
        bags = check_bags(indices, offsets, mode=mode, per_sample_weights=per_sample_weights,
                          include_last_offset=include_last_offset, n_threads=n_threads, out=out, dim=self.shape[1],
                          n_rows=self.shape[0], where="TieredStore.pooled_lookup")
        uniq, inverse, counts = unique_ids(bags.indices)
        staged = self._stage(uniq, counts, bags.indices.size)
        return pool_bags(staged, self.fmt, self.shape[1], self.block_size, bags._replace(indices=inverse), mode, out)

    def rows(self, rows) -> np.ndarray:
        """Row records of ``rows`` (original ids, any order, repeats allowed), through the tiers."""
        self._check_open("TieredStore.rows")
        r = self._row_ids(rows, "TieredStore.rows", "be int row ids").ravel()
        uniq, inverse, counts = unique_ids(r)
        staged = self._stage(uniq, counts, r.size)
        return staged[inverse]

    def _row_ids(self, rows, where: str, must: str, *, one_d: bool = False) -> np.ndarray:
        """``rows`` checked as the table's original row ids (``[]`` taken, a ragged list, a float
        or an id out of range named), as int64; ``one_d``: a 1-D array only."""
        r = param_array(rows, "rows", where, must)
        if r.dtype.kind not in "iu" or (one_d and r.ndim != 1):  # a float id would be truncated to some other row
            raise param_error("rows", where, must, f"{r.dtype} of shape {r.shape}" if one_d else f"dtype {r.dtype}")
        # (checked before the cast: a uint64 id past 2**63 was reported as the negative it became)
        if r.size and (r.min() < 0 or r.max() >= self.shape[0]):
            raise param_error("rows", where, f"hold row ids in [0, {self.shape[0]})", f"{r.min()}..{r.max()}")
        return r.astype(np.int64)

    # -- updates -------------------------------------------------------------------------------------
    def update_rows(self, rows, values) -> None:
        """Replace ``rows`` (unique original ids) in the file and in DRAM, crash-safely.

        ``values``: float rows ``(k, dim)`` (quantized to the table's format) or ready row records
        (uint8 ``(k, row_bytes)``).
        """
        from ..formats import quantize

        where = "TieredStore.update_rows"
        r = self._row_ids(rows, where, "be a 1-D array of int row ids", one_d=True)
        if len(np.unique(r)) != len(r):
            raise param_error("rows", where, "hold each row once (which value would win is ambiguous)", "repeated ids")
        try:
            v = np.asarray(values)
        except ValueError:  # (numpy's "inhomogeneous shape")
            raise param_error("values", where, f"be float rows ({len(r)}, {self.shape[1]}) or uint8 records "
                              f"({len(r)}, {self.row_bytes})", "lists of different lengths") from None
        if v.dtype == np.uint8 and v.shape == (len(r), self.row_bytes):
            records = np.ascontiguousarray(v)
        elif v.dtype.kind == "f" and v.shape == (len(r), self.shape[1]):
            with np.errstate(over="ignore"):  # (beyond float32: inf, refused below)
                v = v.astype(np.float32)
            bad = ~np.isfinite(v).all(axis=1)
            if bad.any():  # (quantize's own error numbered the rows within the update and named its own fix)
                raise param_error(
                    "values", where, "be finite in float32 (clean the rows, or to store NaN blocks pass uint8 "
                    "records from embcompress.quantize(values, fmt, nonfinite='nan_block'))",
                    f"NaN, inf or values beyond float32 in rows {r[bad][:10].tolist()}")
            records = np.asarray(quantize(v, self.fmt, block_size=self.block_size, scale_mode=self.scale_mode).data)
        else:
            raise param_error("values", where, f"be float rows ({len(r)}, {self.shape[1]}) or uint8 records "
                              f"({len(r)}, {self.row_bytes})", f"{v.dtype} of shape {v.shape}")
        if len(r) == 0:
            return
        pos = self._positions(r)
        order = np.argsort(pos)
        pos, records = pos[order], records[order]
        with self._file.exclusive(), self._lock:
            self._check_open("TieredStore.update_rows")
            if self._path_inode() is None:  # (else the raw FileNotFoundError of opening it)
                raise MissingArtifactError(
                    f"The table file {str(self.path)!r} was removed or moved since this TieredStore opened it: "
                    f"the store serves the file it opened, which can no longer be updated through that path. "
                    f"Open a new TieredStore on the table where it is now to serve and update it.")
            # An earlier update that failed midway is finished first: its DRAM copies too.
            # The log's records of this update (and of one it finished) need no reading again here.
            try:
                journal.apply_update(self.path, "rows", pos, records, on_replay=self._dram.write_through,
                                     on_logged=self._log.skip, check=self._check_table)
            except OSError as exc:
                if exc.errno not in journal._CANNOT_WRITE or exc.filename != str(self.path):
                    raise  # (a full disk, EIO, the journal's folder: the OSError as it is)
                # opening the table to write it (it said only "[Errno 13] Permission denied: path")
                raise type(exc)(
                    exc.errno, f"{exc.strerror} ({where} writes the table file in place, so this process must be able "
                    f"to write it; the table is unchanged. Update it as a user with write permission to the file, "
                    f"or change its permissions)", str(self.path)) from None
            self._dram.write_through(pos, records)
            self._gen += 1  # batches that copied DRAM rows before this copy them again
            self._reopen_reader()  # the file may have been rewritten whole (see journal.apply_update)
            self._c["rows_updated"] += len(pos)

    # -- counters ------------------------------------------------------------------------------------
    def reset_stats(self) -> None:
        with getattr(self, "_lock", threading.RLock()):
            self._c = dict(batches=0, lookups=0, unique_rows=0, dram_hits=0, scm_rows=0, blocks_read=0,
                           device_reads=0, device_seconds=0.0, scm_seconds=0.0, rows_updated=0, rows_reloaded=0,
                           refreshes=0, refresh_rows=0, refresh_blocks=0, refresh_seconds=0.0)

    def stats(self) -> dict:
        """Counters since the last reset (rates on unique ids per batch)."""
        with self._lock:  # the tier too: a refresh or an admission may be moving rows
            c = dict(self._c)
            c["dram_rows"] = self._dram.n_held
        u = c["unique_rows"]
        wanted = (c["scm_rows"] + c["rows_reloaded"]) * self.row_bytes  # the records the reads were for
        c["bytes_read"] = c["blocks_read"] * BLOCK
        c["dram_hit_rate"] = c["dram_hits"] / u if u else math.nan
        c["hit_rate"] = c["dram_hit_rate"]
        c["scm_rate"] = c["scm_rows"] / u if u else math.nan
        c["read_amplification"] = c["bytes_read"] / wanted if wanted else math.nan
        c["blocks_per_batch"] = c["blocks_read"] / c["batches"] if c["batches"] else math.nan
        c["dram_capacity_rows"] = self.dram_bytes // self.row_bytes  # (not the tier's: close() frees it)
        if self.device is not None:
            c["device"] = self.device.name
            # The lookups/s the device's reads alone would allow for this access pattern.
            # (NaN before any lookup, as the other rates; inf when no lookup needed the device)
            c["device_lookups_per_s"] = (c["lookups"] / c["device_seconds"] if c["device_seconds"]
                                         else math.inf if c["lookups"] else math.nan)
        return c

    def close(self) -> None:
        """Close the file and free the DRAM tier and the per-row state (a module over the store keeps
        the store object alive, so its memory must go here); the counters stay readable. Later
        lookups, updates and warm-ups raise. Waits for lookups in flight; closing twice is fine."""
        with self._file.exclusive(), self._lock:
            if self._closed:
                return
            self._closed = True
            self._reader.close()
            self._log.close()
            self._dram = DramTier(0, self.row_bytes, 0, self.policy)
            self._score, self._is_touched, self._touched = None, np.zeros(0, bool), []
            self._hot = np.zeros(0, np.int64)
            self._freq = self._pos = None
            self._has_freq = False

    def __reduce__(self):
        # (copy.deepcopy and pickle come here; the default failed on a lock, naming neither)
        raise ConfigError(
            f"A TieredStore cannot be pickled or copied: it holds the open file {str(self.path)!r}, its DRAM "
            f"tier and its reader threads. Open a new TieredStore on the file where it is needed (and a "
            f"module over it with MXEmbeddingBag(store, id_map=store.id_map)), or save the module's table "
            f"with embcompress.write_table and load it with MXEmbeddingBag.from_file."
        )

    def __enter__(self) -> "TieredStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        refresh = "" if self._refresh_every is None else f", refresh_every={self._refresh_every}, half_life={self.half_life}"
        return (f"TieredStore({str(self.path)!r}, fmt={self.fmt!r}, shape={self.shape}, policy={self.policy!r}, "
                f"dram_rows={self.dram_bytes // self.row_bytes}{refresh})")
