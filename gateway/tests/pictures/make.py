"""Makes the test pictures from scikit-image's data set (see README.md).

    pip download --no-deps scikit-image==0.26.0 && unzip -o scikit_image-*.whl 'skimage/data/*'
    pip install pillow numpy && python make.py skimage/data
"""
import os
import sys

import numpy as np
from PIL import Image, ImageFilter

src = sys.argv[1]
out = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(7)


def noisy(im, sigma=3.0):
    a = np.asarray(im).astype(np.float32) + rng.normal(0, sigma, np.asarray(im).shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def load(name):
    for ext in ("png", "jpg"):
        p = os.path.join(src, f"{name}.{ext}")
        if os.path.exists(p):
            return Image.open(p).convert("RGB")
    raise SystemExit(f"missing {name}")


def fit(im, w=640):
    w = min(w, im.width)
    return im.resize((w, round(im.height * w / im.width)), Image.LANCZOS)


for n in ["coffee", "chelsea", "camera", "rocket", "astronaut"]:
    fit(load(n)).save(f"{out}/normal-{n}.jpg", quality=80)
fit(load("hubble_deep_field")).save(f"{out}/dark-hubble.jpg", quality=80)
fit(load("clock_motion")).save(f"{out}/blurred-clock.jpg", quality=80)
for n in ["coffee", "chelsea", "rocket"]:
    base = fit(load(n))
    noisy(base.filter(ImageFilter.GaussianBlur(4)), 2).save(f"{out}/defocused-{n}.jpg", quality=80)
    dim = Image.fromarray((np.asarray(base).astype(np.float32) * 0.05).astype(np.uint8))
    noisy(dim, 1.5).save(f"{out}/dark-{n}.jpg", quality=80)
    for i in range(3):
        noisy(base, 3).save(f"{out}/frame{i}-{n}.jpg", quality=80)
w, h = 640, 360
y, x = np.mgrid[0:h, 0:w]
v = 38 + 6 * np.exp(-(((x - w / 2) / w) ** 2 + ((y - h / 2) / h) ** 2) * 2)
tape = np.stack([v, v * 0.97, v * 0.9], -1) + rng.normal(0, 1.2, (h, w, 3))
Image.fromarray(np.clip(tape, 0, 255).astype(np.uint8)).save(f"{out}/covered-tape.jpg", quality=80)
noisy(load("coffee").resize((1920, 1080), Image.LANCZOS), 3).save(f"{out}/normal-coffee-1080p.jpg", quality=80)
