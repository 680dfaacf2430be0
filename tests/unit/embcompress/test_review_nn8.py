"""Review 8 of the torch module and export, as a user who swaps nn.EmbeddingBag for
MXEmbeddingBag and exports trained models: each test names the defect it caught."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = nn.functional

import embcompress  # noqa: E402
from embcompress.nn import MXEmbeddingBag  # noqa: E402
from tests.conftest import run_cli  # noqa: E402


# -- export ---------------------------------------------------------------------------------


class _Bags(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.user = nn.EmbeddingBag(20, 8, mode="sum")
        self.item = nn.EmbeddingBag(15, 8, mode="max", include_last_offset=True, padding_idx=0)
        self.head = nn.Linear(8, 1)


def test_export_of_a_bag_named_by_its_weight_records_how_it_pools(tmp_path):
    # tables=["user.weight"] (the parameter, as the state dict names it) found the tensor but not
    # its module: the file recorded no mode, so MXEmbeddingBag.from_file served the sum bag as
    # a mean, silently, and padding_idx went unrecorded.
    m = _Bags()
    report = embcompress.export(m, fmt="fp32", out_dir=tmp_path, tables=["user.weight", "item.weight"])
    assert [e["name"] for e in report] == ["user", "item"]  # (named as its module: swap_embedding_bags' file)
    assert report[1]["padding_idx"] == 0
    user, item = (MXEmbeddingBag.from_file(e["path"]) for e in report)
    assert (user.padding_idx, item.padding_idx) == (None, 0)
    assert (user.mode, user.include_last_offset) == ("sum", False)
    assert (item.mode, item.include_last_offset) == ("max", True)
    ids, offsets = torch.tensor([1, 2, 3, 4, 5]), torch.tensor([0, 2])
    with torch.no_grad():
        assert torch.allclose(user(ids, offsets), m.user(ids, offsets))
    # a bare bag's table, named as its state dict names it
    bag = nn.EmbeddingBag(10, 4, mode="sum")
    (entry,) = embcompress.export(bag, fmt="fp32", out_dir=tmp_path / "bare", tables=["weight"])
    assert MXEmbeddingBag.from_file(entry["path"]).mode == "sum"


@pytest.mark.parametrize("args, flag", [
    (["--id-map", "nope=m.idmap"], "--id-map"),
    (["--frequencies", "emb_user=short.npy"], "--frequencies"),
    (["--table", "nope"], "--table"),
    (["--block-size", "7"], "--block-size"),
    (["--scale-mode", "nearest"], "--scale-mode"),
])
def test_export_cli_errors_name_the_option_to_change(tmp_path, capsys, monkeypatch, args, flag):
    # The library's errors name its parameters ('id_maps', 'tables', ...): the command printed
    # them without the option that sets them (fit-hash names its options; export had no FLAGS).
    monkeypatch.chdir(tmp_path)
    torch.save({"emb_user.weight": torch.randn(10, 4)}, "sd.pt")
    embcompress.IdMap.from_arrays(np.arange(5), np.arange(5), 5).save("m.idmap")
    np.save("short.npy", np.ones(3, dtype=np.int64))
    code, out = run_cli(["export", "sd.pt", "--fmt", "mxint8", "--out-dir", "out", "--quiet", *args], capsys)
    assert code == 1
    assert f"(on the command line: {flag})" in out.err, out.err


def test_export_cli_without_tables_names_the_table_option(tmp_path, capsys, monkeypatch):
    # "Name them with tables=[...]" is the library's spelling; the command's is --table NAME.
    monkeypatch.chdir(tmp_path)
    torch.save({"user_table.weight": torch.randn(10, 4)}, "sd.pt")  # no 'emb' in its name
    code, out = run_cli(["export", "sd.pt", "--fmt", "mxint8", "--out-dir", "out", "--quiet"], capsys)
    assert code == 1
    assert "--table" in out.err, out.err


# -- the module ---------------------------------------------------------------------------------


class _Tower(nn.Module):
    def __init__(self, bag):
        super().__init__()
        self.bag = bag
        self.head = nn.Linear(bag.embedding_dim, 1)

    def forward(self, ids, offsets):
        return self.head(self.bag(ids, offsets))


@pytest.mark.parametrize("cast", ["half", "bfloat16", "double", "to"])
def test_output_dtype_follows_the_module_as_nn_embedding_bag_does(backend, cast):
    # model.half() casts nn.EmbeddingBag's weight and so its output; MXEmbeddingBag kept returning
    # float32, and the half Linear after it raised "mat1 and mat2 must have the same dtype".
    torch.manual_seed(0)
    trained = _Tower(nn.EmbeddingBag(30, 16, mode="sum"))
    model = _Tower(MXEmbeddingBag.from_embedding_bag(trained.bag, "mxint8"))
    model.head.load_state_dict(trained.head.state_dict())
    dtype = {"half": torch.float16, "bfloat16": torch.bfloat16, "double": torch.float64, "to": torch.float16}[cast]
    model = model.to(dtype) if cast == "to" else getattr(model, cast)()
    ids, offsets = torch.tensor([1, 5, 7, 29, 3]), torch.tensor([0, 2, 2])
    with torch.no_grad():
        pooled = model.bag(ids, offsets)
        assert pooled.dtype == dtype
        ref = F.embedding_bag(ids, model.bag.decoded_weight(), offsets, mode="sum")
        assert torch.equal(pooled, ref.to(dtype))
        assert model(ids, offsets).dtype == dtype  # the head takes it
        # back to float32, and through torch.export and torch.compile alike
        assert model.float().bag(ids, offsets).dtype == torch.float32
        half = model.half()
        ep = torch.export.export(half, (ids, offsets))
        assert torch.equal(ep.module()(ids, offsets), half(ids, offsets))
        assert torch.equal(torch.compile(half, fullgraph=True)(ids, offsets), half(ids, offsets))


def test_loading_the_trained_models_state_dict_compresses_its_tables(backend, tmp_path):
    # A user swaps nn.EmbeddingBag for MXEmbeddingBag and loads the training checkpoint, as with
    # any drop-in module: torch said only 'Missing key(s): "bag.records". Unexpected key(s):
    # "bag.weight"', and strict=False kept the module's old rows without a word.
    torch.manual_seed(0)
    trained = _Tower(nn.EmbeddingBag(30, 16, mode="sum"))
    expected = MXEmbeddingBag.from_embedding_bag(trained.bag, "mxfp4_e2m1", block_size=16, scale_mode="mse")
    path = embcompress.write_table(tmp_path / "t.embc", embcompress.quantize(np.zeros((30, 16), np.float32),
                                                                             "mxfp4_e2m1", block_size=16, scale_mode="mse"))
    ids, offsets = torch.tensor([1, 5, 7, 29, 3]), torch.tensor([0, 2, 2])
    for bag in (MXEmbeddingBag.from_embedding_bag(nn.EmbeddingBag(30, 16, mode="sum"), "mxfp4_e2m1", block_size=16, scale_mode="mse"),
                MXEmbeddingBag.from_file(path, mode="sum")):  # (rows in a read-only file mapping)
        served = _Tower(bag)
        for strict in (True, False):
            result = served.load_state_dict(trained.state_dict(), strict=strict)
            assert not result.missing_keys and not result.unexpected_keys
            assert torch.equal(served.head.weight, trained.head.weight)
            assert torch.equal(served.bag.records, expected.records)  # the module's format, block size and scale mode
            with torch.no_grad():
                assert torch.equal(served.bag(ids, offsets), expected(ids, offsets))
    assert not embcompress.open_table(path, verify="full").table.data.any()  # the file was not written
    # a table of another shape (a full-size one, to fold with export) stays an unexpected key
    other = {"bag.weight": torch.randn(50, 16), **{k: v for k, v in trained.state_dict().items() if k != "bag.weight"}}
    served = _Tower(MXEmbeddingBag.from_embedding_bag(nn.EmbeddingBag(30, 16), "mxint8"))
    before = served.bag.records.clone()
    assert served.load_state_dict(other, strict=False).unexpected_keys == ["bag.weight"]
    assert torch.equal(served.bag.records, before)
    with pytest.raises(RuntimeError, match="bag.weight"):
        served.load_state_dict(other)


class _Source:
    """A row source that is not an in-memory table (the module calls it through source_lookup)."""

    def __init__(self, q):
        self.q, self.shape, self.fmt = q, q.shape, q.fmt

    def pooled_lookup(self, indices, offsets, **opts):
        return embcompress.pooled_lookup(self.q, indices, offsets, **opts)


def test_a_row_source_is_freed_with_its_module_and_a_copy_reads_its_own(backend):
    # The process-wide registry held every row source a module was built over, for good: a
    # server rebuilding its modules on each table refresh kept every old TieredStore (its open
    # file, DRAM tier and reader threads). A deep copy read the original's source through the
    # original's key, so it failed once that was gone; a pickle never ran in another process.
    import copy
    import gc
    import pickle
    import weakref

    q = embcompress.quantize(np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32), "mxint8")
    ids, offsets = torch.tensor([1, 5, 7, 39]), torch.tensor([0, 2])
    src = _Source(q)
    bag = MXEmbeddingBag(src, mode="sum")
    expected = bag(ids, offsets)
    # a program exported from it runs while the source lives (held by the module or the caller)
    ep = torch.export.export(_Tower(bag), (ids, offsets))
    twin = copy.deepcopy(bag)
    assert twin.source is not src
    pickled = pickle.dumps(bag)
    ref = weakref.ref(src)
    del bag, src
    gc.collect()
    assert torch.equal(twin(ids, offsets), expected)
    assert torch.equal(pickle.loads(pickled)(ids, offsets), expected)
    assert ref() is None
    with pytest.raises(embcompress.ConfigError, match="No row source is registered"):
        ep.module()(ids, offsets)
    ref = weakref.ref(twin.source)
    del twin
    gc.collect()
    assert ref() is None


def test_a_program_over_a_row_source_runs_while_the_caller_holds_the_source(backend):
    q = embcompress.quantize(np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32), "mxint8")
    ids, offsets = torch.tensor([1, 5, 7, 39]), torch.tensor([0, 2])
    src = _Source(q)

    def program():  # the module is gone when it returns
        return torch.export.export(_Tower(MXEmbeddingBag(src, mode="sum")), (ids, offsets))

    ep = program()
    import gc

    gc.collect()
    assert ep.module()(ids, offsets).shape == (2, 1)


def test_a_table_file_or_store_given_without_id_map_serves_through_its_own_map(backend, tmp_path):
    # MXEmbeddingBag(open_table(path)) or MXEmbeddingBag(store) dropped the map the file holds
    # (from_file keeps it): raw ids below the row count were served as row numbers, silently.
    from embcompress.store import TieredStore

    x = np.random.default_rng(0).standard_normal((40, 8)).astype(np.float32)
    idm = embcompress.IdMap.from_arrays(np.arange(40)[::-1].copy(), np.arange(40), 40)  # id i -> row 39 - i
    path = embcompress.write_table(tmp_path / "t.embc", embcompress.quantize(x, "mxint8"), id_map=idm)
    ids, offsets = torch.tensor([0, 1, 2, 39, 7]), torch.tensor([0, 2])
    expected = MXEmbeddingBag.from_file(path, mode="sum")(ids, offsets)
    opened = embcompress.open_table(path)
    decoded = torch.from_numpy(embcompress.dequantize(opened.table))
    with TieredStore(path, dram_bytes=1024, policy="lru") as store:
        for source in (opened, store):
            bag = MXEmbeddingBag(source, mode="sum")
            assert bag.id_map is not None
            assert torch.equal(bag(ids, offsets), expected)
            # id_map=None still asks for none: ids are row numbers
            plain = MXEmbeddingBag(source, id_map=None, mode="sum")
            assert plain.id_map is None
            assert torch.equal(plain(ids, offsets), F.embedding_bag(ids, decoded, offsets, mode="sum"))


def test_from_embedding_bag_with_a_map_onto_fewer_rows_names_export_to_fold_it():
    # A trained full-size bag (one row per id) and a learned map onto fewer rows: the error said
    # only that the map must be onto 30 rows, not how to get the compressed table.
    idm = embcompress.IdMap.from_arrays(np.arange(30), np.arange(30) % 10, 10)
    with pytest.raises(embcompress.ConfigError, match=r"embcompress\.export\(.*id_maps=.*from_file.*onto 10 rows"):
        MXEmbeddingBag.from_embedding_bag(nn.EmbeddingBag(30, 8), "mxint8", id_map=idm)


def test_collection_from_files_refuses_a_list_naming_the_mapping_it_takes():
    # AttributeError: 'list' object has no attribute 'items'
    from embcompress.nn import MXEmbeddingBagCollection

    with pytest.raises(embcompress.ConfigError, match=r"'paths'.*mapping.*\{'user': 'user\.embc'\}"):
        MXEmbeddingBagCollection.from_files(["user.embc"])


def test_export_id_map_given_as_a_path_names_idmap_load(tmp_path):
    with pytest.raises(embcompress.ConfigError, match=r"IdMap\.load\(path\).*emb: str"):
        embcompress.export({"emb.weight": torch.randn(30, 8)}, fmt="mxint8", out_dir=tmp_path,
                           id_maps={"emb": "emb.idmap"})


@pytest.mark.parametrize("kw", [{"block_size": 7}, {"scale_mode": "nearest"}])
def test_export_refuses_a_bad_block_size_or_scale_mode_before_making_out_dir(tmp_path, kw):
    # Checked by quantize inside the loop, after out_dir (and its parents) were made: a typo left
    # empty folders behind, against "bad input leaves out_dir as it was".
    with pytest.raises(embcompress.ConfigError, match=f"'{next(iter(kw))}'"):
        embcompress.export({"emb.weight": torch.randn(30, 8)}, fmt="mxint8", out_dir=tmp_path / "a" / "b", **kw)
    assert not (tmp_path / "a").exists()


def test_a_reordered_table_file_does_not_take_a_trained_weight_in_the_original_row_order(backend, tmp_path):
    # reorder_rows puts rows in co-access order (and renumbers the file's id map): a trained
    # weight, in the original order, loaded into it would serve every id another id's row.
    from embcompress.store import reorder_rows

    torch.manual_seed(0)
    trained = _Tower(nn.EmbeddingBag(40, 8, mode="sum"))
    idm = embcompress.IdMap.from_arrays(np.arange(100, 140), np.arange(40), 40)
    path = embcompress.write_table(tmp_path / "t.embc", embcompress.quantize(trained.bag.weight.detach().numpy(), "mxint8"),
                                   id_map=idm)
    moved = reorder_rows(path, tmp_path / "r.embc", clusters=np.random.default_rng(1).integers(0, 5, 40)).path
    ids, offsets = torch.tensor([100, 105, 139, 120]), torch.tensor([0, 2])
    for source in (lambda: MXEmbeddingBag.from_file(moved, mode="sum"), lambda: MXEmbeddingBag(embcompress.open_table(moved), mode="sum")):
        served = _Tower(source())
        expected = served.bag(ids, offsets)
        result = served.load_state_dict(trained.state_dict(), strict=False)
        assert result.unexpected_keys == ["bag.weight"]
        assert torch.equal(served.bag(ids, offsets), expected)
        assert torch.equal(expected, MXEmbeddingBag.from_file(path, mode="sum")(ids, offsets))


def test_export_of_a_state_dict_records_the_pooling_it_is_told(tmp_path, capsys, monkeypatch):
    # A state dict does not say how its bags pool, so its files recorded nothing and
    # MXEmbeddingBag.from_file served a DLRM's sum bags as means, silently: `embcompress export`
    # (state dicts only) had no way to say it.
    torch.manual_seed(0)
    bag = nn.EmbeddingBag(20, 8, mode="sum", include_last_offset=True)
    sd = {"emb_user.weight": bag.weight.detach().clone()}
    report = embcompress.export(sd, fmt="fp32", out_dir=tmp_path / "lib", mode="sum", include_last_offset=True)
    served = MXEmbeddingBag.from_file(report[0]["path"])
    assert (served.mode, served.include_last_offset) == ("sum", True)
    ids, offsets = torch.tensor([1, 2, 3, 4, 5]), torch.tensor([0, 2, 5])
    with torch.no_grad():
        assert torch.equal(served(ids, offsets), bag(ids, offsets))
    # a module's own pooling is what it is: told otherwise, export refuses before writing
    with pytest.raises(embcompress.ConfigError, match=r"'mode'.*'emb'.*'sum'"):
        embcompress.export(nn.ModuleDict({"emb": bag}), fmt="fp32", out_dir=tmp_path / "no", mode="mean")
    assert not (tmp_path / "no").exists()
    with pytest.raises(embcompress.ConfigError, match=r"'mode'.*'sum', 'mean' or 'max'"):
        embcompress.export(sd, fmt="fp32", out_dir=tmp_path / "no", mode="avg")
    # the command: --mode, and without it a note saying what from_file will do
    monkeypatch.chdir(tmp_path)
    torch.save(sd, "sd.pt")
    code, out = run_cli(["export", "sd.pt", "--fmt", "fp32", "--out-dir", "cli", "--quiet", "--mode", "sum"], capsys)
    assert code == 0, out.err
    assert MXEmbeddingBag.from_file("cli/emb_user.embc").mode == "sum"
    code, out = run_cli(["export", "sd.pt", "--fmt", "fp32", "--out-dir", "cli2", "--quiet"], capsys)
    assert code == 0 and "--mode" in out.out and "mean" in out.out, out


def test_an_opened_table_file_given_to_the_module_pools_as_its_file_records(tmp_path):
    # from_file takes the recorded mode and include_last_offset; MXEmbeddingBag(open_table(path))
    # took "mean" and False, serving an exported sum bag as a mean, silently.
    torch.manual_seed(0)
    bag = nn.EmbeddingBag(20, 8, mode="sum", include_last_offset=True)
    (entry,) = embcompress.export(bag, fmt="fp32", out_dir=tmp_path)
    opened = embcompress.open_table(entry["path"])
    served = MXEmbeddingBag(opened)
    assert (served.mode, served.include_last_offset) == ("sum", True)
    ids, offsets = torch.tensor([1, 2, 3, 4, 5]), torch.tensor([0, 2, 5])
    with torch.no_grad():
        assert torch.equal(served(ids, offsets), bag(ids, offsets))
    # what the caller says wins; a table with nothing recorded pools as nn.EmbeddingBag's defaults
    told = MXEmbeddingBag(opened, mode="max", include_last_offset=False)
    assert (told.mode, told.include_last_offset) == ("max", False)
    plain = MXEmbeddingBag(opened.table)
    assert (plain.mode, plain.include_last_offset) == ("mean", False)


def test_state_dict_export_warns_of_2d_weights_it_did_not_take(tmp_path):
    # "user_table.weight" has no "emb" in its name: with "emb.item.weight" found it was skipped
    # without a word, and the served model lacked a table
    import warnings

    from embcompress import export

    sd = {"emb.item.weight": torch.randn(50, 16), "user_table.weight": torch.randn(40, 16),
          "mlp.0.weight": torch.randn(8, 32), "mlp.0.bias": torch.randn(8)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = export(sd, fmt="mxint8", out_dir=tmp_path / "out", mode="sum")
    assert [e["name"] for e in report] == ["emb.item"]
    said = [str(w.message) for w in caught if "user_table" in str(w.message)]
    assert len(said) == 1 and "tables=" in said[0] and "mlp.0" not in said[0]


def test_a_store_serves_with_the_pooling_its_file_records(tmp_path):
    # MXEmbeddingBag(store) read no recorded pooling (a store had no header to read), so a table
    # exported from a sum bag was served as a mean unless mode= was repeated
    from embcompress.store import TieredStore

    bag = torch.nn.EmbeddingBag(40, 8, mode="sum", include_last_offset=True)
    embcompress.export(torch.nn.ModuleDict({"emb": bag}), fmt="mxint8", out_dir=tmp_path)
    path = tmp_path / "emb.embc"
    with TieredStore(path, dram_bytes=1024, policy="lru") as store:
        served = MXEmbeddingBag(store)
        assert (served.mode, served.include_last_offset) == ("sum", True)
        assert (MXEmbeddingBag(store, mode="max").mode) == "max"  # told otherwise, as from_file
    plain = tmp_path / "plain.embc"
    embcompress.write_table(plain, embcompress.quantize(np.ones((4, 8), np.float32), "mxint8"))
    with TieredStore(plain, dram_bytes=66, policy="lru") as store:
        assert MXEmbeddingBag(store).mode == "mean"  # nothing recorded: nn.EmbeddingBag's default
