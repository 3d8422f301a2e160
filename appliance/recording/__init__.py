"""Camera frames to sealed recordings: the PyAV encoder, the pre-roll ring, the recorder
thread and the fragmented-MP4 clip that streams into the vault writer."""

from appliance.recording.recorder import CameraLost, ClipFault, ClipResult, Recorder
from appliance.recording.settings import RecordingSettings

__all__ = ["CameraLost", "ClipFault", "ClipResult", "Recorder", "RecordingSettings"]
