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
        if _holds_tensors(checkpoint) or not found:
            return checkpoint, None
        if len(found) > 1:
            raise ConfigError(f"{path!r} is a checkpoint holding several state dicts ({', '.join(map(repr, found))}). "
                              f"Choose one with key= (--key on the command line), e.g. {found[0]!r}.", param="key")
        key = found[0]
    value = checkpoint
    for part in [key] if key in checkpoint else key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not _holds_tensors(value):
        where = f"state dicts in it: {', '.join(map(repr, found))}" if found else "it holds no state dict under any key"
        raise ConfigError(f"The 'key' parameter names no state dict of {path!r} ({key!r} holds no tensors at its top "
                          f"level); {where}. Pass one of those.", param="key")
    return value, key


def _holds_tensors(value) -> bool:
    import torch

    return isinstance(value, dict) and any(isinstance(v, torch.Tensor) for v in value.values())


def _state_dicts(obj: dict, prefix: str = "") -> list[str]:
    """The dotted keys of the dicts in a checkpoint that hold tensors at their top level (an
    optimizer's state, keyed by parameter numbers, is no state dict and is not searched)."""
    out = []
    for k, v in obj.items():
        if isinstance(k, str) and isinstance(v, dict):
            out += [prefix + k] if _holds_tensors(v) else _state_dicts(v, f"{prefix}{k}.")
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
