"""Device models (DRAM, NAND SSD, 3D XPoint SSD) and the DRAM-budget planner.

A :class:`DeviceModel` holds the public figures of one device: random-read latency at queue depth
1, random-read IOPS at its rated queue depth and read granularity, sequential read bandwidth,
power and price. The store uses it to turn a run's reads into the time a real device would take
(:meth:`DeviceModel.read_seconds`); :func:`plan` uses it to size a deployment.

Figures (each a vendor datasheet / product brief or a review that measured the device):

- DRAM, DDR4-3200 RDIMM, one 32 GB module: 25.6 GB/s peak per channel (JEDEC DDR4-3200:
  3200 MT/s x 8 bytes); ~100 ns loaded random-access latency; 64-byte read granularity (a cache
  line), so at most 25.6e9 / 64 = 400 M reads/s; ~4 W per 32 GB module under load (DRAM sizes
  are binary: the module holds 32 GiB, 34.36e9 bytes, and is modelled so; published
  comparisons put a 32 GB DDR4 module at 3-5 W under load and a DDR4 RDIMM at 1.5-3.5 W);
  ~$3/GB (server DDR4 street price 2023-24, approximate).
- NAND, Samsung PM9A3 U.2 (PCIe 4.0 x4, 128-layer V-NAND TLC): up to 900,000 random 4 KiB read
  IOPS and 6,500 MB/s sequential read (Samsung announcement, 2020, reported by heise and
  ComputerBase); ~80 us QD1 4 KiB random-read latency (AnandTech measured 78 us and 108 us for the
  datacenter NAND drives Intel P3700 and Micron 9100 at QD1); 12 W (the E1.S form-factor power
  envelope the PM9A3 E1.S model delivers the same IOPS in); ~$0.10/GB (datacenter TLC NVMe
  street price, approximate); 3.84 TB a drive.
- 3D XPoint, Intel Optane SSD DC P4800X 375 GB (PCIe 3.0 x4), as Intel specifies it and
  AnandTech tabulated and measured it: 550,000 random 4 KiB read IOPS at queue depth 16 (measured
  585K), typical latency under 10 us (measured 8.9 us mean at QD1), 2,400 MB/s sequential read,
  8 W active read power, $1,520 for 375 GB ($4.05/GB).

The models are first-order: a batch of ``n`` reads on a device with ``q`` reads in flight takes
``ceil(n / q)`` latencies or ``n / IOPS`` seconds or ``bytes / bandwidth``, whichever is longest.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields

import numpy as np

from ..kernels.unique import unique_ids

from ..errors import ConfigError, param_error

_VERSION = 1


@dataclass(frozen=True)
class DeviceModel:
    """Public figures of one memory or storage device; impossible figures are rejected."""

    name: str
    read_latency_us: float  # random read at queue depth 1
    read_iops: float  # random reads/s of read_granularity bytes at the rated queue depth
    read_granularity: int  # bytes of the smallest read the device serves
    bandwidth_gbps: float  # sequential read, GB/s (1e9 bytes)
    queue_depth: int  # reads in flight at which read_iops is rated
    power_w: float  # active read power of one unit
    capacity_gb: float  # capacity of one unit (a DIMM, a drive)
    cost_per_gb: float  # USD per GB
    source: str = ""
    version: int = _VERSION

    def __post_init__(self):
        owner = f"DeviceModel({self.name!r})"
        for name in ("read_latency_us", "read_iops", "bandwidth_gbps", "power_w", "capacity_gb", "cost_per_gb"):
            v = getattr(self, name)
            if (isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(v)
                    or v <= 0):
                raise param_error(name, owner, "be a finite positive number", v)
            object.__setattr__(self, name, float(v))  # numpy numbers too (figures computed from data), as floats for JSON
        for name in ("read_granularity", "queue_depth"):
            v = getattr(self, name)
            if isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)):
                object.__setattr__(self, name, int(v))
        g = self.read_granularity
        if isinstance(g, bool) or not isinstance(g, int) or g < 1 or g > (1 << 20) or g & (g - 1):
            raise param_error("read_granularity", owner, "be a power of two between 1 and 1 MiB", g)
        q = self.queue_depth
        if isinstance(q, bool) or not isinstance(q, int) or q < 1:
            raise param_error("queue_depth", owner, "be a positive int", q)
        if self.read_latency_us < 0.01:
            raise param_error("read_latency_us", owner, "be at least 0.01 us (no memory answers faster than 10 ns)", self.read_latency_us)
        # A read cannot complete before its bytes have crossed the device's bandwidth.
        transfer_us = g / (self.bandwidth_gbps * 1e3)
        if self.read_latency_us * 1.05 < transfer_us:
            raise param_error("read_latency_us", owner, f"be at least the {transfer_us:.3g} us that one "
                              f"{g}-byte read takes at {self.bandwidth_gbps:g} GB/s", self.read_latency_us)
        # Random reads cannot move more bytes than the device's sequential bandwidth ...
        if self.read_iops * g > self.bandwidth_gbps * 1e9 * 1.05:
            raise ConfigError(
                f"The figures of {owner} are impossible: {self.read_iops:g} reads/s of {g} bytes is "
                f"{self.read_iops * g / 1e9:.3g} GB/s, more than its {self.bandwidth_gbps:g} GB/s "
                f"bandwidth. Check read_iops, read_granularity and bandwidth_gbps."
            )
        # ... nor complete faster than Little's law allows: in flight / latency.
        if self.read_iops > self.queue_depth / (self.read_latency_us * 1e-6) * 1.05:
            raise ConfigError(
                f"The figures of {owner} are impossible: {self.read_iops:g} reads/s with "
                f"{self.queue_depth} in flight needs a latency of at most "
                f"{self.queue_depth / self.read_iops * 1e6:.3g} us, not {self.read_latency_us:g} us "
                f"(Little's law). Check read_iops, queue_depth and read_latency_us."
            )
        if self.version != _VERSION:
            raise param_error("version", owner, f"be {_VERSION}", self.version)

    def read_seconds(self, n_reads: int, n_bytes: int | None = None) -> float:
        """Time for ``n_reads`` random reads issued together, ``queue_depth`` at a time."""
        if n_reads <= 0:
            return 0.0
        n_bytes = n_reads * self.read_granularity if n_bytes is None else n_bytes
        return max(
            math.ceil(n_reads / self.queue_depth) * self.read_latency_us * 1e-6,
            n_reads / self.read_iops,
            n_bytes / (self.bandwidth_gbps * 1e9),
        )

    def units_read(self, byte_starts: np.ndarray, nbytes: int) -> int:
        """Distinct ``read_granularity`` units covering records of ``nbytes`` at ``byte_starts``."""
        if len(byte_starts) == 0:
            return 0
        g = self.read_granularity
        first = byte_starts // g
        last = (byte_starts + nbytes - 1) // g
        span = int((last - first).max()) + 1
        if span <= 2:  # a record within one unit or across two: its first and last are all
            units = np.concatenate([first, last])
        else:
            units = (first[:, None] + np.arange(span)[None, :])
            units = units[units <= last[:, None]]
        # (a hash pass, not np.unique's sort: 140 us a batch of 1,200 missed rows became 25)
        return int(len(unique_ids(units)[0]))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DeviceModel":
        if not isinstance(d, Mapping):  # (None: a raw "'NoneType' object is not iterable")
            raise param_error("d", "DeviceModel.from_dict", "be a dict of the device's figures (from to_dict)",
                              type(d).__name__)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise param_error("d", "DeviceModel.from_dict", f"hold only the figures {sorted(names)}", unknown)
        missing = sorted(f.name for f in fields(cls) if f.name not in d and f.default is MISSING)
        if missing:
            raise param_error("d", "DeviceModel.from_dict", f"hold the figures {missing} too", sorted(d))
        return cls(**d)


DDR4_RDIMM = DeviceModel(
    name="dram_ddr4_3200",
    read_latency_us=0.1,
    read_iops=400e6,
    read_granularity=64,
    bandwidth_gbps=25.6,
    queue_depth=64,
    power_w=4.0,
    capacity_gb=32 * 2**30 / 1e9,  # a "32 GB" module holds 32 GiB: 34.36 GB of 1e9 bytes
    cost_per_gb=3.0,
    source="JEDEC DDR4-3200 (25.6 GB/s a channel); 3-5 W per 32 GB RDIMM; ~$3/GB street price",
)
NAND_PM9A3 = DeviceModel(
    name="nand_pm9a3",
    read_latency_us=80.0,
    read_iops=900e3,
    read_granularity=4096,
    bandwidth_gbps=6.5,
    queue_depth=128,
    power_w=12.0,
    capacity_gb=3840.0,
    cost_per_gb=0.10,
    source="Samsung PM9A3 announcement (900K IOPS, 6.5 GB/s); AnandTech QD1 latency of datacenter NAND",
)
XPOINT_P4800X = DeviceModel(
    name="3dxpoint_p4800x",
    read_latency_us=10.0,
    read_iops=550e3,
    read_granularity=4096,
    bandwidth_gbps=2.4,
    queue_depth=16,
    power_w=8.0,
    capacity_gb=375.0,
    cost_per_gb=1520 / 375,
    source="Intel Optane SSD DC P4800X specifications and measurements, AnandTech (2017)",
)
DEVICES: dict[str, DeviceModel] = {d.name: d for d in (DDR4_RDIMM, NAND_PM9A3, XPOINT_P4800X)}
# Short names for the store's ``device=`` argument.
ALIASES = {"dram": DDR4_RDIMM.name, "nand": NAND_PM9A3.name, "ssd": NAND_PM9A3.name, "3dxp": XPOINT_P4800X.name, "optane": XPOINT_P4800X.name}


def get_device(device: "DeviceModel | str", owner: str = "get_device") -> DeviceModel:
    """A device model from a model or a name (``dram``, ``nand``, ``3dxp`` or a full name)."""
    if isinstance(device, DeviceModel):
        return device
    if isinstance(device, str):
        name = ALIASES.get(device.lower(), device.lower())
        if name in DEVICES:
            return DEVICES[name]
    raise param_error("device", owner, f"be a DeviceModel or one of {sorted(set(ALIASES) | set(DEVICES))}", device)


@dataclass(frozen=True)
class Plan:
    """The planner's choice for one table and its reference all-DRAM deployment."""

    dram_bytes: int  # the budget of row records (TieredStore's dram_bytes)
    dram_fraction: float
    hit_rate: float  # of row reads served by DRAM
    iops_needed: float  # device reads/s for the misses
    n_devices: float  # share of devices (capacity or IOPS, whichever binds); may be fractional
    device_utilization: float
    mean_read_latency_us: float
    power_w: float
    cost_usd: float
    all_dram_power_w: float
    all_dram_cost_usd: float
    device: str
    candidates: list = field(default_factory=list)  # every budget considered, as dicts
    dram_index_bytes: int = 0  # DRAM the store keeps beside the budget (counted in power and cost)

    def to_dict(self) -> dict:
        return asdict(self)


