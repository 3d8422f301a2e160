"""One recording ("clip"): a fragmented MP4 muxer whose bytes flow, through a bounded queue and
a writer thread, into the vault writer. Nothing of it exists on disk except ciphertext.

The muxer writes an init segment (ftyp + an empty moov) and then one fragment (moof + mdat)
per keyframe, flushed at once, so a killed process leaves every complete 64 KiB vault segment
and with it every fragment up to about a GOP before the kill. PTS are rebased so each clip
starts at zero; the clip's stream is a template copy of the continuous encoder's stream.
"""

from __future__ import annotations

import io
import queue
import threading

import av

from appliance.recording.encoder import TIME_BASE, Encoder

FRAGMENTED_MP4 = "frag_keyframe+empty_moov+default_base_moof"
_END = object()


class SealingSink(io.RawIOBase):
    """The muxer's output: non-seekable, append-only; hands bytes to the writer thread.

    When the queue is full, write() waits: back-pressure lands on the recorder thread (whose
    camera queue then drops and counts), never on the camera.
    """

    def __init__(self, vault_writer, queue_chunks: int):
        super().__init__()
        self._vault_writer = vault_writer
        self._chunks: queue.Queue = queue.Queue(maxsize=queue_chunks)
        self.error: BaseException | None = None
        self.sealed = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="vault-writer", daemon=True)
        self._thread.start()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data) -> int:
        if self.error is not None:
            raise OSError(f"writing the recording failed: {self.error}")
        chunk = bytes(data)
        self._chunks.put(chunk)
        return len(chunk)

    def depth(self) -> int:
        return self._chunks.qsize()

    def finish(self) -> None:
        """No more data: the writer thread seals the vault (last segment, fsync) and stops."""
        self._chunks.put(_END)

    def _drain(self) -> None:
        try:
            while (chunk := self._chunks.get()) is not _END:
                if self.error is None:
                    self._vault_writer.write(chunk)
            if self.error is None:
                self.sealed = self._vault_writer.close()
        except BaseException as error:  # noqa: BLE001 - reported to stop_clip and as a ClipFault
            self.error = error
            self._vault_writer.abandon()
            while self._chunks.get() is not _END:
                pass   # keep the muxer from waiting on a queue nobody drains
        finally:
            self.done.set()

    def close(self) -> None:
        # The vault writer's life ends in finish(); closing the sink must not seal it twice.
        super().close()


class ClipMuxer:
    def __init__(self, sink: SealingSink, encoder: Encoder):
        self._container = av.open(sink, "w", format="mp4",
                                  options={"movflags": FRAGMENTED_MP4, "flush_packets": "1"})
        self._stream = self._container.add_stream_from_template(encoder.stream)
        # The template copies parameters but not the SPS/PPS; without them the muxer cannot
        # convert Annex B packets to MP4's length-prefixed form.
        self._stream.codec_context.extradata = encoder.extradata
        self._stream.time_base = TIME_BASE
        self._base_pts: int | None = None

    def write(self, packet: av.Packet, pts: int, dts: int) -> None:
        """Muxes one packet. The same packet may go into several clips (pre-roll overlaps), so
        its timing is set from the original values every time, never adjusted in place."""
        if self._base_pts is None:
            self._base_pts = pts
        packet.pts = pts - self._base_pts
        packet.dts = dts - self._base_pts
        packet.time_base = TIME_BASE
        packet.stream = self._stream
        self._container.mux_one(packet)

    def close(self) -> None:
        self._container.close()
