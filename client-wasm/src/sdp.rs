//! Session description and ICE helpers around `RTCPeerConnection`'s promises.

use js_sys::Reflect;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use web_sys::{RtcIceCandidateInit, RtcPeerConnection, RtcSdpType, RtcSessionDescriptionInit};

/// Creates an offer, sets it as the local description and returns its SDP.
pub(crate) async fn make_offer(pc: &RtcPeerConnection) -> Result<String, JsValue> {
    let offer = JsFuture::from(pc.create_offer()).await?;
    let sdp = sdp_of(&offer)?;
    let desc = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
    desc.set_sdp(&sdp);
    JsFuture::from(pc.set_local_description(&desc)).await?;
    Ok(sdp)
}

/// Sets `offer` as the remote description, calls `on_remote` (queued ICE candidates may now be
/// added), then creates an answer, sets it as the local description and returns its SDP.
pub(crate) async fn answer(pc: &RtcPeerConnection, offer: &str, on_remote: impl FnOnce()) -> Result<String, JsValue> {
    let desc = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
    desc.set_sdp(offer);
    JsFuture::from(pc.set_remote_description(&desc)).await?;
    on_remote();
    let answer = JsFuture::from(pc.create_answer()).await?;
    let sdp = sdp_of(&answer)?;
    let desc = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
    desc.set_sdp(&sdp);
    JsFuture::from(pc.set_local_description(&desc)).await?;
    Ok(sdp)
}

/// The `sdp` field of a session description object.
pub(crate) fn sdp_of(description: &JsValue) -> Result<String, JsValue> {
    Reflect::get(description, &JsValue::from_str("sdp"))?.as_string().ok_or(JsValue::NULL)
}

/// Adds a remote ICE candidate, in the background.
pub(crate) fn add_candidate(pc: &RtcPeerConnection, init: &RtcIceCandidateInit) {
    let promise = pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(init));
    // A stale candidate (from a connection replaced in glare) is refused; that is harmless.
    wasm_bindgen_futures::spawn_local(async move {
        let _ = JsFuture::from(promise).await;
    });
}
