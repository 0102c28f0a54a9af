"""maskcycle: a reproducible CycleGAN study of putting masks on faces and taking them off."""

__version__ = "0.1.0"
