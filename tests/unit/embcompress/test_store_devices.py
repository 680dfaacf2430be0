import math

import numpy as np
import pytest

from embcompress.errors import ConfigError
from embcompress.store.devices import DDR4_RDIMM, DEVICES, NAND_PM9A3, XPOINT_P4800X, DeviceModel, get_device, plan


def _dev(**kw):
    base = NAND_PM9A3.to_dict()
    base.update(kw)
    return DeviceModel(**base)


def test_builtin_models_are_consistent_and_round_trip():
    for d in DEVICES.values():
        assert DeviceModel.from_dict(d.to_dict()) == d
        assert d.source
    # 3D XPoint answers several times faster than NAND; DRAM faster still.
    assert DDR4_RDIMM.read_latency_us < XPOINT_P4800X.read_latency_us < NAND_PM9A3.read_latency_us / 5
    assert get_device("3dxp") is XPOINT_P4800X and get_device("NAND") is NAND_PM9A3


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(read_latency_us=-1.0), "read_latency_us"),
        (dict(read_iops=0), "read_iops"),
        (dict(power_w=math.nan), "power_w"),
        (dict(cost_per_gb=math.inf), "cost_per_gb"),
        (dict(read_granularity=3000), "read_granularity"),
        (dict(queue_depth=0), "queue_depth"),
        (dict(read_latency_us=0.001), "10 ns"),
        # 900K reads of 4 KiB is 3.7 GB/s: more than a 1 GB/s device moves.
        (dict(bandwidth_gbps=1.0), "bandwidth"),
        # 900K reads/s at 80 us needs 72 in flight; 8 is not enough (Little's law).
        (dict(queue_depth=8), "Little"),
    ],
)
def test_impossible_figures_are_rejected(kw, match):
    with pytest.raises(ConfigError, match=match):
        _dev(**kw)


def test_unknown_device_name():
    with pytest.raises(ConfigError, match="'device' parameter"):
        get_device("floppy")


def test_read_seconds_bounds():
    d = NAND_PM9A3
    assert d.read_seconds(0) == 0.0
    # One read: one latency. 128 reads in flight: still one latency round, unless IOPS bound.
    assert d.read_seconds(1) == pytest.approx(80e-6)
    assert d.read_seconds(128) == pytest.approx(max(80e-6, 128 / 900e3))
    # Many reads: the IOPS ceiling.
    assert d.read_seconds(900_000) == pytest.approx(1.0)


def test_units_read_counts_distinct_units():
    d = NAND_PM9A3  # 4096-byte units
    # Two records in block 0, one straddling blocks 0 and 1, one in block 5.
    starts = np.array([0, 100, 4000, 5 * 4096], dtype=np.int64)
    assert d.units_read(starts, 200) == 3
    assert d.units_read(np.zeros(0, np.int64), 200) == 0


def test_planner_picks_cheapest_feasible_budget():
    n_rows, row_bytes = 1_000_000, 64
    freq = 1.0 / np.arange(1, n_rows + 1) ** 1.05  # Zipf(1.05) by rank
    p = plan(n_rows * row_bytes, row_bytes, freq, lookups_per_s=2e6, device="nand")
    # Cost is never above all-DRAM (fraction 1.0 is a candidate), and the choice is the cheapest.
    feasible = [c for c in p.candidates if c["feasible"]]
    assert p.cost_usd == min(c["cost_usd"] for c in feasible)
    assert p.device_utilization <= 0.7 + 1e-12
    # Hit rate of a budget is the top rows' share of the accesses.
    c01 = next(c for c in p.candidates if c["dram_fraction"] == 0.1)
    top = freq[: 100_000].sum() / freq.sum()
    assert c01["hit_rate"] == pytest.approx(top)
    assert c01["iops_needed"] == pytest.approx(2e6 * (1 - top))
    # A tight latency target forces more DRAM.
    tight = plan(n_rows * row_bytes, row_bytes, freq, lookups_per_s=2e6, device="nand", max_latency_us=10)
    assert tight.hit_rate >= 1 - 10 / 80 and tight.dram_fraction >= p.dram_fraction
    assert set(p.to_dict()) >= {"dram_bytes", "hit_rate", "iops_needed", "power_w", "cost_usd", "all_dram_cost_usd"}


