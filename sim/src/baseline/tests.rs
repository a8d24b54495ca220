//! Unit tests of the p2p-media-loader baseline.

use super::*;

#[test]
fn player_settings_follow_the_hlsjs_integration() {
    let two = player_settings(&SimConfig { window_segments: 20, ..SimConfig::default() });
    assert_eq!((two.live_sync_segments, two.max_buffer_ms), (19, 15_000));
    let six = player_settings(&SimConfig { segment_duration_ms: 6_000, window_segments: 30, ..SimConfig::default() });
    assert_eq!((six.live_sync_segments, six.max_buffer_ms), (20, 15_000));
    assert!(six.purge_cancelled_uploads);
}

#[test]
fn serves_stored_segments_and_refuses_missing_ones() {
    let mut s = P2pml::new(P2pmlConfig { chunk_bytes: 4, ..P2pmlConfig::default() }, "me".parse().unwrap());
    let id = SegmentId { rendition: 0, msn: 3 };
    let info = SegmentInfo { msn: 3, start_ms: 6_000, duration_ms: 2_000, url: "u3".into(), byte_len: None };
    s.handle_input(0, Input::Playlist { rendition: 0, segments: vec![info] });
    s.handle_input(0, Input::PlayerRequest { id });
    let outputs: Vec<Output> = std::iter::from_fn(|| s.poll_output()).collect();
    assert!(outputs.contains(&Output::FetchHttp { id, url: "u3".into(), range_start: 0 }), "{outputs:?}");
    s.handle_input(10, Input::HttpChunk { id, offset: 0, bytes: vec![1; 10] });
    s.handle_input(20, Input::HttpDone { id, total_len: 10 });
    let outputs: Vec<Output> = std::iter::from_fn(|| s.poll_output()).collect();
    assert!(outputs.contains(&Output::Deliver { id, bytes: vec![1; 10] }), "{outputs:?}");
    let peer: PeerId = "other".parse().unwrap();
    s.handle_input(30, Input::PeerConnected { peer: peer.clone() });
    let request = Message::Request { id, request_id: 7, offset: 2, end: None, deadline_ms: None }.encode();
    s.handle_input(40, Input::PeerMessage { peer: peer.clone(), bytes: request });
    let chunks = std::iter::from_fn(|| s.poll_output())
        .filter_map(|o| match o {
            Output::SendToPeer { bytes, .. } => match Message::decode(&bytes) {
                Ok(Message::Chunk { offset, data, .. }) => Some((offset, data.len())),
                _ => None,
            },
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(chunks, vec![(2, 4), (6, 4)]);
    assert_eq!(s.stats().p2p_up_bytes, 8);
    let missing = Message::Request {
        id: SegmentId { rendition: 0, msn: 4 },
        request_id: 8,
        offset: 0,
        end: None,
        deadline_ms: None,
    }
    .encode();
    s.handle_input(50, Input::PeerMessage { peer, bytes: missing });
    let absent = std::iter::from_fn(|| s.poll_output()).any(|o| {
        matches!(o, Output::SendToPeer { bytes, .. } if matches!(Message::decode(&bytes), Ok(Message::Absent { .. })))
    });
    assert!(absent);
}
