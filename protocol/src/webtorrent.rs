//! The WebTorrent tracker protocol, exactly as `bittorrent-tracker` 11 clients (WebTorrent,
//! p2p-media-loader 2.x) and `aquatic_ws_load_test` speak it: JSON text frames on a websocket.
//!
//! In: `announce` (with up to ten offers, or one answer; `event` `started` / `completed` /
//! `stopped` / absent = update) and `scrape`. Out: the announce response (`complete`,
//! `incomplete`, `interval`), relayed offers and answers, scrape results, and errors
//! (`failure reason`). `info_hash`, `peer_id`, `offer_id` and `to_peer_id` are strings of exactly
//! 20 characters, each at most U+00FF ("binary" strings); they are held as 20 bytes.
//!
//! [`Decoder::decode`] is bounded: at most [`MAX_FRAME_BYTES`] of text, [`MAX_OFFERS`] offers and
//! [`MAX_SCRAPE_HASHES`] scraped hashes; anything else is an error, never a panic.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// Largest frame accepted, in bytes (aquatic_ws and wt-tracker use the same 64 KiB).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Most offers one announce may carry; more is an error (clients send at most 5, the load tester 10).
pub const MAX_OFFERS: usize = 20;

/// Most info hashes one scrape may name.
pub const MAX_SCRAPE_HASHES: usize = 255;

/// A 20-byte id: info hash, peer id or offer id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id20(pub [u8; 20]);

impl fmt::Debug for Id20 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id20(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl Serialize for Id20 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        thread_local! {
            /// Each byte becomes one character U+0000..U+00FF (at most 40 bytes of UTF-8).
            /// `String::push` needs no UTF-8 check, unlike building the bytes and converting them
            /// (that check was 3 % of the endpoint's CPU), and the buffer is reused.
            static TEXT: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(40));
        }
        TEXT.with_borrow_mut(|text| {
            text.clear();
            text.extend(self.0.iter().map(|&b| char::from(b)));
            serializer.serialize_str(text)
        })
    }
}

impl<'de> Deserialize<'de> for Id20 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(Id20Visitor)
    }
}

struct Id20Visitor;

impl Visitor<'_> for Id20Visitor {
    type Value = Id20;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string of 20 characters, each at most U+00FF")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Id20, E> {
        let bytes = s.as_bytes();
        if !(20..=40).contains(&bytes.len()) {
            return Err(E::custom("not 20 characters"));
        }
        // Without branches on the data (random ids mispredict every other byte): a character up
        // to U+00FF is one byte of UTF-8 (below 0x80) or a lead byte 0xC2/0xC3 and a
        // continuation byte with the low 6 bits. `s` is valid UTF-8, so a byte above 0xC3 can
        // only start a character above U+00FF. Every byte but a continuation byte starts a
        // character: write its value at the next place.
        let mut out = [0u8; 41];
        let (mut n, mut above_ff) = (0usize, false);
        for (i, &b) in bytes.iter().enumerate() {
            let next = bytes.get(i + 1).copied().unwrap_or(0);
            let two_byte = ((b & 0x03) << 6) | (next & 0x3F);
            out[n.min(40)] = if b >= 0xC0 { two_byte } else { b };
            n += usize::from(b & 0xC0 != 0x80);
            above_ff |= b > 0xC3;
        }
        if above_ff {
            return Err(E::custom("character above U+00FF"));
        }
        if n != 20 {
            return Err(E::custom("not 20 characters"));
        }
        let mut id = [0u8; 20];
        id.copy_from_slice(&out[..20]);
        Ok(Id20(id))
    }
}

/// An SDP description as the browser gives it: `{"type": "offer"|"answer", "sdp": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sdp<'a> {
    /// `offer` or `answer`.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// The SDP text.
    #[serde(borrow)]
    pub sdp: Cow<'a, str>,
}

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    /// The peer joined.
    Started,
    /// The peer left; no response is sent.
    Stopped,
    /// The peer has everything.
    Completed,
    /// Periodic re-announce (also when `event` is absent).
    #[default]
    Update,
}

