//! The origin over real HTTP on 127.0.0.1:0.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::{Client, StatusCode, header};
use swarmcast_origin::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const TOKEN: &str = "ingest-secret";

struct Server {
    base: String,
    addr: std::net::SocketAddr,
    client: Client,
    _stop: oneshot::Sender<()>,
}

async fn start(config: Config) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    tokio::spawn(swarmcast_origin::run(config, listener, async move {
        let _ = rx.await;
    }));
    let client = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    Server { base: format!("http://{addr}/live"), addr, client, _stop: stop }
}

async fn origin() -> Server {
    start(Config { ingest_token: TOKEN.into(), ..Config::default() }).await
}

impl Server {
    async fn put(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client.put(format!("{}/{path}", self.base)).bearer_auth(TOKEN).body(body).send().await.unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}/{path}", self.base)).send().await.unwrap()
    }

    async fn delete(&self, path: &str) -> reqwest::Response {
        self.client.delete(format!("{}/{path}", self.base)).bearer_auth(TOKEN).send().await.unwrap()
    }

    /// Sends `request_line` verbatim (no URL normalisation) and returns the status code.
    async fn raw_status(&self, request_line: &str) -> u16 {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        let req = format!(
            "{request_line} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out.split(' ').nth(1).unwrap().parse().unwrap()
    }
}

fn media(seq: u64, target: u64, segs: &[(f32, &str)]) -> String {
    let mut s = format!("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{seq}\n");
    for (d, uri) in segs {
        s.push_str(&format!("#EXTINF:{d:.6},\n{uri}\n"));
    }
    s
}

async fn error_code(res: reqwest::Response) -> String {
    let body: serde_json::Value = res.json().await.unwrap();
    body["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn put_get_round_trip_with_headers() {
    let s = origin().await;
    let seg = vec![7_u8; 1000];
    assert_eq!(s.put("c/360p/seg_1.ts", seg.clone()).await.status(), StatusCode::CREATED);
    let res = s.get("c/360p/seg_1.ts").await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h[header::CONTENT_TYPE], "video/mp2t");
    assert_eq!(h[header::CACHE_CONTROL], "public, max-age=3600, immutable");
    assert_eq!(h[header::CONTENT_LENGTH], "1000");
    assert_eq!(h[header::ACCEPT_RANGES], "bytes");
    assert_eq!(res.bytes().await.unwrap().as_ref(), &seg[..]);

    let pl = media(1, 2, &[(2.0, "seg_1.ts")]);
    assert_eq!(s.put("c/360p/index.m3u8", pl.clone()).await.status(), StatusCode::CREATED);
    let res = s.get("c/360p/index.m3u8").await;
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/vnd.apple.mpegurl");
    assert_eq!(res.headers()[header::CACHE_CONTROL], "public, max-age=1");
    assert_eq!(res.text().await.unwrap(), pl);
    // Replacing a playlist is 204; other media types.
    assert_eq!(s.put("c/360p/index.m3u8", pl).await.status(), StatusCode::NO_CONTENT);
    s.put("c/a/init.mp4", "i").await;
    s.put("c/a/s.m4s", "m").await;
    s.put("c/a/s.aac", "a").await;
    assert_eq!(s.get("c/a/init.mp4").await.headers()[header::CONTENT_TYPE], "video/mp4");
    assert_eq!(s.get("c/a/s.m4s").await.headers()[header::CONTENT_TYPE], "video/mp4");
    assert_eq!(s.get("c/a/s.aac").await.headers()[header::CONTENT_TYPE], "audio/aac");

    // HEAD: same headers, no body.
    let head = s.client.head(format!("{}/c/360p/seg_1.ts", s.base)).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()[header::CONTENT_LENGTH], "1000");
    assert!(head.bytes().await.unwrap().is_empty());

    // CORS comes from the shared server shell.
    let cors = s
        .client
        .get(format!("{}/c/360p/seg_1.ts", s.base))
        .header(header::ORIGIN, "http://page.example")
        .send()
        .await
        .unwrap();
    assert!(cors.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));

    let metrics = s.client.get(format!("http://{}/metrics", s.addr)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("origin_ingest_bytes_total"), "{metrics}");
    assert!(metrics.contains("origin_egress_bytes_total"), "{metrics}");
    assert!(metrics.contains(r#"origin_get_requests_total{status="200"}"#), "{metrics}");
}

#[tokio::test]
async fn chunked_uploads_on_a_kept_alive_connection() {
    let s = origin().await;
    for i in 0..3 {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![1; 300]), Ok(vec![2; 300]), Ok(vec![3; 7])];
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        assert_eq!(s.put(&format!("c/v/seg_{i}.ts"), body).await.status(), StatusCode::CREATED);
    }
    let body = s.get("c/v/seg_2.ts").await.bytes().await.unwrap();
    assert_eq!(body.len(), 607);
    assert_eq!((body[0], body[300], body[606]), (1, 2, 3));
}