def _dram_gb(nbytes: float) -> float:
    return nbytes / 1e9


def plan(
    table_bytes: int,
    row_bytes: int,
    frequencies,
    lookups_per_s: float,
    *,
    device: DeviceModel | str = "nand",
    dram: DeviceModel | str = "dram",
    max_utilization: float = 0.7,
    max_latency_us: float | None = None,
    fractions=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
    index_bytes_per_row: int = 4,
) -> Plan:
    """Choose the DRAM budget that serves ``lookups_per_s`` row reads at the least cost.

    ``frequencies`` is the access histogram: reads of each row, or of equal groups of rows when
    it has fewer entries than the table has rows (so a billion-row table can be planned from a
    coarser histogram). The hot set of a budget is its top rows, so its hit rate is their share
    of the reads. Each budget needs enough devices to
    hold the table and to serve the misses at ``max_utilization`` of their IOPS (a miss of a
    row record spanning two read units costs two reads); budgets whose mean read latency exceeds
    ``max_latency_us`` are skipped. Power and cost count the DRAM (by the GB) and the devices,
    and are reported beside an all-DRAM deployment of the same table. The DRAM of a budget under
    the whole table is its row records plus what the store keeps for every table row beside them,
    ``index_bytes_per_row``: 4 (the slot index), 12 for ``lfu``, 13 for a ``frequency`` store with
    ``refresh_every``, and 8 more for a file written by ``reorder_rows`` (its inverse row order)
    (``lru``'s 8 bytes a cached row are not counted; frequencies passed to the store, rather than
    read from the file, are the caller's array and kept by it for ``warm_up()``).
    """
    dev, mem = get_device(device, "plan"), get_device(dram, "plan")
    for name, v in (("table_bytes", table_bytes), ("row_bytes", row_bytes)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise param_error(name, "plan", "be a positive int", v)
    table_bytes, row_bytes = int(table_bytes), int(row_bytes)
    if table_bytes < row_bytes:
        raise param_error("table_bytes", "plan", f"hold at least one row of row_bytes={row_bytes}", table_bytes)

    def number(v) -> bool:  # numpy scalars too (a rate summed from a log is often np.int64)
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)

    if not number(lookups_per_s) or lookups_per_s <= 0:
        raise param_error("lookups_per_s", "plan", "be a finite positive number", lookups_per_s)
    if not number(max_utilization) or not 0 < max_utilization <= 1:
        raise param_error("max_utilization", "plan", "be a number in (0, 1]", max_utilization)
    if isinstance(index_bytes_per_row, bool) or not isinstance(index_bytes_per_row, (int, np.integer)) or index_bytes_per_row < 0:
        raise param_error("index_bytes_per_row", "plan", "be a non-negative int (4: the store's slot index)", index_bytes_per_row)
    if max_latency_us is not None and (not number(max_latency_us) or max_latency_us <= 0):
        raise param_error("max_latency_us", "plan", "be a finite positive number of microseconds or None", max_latency_us)
    try:
        fractions = tuple(fractions)
    except TypeError:  # a single fraction (or None): not a raw "'float' object is not iterable"
        raise param_error("fractions", "plan", "be a sequence of DRAM fractions in (0, 1], e.g. (0.01, 0.1)",
                          fractions) from None
    if not fractions:
        raise param_error("fractions", "plan", "hold at least one DRAM fraction in (0, 1]", fractions)
    for frac in fractions:
        if not number(frac) or not 0 < frac <= 1:
            raise param_error("fractions", "plan", "hold numbers in (0, 1]", frac)
    try:
        freq = np.asarray(frequencies, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):  # text or objects: numpy's own "could not convert ..." named nothing
        raise param_error("frequencies", "plan", "be numeric counts, one a row or a group of rows",
                          f"{type(frequencies).__name__} of non-numbers") from None
    n_rows = table_bytes // row_bytes
    with np.errstate(over="ignore"):  # (finite counts near float64's limit: rescaled below)
        total = freq.sum()
    if not 0 < len(freq) <= n_rows or not np.all(np.isfinite(freq)) or np.any(freq < 0) or total <= 0:
        got = f"{len(freq)} values" + (f" with sum {total:g}" if 0 < len(freq) <= n_rows and np.all(freq >= 0) else "")
        raise param_error(
            "frequencies", "plan", f"be 1 to {n_rows} finite non-negative counts with a positive sum", got,
        )
    if not math.isfinite(total):  # (the sum overflowed: every hit rate was NaN)
        freq = freq / freq.max()
        total = freq.sum()
    # Entry k of the histogram stands for n_rows / len(freq) rows (one row when it has n_rows), all
    # read alike, so a budget holding part of an entry's rows gets that part of its reads.
    cum = np.concatenate([[0.0], np.cumsum(np.sort(freq)[::-1])]) / total
    cum[-1] = 1.0  # (the rounding of the sum must not leave a whole-table budget below 1)
    # Rows whose record crosses a read-unit boundary cost two reads (records are packed back to back).
    g = dev.read_granularity
    starts = np.arange(min(n_rows, 1 << 16), dtype=np.int64) * row_bytes
    reads_per_miss = float(np.mean((starts + row_bytes - 1) // g - starts // g + 1))
    mem_lat = mem.read_latency_us + row_bytes / (mem.bandwidth_gbps * 1e3)  # first line, then streaming

    all_dram_gb = _dram_gb(table_bytes)
    all_dram_power = all_dram_gb / mem.capacity_gb * mem.power_w
    all_dram_cost = all_dram_gb * mem.cost_per_gb
    cands, best = [], None
    for frac in sorted(set(float(f) for f in fractions)):
        rows = max(1, int(n_rows * frac))  # a store holds at least one row (TieredStore refuses less)
        # Entries covered, computed exactly: rows / (n_rows / len) rounds below len for rows = n_rows.
        hit = float(np.interp(rows * len(freq) / n_rows, np.arange(len(freq) + 1), cum))
        iops = lookups_per_s * (1 - hit) * reads_per_miss
        # Devices are shared by many tables, so a table takes a fraction of one: its capacity share
        # or its IOPS share at max_utilization, whichever is larger.
        cap_share = _dram_gb(table_bytes) / dev.capacity_gb if frac < 1 else 0.0
        io_share = iops / (dev.read_iops * max_utilization)
        n_dev = max(cap_share, io_share)
        util = iops / (n_dev * dev.read_iops) if n_dev else 0.0
        latency = hit * mem_lat + (1 - hit) * dev.read_latency_us
        index = index_bytes_per_row * n_rows if frac < 1 else 0  # all-DRAM serves the table itself
        dram_gb = _dram_gb(rows * row_bytes + index)
        power = dram_gb / mem.capacity_gb * mem.power_w + n_dev * dev.power_w
        cost = dram_gb * mem.cost_per_gb + n_dev * dev.capacity_gb * dev.cost_per_gb
        ok = max_latency_us is None or latency <= max_latency_us
        # (a budget raised to one row, or cut to whole rows, holds rows / n_rows of the table, not
        # the fraction asked for; a budget of whole rows keeps the fraction asked for)
        c = dict(dram_fraction=frac if rows == n_rows * frac else rows / n_rows, dram_bytes=rows * row_bytes,
                 dram_index_bytes=index,
                 hit_rate=hit, iops_needed=iops, n_devices=n_dev, device_utilization=util, mean_read_latency_us=latency,
                 power_w=power, cost_usd=cost, feasible=ok)
        cands.append(c)
        if ok and (best is None or cost < best["cost_usd"]):
            best = c
    if best is None:
        raise ConfigError(
            f"No DRAM budget meets max_latency_us={max_latency_us} with {dev.name}: even the largest "
            f"budget averages {cands[-1]['mean_read_latency_us']:.3g} us. Raise max_latency_us or add fraction 1.0."
        )
    return Plan(
        dram_bytes=best["dram_bytes"], dram_fraction=best["dram_fraction"], hit_rate=best["hit_rate"],
        iops_needed=best["iops_needed"], n_devices=best["n_devices"],
        device_utilization=best["device_utilization"], mean_read_latency_us=best["mean_read_latency_us"],
        power_w=best["power_w"], cost_usd=best["cost_usd"], all_dram_power_w=all_dram_power,
        all_dram_cost_usd=all_dram_cost, device=dev.name, candidates=cands,
        dram_index_bytes=best["dram_index_bytes"],
    )
