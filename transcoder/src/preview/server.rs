//! The preview's HTTP server: the page at `/`, the two players at `/player/`, the output at
//! `/media/`. Nothing is cached, so a job that republishes shows on reload.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::origin::{media_type, Origin};

/// The page, with `__HLS_JS_URL__` and `__DASH_JS_URL__` to fill in.
const PAGE: &str = include_str!("page.html");
/// hls.js as the page loads it by default (the version the tests play with).
pub const HLS_JS_CDN: &str = "https://cdn.jsdelivr.net/npm/hls.js@1.7.4/dist/hls.min.js";
/// dash.js as the page loads it by default (the version the tests play with).
pub const DASH_JS_CDN: &str =
    "https://cdn.jsdelivr.net/npm/dashjs@5.2.1/dist/modern/umd/dash.all.min.js";

/// Where the page gets a player from.
#[derive(Debug, Clone)]
pub enum PlayerScript {
    /// A URL the browser loads (a CDN).
    Url(String),
    /// A local file the preview serves (for machines without internet, and the tests).
    File(PathBuf),
}

impl PlayerScript {
    /// `URL` or a local path.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("https://") || text.starts_with("http://") {
            Self::Url(text.to_string())
        } else {
            Self::File(PathBuf::from(text))
        }
    }

    /// The URL the page puts in its `<script src>`.
    fn src(&self, served_at: &str) -> String {
        match self {
            Self::Url(url) => url.clone(),
            Self::File(_) => served_at.to_string(),
        }
    }
}

/// hls.js and dash.js.
#[derive(Debug, Clone)]
pub struct PlayerScripts {
    /// hls.js (`hls.min.js`).
    pub hls: PlayerScript,
    /// dash.js (the UMD `dash.all.min.js`).
    pub dash: PlayerScript,
}

struct Preview {
    origin: Origin,
    scripts: PlayerScripts,
    page: String,
}

/// Serves the preview of `origin` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    origin: Origin,
    scripts: PlayerScripts,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let html = PAGE
        .replace("__HLS_JS_URL__", &scripts.hls.src("player/hls.js"))
        .replace("__DASH_JS_URL__", &scripts.dash.src("player/dash.js"));
    let state = Arc::new(Preview {
        origin,
        scripts,
        page: html,
    });
    let app = Router::new()
        .route("/", get(page))
        .route("/player/{name}", get(player))
        .route("/media/{*path}", get(media))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn page(State(preview): State<Arc<Preview>>) -> Response {
    no_store(Html(preview.page.clone()).into_response())
}

async fn player(State(preview): State<Arc<Preview>>, Path(name): Path<String>) -> Response {
    let script = match name.as_str() {
        "hls.js" => &preview.scripts.hls,
        "dash.js" => &preview.scripts.dash,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let PlayerScript::File(path) = script else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(path).await {
        Ok(bytes) => typed(bytes, media_type("player.js")),
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cannot read a player script");
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

async fn media(State(preview): State<Arc<Preview>>, Path(path): Path<String>) -> Response {
    match preview.origin.read(&path).await {
        Ok(Some(bytes)) => typed(bytes, media_type(&path)),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(error) => {
            tracing::warn!(%error, path, "cannot read an output file");
            (StatusCode::BAD_GATEWAY, error).into_response()
        }
    }
}

fn typed(bytes: Vec<u8>, content_type: &'static str) -> Response {
    no_store(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}
