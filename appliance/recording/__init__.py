"""Camera frames to sealed recordings: the PyAV encoder, the pre-roll ring, the recorder
thread and the fragmented-MP4 clip that streams into the vault writer.

The package itself imports nothing: PyAV costs half a second to load and every CLI command
reads the recording settings, while only the recorder needs the encoder."""