def test_planner_rejects_bad_input():
    with pytest.raises(ConfigError, match="frequencies"):
        plan(6400, 64, np.ones(101), lookups_per_s=1.0)
    with pytest.raises(ConfigError, match="lookups_per_s"):
        plan(6400, 64, np.ones(100), lookups_per_s=-1.0)
    with pytest.raises(ConfigError, match="max_latency_us"):
        plan(6400, 64, np.ones(100), lookups_per_s=1.0, max_latency_us=0.001, fractions=(0.5,))


def test_latency_shorter_than_one_transfer_is_rejected():
    # A 1 MiB read at 6.5 GB/s takes 161 us: no device answers it in 80 us.
    with pytest.raises(ConfigError, match="read_latency_us"):
        _dev(read_granularity=1 << 20, read_iops=5000.0)


def test_from_dict_names_unknown_and_missing_figures():
    d = NAND_PM9A3.to_dict()
    with pytest.raises(ConfigError, match="'read_iopz'"):
        DeviceModel.from_dict(dict(d, read_iopz=1.0))
    del d["power_w"]
    with pytest.raises(ConfigError, match="'power_w'"):
        DeviceModel.from_dict(d)


def test_planner_without_budgets_is_a_clear_error():
    with pytest.raises(ConfigError, match="'fractions'"):
        plan(6400, 64, np.ones(100), lookups_per_s=1.0, fractions=())


def test_coarse_histogram_counts_part_of_a_group():
    # 1000 rows in 10 equal groups: a budget of 50 rows holds half the hottest group (its rows are
    # alike), so half its 10/55 of the reads; the same histogram spread over single rows agrees.
    n_rows, row_bytes = 1000, 64
    groups = np.arange(10, 0, -1, dtype=np.float64)
    fractions = (0.001, 0.005, 0.05, 0.1, 0.15, 0.37, 0.5, 1.0)
    coarse = plan(n_rows * row_bytes, row_bytes, groups, 1e6, fractions=fractions)
    fine = plan(n_rows * row_bytes, row_bytes, np.repeat(groups / 100, 100), 1e6, fractions=fractions)
    c05 = next(c for c in coarse.candidates if c["dram_fraction"] == 0.05)
    assert c05["hit_rate"] == pytest.approx(0.5 * 10 / 55)
    for c, f in zip(coarse.candidates, fine.candidates):
        assert c["hit_rate"] == pytest.approx(f["hit_rate"])
    hits = [c["hit_rate"] for c in coarse.candidates]
    assert hits == sorted(hits)  # more DRAM never lowers the hit rate


def test_all_dram_budget_needs_no_device_whatever_the_histogram_length():
    # 9 rows planned from 7 entries: 9 / (9 / 7) rounds below 7 in floating point, which made the
    # whole-table budget miss 1/7 of the reads and buy devices for them.
    p = plan(9 * 64, 64, np.ones(7), 1e6, fractions=(1.0,))
    assert p.hit_rate == 1.0 and p.iops_needed == 0.0 and p.n_devices == 0.0
    assert p.cost_usd == pytest.approx(p.all_dram_cost_usd) and p.power_w == pytest.approx(p.all_dram_power_w)


def test_planner_takes_numpy_numbers():
    freq = 1.0 / np.arange(1, 1001)
    want = plan(64_000, 64, freq, 2e6)
    got = plan(np.int64(64_000), np.int64(64), freq, np.int64(2_000_000), max_utilization=np.float64(0.7),
               max_latency_us=np.float32(1e9))
    assert got == want


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(max_latency_us=math.nan), "'max_latency_us' parameter.*positive"),
        (dict(max_latency_us=-1.0), "'max_latency_us' parameter.*positive"),
        (dict(max_latency_us="10"), "'max_latency_us' parameter"),
        (dict(max_utilization="0.7"), "'max_utilization' parameter"),
        (dict(max_utilization=math.nan), "'max_utilization' parameter"),
        (dict(fractions=(0.5, "all")), "'fractions' parameter"),
        (dict(table_bytes=32), "'table_bytes' parameter.*at least one row"),
        (dict(frequencies=np.zeros(100)), "'frequencies' parameter.*sum 0"),
    ],
)
def test_planner_bad_options_are_named(kw, match):
    args = dict(table_bytes=6400, row_bytes=64, frequencies=np.ones(100), lookups_per_s=1e3)
    args.update(kw)
    with pytest.raises(ConfigError, match=match):
        plan(**args)


