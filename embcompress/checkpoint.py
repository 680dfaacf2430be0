"""Reading a trained model's weights from a file, for :func:`embcompress.export`.

``load_state_dict(path, *, key=None)`` takes what training loops write:

- ``torch.save(model.state_dict())``, read with ``torch.load(weights_only=True, mmap=True)``:
  mapped, so a state dict larger than memory exports (torch's old non-zip format is read whole);
- a training checkpoint that holds the state dict (``{"model": sd, "epoch": 3, "optimizer":
  ...}``, Lightning's ``{"state_dict": ...}``): the only state dict it holds, or the one under
  ``key`` (dotted for a nested one, ``"run.best"``) when it holds several (a model and its EMA);
- a ``.safetensors`` file (Hugging Face's format), read by the safetensors package (an optional
  dependency), mapped likewise.

torch is imported when a function runs, not with this module.
"""

from __future__ import annotations

import os
import re
import warnings

from .errors import ArtifactError, ConfigError, MissingArtifactError


def load_state_dict(path, *, key: str | None = None) -> dict:
    """The state dict (tensor name -> tensor) in the file at ``path``; see the module's doc."""
    return state_dict_of(read_checkpoint(path), key, str(path))[0]


def read_checkpoint(path):
    """What the file at ``path`` holds: a dict of tensors (safetensors, mapped) or what
    ``torch.load(weights_only=True)`` gives."""
    import torch

    path = str(path)
    if not os.path.isfile(path):
        what = "a directory, not a state-dict file" if os.path.isdir(path) else "no state-dict file there"
        raise MissingArtifactError(f"{path!r} is {what}. Check the path: pass a file written by "
                                   f"torch.save(model.state_dict()) or a .safetensors file.")
    if _is_safetensors(path):
        return _read_safetensors(path)
    try:
        with warnings.catch_warnings():
            # torch warns of a protocol-4 pickle before refusing it; the error below says it in one line
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            try:
                # mapped: the tensors stay in the file and export reads them a piece at a time
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)  # the old format cannot be mapped
    except Exception as exc:  # torch raises many types for a bad file; report one clear line
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc)) if "Weights only load failed" in str(exc) else None
        if refused:  # a whole file holding objects of the training code (a checkpoint's hyper-parameters)
            raise ConfigError(
                f"{path!r} holds Python objects besides tensors ({refused.group(1)}), and export does not "
                f"unpickle them (that runs code from the file: torch.load(weights_only=True)). If you trust the file, "
                f"save its state dict alone and export that: torch.save(torch.load(path, weights_only=False)"
                f"['state_dict'], 'state.pt') (the key of the state dict in your checkpoint).") from None
        # opcodes 0x8c..0x98 exist from pickle protocol 4 on (FRAME, 149, comes first): a sound file of
        # torch.save(..., pickle_protocol=4), which torch's weights-only loader cannot read, not a damaged one
        op = re.search(r"Unsupported operand (\d+)", str(exc))
        if op and 0x8C <= int(op.group(1)) <= 0x98:
            raise ConfigError(
                f"{path!r} was written with pickle protocol 4 or later (torch.save(..., pickle_protocol=4)), which "
                f"torch.load(weights_only=True) cannot read. If you trust the file, save it again with torch's "
                f"default protocol and export that: torch.save(torch.load(path, weights_only=False), 'state.pt').") from None
        # torch's text can run to paragraphs (and suggest weights_only=False): keep its first sentence
        detail = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]
        raise ArtifactError(f"{path!r} is not a readable torch state dict ({type(exc).__name__}: {detail}). "
                            f"Pass a file written by torch.save(model.state_dict()) or a .safetensors file.") from None


def state_dict_of(checkpoint, key: str | None = None, path: str = "the file") -> tuple[dict, str | None]:
    """``(state dict, the key it was under or None)`` of what a file held (see the module's doc)."""
    if not isinstance(checkpoint, dict):
        raise ConfigError(f"{path!r} must hold a state dict (a dict of tensors). Got {type(checkpoint).__name__} instead.")
    found = _state_dicts(checkpoint)
    if key is None:
        if _is_state_dict(checkpoint) or not found:
            return checkpoint, None
        if len(found) > 1:
            raise ConfigError(f"{path!r} is a checkpoint holding several state dicts ({', '.join(map(repr, found))}). "
                              f"Choose one with key= (--key on the command line), e.g. {found[0]!r}.", param="key")
        key = found[0]
    value = checkpoint
    for part in [key] if key in checkpoint else key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not _holds_tensors(value):
        if found:
            where = f"state dicts in it: {', '.join(map(repr, found))}. Pass one of those"
        elif _holds_tensors(checkpoint):  # ("pass one of those" named none: the file needs no key)
            where = "the file is a state dict itself: leave key out"
        else:
            where = "it holds no state dict under any key"
        raise ConfigError(f"The 'key' parameter names no state dict of {path!r} ({key!r} holds no tensors at its top "
                          f"level); {where}.", param="key")
    return value, key


def _holds_tensors(value) -> bool:
    import torch

    return isinstance(value, dict) and any(isinstance(v, torch.Tensor) for v in value.values())


def _is_state_dict(value) -> bool:
    """A model's weights: a dict holding a weight matrix (a tensor of 2 or more dimensions) and no
    dict. A checkpoint holds its state dicts as dicts, and the other tensors training loops keep in
    it (a best accuracy, Lightning's ModelCheckpoint kth_value, an RNG state) are no matrices."""
    import torch

    return (isinstance(value, dict) and not any(isinstance(v, dict) for v in value.values())
            and any(isinstance(v, torch.Tensor) and v.dim() >= 2 for v in value.values()))


def _state_dicts(obj: dict, prefix: str = "") -> list[str]:
    """The dotted keys of the state dicts in a checkpoint. An optimizer's state dict is not
    searched: its per-parameter states are keyed by parameter numbers, or by parameter names
    (TorchRec's KeyedOptimizer, torch.distributed's get_state_dict)."""
    out = []
    for k, v in obj.items():
        if isinstance(k, str) and isinstance(v, dict) and "param_groups" not in v:
            out += [prefix + k] if _is_state_dict(v) else _state_dicts(v, f"{prefix}{k}.")
    return out


def _is_safetensors(path: str) -> bool:
    """By the name, or by the bytes: a header length (8 bytes) that fits the file, then a JSON
    object (a torch file starts with a zip's 'PK' or a pickle's 0x80)."""
    if path.endswith(".safetensors"):
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < os.path.getsize(path)


def _read_safetensors(path: str) -> dict:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise ConfigError(f"{path!r} is a .safetensors file, which needs the safetensors package: "
                          f"pip install safetensors (or embcompress[safetensors]).") from None
    try:
        return load_file(path)  # mapped: the tensors stay in the file until read
    except SafetensorError as exc:
        raise ArtifactError(f"{path!r} is not a readable .safetensors file ({exc}). Write it again "
                            f"(safetensors.torch.save_file), or pass a torch.save file.") from None
