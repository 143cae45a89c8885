"""Framebuffer output checked byte for byte on fake 16- and 32-bit framebuffers, and the display backends."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np
import pytest

from dsrter.edge.config import OverlayConfig
from dsrter.edge.display.backends import DisplayError, FramebufferDisplay, NullDisplay, VideoFileDisplay, make_display
from dsrter.edge.display.framebuffer import Framebuffer, FramebufferError


def fake_fb(tmp_path: Path, width: int, height: int, bpp: int, stride: int | None = None, modes: str | None = None,
            virtual_h: int | None = None, fill: int = 0xAA):
    sysfs = tmp_path / "sys" / "fb7"
    sysfs.mkdir(parents=True)
    vh = virtual_h or height
    stride = stride or width * bpp // 8
    (sysfs / "virtual_size").write_text(f"{width},{vh}\n")
    (sysfs / "bits_per_pixel").write_text(f"{bpp}\n")
    (sysfs / "stride").write_text(f"{stride}\n")
    if modes:
        (sysfs / "modes").write_text(modes + "\n")
    dev = tmp_path / "fb7"
    dev.write_bytes(bytes([fill]) * (stride * vh))
    return dev, sysfs, stride


def rgb565(b, g, r) -> bytes:
    return struct.pack("<H", ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3))


def test_16bit_exact_bytes_with_stride_padding(tmp_path):
    dev, sysfs, stride = fake_fb(tmp_path, 4, 3, 16, stride=12)  # 8 bytes of pixels + 4 of padding per row
    img = np.array([[[0, 0, 0], [255, 255, 255], [0, 0, 255], [0, 255, 0]],
                    [[255, 0, 0], [10, 20, 30], [200, 100, 50], [7, 129, 250]],
                    [[1, 2, 3], [255, 128, 64], [64, 128, 255], [33, 66, 99]]], np.uint8)
    with Framebuffer(dev, sysfs) as fb:
        assert (fb.width, fb.height, fb.stride, fb.bits_per_pixel) == (4, 3, 12, 16)
        fb.show(img)
    data = dev.read_bytes()
    for y in range(3):
        row = b"".join(rgb565(*map(int, img[y, x])) for x in range(4))
        assert data[y * 12:y * 12 + 8] == row
        # the padding is black (the screen is cleared once, whole rows at a time)
        assert data[y * 12 + 8:y * 12 + 12] == b"\x00" * 4
    assert rgb565(0, 0, 255) == struct.pack("<H", 0xF800)  # pure red is the top 5 bits


def test_32bit_exact_bytes_are_b_g_r_x(tmp_path):
    dev, sysfs, stride = fake_fb(tmp_path, 3, 2, 32, stride=16)
    img = np.array([[[1, 2, 3], [250, 128, 0], [0, 0, 0]],
                    [[255, 255, 255], [9, 8, 7], [100, 150, 200]]], np.uint8)
    fb = Framebuffer(dev, sysfs)
    assert fb.format.name == "xrgb8888"
    fb.show(img)
    fb.close()
    data = dev.read_bytes()
    for y in range(2):
        expect = b"".join(bytes([*map(int, img[y, x]), 0xFF]) for x in range(3))
        assert data[y * 16:y * 16 + 12] == expect


def test_letterbox_keeps_aspect_and_centres(tmp_path):
    dev, sysfs, stride = fake_fb(tmp_path, 8, 8, 32)
    img = np.zeros((2, 4, 3), np.uint8)
    img[:] = (10, 20, 30)
    fb = Framebuffer(dev, sysfs)
    fb.show(img)  # 4x2 -> 8x4, bars of 2 rows above and below
    data = np.frombuffer(dev.read_bytes(), np.uint8).reshape(8, 8, 4)
    assert np.all(data[2:6] == [10, 20, 30, 255])
    assert np.all(data[:2] == [0, 0, 0, 255]) and np.all(data[6:] == [0, 0, 0, 255])
    assert fb.render(img) == dev.read_bytes()
    # later frames of the same size rewrite only the picture rows (the bars stay as they are)
    raw = bytearray(dev.read_bytes())
    raw[0:4] = b"\x11\x22\x33\x44"
    dev.write_bytes(bytes(raw))
    img[:] = (40, 50, 60)
    fb.show(img)
    data = np.frombuffer(dev.read_bytes(), np.uint8).reshape(8, 8, 4)
    assert np.all(data[2:6] == [40, 50, 60, 255]) and data[0, 0].tolist() == [0x11, 0x22, 0x33, 0x44]
    # a new size clears the screen again
    fb.show(np.full((8, 4, 3), 200, np.uint8))
    data = np.frombuffer(dev.read_bytes(), np.uint8).reshape(8, 8, 4)
    assert data[0, 0].tolist() == [0, 0, 0, 255] and np.all(data[:, 2:6, :3] == 200)
    fb.close()


def test_visible_mode_smaller_than_virtual_and_gray_input(tmp_path):
    dev, sysfs, stride = fake_fb(tmp_path, 6, 4, 16, virtual_h=8, modes="U:6x4p-0")
    fb = Framebuffer(dev, sysfs)
    assert fb.size == (6, 4)
    fb.show(np.full((4, 6), 255, np.uint8))  # gray in
    data = dev.read_bytes()
    assert data[: 4 * stride] == b"\xff\xff" * 24
    assert data[4 * stride:] == bytes([0xAA]) * (4 * stride)  # the off-screen half is untouched
    fb.close()


def test_24bit_and_unsupported_formats(tmp_path):
    dev, sysfs, _ = fake_fb(tmp_path / "a", 2, 1, 24)
    fb = Framebuffer(dev, sysfs)
    fb.show(np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8))
    fb.close()
    assert dev.read_bytes() == bytes([1, 2, 3, 4, 5, 6])
    dev, sysfs, _ = fake_fb(tmp_path / "b", 2, 2, 8)
    with pytest.raises(FramebufferError, match="8 bits per pixel"):
        Framebuffer(dev, sysfs)
    with pytest.raises(FramebufferError, match="virtual_size"):
        Framebuffer(tmp_path / "fb9", tmp_path / "nothing")
    dev, sysfs, _ = fake_fb(tmp_path / "c", 2, 2, 16)
    dev.unlink()
    with pytest.raises(FramebufferError, match="no such device"):
        Framebuffer(dev, sysfs)


def test_make_display_backends(tmp_path, monkeypatch):
    assert isinstance(make_display(OverlayConfig(backend="none")), NullDisplay)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(DisplayError, match="DISPLAY"):
        make_display(OverlayConfig(backend="window"))
    with pytest.raises(DisplayError, match="framebuffer"):
        make_display(OverlayConfig(backend="framebuffer", framebuffer_device=tmp_path / "fb5"))
    dev, sysfs, _ = fake_fb(tmp_path, 16, 12, 16)
    d = FramebufferDisplay(dev, sysfs)
    d.show(np.zeros((12, 16, 3), np.uint8))
    d.close()
    out = tmp_path / "overlay.mp4"
    d = make_display(OverlayConfig(backend="video", video_path=out), fps=10.0)
    assert isinstance(d, VideoFileDisplay)
    for i in range(5):
        d.show(np.full((48, 64, 3), 40 * i, np.uint8))
    d.close()
    with av.open(str(out)) as c:
        assert c.streams.video[0].frames == 5 and not c.streams.audio


@pytest.mark.parametrize("bpp", [16, 24, 32])
def test_fast_packing_matches_the_bitfield_formula(tmp_path, bpp):
    dev, sysfs, _ = fake_fb(tmp_path, 37, 5, bpp)
    fb = Framebuffer(dev, sysfs)
    img = np.random.default_rng(bpp).integers(0, 256, (5, 37, 3), dtype=np.uint8)
    assert np.array_equal(fb.pack(img), fb._pack_generic(img))
    fb.close()


def test_kernel_bitfields_other_channel_order(tmp_path):
    from dsrter.edge.display.framebuffer import Channel, PixelFormat

    dev, sysfs, _ = fake_fb(tmp_path, 2, 1, 32)
    fb = Framebuffer(dev, sysfs)
    fb.format = PixelFormat(32, Channel(0, 8), Channel(8, 8), Channel(16, 8), "xbgr8888")  # bytes R,G,B,X
    assert fb.pack(np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8)).tobytes() == bytes([3, 2, 1, 255, 6, 5, 4, 255])
    fb.close()
