"""Draw the recognition results over a camera frame.

Per face: a box in the emotion's colour, the face emotion and confidence on a chip
ABOVE the box, and the speech emotion on a chip BELOW the box of the face the speech
is attributed to ("no speech", dimmed, while nobody speaks). The overall (fused)
emotion, the frame rate and any status lines (camera/mic trouble) sit in a panel in
the top-left corner. Sizes follow the frame height, so the same code is readable on a
1080p monitor and on an 800x480 touch screen.
"""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from dsrter.edge.display.image import to_bgr
from dsrter.edge.streams.events import FaceEvent, FusedEvent, SpeechEvent

# BGR; chosen to be told apart on a TV and to match the timeline plot.
EMOTION_BGR: dict[str, tuple[int, int, int]] = {
    "angry": (48, 48, 230),      # red
    "disgust": (60, 160, 40),    # green
    "fear": (180, 70, 160),      # purple
    "happy": (30, 215, 255),     # yellow
    "sad": (215, 120, 30),       # blue
    "surprise": (20, 140, 255),  # orange
    "neutral": (180, 180, 180),  # grey
}
UNKNOWN_BGR = (200, 200, 200)
DIM_BG = (60, 60, 60)
DIM_FG = (170, 170, 170)
WARN_FG = (80, 200, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def emotion_color(label: Optional[str]) -> tuple[int, int, int]:
    """The BGR colour of an emotion label (a light grey for unknown/None)."""
    return EMOTION_BGR.get((label or "").lower(), UNKNOWN_BGR)


def emotion_rgb01(label: Optional[str]) -> tuple[float, float, float]:
    """The same colour as an RGB 0..1 tuple (for matplotlib)."""
    b, g, r = emotion_color(label)
    return (r / 255.0, g / 255.0, b / 255.0)


class _Style:
    """Font and line sizes for a frame height (tuned on 480, 720 and 1080 lines)."""

    def __init__(self, height: int) -> None:
        # Relatively larger on small screens: a 7" 800x480 panel is read from as far as a TV.
        self.scale = 0.3 + 0.75 * height / 1080.0
        self.thick = max(1, int(round(self.scale * 1.9)))
        self.box = max(2, int(round(height / 300.0)))
        (_, self.text_h), self.base = cv2.getTextSize("Hg", FONT, self.scale, self.thick)
        self.pad = max(3, int(round(self.text_h * 0.35)))
        self.line_h = self.text_h + self.base + 2 * self.pad


def _text_on(color: tuple[int, int, int]) -> tuple[int, int, int]:
    b, g, r = color
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)


def _chip(img: np.ndarray, text: str, x: int, y: int, below: bool, bg: tuple[int, int, int],
          fg: tuple[int, int, int], st: _Style,
          inside_limit: Optional[tuple[int, int]] = None) -> tuple[int, int, int, int]:
    """A filled label with ``text``; its top-left at (x, y) when ``below`` else its bottom-left.

    Kept inside the frame; if it would leave the frame vertically it flips to the other side
    of ``y`` (``inside_limit`` = the box's (top, bottom), so it lands inside the box)."""
    H, W = img.shape[:2]
    (tw, _), _ = cv2.getTextSize(text, FONT, st.scale, st.thick)
    w, h = tw + 2 * st.pad, st.line_h
    top = y if below else y - h
    if top < 0 or top + h > H:
        if inside_limit is not None:
            top = inside_limit[1] - h if below else inside_limit[0]
        top = min(max(0, top), max(0, H - h))
    left = min(max(0, x), max(0, W - w))
    cv2.rectangle(img, (left, top), (left + w - 1, top + h - 1), bg, thickness=-1)
    cv2.putText(img, text, (left + st.pad, top + st.pad + st.text_h), FONT, st.scale, fg, st.thick, cv2.LINE_AA)
    return left, top, left + w, top + h


def _pixel_box(box: Sequence[float], W: int, H: int) -> tuple[int, int, int, int]:
    x, y, w, h = (float(v) for v in box)
    x0 = int(round(min(max(x, 0.0), 1.0) * (W - 1)))
    y0 = int(round(min(max(y, 0.0), 1.0) * (H - 1)))
    x1 = int(round(min(max(x + w, 0.0), 1.0) * (W - 1)))
    y1 = int(round(min(max(y + h, 0.0), 1.0) * (H - 1)))
    return x0, y0, max(x0, x1), max(y0, y1)


def _pct(conf: float) -> str:
    return f"{100.0 * float(conf):.0f}%"


def _speech_text(speech: SpeechEvent) -> tuple[str, bool]:
    """(text, dimmed)."""
    if not speech.speaking:
        return "no speech", True
    if not speech.label:
        return "voice: ...", True
    return f"voice: {speech.label} {_pct(speech.confidence)}", False


