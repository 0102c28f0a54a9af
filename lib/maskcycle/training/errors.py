"""How a training run fails on its own (not through a bad input): the CLI reports these as
"failed" (exit 1) and the trial's last good checkpoint is kept."""


class LaunchError(RuntimeError):
    """torchrun (or one of its workers) failed; the message ends with the tail of the output."""


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; the message names the loss and the iteration."""
