"""A small Fashion-MNIST classifier whose penultimate layer is the demo's feature detector.

FID uses Inception-v3 features of ImageNet images; for 32x32 grey clothes a classifier trained on
the same data plays that role: its 128-D pre-logit features are what `autoguide ref` / `fid` compare.
The detector file takes uint8 [N, 1, 32, 32] images, as autoguide's detector contract says.
"""

import torch
from torch import Tensor


class Classifier(torch.nn.Module):
    def __init__(self, feature_dim: int = 128, num_classes: int = 10):
        super().__init__()
        act = torch.nn.SiLU
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.BatchNorm2d(32), act(),
            torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.BatchNorm2d(32), act(),
            torch.nn.MaxPool2d(2),                                                      # 16x16
            torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.BatchNorm2d(64), act(),
            torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.BatchNorm2d(64), act(),
            torch.nn.MaxPool2d(2),                                                      # 8x8
            torch.nn.Conv2d(64, 128, 3, padding=1), torch.nn.BatchNorm2d(128), act(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
            torch.nn.Linear(128, feature_dim), act())
        self.head = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(feature_dim, num_classes))

    def features(self, x: Tensor) -> Tensor:
        """x in [-1, 1], float [N, 1, 32, 32]."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class Detector(torch.nn.Module):
    """uint8 images -> the classifier's penultimate features (what the metric compares)."""

    def __init__(self, classifier: Classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, images: Tensor) -> Tensor:
        x = images.to(torch.float32) / 127.5 - 1
        return self.classifier.features(x)

    @torch.jit.export
    def classify(self, images: Tensor) -> Tensor:
        """Predicted class indices, for checking the detector's accuracy."""
        x = images.to(torch.float32) / 127.5 - 1
        return self.classifier(x).argmax(dim=1)
