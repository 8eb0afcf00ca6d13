"""Panels in the style of the paper's Figure 1, drawn with numpy + PIL (no matplotlib needed).

Background: the region where the ground-truth log-density is within 4.5 of its peak, light grey for
classes A+B and light orange for class A, each with a darker rim. Samples are dark dots blended with a
fixed opacity, so dense regions turn black and lone outliers stay faint but visible.
"""

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

import fractal

# The paper's two views (toy_example.py): the whole tree, and a close-up of class A's upper branches.
FULL_VIEW = dict(center=(0.3, 0.3), half=1.2)
CLOSE_VIEW = dict(center=(0.45, 1.22), half=0.3)
LOG_RANGE = 4.5   # the shaded level set: log p >= max log p - 4.5
GREY, GREY_RIM = np.array([230, 230, 230]), np.array([179, 179, 179])
ORANGE, ORANGE_RIM = np.array([255, 204, 153]), np.array([204, 153, 128])


def _font(size):
    for name in ('DejaVuSans.ttf', '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf'):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            pass
    return ImageFont.load_default()


def _grid(view, px):
    (cx, cy), h = view['center'], view['half']
    xs = cx - h + (np.arange(px) + 0.5) * (2 * h / px)
    ys = cy + h - (np.arange(px) + 0.5) * (2 * h / px)   # row 0 is the top
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx, gy], -1)


def _level_set(classes, grid):
    gt = fractal.ground_truth(classes)
    peak = float(gt.logp(gt.mu).max())  # the peaks sit at (or next to) component means; view-independent
    logp = gt.logp(torch.from_numpy(grid.reshape(-1, 2))).numpy().reshape(grid.shape[:2])
    return logp >= peak - LOG_RANGE


def _rim(mask):
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def background(view, px):
    grid = _grid(view, px)
    img = np.full(grid.shape[:2] + (3,), 255.0)
    for classes, fill, rim in (('AB', GREY, GREY_RIM), ('A', ORANGE, ORANGE_RIM)):
        mask = _level_set(classes, grid)
        img[mask] = fill
        img[_rim(mask)] = rim
    return img


def draw_points(bg, view, points, radius=1, alpha=0.25):
    """Blend each point as a (2 radius + 1)^2 pixel square of opacity alpha."""
    px = bg.shape[0]
    (cx, cy), h = view['center'], view['half']
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    col = np.floor((p[:, 0] - (cx - h)) / (2 * h) * px).astype(np.int64)
    row = np.floor(((cy + h) - p[:, 1]) / (2 * h) * px).astype(np.int64)
    hits = np.zeros(bg.shape[:2])
    for dr in range(-radius, radius + 1):
        for dc in range(-radius, radius + 1):
            r, c = row + dr, col + dc
            ok = (r >= 0) & (r < px) & (c >= 0) & (c < px)
            np.add.at(hits, (r[ok], c[ok]), 1)
    return bg * (1 - alpha) ** hits[..., None]


def figure(panels, path, px=420, close_px=420, title_size=18):
    """panels: list of (title, points [N,2], subtitle). Two rows: the full view, then the close-up."""
    font, small = _font(title_size), _font(title_size - 4)
    pad, head = 8, title_size * 2 + 14
    width = len(panels) * (px + pad) + pad
    height = head + px + pad + close_px + pad
    canvas = Image.new('RGB', (width, height), 'white')
    draw = ImageDraw.Draw(canvas)
    rows = ((FULL_VIEW, px, 1, 0.2), (CLOSE_VIEW, close_px, 2, 0.35))
    y = head
    for view, size, radius, alpha in rows:
        bg = background(view, size)
        for i, (title, points, subtitle) in enumerate(panels):
            img = draw_points(bg, view, points, radius=radius, alpha=alpha) if points is not None else bg
            tile = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
            x = pad + i * (px + pad)
            canvas.paste(tile, (x, y))
            draw.rectangle([x - 1, y - 1, x + size, y + size], outline=(120, 120, 120))
            if view is FULL_VIEW:
                draw.text((x, 4), title, fill='black', font=font)
                draw.text((x, 8 + title_size), subtitle, fill=(60, 60, 60), font=small)
        y += size + pad
    canvas.save(path)