def test_dram_module_capacity_is_binary():
    # A "32 GB" DIMM holds 32 GiB; the planner counts bytes in GB of 1e9, so one module is 34.4 GB
    # and a table of exactly 32 GiB fills one module: its power and its price.
    assert DDR4_RDIMM.capacity_gb * 1e9 == pytest.approx(32 * 2**30)
    p = plan(32 * 2**30, 64, np.ones(1000), 1e6, fractions=(1.0,))
    assert p.all_dram_power_w == pytest.approx(DDR4_RDIMM.power_w)
    assert p.all_dram_cost_usd == pytest.approx(DDR4_RDIMM.capacity_gb * DDR4_RDIMM.cost_per_gb)


def test_plan_arithmetic_by_hand_counts_the_store_index():
    # 1000 rows of 64 bytes, uniform reads, 1e6 lookups/s on NAND, a 10 % budget: 100 rows hit 10 %.
    p = plan(64_000, 64, np.ones(1000), 1e6, fractions=(0.1,))
    c = p.candidates[0]
    assert c["dram_bytes"] == 6400 and c["hit_rate"] == pytest.approx(0.1)
    assert c["iops_needed"] == pytest.approx(9e5)  # 64-byte records never straddle a 4 KiB unit
    n_dev = 9e5 / (900e3 * 0.7)  # the IOPS share binds (the capacity share is 64 kB of 3.84 TB)
    assert c["n_devices"] == pytest.approx(n_dev) and c["device_utilization"] == pytest.approx(0.7)
    assert c["mean_read_latency_us"] == pytest.approx(0.1 * (0.1 + 64 / 25_600) + 0.9 * 80)
    # DRAM: the budget's records plus the store's slot index, 4 bytes for each of the 1000 rows.
    dram_gb = (6400 + 4 * 1000) / 1e9
    assert c["power_w"] == pytest.approx(dram_gb / DDR4_RDIMM.capacity_gb * 4.0 + n_dev * 12.0)
    assert c["cost_usd"] == pytest.approx(dram_gb * 3.0 + n_dev * 3840 * 0.10)
    # Where it matters: 1e9 rows of 64 bytes, a 1 % budget is 640 MB of records beside a 4 GB index.
    big = plan(64 * 10**9, 64, np.ones(1000), 1e3, fractions=(0.01, 1.0))
    c = big.candidates[0]
    assert c["dram_bytes"] == 640 * 10**6
    n_dev = 64 / 3840  # the capacity share binds
    assert c["cost_usd"] == pytest.approx((640e6 + 4e9) / 1e9 * 3.0 + n_dev * 384)
    assert c["power_w"] == pytest.approx(4.64 / DDR4_RDIMM.capacity_gb * 4.0 + n_dev * 12.0)
    # A refreshing frequency store keeps 13 bytes a row; the whole table in DRAM needs no index.
    big13 = plan(64 * 10**9, 64, np.ones(1000), 1e3, fractions=(0.01, 1.0), index_bytes_per_row=13)
    assert big13.candidates[0]["cost_usd"] == pytest.approx((640e6 + 13e9) / 1e9 * 3.0 + n_dev * 384)
    assert big13.candidates[1]["cost_usd"] == pytest.approx(big13.all_dram_cost_usd)
    with pytest.raises(ConfigError, match="'index_bytes_per_row' parameter"):
        plan(6400, 64, np.ones(100), 1.0, index_bytes_per_row=-1)


def test_every_budget_holds_at_least_one_row():
    # 0.1 % of 100 rows is no row: a budget of 0 bytes, which TieredStore refuses (under one row).
    p = plan(6400, 64, np.ones(100), 1.0)
    assert min(c["dram_bytes"] for c in p.candidates) == 64 and p.dram_bytes >= 64
    assert p.candidates[0]["hit_rate"] == pytest.approx(0.01)


@pytest.mark.parametrize("row_bytes", [66, 100, 4096, 5000, 9000])
def test_units_read_equals_a_brute_force_count(row_bytes):
    d = get_device("nand")  # 4 KiB units
    rng = np.random.default_rng(row_bytes)
    for _ in range(40):
        starts = np.unique(rng.integers(0, 5000, rng.integers(1, 300))) * row_bytes + int(rng.integers(0, 4096))
        want = {u for s in starts.tolist() for u in range(s // 4096, (s + row_bytes - 1) // 4096 + 1)}
        assert d.units_read(starts, row_bytes) == len(want)
