"""Real pictures and rendered text: photos bundled with scikit-image, fonts from Debian packages."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from . import corpus

# Debian fonts-dejavu-core and fonts-liberation (scripts/real_models.py installs them if missing).
FONT_FILES = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
]
BOLD_FONT_FILES = ["/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                   "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
                   "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf"]

# Photos shipped inside the scikit-image wheel (skimage.data; no download). Faces: astronaut
# (Eileen Collins) and camera (the cameraman); the rest are scenes without people.
FACE_PHOTOS = ["astronaut", "camera"]
SCENE_PHOTOS = ["coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "coins",
                "brick", "grass", "gravel", "moon", "clock", "retina"]


def fonts() -> list[str]:
    return [f for f in FONT_FILES if Path(f).exists()]


def bold_fonts() -> list[str]:
    return [f for f in BOLD_FONT_FILES if Path(f).exists()] or fonts()


@lru_cache(maxsize=None)
def photo(name: str) -> Image.Image:
    """One skimage.data picture as an RGB PIL image (greyscale ones repeated over 3 channels)."""
    import skimage.data

    array = getattr(skimage.data, name)()
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(np.ascontiguousarray(array[..., :3]).astype(np.uint8))


def lfw_faces() -> tuple[np.ndarray, np.ndarray]:
    """skimage.data.lfw_subset: 25x25 greyscale crops, the first 100 faces, the last 100 not."""
    import skimage.data

    crops = skimage.data.lfw_subset()
    return (crops * 255).astype(np.uint8), np.array([1] * 100 + [0] * 100)


def random_crop(rng: random.Random, image: Image.Image, size: tuple[int, int], min_scale: float = 0.4) -> Image.Image:
    """A crop with the output's aspect ratio covering min_scale..1 of the picture, resized to size (w, h)."""
    w, h = image.size
    aspect = size[0] / size[1]
    scale = rng.uniform(min_scale, 1.0)
    cw = min(w, int(min(w, h * aspect) * scale))
    ch = min(h, int(cw / aspect))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return image.crop((x, y, x + cw, y + ch)).resize(size, Image.BILINEAR)


def photometric(rng: random.Random, image: Image.Image, mirror: bool = True) -> Image.Image:
    """Camera-like variation: brightness/contrast, mirror (if allowed), mild blur or sensor noise."""
    array = np.asarray(image).astype(np.float32)
    array = (array - 128) * rng.uniform(0.7, 1.3) + 128 + rng.uniform(-30, 30)
    if rng.random() < 0.3:
        array += np.random.default_rng(rng.randrange(2**32)).normal(0, 6, array.shape)
    out = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
    if mirror and rng.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.2:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.2)))
    return out


def render_line(rng: random.Random, text: str, height: int = 40) -> Image.Image:
    """A tight crop of one printed text line, as a text detector would hand it to a recognizer:
    random font, ink and paper tones, a few pixels of margin, sometimes blur or noise."""
    font = ImageFont.truetype(rng.choice(fonts() + bold_fonts()), rng.randint(int(height * 0.6), int(height * 0.8)))
    left, top, right, bottom = font.getbbox(text)
    margin_x, margin_y = rng.randint(2, 10), rng.randint(2, 8)
    paper = tuple(rng.randint(190, 255) for _ in range(3))
    ink = tuple(rng.randint(0, 70) for _ in range(3))
    if rng.random() < 0.2:  # light text on a dark sign
        paper, ink = tuple(255 - c for c in paper), tuple(255 - c for c in ink)
    image = Image.new("RGB", (right - left + 2 * margin_x, bottom - top + 2 * margin_y), paper)
    ImageDraw.Draw(image).text((margin_x - left, margin_y - top), text, font=font, fill=ink)
    return photometric_text(rng, image)


def photometric_text(rng: random.Random, image: Image.Image) -> Image.Image:
    array = np.asarray(image).astype(np.float32)
    if rng.random() < 0.4:
        array += np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(2, 8), array.shape)
    out = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
    return out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9))) if rng.random() < 0.4 else out


@dataclass
class Page:
    """A rendered document page and what is on it, in page pixels (x1, y1, x2, y2)."""

    image: Image.Image
    regions: list[tuple[str, tuple[int, int, int, int]]]  # (CDLA class name, box)
    lines: list[tuple[int, int, int, int]]  # every printed text line


def wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if font.getlength(trial) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    return lines + ([line] if line else [])


