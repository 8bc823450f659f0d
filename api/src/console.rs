//! The operator console (`/console/`): a small single-page web application built from
//! `console/` by `make console`, served from `api.console.dir`, plus the read endpoints only it
//! needs so far:
//!
//! - `GET /console/` and `GET /console/{*path}`: the built files; unknown paths without a file
//!   extension get `index.html` (the console routes by URL fragment, so this is only for
//!   bookmarks). Nothing outside the folder is ever read (`..`, absolute and hidden paths → 404).
//! - `GET /console/config.json`: what the page needs before login — the OIDC authorize endpoint
//!   (when configured) and the Temporal Web UI address for history links. Public: it holds no
//!   secret.
//! - `GET /v1/conversations/handoffs`: conversations handed off to a human and still waiting
//!   (the newest `Conversation.HandedOff` events whose workflow is running and in handoff).

use std::path::{Component, Path as FsPath, PathBuf};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::{Caller, Role};
use crate::ops::Operations;
use crate::{ApiError, AppState};

/// `[api.console]`: where the built console is and how operators log in.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Folder of the built console (`make console` writes `console/dist`). Relative paths are
    /// relative to the working directory. A missing folder → `/console/` answers 404 saying so.
    pub dir: String,
    /// OIDC authorize endpoint for the login button (e.g. Cognito's hosted UI
    /// `https://<domain>/oauth2/authorize`); empty: operators paste a token.
    pub oidc_authorize_url: String,
    /// OIDC token endpoint (Cognito: `https://<domain>/oauth2/token`): the console redeems the
    /// authorization code there with its PKCE verifier. Required with `oidc_authorize_url`.
    pub oidc_token_url: String,
    /// OIDC client id of the console: a public client (no secret), authorization code flow
    /// with PKCE (S256); the ID token's `nonce` is checked against the one the login sent.
    pub oidc_client_id: String,
    /// Scopes asked for at login.
    pub oidc_scope: String,
    /// The Temporal Web UI, for links to a workflow's history there; empty hides those links.
    pub temporal_ui_url: String,
    /// The Temporal namespace in those links.
    pub temporal_namespace: String,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            dir: "console/dist".to_owned(),
            oidc_authorize_url: String::new(),
            oidc_token_url: String::new(),
            oidc_client_id: String::new(),
            oidc_scope: "openid".to_owned(),
            temporal_ui_url: "http://127.0.0.1:8233".to_owned(),
            temporal_namespace: "default".to_owned(),
        }
    }
}

/// The file under `root` a console URL path names, if the path is a plain relative one.
fn resolve(root: &FsPath, path: &str) -> Option<PathBuf> {
    let relative = FsPath::new(path);
    let mut out = root.to_path_buf();
    for component in relative.components() {
        match component {
            Component::Normal(part) => {
                let part = part.to_str()?;
                if part.starts_with('.') || part.contains('\\') {
                    return None;
                }
                out.push(part);
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn content_type(path: &FsPath) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "map" => "application/json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn console_missing(dir: &str) -> ApiError {
    ApiError::not_found(format!(
        "the console is not built (no `{dir}/index.html`); run `make console`"
    ))
}

async fn serve_file(state: &AppState, path: &str) -> Result<Response, ApiError> {
    let settings = &state.settings.console;
    let root = FsPath::new(&settings.dir);
    let index = root.join("index.html");
    let file = resolve(root, path)
        .ok_or_else(|| ApiError::not_found(format!("no console file `{path}`")))?;
    let (file, bytes) = match tokio::fs::read(&file).await {
        Ok(bytes) => (file, bytes),
        // A route-like path (no extension) is the single-page app itself.
        Err(_) if file.extension().is_none() => match tokio::fs::read(&index).await {
            Ok(bytes) => (index, bytes),
            Err(_) => return Err(console_missing(&settings.dir)),
        },
        Err(_) if !index.exists() => return Err(console_missing(&settings.dir)),
        Err(_) => return Err(ApiError::not_found(format!("no console file `{path}`"))),
    };
    // Built assets carry a content hash in their name: cache them; never cache the page.
    let cache = if file.starts_with(root.join("assets")) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let csp = content_security_policy(settings);
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&file)),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, csp.as_str()),
        ],
        bytes,
    )
        .into_response())
}

/// The page may talk to this API and, when OIDC sign-in is configured, to the provider's token
/// endpoint (the code is redeemed from the browser), nothing else.
fn content_security_policy(settings: &ConsoleSettings) -> String {
    let token_origin = reqwest::Url::parse(&settings.oidc_token_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(|u| format!(" {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    format!(
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; \
         connect-src 'self'{token_origin}; frame-ancestors 'none'"
    )
}

/// The console's files and its `config.json` (merged into the API's router; web pages, so
/// not part of the OpenAPI document).
pub fn static_routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/console", get(redirect))
        .route("/console/", get(index))
        .route("/console/config.json", get(config))
        .route("/console/{*path}", get(file))
}

/// `GET /console` → the console's page.
pub async fn redirect() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, "/console/")],
    )
        .into_response()
}

