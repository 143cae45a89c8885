"""Draw frames straight onto a Linux framebuffer (/dev/fbN): a Pi on the HDMI console, no X.

Geometry and pixel format come from sysfs (``/sys/class/graphics/fbN/``: ``virtual_size``,
``bits_per_pixel``, ``stride``, and ``modes`` for the visible size when the virtual screen
is taller for panning). On a real framebuffer device the kernel's colour bit-fields
(``FBIOGET_VSCREENINFO``) refine the channel order; without them 16 bpp is RGB565 and
32 bpp is XRGB8888 (bytes B, G, R, X in memory), 24 bpp is BGR888.
The picture is letterboxed (aspect kept, centred, black bars) and written row by row with
the framebuffer's stride. Tests point ``device`` at a plain file of the framebuffer's size
and ``sysfs_dir`` at a folder holding the same attribute files.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from dsrter.edge.display.image import to_bgr

log = logging.getLogger(__name__)

FBIOGET_VSCREENINFO = 0x4600


class FramebufferError(RuntimeError):
    """The framebuffer cannot be used (missing, no permission, unknown format)."""


@dataclass(frozen=True)
class Channel:
    offset: int  # bit offset inside the pixel (little-endian integer)
    length: int  # bits


@dataclass(frozen=True)
class PixelFormat:
    bits_per_pixel: int
    red: Channel
    green: Channel
    blue: Channel
    name: str


RGB565 = PixelFormat(16, Channel(11, 5), Channel(5, 6), Channel(0, 5), "rgb565")
BGR888 = PixelFormat(24, Channel(16, 8), Channel(8, 8), Channel(0, 8), "bgr888")  # bytes B,G,R
XRGB8888 = PixelFormat(32, Channel(16, 8), Channel(8, 8), Channel(0, 8), "xrgb8888")  # bytes B,G,R,X


def _read_attr(sysfs: Path, name: str) -> Optional[str]:
    try:
        return (sysfs / name).read_text().strip()
    except OSError:
        return None


def _mode_size(modes: Optional[str]) -> Optional[tuple[int, int]]:
    """First entry of ``modes`` (e.g. ``U:1920x1080p-0``) as (width, height)."""
    if not modes:
        return None
    m = re.search(r"(\d+)x(\d+)", modes.splitlines()[0])
    return (int(m.group(1)), int(m.group(2))) if m else None


def _ioctl_info(fd: int) -> Optional[dict]:
    """xres/yres/yoffset and colour bit-fields from the kernel (char devices only)."""
    buf = bytearray(160)
    try:
        fcntl.ioctl(fd, FBIOGET_VSCREENINFO, buf, True)
    except OSError:
        return None
    v = struct.unpack_from("<20I", buf)
    return {"xres": v[0], "yres": v[1], "yoffset": v[5], "bpp": v[6],
            "red": Channel(v[8], v[9]), "green": Channel(v[11], v[12]), "blue": Channel(v[14], v[15])}


class Framebuffer:
    """One framebuffer device opened for writing."""

    def __init__(self, device: Path, sysfs_dir: Path | None = None) -> None:
        self.device = Path(device)
        self.sysfs_dir = Path(sysfs_dir) if sysfs_dir is not None else Path("/sys/class/graphics") / self.device.name
        vsize = _read_attr(self.sysfs_dir, "virtual_size")
        bpp = _read_attr(self.sysfs_dir, "bits_per_pixel")
        if vsize is None or bpp is None:
            raise FramebufferError(
                f"{self.device}: cannot read {self.sysfs_dir}/virtual_size and bits_per_pixel "
                "(is this a framebuffer device? on a Pi with KMS, /dev/fb0 appears when HDMI is connected at boot)")
        try:
            vw, vh = (int(x) for x in vsize.split(","))
            self.bits_per_pixel = int(bpp)
        except ValueError:
            raise FramebufferError(f"{self.sysfs_dir}: unexpected virtual_size {vsize!r} / bits_per_pixel {bpp!r}") from None
        formats = {16: RGB565, 24: BGR888, 32: XRGB8888}
        if self.bits_per_pixel not in formats:
            raise FramebufferError(f"{self.device}: {self.bits_per_pixel} bits per pixel is not supported (16, 24, 32 are)")
        self.format = formats[self.bits_per_pixel]
        self.bytes_per_pixel = self.bits_per_pixel // 8
        stride_txt = _read_attr(self.sysfs_dir, "stride")
        self.stride = int(stride_txt) if stride_txt else vw * self.bytes_per_pixel
        self.width, self.height = vw, vh
        mode = _mode_size(_read_attr(self.sysfs_dir, "modes"))
        if mode and mode[0] <= vw and mode[1] <= vh:
            self.width, self.height = mode
        self.y_offset = 0
        try:
            self._fd = os.open(self.device, os.O_RDWR)
        except FileNotFoundError:
            raise FramebufferError(f"{self.device}: no such device") from None
        except PermissionError:
            raise FramebufferError(f"{self.device}: permission denied (add the user to the 'video' group)") from None
        if stat.S_ISCHR(os.fstat(self._fd).st_mode):
            info = _ioctl_info(self._fd)
            if info and info["bpp"] == self.bits_per_pixel:
                self.width, self.height, self.y_offset = info["xres"], info["yres"], info["yoffset"]
                self.format = PixelFormat(self.bits_per_pixel, info["red"], info["green"], info["blue"],
                                          f"{self.format.name} (kernel bit-fields)")
        if self.stride < self.width * self.bytes_per_pixel:
            os.close(self._fd)
            raise FramebufferError(f"{self.device}: stride {self.stride} is less than {self.width} pixels")
        self._geom: Optional[tuple[int, int, int, int, int, int]] = None
        self._row_buf = np.zeros((self.height, self.stride), dtype=np.uint8)
        log.info("framebuffer %s: %dx%d, %d bpp (%s), stride %d", self.device, self.width, self.height,
                 self.bits_per_pixel, self.format.name, self.stride)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    # -- conversion ----------------------------------------------------------------------
    def pack(self, bgr: np.ndarray) -> np.ndarray:
        """BGR uint8 HxWx3 -> HxW*bytes_per_pixel uint8 in this framebuffer's pixel format."""
        fmt = self.format
        h, w = bgr.shape[:2]
        # The usual layouts go through OpenCV's vectorised converters (matters on a Pi at 1080p).
        if (fmt.bits_per_pixel, fmt.red, fmt.green, fmt.blue) == (16, RGB565.red, RGB565.green, RGB565.blue):
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2BGR565).reshape(h, w * 2)
        if (fmt.bits_per_pixel, fmt.red, fmt.green, fmt.blue) == (32, XRGB8888.red, XRGB8888.green, XRGB8888.blue):
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA).reshape(h, w * 4)  # alpha 255
        if (fmt.bits_per_pixel, fmt.red, fmt.green, fmt.blue) == (24, BGR888.red, BGR888.green, BGR888.blue):
            return np.ascontiguousarray(bgr).reshape(h, w * 3)
        return self._pack_generic(bgr)

    def _pack_generic(self, bgr: np.ndarray) -> np.ndarray:
        """Any bit-field layout the kernel reports (e.g. RGBA order, BGR565)."""
        fmt = self.format
        h, w = bgr.shape[:2]
        b = bgr[:, :, 0].astype(np.uint32)
        g = bgr[:, :, 1].astype(np.uint32)
        r = bgr[:, :, 2].astype(np.uint32)
        px = np.zeros((h, w), dtype=np.uint32)
        for ch, v in ((fmt.red, r), (fmt.green, g), (fmt.blue, b)):
            px |= (v >> (8 - ch.length)) << ch.offset
        if self.bits_per_pixel == 32:  # opaque "X"/alpha byte: the bits no colour uses
            used = 0
            for ch in (fmt.red, fmt.green, fmt.blue):
                used |= ((1 << ch.length) - 1) << ch.offset
            px |= np.uint32(~used & 0xFFFFFFFF)
        if self.bits_per_pixel == 16:
            return px.astype("<u2").view(np.uint8).reshape(h, w * 2)
        if self.bits_per_pixel == 32:
            return px.astype("<u4").view(np.uint8).reshape(h, w * 4)
        le = px.astype("<u4").view(np.uint8).reshape(h, w, 4)[:, :, :3]
        return np.ascontiguousarray(le).reshape(h, w * 3)

    def letterbox(self, image: np.ndarray) -> tuple[np.ndarray, int, int]:
        """The image scaled to fit the screen with its aspect kept, and its top-left offset."""
        img = to_bgr(image)
        ih, iw = img.shape[:2]
        s = min(self.width / iw, self.height / ih)
        nw, nh = max(1, min(self.width, int(round(iw * s)))), max(1, min(self.height, int(round(ih * s))))
        if (nw, nh) != (iw, ih):
            img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        return img, (self.width - nw) // 2, (self.height - nh) // 2

    def render(self, image: np.ndarray) -> bytes:
        """The whole screen (height x stride bytes) as it would be written for ``image``."""
        img, x0, y0 = self.letterbox(image)
        buf = np.zeros((self.height, self.stride), dtype=np.uint8)
        self._clear(buf)
        self._blit(buf, img, x0, y0)
        return buf.tobytes()

    def _clear(self, buf: np.ndarray) -> None:
        """Black pixels on every row (stride padding zero)."""
        buf[:] = 0
        black = self.pack(np.zeros((1, 1, 3), np.uint8))[0]
        buf[:, : self.width * self.bytes_per_pixel] = np.tile(black, self.width)

    def _blit(self, buf: np.ndarray, img: np.ndarray, x0: int, y0: int) -> None:
        h, w = img.shape[:2]
        bpp = self.bytes_per_pixel
        buf[y0:y0 + h, x0 * bpp:(x0 + w) * bpp] = self.pack(img)

    # -- output --------------------------------------------------------------------------
    def show(self, image: np.ndarray) -> None:
        """Letterbox ``image`` onto the screen. Only the picture's rows are rewritten once the
        black bars are in place."""
        img, x0, y0 = self.letterbox(image)
        h, w = img.shape[:2]
        geom = (x0, y0, w, h, self.width, self.height)
        base = self.y_offset * self.stride
        if geom != self._geom:  # first frame or new size: clear the whole screen once
            self._clear(self._row_buf)
            self._blit(self._row_buf, img, x0, y0)
            os.pwrite(self._fd, self._row_buf.data, base)
            self._geom = geom
            return
        rows = self._row_buf[y0:y0 + h]
        rows[:, x0 * self.bytes_per_pixel:(x0 + w) * self.bytes_per_pixel] = self.pack(img)
        os.pwrite(self._fd, rows.data, base + y0 * self.stride)

    def close(self) -> None:
        fd: Optional[int] = getattr(self, "_fd", None)
        self._fd = -1
        if fd is not None and fd >= 0:
            os.close(fd)

    def __enter__(self) -> "Framebuffer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
