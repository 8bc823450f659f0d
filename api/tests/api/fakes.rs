//! A loopback fake HTTP provider for the channel contract tests: it records every request
//! (method, path, headers, body), answers from per-route handlers, and can be told to answer
//! a scripted sequence first (e.g. three 503s, then the normal answer) or to be down for a
//! while. Used only for providers with no local peer (Meta, 360dialog, Five9, Connect).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Answer {
    pub fn json(status: u16, body: Value) -> Self {
        Answer {
            status,
            body: body.to_string().into_bytes(),
            headers: vec![("content-type".into(), "application/json".into())],
        }
    }

    /// A binary body (media downloads).
    pub fn bytes(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Answer {
            status,
            body,
            headers: vec![("content-type".into(), content_type.into())],
        }
    }

    /// A Graph API error (`{"error": {message, type, code, fbtrace_id}}`).
    pub fn graph_error(status: u16, code: i64, message: &str) -> Self {
        Answer::json(
            status,
            serde_json::json!({"error": {"message": message, "type": "OAuthException",
                "code": code, "fbtrace_id": "AbCdEfFake"}}),
        )
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = Arc<dyn Fn(&Seen, usize) -> Answer + Send + Sync>;

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    /// The status each request of `seen` was answered with, by index.
    statuses: HashMap<usize, u16>,
    /// Scripted answers by route key (`METHOD /path-prefix`), used before the handler.
    script: HashMap<String, VecDeque<Answer>>,
    /// Answer every request of a route with this until cleared (an outage).
    down: HashMap<String, Answer>,
    handlers: Vec<(String, Handler)>,
}

/// The fake; clones share state.
#[derive(Clone)]
pub struct FakeProvider {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeProvider {
    /// Starts a fake on a free loopback port.
    pub async fn start() -> Self {
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { answer(&state, method, uri, headers, body) }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeProvider { url, state }
    }

    /// Answers `METHOD /prefix…` with `handler(request, n)` (`n`: 1-based count of requests to
    /// that route so far). The longest matching prefix wins.
    pub fn on(
        &self,
        route: &str,
        handler: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static,
    ) -> &Self {
        self.state
            .lock()
            .unwrap()
            .handlers
            .push((route.to_owned(), Arc::new(handler)));
        self
    }

    /// Answers the next requests of `route` with these, in order, before the handler.
    pub fn script(&self, route: &str, answers: impl IntoIterator<Item = Answer>) {
        self.state
            .lock()
            .unwrap()
            .script
            .entry(route.to_owned())
            .or_default()
            .extend(answers);
    }

    /// Answers every request of `route` with `answer` until [`FakeProvider::up`].
    pub fn down(&self, route: &str, answer: Answer) {
        self.state
            .lock()
            .unwrap()
            .down
            .insert(route.to_owned(), answer);
    }

    pub fn up(&self, route: &str) {
        self.state.lock().unwrap().down.remove(route);
    }

    /// Requests whose `METHOD /path` starts with `route` that the fake answered with a 2xx:
    /// what the provider accepted (an outage's refused attempts are not deliveries).
    pub fn accepted(&self, route: &str) -> Vec<Seen> {
        let state = self.state.lock().unwrap();
        state
            .seen
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                format!("{} {}", s.method, s.path).starts_with(route)
                    && state
                        .statuses
                        .get(i)
                        .is_some_and(|st| (200..300).contains(st))
            })
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Requests whose `METHOD /path` starts with `route`.
    pub fn seen(&self, route: &str) -> Vec<Seen> {
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|s| format!("{} {}", s.method, s.path).starts_with(route))
            .cloned()
            .collect()
    }
}

/// Which media API a fake serves (`../shared/notes/channels.md` §1.5 and §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaApi {
    /// Meta: `GET /{version}/{media_id}` with `Authorization: Bearer`; the answer's `url` is on
    /// the fake itself (standing in for `lookaside.fbsbx.com`), downloaded with the same bearer.
    Meta {
        version: &'static str,
        token: &'static str,
    },
    /// 360dialog: `GET /{media_id}` with `D360-API-KEY`; the answer's `url` names Meta's host,
    /// which the client replaces by 360dialog's (here: the fake) and downloads with the key.
    Dialog360 { api_key: &'static str },
}

impl MediaApi {
    fn authorized(self, seen: &Seen) -> bool {
        match self {
            MediaApi::Meta { token, .. } => {
                seen.headers.get("authorization") == Some(&format!("Bearer {token}"))
            }
            MediaApi::Dialog360 { api_key } => {
                seen.headers.get("d360-api-key").map(String::as_str) == Some(api_key)
            }
        }
    }
}

