//! The ffmpeg command line for a ladder (pure: no process, no clock).
//!
//! One ffmpeg process generates a test source (`testsrc2` + a 440 Hz `sine`), splits and scales
//! it per rung, encodes every rung with libx264 (keyframe every segment, no scene-cut keyframes,
//! so segments of all rungs are aligned) and AAC, and writes HLS straight to the origin with
//! HTTP `PUT` (segments, then the media playlist that lists them, and the master playlist) and
//! `DELETE` (segments that left the window), on a kept-alive connection with the bearer token.
//!
//! Media sequence numbers count whole segment durations since [`SEQUENCE_EPOCH_MS`], so a
//! restarted ffmpeg always continues above the numbers its predecessor published (ffmpeg's `-re`
//! publishes segment `start + k` no earlier than `(k + 1)` segment durations after launch) and
//! the origin, which refuses a media sequence going backwards, accepts the new run. The output
//! timestamps are shifted by the same amount, so a restart looks to players like a few missing
//! segments, not like a timestamp reset.

use crate::config::Config;

/// The zero of media sequence numbers: 2024-01-01T00:00:00Z, in milliseconds since the Unix epoch.
/// Keeps numbers small: ffmpeg formats segment numbers as a 32-bit `int`, which lasts 68 years
/// from here even with 1 s segments.
pub const SEQUENCE_EPOCH_MS: u64 = 1_704_067_200_000;

/// Seconds of socket inactivity after which ffmpeg gives up an upload (and exits; the supervisor
/// restarts it).
pub const IO_TIMEOUT_S: u32 = 10;

/// What changes from one launch of ffmpeg to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    /// First media sequence number (and segment file number) of this run.
    pub start_number: u64,
    /// Added to every output timestamp, in seconds.
    pub ts_offset_s: u64,
}

/// The media sequence number a run launched at `now_unix_ms` starts at: whole segment durations
/// of `segment_duration_s` seconds since [`SEQUENCE_EPOCH_MS`].
pub fn start_number(now_unix_ms: u64, segment_duration_s: u32) -> u64 {
    let segment_ms = u64::from(segment_duration_s.max(1)) * 1000;
    now_unix_ms.saturating_sub(SEQUENCE_EPOCH_MS) / segment_ms
}

/// Size of the generated source: the largest rung, so that every rung is a downscale.
pub fn source_size(config: &Config) -> (u32, u32) {
    let w = config.ladder.iter().map(|r| r.width).max().unwrap_or(640);
    let h = config.ladder.iter().map(|r| r.height).max().unwrap_or(360);
    (w, h)
}

/// The `-filter_complex` graph: split the source once per rung, scale, and optionally draw the
/// rung name and the wall-clock time at the bottom left. Outputs are labelled `[v0]`, `[v1]`, …
pub fn filter_graph(config: &Config) -> String {
    let n = config.ladder.len();
    let mut graph = format!("[0:v]split={n}");
    for i in 0..n {
        graph.push_str(&format!("[s{i}]"));
    }
    for (i, r) in config.ladder.iter().enumerate() {
        graph.push_str(&format!(";[s{i}]scale={}:{}", r.width, r.height));
        if config.clock_overlay {
            let size = (r.height / 12).max(8);
            // Rung names are [A-Za-z0-9._-] (Config::validate), safe inside the quoted text.
            graph.push_str(&format!(
                ",drawtext=text='{} %{{localtime\\:%T}}':fontsize={size}:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw={}:x={}:y=h-th-{}",
                r.name,
                size / 5,
                size / 2,
                size / 2
            ));
        }
        graph.push_str(&format!("[v{i}]"));
    }
    graph
}

