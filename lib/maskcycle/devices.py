"""Which torch device a trial's `device` setting means on this machine."""

from __future__ import annotations

from maskcycle.settings import ConfigError


def resolve_device(name: str):
    """"auto" -> cuda when visible, else cpu; "cuda" without a visible device is a ConfigError."""
    import torch  # here, not at the top: `maskcycle --help` and config checks stay fast

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("key 'device': value 'cuda' but no CUDA device is visible")
    return torch.device(name)