def draw_overlay(image: np.ndarray, faces: list[FaceEvent], speech: SpeechEvent | None,
                 fused: FusedEvent | None, fps: float | None, status_lines: Sequence[str] = ()) -> np.ndarray:
    """Return a new BGR uint8 image with the results drawn on ``image`` (left untouched).

    ``image`` may be gray, BGR or BGRA of any size. ``faces`` carry normalised boxes.
    Speech goes below the face ``speech.track_id`` names, else below the largest face,
    else into the corner panel. ``fps`` None hides the rate.
    """
    out = to_bgr(image)
    H, W = out.shape[:2]
    if H == 0 or W == 0:
        return out
    st = _Style(H)

    # faces: boxes first, then chips, so a neighbour's box never covers a label
    placed = []
    obstacles: list[tuple[int, int, int, int]] = []  # what the corner panel should not cover
    for f in faces:
        x0, y0, x1, y1 = _pixel_box(f.box, W, H)
        color = emotion_color(f.label)
        cv2.rectangle(out, (x0, y0), (x1, y1), (0, 0, 0), st.box + 2, cv2.LINE_AA)  # dark rim: visible on any background
        cv2.rectangle(out, (x0, y0), (x1, y1), color, st.box, cv2.LINE_AA)
        placed.append((f, (x0, y0, x1, y1), color))
        obstacles.append((x0, y0, x1, y1))
    for f, (x0, y0, x1, y1), color in placed:
        text = f"#{f.track_id} {f.label or '?'} {_pct(f.confidence)}"
        obstacles.append(_chip(out, text, x0, y0 - st.box // 2, below=False, bg=color, fg=_text_on(color),
                               st=st, inside_limit=(y0 + st.box, y1 - st.box)))

    speech_on_face = False
    if speech is not None and placed:
        target = None
        if speech.track_id is not None:
            target = next((p for p in placed if p[0].track_id == speech.track_id), None)
        if target is None:
            target = max(placed, key=lambda p: (p[1][2] - p[1][0]) * (p[1][3] - p[1][1]))
        _, (x0, y0, x1, y1), _ = target
        text, dim = _speech_text(speech)
        color = emotion_color(speech.label)
        obstacles.append(_chip(out, text, x0, y1 + st.box // 2 + 1, below=True, bg=DIM_BG if dim else color,
                               fg=DIM_FG if dim else _text_on(color), st=st,
                               inside_limit=(y0 + st.box, y1 - st.box)))
        speech_on_face = True

    # corner panel: overall emotion, voice (when no face carries it), fps, status
    lines: list[tuple[str, tuple[int, int, int], Optional[tuple[int, int, int]]]] = []
    if fused is not None:
        if fused.label:
            c = emotion_color(fused.label)
            lines.append((f"overall: {fused.label} {_pct(fused.confidence)}", _text_on(c), c))
        else:
            lines.append(("overall: --", DIM_FG, None))
    if speech is not None and not speech_on_face:
        text, dim = _speech_text(speech)
        c = emotion_color(speech.label)
        lines.append((text, DIM_FG, None) if dim else (text, _text_on(c), c))
    if fps is not None:
        lines.append((f"{fps:.1f} fps", (255, 255, 255), None))
    for s in status_lines:
        lines.append((str(s), WARN_FG, None))
    if lines:
        _panel(out, lines, st, obstacles)
    return out


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0


def _panel(img: np.ndarray, lines, st: _Style, obstacles: Sequence[tuple[int, int, int, int]] = ()) -> None:
    """The status panel in the corner that covers the least of the faces and their labels
    (top-left when free)."""
    H, W = img.shape[:2]
    margin = st.pad * 2
    widths = [cv2.getTextSize(t, FONT, st.scale, st.thick)[0][0] + 2 * st.pad for t, _, _ in lines]
    pw = min(W - margin, max(widths) + 2 * st.pad)
    ph = min(H - margin, len(lines) * st.line_h + 2 * st.pad)
    if pw <= 0 or ph <= 0:
        return
    m = margin // 2
    corners = [(m, m), (W - m - pw, m), (m, H - m - ph), (W - m - pw, H - m - ph)]
    x0, y0 = min(corners, key=lambda c: sum(_overlap((c[0], c[1], c[0] + pw, c[1] + ph), o) for o in obstacles))
    roi = img[y0:y0 + ph, x0:x0 + pw]
    roi[:] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken to 40 %: text stays readable
    y = y0 + st.pad
    for (text, fg, bg), w in zip(lines, widths):
        if y + st.line_h > H:
            break
        if bg is not None:
            cv2.rectangle(img, (x0 + st.pad, y), (x0 + st.pad + w - 1, y + st.line_h - 1), bg, thickness=-1)
        cv2.putText(img, text, (x0 + 2 * st.pad, y + st.pad + st.text_h), FONT, st.scale, fg, st.thick, cv2.LINE_AA)
        y += st.line_h
