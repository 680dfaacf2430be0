"""Review 18 of the analysis package: defects found, each with the test that failed first."""

import numpy as np
import pytest

from analysis.ctr.data import CTRData, split_by_time, split_random
from analysis.ctr.datasets import load_talkingdata
from analysis.ctr.metrics import auc, logloss, mean_spread, paired_bootstrap
from analysis.ctr.sweep import SweepConfig
from analysis.quant_error import format_report, frequency_shaped_table
from embcompress.errors import ConfigError


def _data(n=20):
    return CTRData(("a",), np.arange(n, dtype=np.int64).reshape(n, 1), (np.arange(n) % 2).astype(np.float32))


def test_talkingdata_csv_saved_with_a_utf8_bom_is_read(tmp_path):
    # Excel and pandas' encoding="utf-8-sig" start the file with a BOM; the reader skips it, but the
    # loader's header check read the first name as "\ufeffip" and refused the log as "not a
    # talkingdata log: ... no column 'ip'"
    head = "ip,app,device,os,channel,click_time,attributed_time,is_attributed"
    rows = [f"{i},{i % 5},1,{i % 3},{i % 4},2017-11-07 0{i % 10}:00:{i % 60:02d},,{int(i % 3 == 0)}" for i in range(50)]
    f = tmp_path / "train_sample.csv"
    f.write_text("\n".join([head, *rows]) + "\n", encoding="utf-8-sig")
    s = load_talkingdata(f)
    assert s.train.n_rows + s.validation.n_rows + s.test.n_rows == 50
    assert s.features == ("ip", "app", "device", "os", "channel")


def test_split_by_time_refuses_times_of_another_length():
    data = _data(20)
    # five times for twenty rows: the split silently used five rows and dropped fifteen
    with pytest.raises(ConfigError, match="'time' parameter of split_by_time.*20"):
        split_by_time(data, np.arange(5))
    # more times than rows: numpy's raw IndexError
    with pytest.raises(ConfigError, match="'time' parameter of split_by_time"):
        split_by_time(data, np.arange(30))


@pytest.mark.parametrize("label", [np.zeros((20, 1), np.float32), np.full(20, -1.0, np.float32), [0, 1] * 10])
def test_ctr_data_refuses_labels_that_are_not_a_column_of_0_and_1(label):
    # a (n, 1) label was accepted and failed in torch's loss ("Target size ... must be the same as
    # input size"); -1/1 labels (libFM's) trained on a target BCE does not take and failed at the
    # first validation AUC; a list raised the raw AttributeError 'no attribute shape'
    with pytest.raises(ConfigError, match="'label' parameter of CTRData"):
        CTRData(("a",), np.arange(20, dtype=np.int64).reshape(20, 1), label)


@pytest.mark.parametrize("fractions", [(float("nan"), 0.5, 0.5), 0.5, ("a", "b", "c")])
def test_split_fractions_that_are_not_three_numbers_are_named(fractions):
    # NaN passed the checks and failed in round() ("cannot convert float NaN to integer"); a single
    # number or text raised the raw TypeError / ValueError
    with pytest.raises(ConfigError, match="'fractions' parameter of split_random"):
        split_random(_data(), fractions)


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_split_random_seed_is_checked(seed):
    # numpy's raw "expected non-negative integer" / SeedSequence TypeError; True was recorded as the seed
    with pytest.raises(ConfigError, match="'seed' parameter of split_random"):
        split_random(_data(), seed=seed)


def test_method_params_for_the_full_table_are_refused_not_ignored():
    # the full table takes no fit_hash parameters: they were accepted and never used (qr's are refused)
    with pytest.raises(ConfigError, match="'method_params'.*'full'.*full_min_count"):
        SweepConfig.from_dict({"method_params": {"full": {"hot_rows": 5}}})
    SweepConfig.from_dict({"method_params": {"full": {}}})  # nothing to ignore


