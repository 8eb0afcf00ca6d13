"""A convolutional autoencoder on Fashion-MNIST whose bottleneck is the demo's second feature space.

The demo classifier (classifier.py) sees what separates the ten classes, as Inception does for FID; an
autoencoder trained only to reconstruct sees what it takes to redraw the image: layout, contrast, intensity,
texture. The two play the roles of FID and FD_DINOv2 in the autoguidance paper: spaces of different kinds,
so a claim that holds in both does not rest on what one detector happens to notice. Neither uses labels at
the other's expense: the encoder never sees a class.

The detector file takes uint8 [N, 1, 32, 32] images and returns the 64-D bottleneck.
"""

import torch
from torch import Tensor


class AutoEncoder(torch.nn.Module):
    def __init__(self, latent_dim: int = 64):
        super().__init__()
        act = torch.nn.SiLU
        # Small enough to train in minutes on one CPU core (about 5 MFLOP per image and pass).
        self.encoder = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, stride=2, padding=1), act(),     # 16x16
            torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), act(),    # 8x8
            torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), act(),    # 4x4
            torch.nn.Flatten(), torch.nn.Linear(64 * 16, latent_dim))
        self.decoder = torch.nn.Sequential(
            torch.nn.Linear(latent_dim, 64 * 16), act(), torch.nn.Unflatten(1, (64, 4, 4)),
            torch.nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), act(),    # 8x8
            torch.nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), act(),    # 16x16
            torch.nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1), torch.nn.Tanh())  # 32x32

    def encode(self, x: Tensor) -> Tensor:
        """x in [-1, 1], float [N, 1, 32, 32] -> [N, latent_dim]."""
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encode(x))


class EncoderDetector(torch.nn.Module):
    """uint8 images -> the autoencoder's bottleneck (what the metric compares)."""

    def __init__(self, autoencoder: AutoEncoder):
        super().__init__()
        self.encoder = autoencoder.encoder

    def forward(self, images: Tensor) -> Tensor:
        return self.encoder(images.to(torch.float32) / 127.5 - 1)


def train(images: Tensor, epochs: int = 3, batch: int = 128, seed: int = 6, log=print) -> AutoEncoder:
    """Mean squared reconstruction error, Adam with a one-cycle schedule; images uint8 [N, 1, 32, 32]."""
    torch.manual_seed(seed)
    ae = AutoEncoder()
    x = images.to(torch.float32) / 127.5 - 1
    steps = epochs * (len(x) // batch)
    opt = torch.optim.Adam(ae.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed + 1)
    ae.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(len(x) // batch):
            b = x[perm[i * batch:(i + 1) * batch]]
            loss = torch.nn.functional.mse_loss(ae(b), b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        log(f'encoder: epoch {epoch + 1}/{epochs} loss {loss.item():.4f}')
    return ae.eval()


def reconstruction_mse(ae: AutoEncoder, images: Tensor) -> float:
    """Mean squared error in [-1, 1] units over `images` (uint8), e.g. the test split."""
    x = images.to(torch.float32) / 127.5 - 1
    with torch.no_grad():
        err = sum(torch.nn.functional.mse_loss(ae(x[i:i + 1000]), x[i:i + 1000], reduction='sum').item()
                  for i in range(0, len(x), 1000))
    return err / x.numel()
