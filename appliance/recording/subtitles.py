"""The treatment timeline as a timed text track: a clip's controller events become a `mov_text`
subtitle stream ("LASER ON", "FOOTSWITCH", "INTERLOCK OPEN") that ordinary players show.

Added at decryption time, never in the live stream (docs/recording.md, "Timeline subtitles"):
the live fragmented MP4 is sealed as it is written, and the events are complete only when the
clip ends. `timeline_cues` is pure; `remux_with_cues` copies the video packets unchanged from a
plaintext file object (the vault reader) into the output file object and adds the cues, so the
plaintext exists only in memory and in the output the user asked for.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction

import av

from appliance.timeline import ClipEvent

CUE_TIME_BASE = Fraction(1, 1000)
# What a cue says while an input is in its noteworthy level (1 = emitting / pressed / closed).
LABELS = {("laser", 1): "LASER ON", ("footswitch", 1): "FOOTSWITCH", ("interlock", 0): "INTERLOCK OPEN"}
SHOWN_ORDER = ("laser", "footswitch", "interlock")
# The mov_text encoder builds its sample description from an ASS header; the track needs no styling.
ASS_HEADER = (
    "[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n"
    "[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
    "Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, "
    "Alignment, MarginL, MarginR, MarginV, Encoding\n"
    "Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
).encode()


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str           # one line per active input, e.g. "LASER ON\nFOOTSWITCH"


def timeline_cues(events: list[ClipEvent], duration_s: float) -> list[Cue]:
    """Cues that never overlap (a text track shows one sample at a time): a new cue at every edge
    that changes what is shown, reading every input active then.

    An input's level before its first edge in the clip is the opposite of that edge (a laser whose
    first edge is "off" was on at the first frame), as in `timeline.emissions`; an input without
    edges shows nothing. Times are clamped to the clip: the clock mapping has an uncertainty.
    """
    ordered = sorted(events, key=lambda event: (event.t, event.edge))
    levels: dict[str, int] = {}
    for event in ordered:
        levels.setdefault(event.input, 1 - event.level)
    cues: list[Cue] = []
    shown, since = _shown_text(levels), 0.0
    for event in ordered:
        levels[event.input] = event.level
        at = min(max(event.t, 0.0), duration_s)
        text = _shown_text(levels)
        if text == shown:
            continue
        if shown and at > since:
            cues.append(Cue(since, at, shown))
        shown, since = text, at
    if shown and duration_s > since:
        cues.append(Cue(since, duration_s, shown))
    return cues


def _shown_text(levels: dict[str, int]) -> str:
    return "\n".join(LABELS[(name, levels[name])] for name in SHOWN_ORDER
                     if (name, levels.get(name)) in LABELS)


def mov_text_sample(text: str) -> bytes:
    """A 3GPP timed text sample (tx3g): a 16-bit big-endian byte count, then the UTF-8 text."""
    encoded = text.encode()
    return struct.pack(">H", len(encoded)) + encoded


def remux_with_cues(source, out, events: list[ClipEvent]) -> list[Cue]:
    """Copies the MP4 in `source` to `out` with the timeline track added; returns the cues written.

    `out` must be seekable: the result is an ordinary MP4 whose index is written last (FFmpeg's
    fragmented muxer does not take a mov_text track). The cues end at the video's last frame as
    the demuxer reads it, so a recording cut at its last complete fragment has cues that end with it.
    """
    with av.open(source, "r") as container, av.open(out, "w", format="mp4") as output:
        video_in = container.streams.video[0]
        video_out = output.add_stream_from_template(video_in)
        track = output.add_stream("mov_text")
        track.codec_context.subtitle_header = ASS_HEADER
        track.time_base = CUE_TIME_BASE
        track.metadata["title"] = "Treatment timeline"
        # Cues go in as the video passes their end, so the muxer interleaves them with their own
        # time instead of holding video back for them. Event times count from the first frame.
        pending = timeline_cues(events, float("inf"))
        written: list[Cue] = []
        first_frame_s, video_end_s = None, 0.0
        for packet in container.demux(video_in):
            if packet.dts is None:       # the demuxer's end-of-stream marker
                continue
            at_s = float(packet.pts * packet.time_base)
            if first_frame_s is None:
                first_frame_s = at_s
            while pending and pending[0].end_s <= at_s - first_frame_s:
                written.append(_mux_cue(output, track, pending.pop(0), first_frame_s))
            video_end_s = max(video_end_s, at_s + float((packet.duration or 0) * packet.time_base))
            packet.stream = video_out
            output.mux(packet)
        clip_end_s = video_end_s - (first_frame_s or 0.0)
        for cue in pending:              # what is still shown at the last frame ends with it
            if cue.start_s < clip_end_s:
                written.append(_mux_cue(output, track, Cue(cue.start_s, min(cue.end_s, clip_end_s), cue.text),
                                        first_frame_s or 0.0))
    return written


def _mux_cue(output, track, cue: Cue, first_frame_s: float) -> Cue:
    packet = av.Packet(mov_text_sample(cue.text))
    packet.stream = track
    packet.time_base = CUE_TIME_BASE
    packet.pts = packet.dts = round((first_frame_s + cue.start_s) * 1000)
    packet.duration = round((first_frame_s + cue.end_s) * 1000) - packet.pts
    output.mux(packet)
    return cue
