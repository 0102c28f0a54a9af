"""The image pool (Shrivastava et al.) that feeds discriminators a history of fakes."""

from __future__ import annotations

import torch


class ImagePool:
    """Per image in a batch: while the pool is not full, store and return it; when full, with
    probability 0.5 return a random stored image and store the new one in its place, else return
    the new one. Size 0 disables the pool. Randomness comes from its own generator, whose state
    is saved with the pool so a resumed run draws the same numbers."""

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(1, generator=self.rng).item() > 0.5:
                i = int(torch.randint(0, self.size, (1,), generator=self.rng))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        stored = torch.cat(self.images, 0).cpu() if self.images else torch.empty(0)
        return {"size": self.size, "images": stored, "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.size = int(state["size"])
        stored = state["images"]
        self.images = [img.unsqueeze(0).to(device) for img in stored] if stored.numel() else []
        self.rng.set_state(state["rng"])