/// One offer of an announce.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OfferIn<'a> {
    /// The offer.
    #[serde(borrow)]
    pub offer: Sdp<'a>,
    /// Its id, echoed with the answer.
    pub offer_id: Id20,
}

/// An answer carried by an announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerIn<'a> {
    /// The peer whose offer this answers.
    pub to_peer_id: Id20,
    /// The offer it answers.
    pub offer_id: Id20,
    /// The answer.
    pub answer: Sdp<'a>,
}

/// An `announce` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce<'a> {
    /// The swarm.
    pub info_hash: Id20,
    /// The announcing peer.
    pub peer_id: Id20,
    /// What happened.
    pub event: Event,
    /// Whether the peer has everything (`left` is 0).
    pub seeder: bool,
    /// Peers wanted, if said.
    pub numwant: Option<u64>,
    /// Offers to hand to other peers of the swarm (at most [`MAX_OFFERS`]).
    pub offers: Vec<OfferIn<'a>>,
    /// An answer to relay, if any.
    pub answer: Option<AnswerIn<'a>>,
}

/// A decoded client frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// `{"action":"announce",…}`.
    Announce(Announce<'a>),
    /// `{"action":"scrape","info_hash": <id> | [<id>…]}`; an empty list is a full scrape.
    Scrape(Vec<Id20>),
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebTorrentError {
    /// Larger than [`MAX_FRAME_BYTES`] (size in bytes).
    #[error("frame of {0} bytes is larger than {MAX_FRAME_BYTES}")]
    TooLarge(usize),
    /// Not JSON of the protocol's shape, or a bound exceeded; the text says what.
    #[error("{0}")]
    Malformed(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    Announce,
    Scrape,
}

/// The wire shape of every client frame; unknown fields (`uploaded`, `downloaded`,
/// `trackerid`, …) are ignored.
#[derive(Deserialize)]
struct Frame<'a> {
    action: Action,
    #[serde(default)]
    info_hash: Option<OneOrMany>,
    #[serde(default)]
    peer_id: Option<Id20>,
    #[serde(default)]
    event: Option<Event>,
    #[serde(default)]
    left: Option<f64>,
    #[serde(default)]
    numwant: Option<f64>,
    #[serde(default, borrow, deserialize_with = "bounded_offers")]
    offers: Option<Vec<OfferIn<'a>>>,
    #[serde(default, borrow)]
    answer: Option<Sdp<'a>>,
    #[serde(default)]
    to_peer_id: Option<Id20>,
    #[serde(default)]
    offer_id: Option<Id20>,
}

/// One id (no allocation: every announce names one) or a bounded list of them.
enum OneOrMany {
    One(Id20),
    Many(Vec<Id20>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an info hash or a list of them")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OneOrMany, E> {
                Id20Visitor.visit_str(s).map(OneOrMany::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut ids = Vec::new();
                while let Some(id) = seq.next_element::<Id20>()? {
                    if ids.len() == MAX_SCRAPE_HASHES {
                        return Err(de::Error::custom("too many info hashes"));
                    }
                    ids.push(id);
                }
                Ok(OneOrMany::Many(ids))
            }
        }
        deserializer.deserialize_any(V)
    }
}

fn bounded_offers<'de: 'a, 'a, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<OfferIn<'a>>>, D::Error> {
    struct V<'a>(std::marker::PhantomData<&'a ()>);
    impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
        type Value = Option<Vec<OfferIn<'a>>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of offers")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_seq(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            // Sized for what clients send (up to 10), so filling it does not reallocate.
            let mut offers = Vec::with_capacity(10);
            while let Some(offer) = seq.next_element::<OfferIn<'a>>()? {
                if offers.len() == MAX_OFFERS {
                    return Err(de::Error::custom("too many offers"));
                }
                offers.push(offer);
            }
            Ok(Some(offers))
        }
    }
    deserializer.deserialize_option(V(std::marker::PhantomData))
}

