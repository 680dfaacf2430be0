"""Review 17 of embcompress.checkpoint: checkpoint layouts real training loops write, and files
torch's weights-only loader refuses for a reason other than damage."""

import warnings

import pytest

torch = pytest.importorskip("torch")

from embcompress import ArtifactError, ConfigError, load_state_dict  # noqa: E402


def model_sd():
    g = torch.Generator().manual_seed(0)
    return {"emb.user.weight": torch.randn(10, 4, generator=g), "mlp.0.weight": torch.randn(3, 4, generator=g),
            "mlp.0.bias": torch.randn(3, generator=g)}


def same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in b)


def sgd_state():
    m = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(torch.randn(2, 4)).sum().backward()
    opt.step()
    return opt.state_dict()


def test_a_metric_tensor_beside_the_state_dict_does_not_make_the_checkpoint_one(tmp_path):
    # pytorch/examples imagenet's layout: best_acc1 is a tensor of shape (1,) at the top level
    sd = model_sd()
    torch.save({"epoch": 3, "arch": "dlrm", "state_dict": sd, "best_acc1": torch.tensor([71.3]),
                "optimizer": sgd_state()}, tmp_path / "ckpt.pt")
    assert same(load_state_dict(tmp_path / "ckpt.pt"), sd)


def test_a_lightning_checkpoint_with_its_default_model_checkpoint_callback(tmp_path):
    # ModelCheckpoint (on by default) keeps kth_value, a 0-d tensor, in the checkpoint's callbacks
    sd = model_sd()
    callback = {"monitor": "val_loss", "best_model_score": torch.tensor(0.4), "best_model_path": "/c/e=1.ckpt",
                "current_score": torch.tensor(0.4), "dirpath": "/c", "kth_best_model_path": "/c/e=0.ckpt",
                "best_k_models": {"/c/e=0.ckpt": torch.tensor(0.5), "/c/e=1.ckpt": torch.tensor(0.4)},
                "kth_value": torch.tensor(0.5), "last_model_path": ""}
    early = {"wait_count": 0, "stopped_epoch": 0, "best_score": torch.tensor(0.4), "patience": 3}
    torch.save({"epoch": 1, "global_step": 10, "pytorch-lightning_version": "2.4.0", "state_dict": sd,
                "loops": {"fit_loop": {"state_dict": {}}},
                "callbacks": {"ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min'}": callback,
                              "EarlyStopping{'monitor': 'val_loss', 'mode': 'min'}": early},
                "optimizer_states": [sgd_state()], "lr_schedulers": [], "hyper_parameters": {"lr": 0.1}},
               tmp_path / "last.ckpt")
    assert same(load_state_dict(tmp_path / "last.ckpt"), sd)


def test_an_optimizer_state_keyed_by_parameter_names_is_no_state_dict(tmp_path):
    # TorchRec's KeyedOptimizer and torch.distributed's get_state_dict key the state by parameter name
    sd = model_sd()
    optim = {"state": {k: {"step": torch.tensor(3.0), "exp_avg": torch.zeros_like(v), "exp_avg_sq": torch.zeros_like(v)}
                       for k, v in sd.items()},
             "param_groups": [{"lr": 0.1, "params": list(sd)}]}
    torch.save({"model": sd, "optim": optim}, tmp_path / "ckpt.pt")
    assert same(load_state_dict(tmp_path / "ckpt.pt"), sd)


def test_key_on_a_file_that_is_a_state_dict_says_to_leave_it_out(tmp_path):
    torch.save(model_sd(), tmp_path / "sd.pt")
    with pytest.raises(ConfigError, match=r"is a state dict itself.*leave key out") as err:
        load_state_dict(tmp_path / "sd.pt", key="model")
    assert "Pass one of those" not in str(err.value)
    assert err.value.param == "key"


def test_a_state_dict_saved_with_pickle_protocol_4_is_bad_input_saying_why(tmp_path):
    # torch.save(sd, f, pickle_protocol=4) is a sound file that torch's weights-only loader cannot read:
    # no "not a readable torch state dict" (exit 3), and no raw UserWarning from torch
    torch.save(model_sd(), tmp_path / "sd.pt", pickle_protocol=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ConfigError, match=r"pickle protocol 4 or later.*torch\.save") as err:
            load_state_dict(tmp_path / "sd.pt")
    assert not isinstance(err.value, ArtifactError)


def test_the_cli_reports_a_protocol_4_file_in_one_line_with_exit_1(tmp_path, capsys):
    from embcompress.cli.main import main

    torch.save(model_sd(), tmp_path / "sd.pt", pickle_protocol=4)
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(tmp_path / "sd.pt"), "--fmt", "mxfp8_e4m3", "--out-dir", str(tmp_path / "out"), "--quiet"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "protocol 4" in err[0], err