#[tokio::test]
async fn ranges_206_and_416() {
    let s = origin().await;
    s.put("c/v/seg.ts", (0_u8..100).collect::<Vec<_>>()).await;
    let url = format!("{}/c/v/seg.ts", s.base);
    let res = s.client.get(&url).header(header::RANGE, "bytes=10-19").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()[header::CONTENT_RANGE], "bytes 10-19/100");
    assert_eq!(res.headers()[header::CONTENT_LENGTH], "10");
    assert_eq!(res.bytes().await.unwrap().as_ref(), &(10_u8..20).collect::<Vec<_>>()[..]);
    let res = s.client.get(&url).header(header::RANGE, "bytes=90-").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()[header::CONTENT_RANGE], "bytes 90-99/100");
    assert_eq!(res.bytes().await.unwrap().len(), 10);
    let res = s.client.get(&url).header(header::RANGE, "bytes=100-").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(res.headers()[header::CONTENT_RANGE], "bytes */100");
    let res = s.client.get(&url).header(header::RANGE, "bytes=1-2,5-6").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_is_404() {
    let s = origin().await;
    let res = s.get("c/v/nothing.ts").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(error_code(res).await, "not_found");
    assert_eq!(
        s.client.get(format!("http://{}/elsewhere", s.addr)).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(s.delete("c/v/nothing.ts").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn ingest_needs_the_token() {
    let s = origin().await;
    let url = format!("{}/c/v/seg.ts", s.base);
    let res = s.client.put(&url).body("x").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(res).await, "unauthorized");
    let res = s.client.put(&url).basic_auth("u", Some("p")).body("x").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = s.client.put(&url).bearer_auth("wrong").body("x").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(s.client.delete(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(s.client.delete(&url).bearer_auth("wrong").send().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(s.get("c/v/seg.ts").await.status(), StatusCode::NOT_FOUND);
    let metrics = s.client.get(format!("http://{}/metrics", s.addr)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"origin_ingest_rejected_total{reason="forbidden"} 2"#), "{metrics}");
}

#[tokio::test]
async fn bad_paths_are_400() {
    let s = origin().await;
    for line in [
        "PUT /live/c/../x.ts",
        "PUT /live/c/v/../../x.ts",
        "PUT /live/c/%2e%2e/x.ts",
        "PUT /live/c/%2E%2E/x.ts",
        "GET /live/c/%2e%2e/x.ts",
        "GET /live/../etc/passwd.ts",
        "PUT /live/c/x.php",
        "PUT /live/c/v/x",
        "PUT /live/c/a/b/c/d.ts",
        "PUT /live/c/.x.ts",
    ] {
        assert_eq!(s.raw_status(line).await, 400, "{line}");
    }
    let res = s.put("c/v/x.exe", "x").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(res).await, "bad_path");
}

#[tokio::test]
async fn oversize_is_413() {
    let s = start(Config { ingest_token: TOKEN.into(), max_object_bytes: 1024, ..Config::default() }).await;
    assert_eq!(s.put("c/v/ok.ts", vec![0_u8; 1024]).await.status(), StatusCode::CREATED);
    let res = s.put("c/v/big.ts", vec![0_u8; 1025]).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(res).await, "too_large");
    // Chunked: no Content-Length, refused while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(vec![0; 600]), Ok(vec![0; 600])];
    let res = s.put("c/v/big.ts", reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(s.get("c/v/big.ts").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_playlists_are_422_and_the_previous_one_stays() {
    let s = origin().await;
    for seg in ["s10.ts", "s11.ts", "s12.ts"] {
        s.put(&format!("c/v/{seg}"), "media").await;
    }
    let good = media(10, 2, &[(2.0, "s10.ts"), (2.0, "s11.ts")]);
    assert_eq!(s.put("c/v/index.m3u8", good.clone()).await.status(), StatusCode::CREATED);
    let cases = [
        ("not a playlist".to_owned(), "playlist_unparsable"),
        (media(9, 2, &[(2.0, "s10.ts")]), "media_sequence_backwards"),
        (media(11, 4, &[(2.0, "s11.ts")]), "target_duration_changed"),
        (media(11, 2, &[(2.0, "s11.ts"), (2.6, "s12.ts")]), "segment_too_long"),
        (media(11, 2, &[(2.0, "s11.ts"), (2.0, "s13.ts")]), "segment_missing"),
        (media(11, 2, &[(2.0, "../x/s11.ts")]), "bad_uri"),
        (media(11, 2, &[(2.0, "http://elsewhere/s11.ts")]), "bad_uri"),
        (media(11, 2, &[(2.0, "s12.ts")]), "segment_rewritten"),
        ("#EXTM3U\n#EXTINF:2,\ns11.ts\n".to_owned(), "missing_target_duration"),
    ];
    for (body, code) in cases {
        let res = s.put("c/v/index.m3u8", body).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{code}");
        assert_eq!(error_code(res).await, code);
        assert_eq!(s.get("c/v/index.m3u8").await.text().await.unwrap(), good, "{code}");
    }
    let next = media(11, 2, &[(2.0, "s11.ts"), (2.0, "s12.ts")]);
    assert_eq!(s.put("c/v/index.m3u8", next).await.status(), StatusCode::NO_CONTENT);
    // Master playlists: variants must be relative.
    let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nhttp://evil/index.m3u8\n";
    let res = s.put("c/master.m3u8", master).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(res).await, "bad_uri");
    let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000,RESOLUTION=640x360\nv/index.m3u8\n";
    assert_eq!(s.put("c/master.m3u8", master).await.status(), StatusCode::CREATED);
    // Listed segments are immutable.
    assert_eq!(s.put("c/v/s12.ts", "other").await.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn deleted_segments_are_served_during_the_grace_period() {
    let s = origin().await;
    for seg in ["s1.ts", "s2.ts", "s3.ts"] {
        s.put(&format!("c/v/{seg}"), seg).await;
    }
    s.put("c/v/index.m3u8", media(1, 2, &[(2.0, "s1.ts"), (2.0, "s2.ts")])).await;
    s.put("c/v/index.m3u8", media(2, 2, &[(2.0, "s2.ts"), (2.0, "s3.ts")])).await;
    assert_eq!(s.delete("c/v/s1.ts").await.status(), StatusCode::NO_CONTENT);
    let res = s.get("c/v/s1.ts").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "s1.ts");
    // A deleted segment cannot be listed again.
    let res = s.put("c/v/index.m3u8", media(2, 2, &[(2.0, "s2.ts"), (2.0, "s3.ts"), (2.0, "s1.ts")])).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
