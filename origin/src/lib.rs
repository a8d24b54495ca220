//! Live HLS origin: HTTP ingest, sliding live window, playlists and segments.