/// Serves one media object the documented way: the info endpoint answers
/// `{messaging_product, url, mime_type, sha256 (hex), file_size (a string), id}`, the download URL
/// is valid for 5 minutes and needs the same credentials (401 otherwise), unknown ids get
/// Graph's `(#100)` error. `declared_mime` is what the info endpoint claims; `served` the bytes
/// the download returns (a different value than `bytes` simulates corruption).
pub fn serve_media(
    fake: &FakeProvider,
    api: MediaApi,
    media_id: &str,
    declared_mime: &str,
    bytes: &[u8],
    served: Vec<u8>,
) {
    use sha2::Digest;
    let sha = hex::encode(sha2::Sha256::digest(bytes));
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let query = format!("mid={media_id}&ext={expires}&hash=ATfake");
    let (info_route, url) = match api {
        MediaApi::Meta { version, .. } => (
            format!("GET /{version}/{media_id}"),
            format!("{}/whatsapp_business/attachments/?{query}", fake.url),
        ),
        MediaApi::Dialog360 { .. } => (
            format!("GET /{media_id}"),
            format!("https://lookaside.fbsbx.com/whatsapp_business/attachments/?{query}"),
        ),
    };
    let info = serde_json::json!({
        "messaging_product": "whatsapp", "url": url, "mime_type": declared_mime,
        "sha256": sha, "file_size": bytes.len().to_string(), "id": media_id,
    });
    let unknown_route = match api {
        MediaApi::Meta { version, .. } => format!("GET /{version}/"),
        MediaApi::Dialog360 { .. } => "GET /".to_owned(),
    };
    fake.on(&unknown_route, |_, _| {
        Answer::graph_error(
            400,
            100,
            "(#100) Invalid parameter: the media does not exist or was deleted",
        )
    });
    fake.on(&info_route, move |seen, _| {
        if !api.authorized(seen) {
            return Answer::graph_error(401, 190, "Invalid OAuth access token.");
        }
        Answer::json(200, info.clone())
    });
    fake.on(
        &format!("GET /whatsapp_business/attachments/?mid={media_id}&"),
        move |seen, _| {
            if !api.authorized(seen) {
                return Answer::json(401, serde_json::json!({"error": "unauthenticated"}));
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            if now > expires {
                return Answer::json(404, serde_json::json!({"error": "url expired"}));
            }
            Answer::bytes(200, "application/octet-stream", served.clone())
        },
    );
}

fn answer(
    state: &Mutex<State>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path_and_query()
        .map_or(uri.path().to_owned(), |p| p.as_str().to_owned());
    let seen = Seen {
        method: method.to_string(),
        path: path.clone(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
    };
    let key = format!("{method} {path}");
    let shared = state;
    let index;
    // The answer, or the handler to ask once the lock is released (handlers may be slow).
    let decided = {
        let mut state = shared.lock().unwrap();
        index = state.seen.len();
        state.seen.push(seen.clone());
        let best = |routes: Vec<&String>| {
            routes
                .into_iter()
                .filter(|r| key.starts_with(r.as_str()))
                .max_by_key(|r| r.len())
                .cloned()
        };
        if let Some(route) = best(state.down.keys().collect()) {
            Ok(state.down[&route].clone())
        } else if let Some(route) = best(
            state
                .script
                .iter()
                .filter(|(_, q)| !q.is_empty())
                .map(|(r, _)| r)
                .collect(),
        ) {
            Ok(state.script.get_mut(&route).unwrap().pop_front().unwrap())
        } else if let Some((route, handler)) = state
            .handlers
            .iter()
            .filter(|(r, _)| key.starts_with(r.as_str()))
            .max_by_key(|(r, _)| r.len())
            .map(|(r, h)| (r.clone(), h.clone()))
        {
            let n = state
                .seen
                .iter()
                .filter(|s| format!("{} {}", s.method, s.path).starts_with(&route))
                .count();
            Err((handler, n))
        } else {
            Ok(Answer::json(
                404,
                serde_json::json!({"error": "no such fake route"}),
            ))
        }
    };
    let reply = decided.unwrap_or_else(|(handler, n)| handler(&seen, n));
    shared.lock().unwrap().statuses.insert(index, reply.status);
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap(),
        reply.body.clone(),
    )
        .into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    response
}