/// `GET /console/`.
pub async fn index(State(state): State<AppState>) -> Result<Response, ApiError> {
    serve_file(&state, "index.html").await
}

/// `GET /console/{*path}`.
pub async fn file(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    serve_file(&state, &path).await
}

/// `GET /console/config.json`.
pub async fn config(State(state): State<AppState>) -> Response {
    let c = &state.settings.console;
    let oidc = (!c.oidc_authorize_url.is_empty() && !c.oidc_token_url.is_empty()).then(|| {
        json!({
            "authorize_url": c.oidc_authorize_url,
            "token_url": c.oidc_token_url,
            "client_id": c.oidc_client_id,
            "scope": c.oidc_scope,
        })
    });
    let temporal_ui = (!c.temporal_ui_url.is_empty()).then(|| {
        json!({
            "url": c.temporal_ui_url.trim_end_matches('/'),
            "namespace": c.temporal_namespace,
        })
    });
    (
        [(header::CACHE_CONTROL, "no-cache")],
        Json(json!({"oidc": oidc, "temporal_ui": temporal_ui})),
    )
        .into_response()
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoffQuery {
    /// How many handoffs to look at, newest first: 1 to 100 (default 50).
    #[serde(default)]
    limit: Option<String>,
}

/// A conversation waiting for a human agent.
#[derive(Debug, Serialize)]
pub struct Handoff {
    pub workflow_id: String,
    /// When the flow handed it off (ms since the epoch).
    pub handed_off_at: i64,
    /// The flow node and agent queue of the handoff.
    pub node: Option<String>,
    pub queue: Option<String>,
    /// Customer messages waiting for the agent.
    pub agent_queue: u64,
    pub turns: u64,
    /// The conversation in Chatwoot's dashboard, when mirrored to the agent desk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_desk_url: Option<String>,
}

/// `GET /v1/conversations/handoffs`.
pub async fn handoffs(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<HandoffQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let q = crate::read_query(query)?;
    let limit = crate::query_limit(q.limit.as_deref(), 50, 100)?;
    let events = state
        .db
        .events()
        .recent(
            &caller.tenant,
            zengine_domain::events::EventType::ConversationHandedOff.as_str(),
            limit,
        )
        .await?;
    // The newest handoff of each conversation; its workflow says whether it still waits.
    let mut seen = std::collections::BTreeSet::new();
    let candidates: Vec<_> = events
        .into_iter()
        .filter(|e| seen.insert(e.subject.clone()))
        .collect();
    let ops = Operations::new(state.temporal.clone());
    let tenant = caller.tenant.clone();
    let described = futures::future::join_all(candidates.iter().map(|event| {
        let ops = &ops;
        let tenant = &tenant;
        async move { ops.describe(tenant, &event.subject, None).await }
    }))
    .await;
    let mut waiting = Vec::new();
    for (event, detail) in candidates.iter().zip(described) {
        let Ok(detail) = detail else { continue };
        let Some(status) = detail.state.as_ref() else {
            continue;
        };
        if detail.summary.status != "Running" || status["state"] != "handoff" {
            continue;
        }
        waiting.push(Handoff {
            workflow_id: event.subject.clone(),
            handed_off_at: event.occurred_at,
            node: event.payload["node"].as_str().map(str::to_owned),
            queue: event.payload["queue"].as_str().map(str::to_owned),
            agent_queue: status["agent_queue"].as_u64().unwrap_or(0),
            turns: status["turns"].as_u64().unwrap_or(0),
            agent_desk_url: status["agent_desk_url"].as_str().map(str::to_owned),
        });
    }
    Ok(Json(json!({ "handoffs": waiting })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_resolve_inside_the_folder() {
        let root = FsPath::new("/srv/console");
        assert_eq!(
            resolve(root, "assets/app-1.js"),
            Some(PathBuf::from("/srv/console/assets/app-1.js"))
        );
        assert_eq!(
            resolve(root, "./index.html"),
            Some(PathBuf::from("/srv/console/index.html"))
        );
        for bad in [
            "../secret",
            "assets/../../etc/passwd",
            "/etc/passwd",
            ".env",
            "assets/.hidden",
            "a\\..\\b",
        ] {
            assert_eq!(resolve(root, bad), None, "{bad}");
        }
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(
            content_type(FsPath::new("index.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(FsPath::new("assets/a.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type(FsPath::new("x.bin")),
            "application/octet-stream"
        );
    }
}
