//! Transcoder: supervises ffmpeg encoding an ABR ladder pushed to the origin.