def test_paired_bootstrap_takes_numpy_integers_and_names_a_level_of_the_wrong_kind():
    y = [0, 1, 0, 1, 1, 0]
    a, b = [[0.1, 0.9, 0.2, 0.8, 0.6, 0.3]], [[0.2, 0.8, 0.1, 0.9, 0.5, 0.4]]
    # an n_boot read from numpy (np.int64(100)) was refused as "must be an integer >= 10. Got 100"
    ci = paired_bootstrap(y, a, b, n_boot=np.int64(100))
    assert ci == paired_bootstrap(y, a, b, n_boot=100)
    # a level given as text raised the raw "'<' not supported between 'float' and 'str'"
    with pytest.raises(ConfigError, match="'level' parameter of paired_bootstrap"):
        paired_bootstrap(y, a, b, level="0.9")
    with pytest.raises(ConfigError, match="'n_boot' parameter of paired_bootstrap"):
        paired_bootstrap(y, a, b, n_boot=True)


@pytest.mark.parametrize("fn", [auc, logloss])
def test_labels_of_the_wrong_shape_are_named_as_labels(fn):
    # 2-d labels were reported as "The 'scores' parameter ... must be a 1-d array of the labels'
    # length (1, 2). Got (1, 2) instead.": the wrong parameter, and a shape equal to the one asked
    with pytest.raises(ConfigError, match="'labels' parameter"):
        fn([[0, 1]], [[0.1, 0.2]])
    with pytest.raises(ConfigError, match="'labels' parameter"):
        fn(1, 0.5)


def test_mean_spread_of_no_values_is_named():
    # numpy's raw "zero-size array to reduction operation minimum"
    with pytest.raises(ConfigError, match="'values' parameter of mean_spread"):
        mean_spread([])


@pytest.mark.parametrize("kwargs", [{"n_rows": 0}, {"dim": 0}, {"n_rows": -5}])
def test_frequency_shaped_table_sizes_are_checked(kwargs):
    # numpy's raw "zero-size array to reduction operation maximum" / "a must be a positive integer"
    with pytest.raises(ConfigError, match="parameter of frequency_shaped_table"):
        frequency_shaped_table(**{"n_rows": 50, "dim": 8, **kwargs})


def test_format_report_of_a_table_without_columns_is_named():
    with pytest.raises(ConfigError, match="'table' parameter of format_report"):
        format_report(np.zeros((3, 0), np.float32), ["fp32"])


def test_demo_tells_a_compressed_log_by_the_extension_under_its_compression(tmp_path):
    import gzip

    from analysis.pipeline import DemoSettings, _load, detect_dataset

    # the log reader reads day_0.csv.gz as a CSV (learned_hash.logs); the demo took any name not
    # ending in .csv or .libfm for Criteo TSV, so a gzipped TalkingData CSV was refused as "not a
    # criteo log ... name the file *.csv", and under that name as gzip data without .gz
    head = "ip,app,device,os,channel,click_time,attributed_time,is_attributed"
    rows = [f"{i},{i % 5},1,{i % 3},{i % 4},2017-11-07 0{i % 10}:00:{i % 60:02d},,{int(i % 3 == 0)}" for i in range(200)]
    td = tmp_path / "td" / "train_sample.csv.gz"
    td.parent.mkdir()
    td.write_bytes(gzip.compress(("\n".join([head, *rows]) + "\n").encode()))
    assert detect_dataset(td) == "talkingdata"
    upper = tmp_path / "td" / "TRAIN.CSV"
    upper.write_text("\n".join([head, *rows]) + "\n")
    assert detect_dataset(upper) == "talkingdata"  # the reader takes the extension in any case
    upper.unlink()
    s = _load(td, DemoSettings.default(True, real=True), 0)
    assert s.name == "talkingdata" and s.train.n_rows + s.validation.n_rows + s.test.n_rows == 200

    fm = tmp_path / "fm" / "frappe.train.libfm.gz"
    fm.parent.mkdir()
    lines = [f"{1 if i % 3 else -1} {i % 7}:1 {10 + i % 11}:1 {30 + i % 2}:1 {40 + i % 3}:1 {50 + i % 2}:1 {60 + i % 4}:1 "
             f"{70 + i % 3}:1 {80 + i % 5}:1 {90 + i % 2}:1 {100 + i % 6}:1" for i in range(100)]
    fm.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert detect_dataset(fm) == "frappe"
    s = _load(fm, DemoSettings.default(True, real=True), 0)  # the file itself: its folder holds no *.libfm to pool
    assert s.name == "frappe" and s.train.n_rows + s.validation.n_rows + s.test.n_rows == 100