class PageWriter:
    """Lays out blocks top to bottom on a page, recording each block's box and its lines' boxes."""

    def __init__(self, rng: random.Random, size: tuple[int, int]):
        self.rng, self.size = rng, size
        tone = rng.randint(232, 255)  # white to off-white paper, slightly tinted
        self.image = Image.new("RGB", size, (tone, tone - rng.randint(0, 6), tone - rng.randint(0, 10)))
        self.draw = ImageDraw.Draw(self.image)
        self.margin = int(size[0] * rng.uniform(0.08, 0.12))
        self.y = int(size[1] * 0.05)
        self.regions: list = []
        self.lines: list = []
        self.body = ImageFont.truetype(rng.choice(fonts()), int(size[0] * rng.uniform(0.018, 0.024)))

    @property
    def width(self) -> int:
        return self.size[0] - 2 * self.margin

    def room(self, height: int) -> bool:
        return self.y + height < self.size[1] * 0.9

    def text_block(self, kind: str, text: str, font: ImageFont.FreeTypeFont, centre: bool = False) -> None:
        top, line_height = self.y, int(font.size * 1.35)
        box_lines = []
        for line in wrap(text, font, self.width):
            if not self.room(line_height):
                break
            x = self.margin + (self.width - int(font.getlength(line))) // 2 if centre else self.margin
            bbox = self.draw.textbbox((x, self.y), line, font=font)
            self.draw.text((x, self.y), line, font=font, fill=(20, 20, 20))
            box_lines.append(bbox)
            self.y += line_height
        if box_lines:
            self.lines += box_lines
            self.regions.append((kind, _union(box_lines)))
        self.y += int(font.size * 0.8)

    def figure(self, number: int) -> None:
        w = int(self.width * self.rng.uniform(0.35, 0.6))
        pic = photo(self.rng.choice(FACE_PHOTOS + SCENE_PHOTOS))
        h = int(w * pic.size[1] / pic.size[0])
        if not self.room(h + self.body.size * 3):
            return
        x = self.margin + (self.width - w) // 2
        self.image.paste(pic.resize((w, h), Image.BILINEAR), (x, self.y))
        self.regions.append(("figure", (x, self.y, x + w, self.y + h)))
        self.y += h + self.body.size // 2
        caption = f"Figure {number}. {self.rng.choice(corpus.SENTENCES)}"
        self.text_block("figure_caption", caption, self.body, centre=True)

    def table(self, number: int) -> None:
        rows, cols = self.rng.randint(3, 6), self.rng.randint(3, 5)
        row_h = int(self.body.size * 1.8)
        if not self.room(row_h * (rows + 2) + self.body.size * 2):
            return
        self.text_block("table_caption", f"Table {number}: {self.rng.choice(corpus.SENTENCES)}", self.body, centre=True)
        top, col_w = self.y, self.width // cols
        for r in range(rows + 1):
            self.draw.line((self.margin, top + r * row_h, self.margin + cols * col_w, top + r * row_h), fill=(40, 40, 40), width=2)
            for c in range(cols):
                cell = (["Region", "Q1", "Q2", "Q3", "Q4"][c] if r == 0 else
                        (self.rng.choice(["North", "South", "East", "West", "Total"]) if c == 0 else f"{self.rng.uniform(1, 999):.1f}"))
                if r < rows:
                    at = (self.margin + c * col_w + 6, top + r * row_h + row_h // 5)
                    self.lines.append(self.draw.textbbox(at, cell, font=self.body))
                    self.draw.text(at, cell, font=self.body, fill=(20, 20, 20))
        for c in range(cols + 1):
            self.draw.line((self.margin + c * col_w, top, self.margin + c * col_w, top + rows * row_h), fill=(40, 40, 40), width=2)
        self.regions.append(("table", (self.margin, top, self.margin + cols * col_w, top + rows * row_h)))
        self.y = top + rows * row_h + self.body.size

    def footer(self, text: str) -> None:
        font = ImageFont.truetype(self.rng.choice(fonts()), int(self.body.size * 0.8))
        self.y = int(self.size[1] * 0.94)
        bbox = self.draw.textbbox((self.margin, self.y), text, font=font)
        self.draw.text((self.margin, self.y), text, font=font, fill=(60, 60, 60))
        self.lines.append(bbox)
        self.regions.append(("footer", bbox))


def render_page(rng: random.Random, size: tuple[int, int] = (1216, 1600)) -> Page:
    """A report-like page: header, title, paragraphs, a figure with caption, a table, a footer."""
    page = PageWriter(rng, size)
    small = ImageFont.truetype(rng.choice(fonts()), int(page.body.size * 0.8))
    page.text_block("header", f"Annual Report {rng.randint(2015, 2025)}  |  Section {rng.randint(1, 9)}", small)
    title = ImageFont.truetype(rng.choice(bold_fonts()), int(page.body.size * rng.uniform(1.6, 2.2)))
    page.text_block("title", " ".join(rng.choice(corpus.SENTENCES).split()[:rng.randint(3, 6)]).rstrip("."), title, centre=True)
    blocks = ["text", "text", "figure", "text", "table", "text"]
    rng.shuffle(blocks)
    for number, block in enumerate(blocks, 1):
        if block == "text":
            page.text_block("text", " ".join(rng.sample(corpus.SENTENCES, rng.randint(2, 5))), page.body)
        elif block == "figure":
            page.figure(number)
        else:
            page.table(number)
    page.footer(f"Page {rng.randint(1, 40)}")
    return Page(page.image, page.regions, page.lines)


def _union(boxes: list) -> tuple[int, int, int, int]:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def to_chw(image: Image.Image, mean, std, bgr: bool = False) -> np.ndarray:
    """(3, H, W) float32 of (pixel/255 - mean) / std; bgr=True for models trained on OpenCV's order."""
    array = np.asarray(image.convert("RGB")).astype(np.float32) / 255.0
    if bgr:
        array = array[..., ::-1]
    return ((array - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).transpose(2, 0, 1).astype(np.float32)