/// Decodes client frames. Holds simd-json's scratch buffers, so a caller that keeps one decoder
/// per thread or connection allocates them once instead of per frame.
pub struct Decoder {
    buffers: simd_json::Buffers,
}

impl Default for Decoder {
    fn default() -> Self {
        // Sized for a 10-offer announce of real browsers (about 10 KiB); they grow if needed.
        Self { buffers: simd_json::Buffers::new(16 * 1024) }
    }
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Decoder")
    }
}

impl Decoder {
    /// Decodes one client frame (the bytes of a websocket text message). The JSON is decoded in
    /// place with simd-json: strings are unescaped into `frame` itself, so every SDP borrows from
    /// it, and `frame` holds garbage afterwards. simd-json checks that `frame` is UTF-8.
    ///
    /// # Errors
    /// [`WebTorrentError::TooLarge`] above [`MAX_FRAME_BYTES`]; [`WebTorrentError::Malformed`]
    /// for bad UTF-8 or JSON, ids that are not 20 binary characters, an announce without
    /// `info_hash` or `peer_id`, an answer without `to_peer_id` and `offer_id`, or a bound
    /// exceeded.
    pub fn decode<'a>(&mut self, frame: &'a mut [u8]) -> Result<Request<'a>, WebTorrentError> {
        if frame.len() > MAX_FRAME_BYTES {
            return Err(WebTorrentError::TooLarge(frame.len()));
        }
        let frame: Frame<'a> = simd_json::serde::from_slice_with_buffers(frame, &mut self.buffers)
            .map_err(|e| WebTorrentError::Malformed(e.to_string()))?;
        request(frame)
    }
}

/// Decodes one client frame from text with a fresh [`Decoder`] (tests and tools; the tracker
/// keeps its decoders). The returned request owns copies of the strings it borrows.
///
/// # Errors
/// As [`Decoder::decode`].
pub fn parse_owned(text: &str) -> Result<Request<'static>, WebTorrentError> {
    let mut bytes = text.as_bytes().to_vec();
    Decoder::default().decode(&mut bytes).map(Request::into_owned)
}

/// Checks the fields an action needs and builds the request.
fn request(frame: Frame<'_>) -> Result<Request<'_>, WebTorrentError> {
    let malformed = |what: &str| WebTorrentError::Malformed(what.to_owned());
    match frame.action {
        Action::Scrape => Ok(Request::Scrape(match frame.info_hash {
            Some(OneOrMany::One(id)) => vec![id],
            Some(OneOrMany::Many(ids)) => ids,
            None => Vec::new(),
        })),
        Action::Announce => {
            let info_hash = match frame.info_hash {
                Some(OneOrMany::One(id)) => id,
                Some(OneOrMany::Many(ids)) if ids.len() == 1 => ids[0],
                _ => return Err(malformed("invalid info_hash")),
            };
            let peer_id = frame.peer_id.ok_or_else(|| malformed("invalid peer_id"))?;
            let answer = match (frame.answer, frame.to_peer_id, frame.offer_id) {
                (Some(answer), Some(to_peer_id), Some(offer_id)) => Some(AnswerIn { to_peer_id, offer_id, answer }),
                (Some(_), _, _) => return Err(malformed("invalid `to_peer_id` (required with `answer`)")),
                (None, ..) => None,
            };
            Ok(Request::Announce(Announce {
                info_hash,
                peer_id,
                event: frame.event.unwrap_or_default(),
                seeder: frame.left == Some(0.0),
                // Saturating float-to-int: negative and NaN give 0, huge values u64::MAX.
                numwant: frame.numwant.map(|n| n as u64),
                offers: frame.offers.unwrap_or_default(),
                answer,
            }))
        }
    }
}

impl Request<'_> {
    /// The same request with its strings copied out of the frame.
    pub fn into_owned(self) -> Request<'static> {
        match self {
            Request::Scrape(ids) => Request::Scrape(ids),
            Request::Announce(a) => Request::Announce(Announce {
                info_hash: a.info_hash,
                peer_id: a.peer_id,
                event: a.event,
                seeder: a.seeder,
                numwant: a.numwant,
                offers: a
                    .offers
                    .into_iter()
                    .map(|o| OfferIn { offer: o.offer.into_owned(), offer_id: o.offer_id })
                    .collect(),
                answer: a.answer.map(|x| AnswerIn {
                    to_peer_id: x.to_peer_id,
                    offer_id: x.offer_id,
                    answer: x.answer.into_owned(),
                }),
            }),
        }
    }
}

