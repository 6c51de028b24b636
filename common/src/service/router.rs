//! What every service's router has around its own routes.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use prometheus::Registry;

use crate::cors::AllowedOrigins;
use crate::http_metrics::{self, HttpMetrics};

/// A service's routes plus `/livez` (the process answers), `/metrics`
/// (the service's registry), request metrics and a body limit. Readiness
/// and `/health` differ between services and stay theirs.
pub struct ServiceRouter<S> {
    router: Router<S>,
}

impl<S: Clone + Send + Sync + 'static> ServiceRouter<S> {
    pub fn new(
        routes: Router<S>,
        registry: &Registry,
        http: &HttpMetrics,
        body_limit: usize,
    ) -> Self {
        let registry = registry.clone();
        let router = routes
            .route("/livez", get(livez))
            .route(
                "/metrics",
                get(move || {
                    let registry = registry.clone();
                    async move { http_metrics::render(&registry) }
                }),
            )
            .layer(DefaultBodyLimit::max(body_limit))
            .layer(axum::middleware::from_fn_with_state(
                http.clone(),
                http_metrics::track,
            ));
        Self { router }
    }

    /// Static files for everything no route matched (outside the request
    /// metrics: their paths are the client's, not the API's).
    pub fn static_files(self, dir: Option<&str>) -> Self {
        match dir {
            Some(dir) => Self {
                router: self
                    .router
                    .fallback_service(tower_http::services::ServeDir::new(dir)),
            },
            None => self,
        }
    }

    /// CORS outermost, so that preflight requests are answered before auth;
    /// `exposed` names the response headers browsers may read.
    pub fn finish(self, cors: &AllowedOrigins, exposed: &[&'static str], state: S) -> Router {
        match cors.layer(exposed) {
            Some(cors) => self.router.layer(cors),
            None => self.router,
        }
        .with_state(state)
    }
}

async fn livez() -> &'static str {
    "ok"
}