/// The full argument list (without the program name) for one launch.
pub fn args(config: &Config, launch: &Launch) -> Vec<String> {
    let (w, h) = source_size(config);
    let fps = config.fps;
    let gop = fps * config.segment_duration_s;
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));
    push(&["-hide_banner", "-nostdin", "-loglevel", "warning", "-progress", "pipe:1"]);
    push(&["-re", "-f", "lavfi", "-i", &format!("testsrc2=size={w}x{h}:rate={fps}")]);
    push(&["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    push(&["-filter_complex", &filter_graph(config)]);
    for i in 0..config.ladder.len() {
        push(&["-map", &format!("[v{i}]")]);
    }
    for _ in &config.ladder {
        push(&["-map", "1:a"]);
    }
    push(&["-c:v", "libx264", "-preset", &config.preset, "-pix_fmt", "yuv420p"]);
    push(&["-g", &gop.to_string(), "-keyint_min", &gop.to_string(), "-sc_threshold", "0"]);
    for (i, r) in config.ladder.iter().enumerate() {
        let kbps = r.video_kbps;
        push(&[&format!("-b:v:{i}"), &format!("{kbps}k")]);
        push(&[&format!("-maxrate:v:{i}"), &format!("{}k", kbps + kbps / 10)]);
        push(&[&format!("-bufsize:v:{i}"), &format!("{}k", kbps * 2)]);
    }
    push(&["-c:a", "aac", "-ar", "48000", "-ac", "2"]);
    for (i, r) in config.ladder.iter().enumerate() {
        push(&[&format!("-b:a:{i}"), &format!("{}k", r.audio_kbps)]);
    }
    push(&["-output_ts_offset", &launch.ts_offset_s.to_string()]);
    push(&["-f", "hls", "-hls_time", &config.segment_duration_s.to_string()]);
    push(&["-hls_list_size", &config.window_segments.to_string()]);
    push(&["-hls_flags", "delete_segments+independent_segments+omit_endlist+program_date_time"]);
    push(&["-hls_segment_type", "mpegts", "-start_number", &launch.start_number.to_string()]);
    push(&["-master_pl_name", "master.m3u8", "-master_pl_publish_rate", "1"]);
    let map: Vec<String> =
        config.ladder.iter().enumerate().map(|(i, r)| format!("v:{i},a:{i},name:{}", r.name)).collect();
    push(&["-var_stream_map", &map.join(" ")]);
    push(&["-method", "PUT", "-http_persistent", "1", "-timeout", &IO_TIMEOUT_S.to_string()]);
    // ffmpeg expects each custom header line to end with CRLF.
    push(&["-headers", &format!("Authorization: Bearer {}\r\n", config.ingest_token)]);
    let base = &config.origin_url;
    push(&["-hls_segment_filename", &format!("{base}/%v/seg_%05d.ts"), &format!("{base}/%v/index.m3u8")]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rung;

    fn config() -> Config {
        Config {
            ingest_token: "tok".into(),
            origin_url: "http://127.0.0.1:9/live/c".into(),
            ladder: vec![Rung::new("360p", 640, 360, 1000, 96), Rung::new("180p", 320, 180, 300, 64)],
            segment_duration_s: 2,
            ..Config::default()
        }
    }

    fn value_of<'a>(args: &'a [String], flag: &str) -> &'a str {
        let i = args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("{flag} missing"));
        &args[i + 1]
    }

    #[test]
    fn builds_one_command_for_the_ladder() {
        let args = args(&config(), &Launch { start_number: 42, ts_offset_s: 6 });
        assert_eq!(value_of(&args, "-filter_complex").matches("scale=").count(), 2);
        assert!(args.iter().any(|a| a == "testsrc2=size=640x360:rate=30"));
        assert_eq!(value_of(&args, "-g"), "60");
        assert_eq!(value_of(&args, "-keyint_min"), "60");
        assert_eq!(value_of(&args, "-sc_threshold"), "0");
        assert_eq!(value_of(&args, "-preset"), "ultrafast");
        assert_eq!(value_of(&args, "-b:v:1"), "300k");
        assert_eq!(value_of(&args, "-maxrate:v:0"), "1100k");
        assert_eq!(value_of(&args, "-b:a:0"), "96k");
        assert_eq!(value_of(&args, "-hls_time"), "2");
        assert_eq!(value_of(&args, "-hls_list_size"), "5");
        assert_eq!(value_of(&args, "-start_number"), "42");
        assert_eq!(value_of(&args, "-output_ts_offset"), "6");
        assert_eq!(value_of(&args, "-var_stream_map"), "v:0,a:0,name:360p v:1,a:1,name:180p");
        assert_eq!(value_of(&args, "-method"), "PUT");
        assert_eq!(value_of(&args, "-http_persistent"), "1");
        assert_eq!(value_of(&args, "-headers"), "Authorization: Bearer tok\r\n");
        assert_eq!(value_of(&args, "-hls_segment_filename"), "http://127.0.0.1:9/live/c/%v/seg_%05d.ts");
        assert_eq!(args.last().map(String::as_str), Some("http://127.0.0.1:9/live/c/%v/index.m3u8"));
        assert!(value_of(&args, "-hls_flags").contains("delete_segments"));
        assert_eq!(args.iter().filter(|a| *a == "1:a").count(), 2);
    }

    #[test]
    fn overlay_is_optional() {
        let with = filter_graph(&config());
        assert!(
            with.starts_with("[0:v]split=2[s0][s1];[s0]scale=640:360,drawtext=text='360p %{localtime\\:%T}'"),
            "{with}"
        );
        assert!(with.ends_with("[v1]"));
        let without = filter_graph(&Config { clock_overlay: false, ..config() });
        assert_eq!(without, "[0:v]split=2[s0][s1];[s0]scale=640:360[v0];[s1]scale=320:180[v1]");
    }

    #[test]
    fn sequence_numbers_follow_the_wall_clock() {
        assert_eq!(start_number(SEQUENCE_EPOCH_MS - 1, 2), 0);
        assert_eq!(start_number(SEQUENCE_EPOCH_MS + 5_999, 2), 2);
        assert_eq!(start_number(SEQUENCE_EPOCH_MS + 6_000, 2), 3);
        // Still a 32-bit int for ffmpeg in 2090 with 1 s segments.
        let year_2090_ms = 3_786_825_600_000;
        assert!(start_number(year_2090_ms, 1) < i32::MAX as u64);
    }
}
