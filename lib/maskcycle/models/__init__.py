"""Networks, losses, the image pool, optimisers and the CycleGAN step."""

from maskcycle.models.networks import build_discriminator, build_generator, count_parameters

__all__ = ["build_generator", "build_discriminator", "count_parameters"]