impl Sdp<'_> {
    /// The same description with owned strings.
    pub fn into_owned(self) -> Sdp<'static> {
        Sdp { kind: Cow::Owned(self.kind.into_owned()), sdp: Cow::Owned(self.sdp.into_owned()) }
    }
}

/// The announce response: swarm counts and the re-announce interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnnounceResponse {
    /// Always `announce`.
    pub action: &'static str,
    /// The swarm.
    pub info_hash: Id20,
    /// Seeders in the swarm.
    pub complete: usize,
    /// Leechers in the swarm.
    pub incomplete: usize,
    /// Re-announce interval, in seconds.
    pub interval: u64,
}

/// An offer relayed to one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferOut<'a> {
    /// Always `announce`.
    pub action: &'static str,
    /// The swarm.
    pub info_hash: Id20,
    /// The offering peer.
    pub peer_id: Id20,
    /// The offer.
    pub offer: &'a Sdp<'a>,
    /// Its id.
    pub offer_id: Id20,
}

/// An answer relayed to the peer that offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerOut<'a> {
    /// Always `announce`.
    pub action: &'static str,
    /// The swarm.
    pub info_hash: Id20,
    /// The answering peer.
    pub peer_id: Id20,
    /// The answer.
    pub answer: &'a Sdp<'a>,
    /// The offer it answers.
    pub offer_id: Id20,
}

/// Counts of one scraped swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScrapeFile {
    /// Seeders.
    pub complete: usize,
    /// Leechers.
    pub incomplete: usize,
    /// Completed downloads (not tracked: always 0, as aquatic_ws).
    pub downloaded: usize,
}

/// An error answer; the client logs `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorOut<'a> {
    /// Why.
    #[serde(rename = "failure reason")]
    pub failure_reason: &'a str,
    /// `announce` or `scrape`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    /// The swarm, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info_hash: Option<Id20>,
}

/// Encodes a scrape answer: `{"action":"scrape","files":{<info_hash>:{…}}}`.
pub fn scrape_response(files: &[(Id20, ScrapeFile)]) -> String {
    #[derive(Serialize)]
    struct Scrape<'a> {
        action: &'static str,
        #[serde(serialize_with = "as_map")]
        files: &'a [(Id20, ScrapeFile)],
    }
    fn as_map<S: Serializer>(files: &&[(Id20, ScrapeFile)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(files.iter().map(|(k, v)| (k, v)))
    }
    to_json(&Scrape { action: "scrape", files })
}

/// Encodes any outgoing message.
///
/// Measured against encoding into a buffer sized up front (one allocation instead of three or
/// four growths for an offer): the UTF-8 check that turning those bytes into a `String` then
/// needs costs as much as the growths saved, so this stays `serde_json::to_string`.
pub fn to_json<T: Serialize>(message: &T) -> String {
    // These messages are strings, numbers and 20-byte ids: serializing cannot fail.
    serde_json::to_string(message).unwrap_or_default()
}

#[cfg(test)]
#[path = "webtorrent_tests.rs"]
mod tests;
