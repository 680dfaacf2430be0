"""Review of the serving modules (table files, export, the torch module, the CLI): defects found
by using the public API as a user would, each pinned by a test that failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import embcompress
from embcompress.errors import ConfigError
from embcompress.nn import MXEmbeddingBag, MXEmbeddingBagCollection


def _table(n_rows=10, dim=8, fmt="mxint8", seed=0):
    return embcompress.quantize(np.random.default_rng(seed).standard_normal((n_rows, dim)).astype(np.float32), fmt)


@pytest.mark.parametrize("mode", [["sum"], {"train": "sum"}, 3])
def test_from_file_ignores_a_recorded_mode_that_is_not_a_mode_name(tmp_path, mode):
    # write_table's inputs are free-form: a 'mode' entry that is a list or object made
    # from_file's `inputs.get("mode") in MODES` raise TypeError (unhashable) instead of
    # falling back to "mean" as for any other value that is not a mode name.
    path = embcompress.write_table(tmp_path / "t.embc", _table(), inputs={"mode": mode})
    bag = MXEmbeddingBag.from_file(path)
    assert bag.mode == "mean"
    assert MXEmbeddingBag.from_file(path, mode="sum").mode == "sum"


@pytest.mark.parametrize("name", ["items", "keys", "type", "training"])
def test_collection_names_a_feature_torch_cannot_hold_with_the_fix(name):
    # The bags live in an nn.ModuleDict, which refuses names of its own attributes ('items' is a
    # common feature name) with a bare KeyError "attribute 'items' already exists".
    with pytest.raises(ConfigError, match="rename the feature") as err:
        MXEmbeddingBagCollection({"user": MXEmbeddingBag(_table()), name: MXEmbeddingBag(_table())})
    assert f"Got '{name}' instead" in str(err.value)


def test_a_failed_load_state_dict_keeps_the_rows_the_module_served(backend, tmp_path):
    # load_state_dict gives the records fresh (uninitialized) memory before torch copies the state
    # into them; when that copy failed (here a state dict on the meta device), torch raised but the
    # module went on serving the uninitialized memory as its table, silently.
    path = embcompress.write_table(tmp_path / "t.embc", _table(50, 16))
    for bag in (MXEmbeddingBag(_table(50, 16), mode="sum"), MXEmbeddingBag.from_file(path, mode="sum")):
        ids = torch.arange(50).reshape(10, 5)
        before = bag(ids)
        state = {k: torch.empty_like(v, device="meta") for k, v in bag.state_dict().items()}
        with pytest.raises(RuntimeError, match="records"):
            bag.load_state_dict(state)
        assert torch.equal(bag(ids), before)
        assert torch.equal(bag.decoded_weight(), torch.from_numpy(bag.source.dequantize()))


@pytest.mark.parametrize("given", ["", "."])
def test_a_path_without_a_file_name_is_named_as_a_folder(given, tmp_path, monkeypatch, capsys):
    # open_table (and inspect / verify) first looked for an update journal beside the path, whose
    # name needs the path's own: '' and '.' raised "PosixPath('.') has an empty name" (a
    # ValueError; the CLI exited 1 with that line) instead of the ArtifactError every other
    # folder gets ("... is a directory, not an artifact file. Pass the file's path.").
    from embcompress.cli.main import main
    from embcompress.errors import ArtifactError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ArtifactError, match="is a directory"):
        embcompress.open_table(given)
    for verb in ("inspect", "verify"):
        with pytest.raises(SystemExit) as exc:
            main([verb, given])
        err = capsys.readouterr().err
        assert exc.value.code == 1 and "is a directory" in err, (verb, err)  # (bad input, as a missing file)


def test_export_tables_given_as_one_string_is_refused_naming_the_list(tmp_path):
    # tables="emb_user" was iterated letter by letter: "must name modules of the model ... Got 'e'
    # instead", which names neither the table nor the fix; a state dict gave the same for 'e'.
    model = torch.nn.Module()
    model.emb_user = torch.nn.Embedding(10, 8)
    for given in (model, model.state_dict()):
        with pytest.raises(ConfigError, match=r"\['emb_user'\]"):
            embcompress.export(given, fmt="fp32", out_dir=tmp_path / "out", tables="emb_user")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["false", "False", None, 0])
def test_pooled_lookup_takes_include_last_offset_as_a_bool_only(backend, flag):
    # Any truthy value was taken as True: include_last_offset="false" (e.g. from a config file)
    # pooled [0, 2, 4] over 4 ids as 2 bags instead of 3, without a word; torch and
    # MXEmbeddingBag refuse a flag that is not a bool.
    from embcompress.kernels.lookup import pooled_lookup

    with pytest.raises(ConfigError, match="include_last_offset"):
        pooled_lookup(_table(), np.arange(4), np.array([0, 2, 4]), include_last_offset=flag)
    assert pooled_lookup(_table(), np.arange(4), np.array([0, 2, 4]), include_last_offset=np.bool_(True)).shape == (2, 8)


def test_the_id_map_op_takes_as_few_threads_as_pooled_lookup(monkeypatch):
    # embcompress::map_ids handed the module's n_threads (for None, every core) to the id-map
    # kernel unclamped: an OpenMP team for a one-bag call, which pooled_lookup avoids (waking one
    # costs more than the work, and waits a time slice for a busy core), and any count asked for
    # (pooled_lookup and IdMap.lookup clamp it: OpenMP setting up 200,000 threads crashed).
    import os

    import embcompress.kernels
    from embcompress import nn as enn
    from embcompress.idmap import IdMap

    monkeypatch.setattr(embcompress.kernels, "MIN_THREAD_SECONDS", 25e-6)  # (0 in tests: conftest.py)
    seen = []
    real = enn._lookup
    monkeypatch.setattr(enn, "_lookup", lambda *a: (seen.append(a[-1]), real(*a))[1])
    idm = IdMap.from_arrays(np.arange(0, 700, 7), np.arange(100) % 10, 10, seed=1)
    for n_threads in (None, 2, 200_000):
        bag = MXEmbeddingBag(_table(), id_map=idm, mode="sum", n_threads=n_threads)
        seen.clear()
        assert bag(torch.tensor([[0, 7, 14], [21, 1000, 5]])).shape == (2, 8)
        assert seen == [1], (n_threads, seen)
        seen.clear()
        bag(torch.arange(40_000).reshape(-1, 4))
        assert seen and 1 <= seen[0] <= min(n_threads or os.cpu_count(), embcompress.kernels.MAX_THREADS), (n_threads, seen)


def test_load_state_dict_refuses_records_of_another_format(tmp_path):
    # The records are row bytes of one format: mxfp8_e4m3 and mxint8 rows of one dim have the same
    # record shape, so a state dict saved from one loaded into a module over the other without a
    # word, and the module then read the bytes in its own format (values off by up to 7 here).
    import io

    w = np.random.default_rng(0).standard_normal((50, 32)).astype(np.float32)
    src = MXEmbeddingBagCollection({"user": MXEmbeddingBag(embcompress.quantize(w, "mxfp8_e4m3"), mode="sum")})
    buf = io.BytesIO()
    torch.save(src.state_dict(), buf)  # (the record survives torch.save / torch.load(weights_only=True))
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    ids = torch.arange(50).reshape(10, 5)
    for fmt in ("mxint8", "mxfp8_e5m2"):
        dst = MXEmbeddingBagCollection({"user": MXEmbeddingBag(embcompress.quantize(np.zeros_like(w), fmt), mode="sum")})
        before = dst({"user": ids})["user"]
        with pytest.raises(ConfigError, match=rf"mxfp8_e4m3.*{fmt}"):
            dst.load_state_dict(state)
        assert torch.equal(dst({"user": ids})["user"], before)  # left as it was
    # the same format loads as before, and so does a state dict without the record (a plain dict)
    dst = MXEmbeddingBagCollection({"user": MXEmbeddingBag(embcompress.quantize(np.zeros_like(w), "mxfp8_e4m3"), mode="sum")})
    dst.load_state_dict(state)
    assert torch.equal(dst({"user": ids})["user"], src({"user": ids})["user"])
    other = MXEmbeddingBag(embcompress.quantize(np.zeros_like(w), "mxint8"), mode="sum")
    other.load_state_dict(dict(src.bags["user"].state_dict()))


def test_collection_takes_the_bags_in_an_nn_module_dict():
    # torch's own container of named modules is not a collections.abc.Mapping, so an
    # nn.ModuleDict of bags (or another collection's .bags) was refused as "must be a non-empty
    # mapping of feature -> MXEmbeddingBag. Got 'ModuleDict' instead."
    bags = torch.nn.ModuleDict({"user": MXEmbeddingBag(_table(), mode="sum"), "item": MXEmbeddingBag(_table(seed=1))})
    c = MXEmbeddingBagCollection(bags)
    assert c.features == ["user", "item"]
    ids = torch.tensor([[1, 2], [3, 4]])
    assert torch.equal(MXEmbeddingBagCollection(c.bags)({"user": ids})["user"], bags["user"](ids))


def test_a_module_on_the_meta_device_returns_meta_tensors_not_uninitialized_memory():
    # Moved to the meta device (e.g. to work out shapes), the module's ops ran their fake
    # implementations, which made their outputs on the ids' device: called with CPU ids it
    # returned a CPU tensor of uninitialized memory as the pooled rows, where nn.EmbeddingBag
    # on the meta device returns a meta tensor.
    from embcompress.idmap import IdMap

    idm = IdMap.from_arrays(np.arange(0, 70, 7), np.arange(10), 10, seed=1)
    ids = torch.tensor([[0, 7, 14], [21, 1000, 5]])
    for bag in (MXEmbeddingBag(_table(), mode="sum"), MXEmbeddingBag(_table(), id_map=idm, mode="sum")):
        # and a module on the CPU given meta ids (a meta tensor, as before)
        for on, x in (("cpu", ids.to("meta")), ("meta", ids), ("meta", ids.to("meta"))):
            bag = bag.to(on)
            for args in ((x,), (x.reshape(-1), torch.tensor([0, 3], device=x.device))):
                out = bag(*args)
                assert out.device.type == "meta" and out.shape == (2, 8), (on, x.device)
    ref = torch.nn.EmbeddingBag(10, 8, mode="sum").to("meta")
    assert ref(ids).device.type == "meta"


def test_export_cli_names_an_npz_frequencies_file_with_the_fix(tmp_path, capsys):
    # np.load reads an .npz archive as a lazy NpzFile, not an array: export then saw its list of
    # member names and said "Got '<U6 array of shape (1,)' instead", naming neither the file nor
    # what to pass (and left the archive open).
    from embcompress.cli.main import main

    torch.save({"emb.weight": torch.zeros(4, 8)}, tmp_path / "sd.pt")
    np.savez(tmp_path / "counts.npz", counts=np.arange(4))
    with pytest.raises(SystemExit) as exc:
        main(["export", str(tmp_path / "sd.pt"), "--fmt", "fp32", "--out-dir", str(tmp_path / "out"),
              "--frequencies", f"emb={tmp_path / 'counts.npz'}", "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 1 and len(lines) == 1, lines
    assert "counts.npz" in lines[0] and "--frequencies" in lines[0] and "np.save" in lines[0], lines
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--id-map", "--frequencies"])
def test_export_cli_refuses_a_table_named_twice_in_one_option(tmp_path, capsys, option):
    # "--id-map emb_user=a --id-map emb_user=b" (a copy-paste slip for emb_item) kept the last
    # file without a word: the table got the other table's map or counts, and emb_item none.
    from embcompress.cli.main import main
    from embcompress.idmap import IdMap

    torch.save({"emb_user.weight": torch.zeros(10, 8), "emb_item.weight": torch.zeros(10, 8)}, tmp_path / "sd.pt")
    IdMap.from_arrays(np.arange(10), np.arange(10), 10).save(tmp_path / "a.idmap")
    IdMap.from_arrays(np.arange(10), np.arange(10), 10).save(tmp_path / "b.idmap")
    np.save(tmp_path / "a.npy", np.ones(10))
    np.save(tmp_path / "b.npy", np.ones(10))
    ext = "idmap" if option == "--id-map" else "npy"
    with pytest.raises(SystemExit) as exc:
        main(["export", str(tmp_path / "sd.pt"), "--fmt", "fp32", "--out-dir", str(tmp_path / "out"), "--quiet",
              option, f"emb_user={tmp_path / f'a.{ext}'}", option, f"emb_user={tmp_path / f'b.{ext}'}"])
    err = capsys.readouterr().err
    assert exc.value.code == 1 and option in err and "emb_user" in err and "twice" in err, err
    assert not (tmp_path / "out").exists()


def test_pickle_and_deepcopy_carry_the_table_once(backend, tmp_path):
    # The module holds its rows twice over one memory: the records buffer and the QuantizedTable
    # (source) whose data it views. Pickling (torch.save(model)) and copy.deepcopy copied each
    # on its own: the table's bytes twice in the file and in memory, and the copy's source no
    # longer the rows it serves.
    import copy
    import io
    import pickle

    q = _table(20_000, 64)
    path = embcompress.write_table(tmp_path / "t.embc", q)
    ids = torch.arange(20_000).reshape(-1, 8)
    for bag in (MXEmbeddingBag(q, mode="sum"), MXEmbeddingBag.from_file(path, mode="sum")):
        want = bag(ids)
        assert len(pickle.dumps(bag)) < 1.2 * q.nbytes
        buf = io.BytesIO()
        torch.save(bag, buf)
        assert buf.tell() < 1.2 * q.nbytes
        buf.seek(0)
        for other in (copy.deepcopy(bag), pickle.loads(pickle.dumps(bag)), torch.load(buf, weights_only=False)):
            assert np.shares_memory(other.records.numpy(), other.source.data)
            assert other.source == q and not other.source.data.flags.writeable
            assert torch.equal(other(ids), want)


def test_pickle_and_deepcopy_carry_the_id_map_once(backend):
    # As the table's rows: the id map's arrays are the module's four id_map_* buffers, and
    # pickling / deepcopy copied the IdMap's arrays and the buffers each on their own.
    import copy
    import pickle

    from embcompress.idmap import IdMap

    rng = np.random.default_rng(0)
    ids = rng.choice(10**12, 200_000, replace=False)
    idm = IdMap.from_arrays(ids, rng.integers(0, 10, ids.size), 10, seed=3, config={"built": "test"})
    bag = MXEmbeddingBag(_table(), id_map=idm, mode="sum")
    x = torch.from_numpy(np.r_[ids[:998], [5, 7]]).reshape(-1, 4)
    want = bag(x)
    map_bytes = sum(a.nbytes for a in idm.parts().values())
    assert map_bytes > 10 * bag.records.numel()
    assert len(pickle.dumps(bag)) < 1.2 * map_bytes
    for other in (copy.deepcopy(bag), pickle.loads(pickle.dumps(bag))):
        assert np.shares_memory(other.id_map_keys.numpy(), other.id_map.parts()["keys"])
        assert other.id_map.config == {"built": "test"} and other.id_map.n_rows == 10
        assert np.array_equal(other.id_map.lookup(ids[:1000]), idm.lookup(ids[:1000]))
        assert torch.equal(other(x), want)
