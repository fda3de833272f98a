//! Express behaviour laravel-echo-server's API clients may rely on: the `headers` option,
//! `apiOriginAllow` CORS on every API response, automatic `OPTIONS`, and `Cannot GET /x`.

use crate::config::Config;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use std::sync::Arc;

/// Static headers added to every API response.
#[derive(Clone)]
pub struct ExpressCompat {
    headers: Arc<[(HeaderName, HeaderValue)]>,
}

impl ExpressCompat {
    /// From `headers` and `apiOriginAllow`.
    pub fn new(config: &Config) -> ExpressCompat {
        let mut headers = Vec::new();
        let cors = &config.api_cors;
        if cors.allow_cors {
            for (name, value) in [
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, &cors.allow_origin),
                (header::ACCESS_CONTROL_ALLOW_METHODS, &cors.allow_methods),
                (header::ACCESS_CONTROL_ALLOW_HEADERS, &cors.allow_headers),
            ] {
                if let Ok(value) = HeaderValue::from_str(value) {
                    headers.push((name, value));
                }
            }
        }
        for (name, value) in &config.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.push((name, value));
            }
        }
        ExpressCompat {
            headers: headers.into(),
        }
    }

    /// The middleware: answers `OPTIONS` itself and decorates every response.
    pub async fn handle(State(compat): State<ExpressCompat>, req: Request, next: Next) -> Response {
        crate::metrics::metrics().http_calls_received.inc();
        let mut response = if req.method() == Method::OPTIONS {
            let allow = if req.uri().path().trim_end_matches('/').ends_with("/events") {
                "POST"
            } else {
                "GET,HEAD"
            };
            (StatusCode::OK, [(header::ALLOW, allow)], allow).into_response()
        } else {
            next.run(req).await
        };
        for (name, value) in compat.headers.iter() {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response
    }
}

/// Express's 404 for unknown paths: `Cannot GET /x`.
pub async fn not_found(method: Method, uri: http::Uri) -> Response {
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Error</title>\n</head>\n<body>\n<pre>Cannot {method} {}</pre>\n</body>\n</html>\n",
        escape_html(uri.path())
    );
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
