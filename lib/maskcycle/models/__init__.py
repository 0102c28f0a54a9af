"""Models: the model families (CycleGAN, CUT, FastCUT, pix2pix and the non-learned baselines) and
what they are built from. A learned family builds its training state from a TrialConfig and takes
one optimisation step on a batch; the trainer knows families only through the `Family` contract.

Start reading at `families.py` (the contract and the registry: a new family is one file plus one
`register` line), then `cyclegan.py` (the reference family, one step in the reference's order).

- families.py: `Family` and `Model` (the contract in code) and the registry of families.
- cyclegan.py: CycleGAN's training state and step; `G_TERMS`, its generator loss-term table.
- cut.py: CUT (PatchNCE instead of a cycle); fastcut.py: FastCUT's presets over it.
- pix2pix.py: pix2pix, the paired oracle (conditional PatchGAN, L1 to the true counterpart).
- template.py, inpaint.py, do_nothing.py: the non-learned baselines (no training step);
  textures.py: the mask textures the template baseline draws.
- runtime.py: what every family's step uses: precision, layout, placement, freezing, RNG streams.
- execution.py: the execution path per device (precision/channels_last/batched_passes "auto").
- networks.py: generators and discriminators with the references' exact layouts.
- losses.py: GAN losses, the gradient penalty, the cycle loss, PatchNCE.
- pool.py: the image pool of past fakes; optim.py: optimisers and lr schedules.
- checkpoints.py: full training state, generator snapshots, the reference's saved generators.
"""

from maskcycle.models.networks import build_discriminator, build_generator, count_parameters

__all__ = ["build_generator", "build_discriminator", "count_parameters"]
