//! How a chat request reaches the LLM server: plain HTTP without a proxy
//! (the in-cluster server the operator points at) goes through the lean
//! client in `http1`, read in the answer's task; HTTPS, URLs with
//! credentials and proxied servers go through reqwest (TLS, HTTP/2, the
//! proxy variables).

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};

use super::http1::Http1Client;
use super::lines::{self, ChunkStream, ParseLine};
use super::{LlmError, PromptMessage, TokenStream, request_error, status_error};

/// The longest error explanation kept from a non-2xx answer's body.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// A chat endpoint (`/api/chat`, `/v1/chat/completions`) and the way to it.
pub struct ChatEndpoint {
    url: reqwest::Url,
    /// The `Authorization` header's value, when the server wants a key:
    /// checked and marked sensitive once, written as is by either route.
    authorization: Option<HeaderValue>,
    route: Route,
}

enum Route {
    Direct {
        client: Http1Client,
        /// Path and query of `url`, the request line's target.
        target: String,
    },
    Reqwest(reqwest::Client),
}

/// The request body both protocols share; typed, so it is written
/// straight to bytes without an intermediate JSON tree.
#[derive(serde::Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [PromptMessage],
    stream: bool,
}

/// Set proxy variables send reqwest's requests through a proxy; the lean
/// client does not speak to proxies, so it steps aside.
fn proxy_configured() -> bool {
    ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// Where a redirect points, without credentials, query or fragment. It
/// goes to the log for the operator, not to the user: the server chose it.
fn redirect_target(url: &reqwest::Url, location: &str) -> String {
    match url.join(location) {
        Ok(mut target) => {
            let _ = target.set_username("");
            let _ = target.set_password(None);
            target.set_query(None);
            target.set_fragment(None);
            target.to_string()
        }
        Err(_) => "an address that is not a URL".to_owned(),
    }
}

/// The request line's target: `url`'s path and query.
fn request_target(url: &reqwest::Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

impl ChatEndpoint {
    /// The lean client where it can serve `url`, reqwest otherwise.
    pub fn new(
        http: &reqwest::Client,
        url: reqwest::Url,
        api_key: Option<&str>,
        connect_timeout: Duration,
        max_connections: usize,
    ) -> Result<Self, LlmError> {
        let direct = if proxy_configured() {
            None
        } else {
            Http1Client::for_url(&url, connect_timeout, max_connections)
        };
        let route = match direct {
            Some(client) => Route::Direct {
                client,
                target: request_target(&url),
            },
            None => Route::Reqwest(http.clone()),
        };
        let endpoint = Self::with_route(url, api_key, route)?;
        tracing::info!(client = endpoint.client_name(), "LLM chat requests");
        Ok(endpoint)
    }

    /// Always through the built-in client, whatever the proxy variables.
    #[cfg(test)]
    pub fn via_http1(url: reqwest::Url, api_key: Option<&str>) -> Result<Self, LlmError> {
        let client = Http1Client::for_url(&url, Duration::from_secs(5), 4)
            .ok_or_else(|| LlmError::Unreachable("not a plain-HTTP URL".into()))?;
        let target = request_target(&url);
        Self::with_route(url, api_key, Route::Direct { client, target })
    }

    /// Always through reqwest, as for an HTTPS server.
    #[cfg(test)]
    pub fn via_reqwest(
        http: &reqwest::Client,
        url: reqwest::Url,
        api_key: Option<&str>,
    ) -> Result<Self, LlmError> {
        Self::with_route(url, api_key, Route::Reqwest(http.clone()))
    }

    fn with_route(
        url: reqwest::Url,
        api_key: Option<&str>,
        route: Route,
    ) -> Result<Self, LlmError> {
        // A line break in the key would end the header and start another:
        // HeaderValue refuses control characters.
        let authorization = api_key
            .map(|key| {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                    LlmError::Unreachable("LLM_API_KEY contains a control character".into())
                })?;
                value.set_sensitive(true);
                Ok(value)
            })
            .transpose()?;
        Ok(Self {
            url,
            authorization,
            route,
        })
    }

    /// Which client serves this endpoint, for the startup log.
    fn client_name(&self) -> &'static str {
        match self.route {
            Route::Direct { .. } => "built-in HTTP/1.1",
            Route::Reqwest(_) => "reqwest",
        }
    }

    /// Posts a streamed chat request and, once the server has accepted
    /// it, returns the tokens of its answer.
    pub async fn post_chat(
        &self,
        model: &str,
        messages: &[PromptMessage],
        parse: ParseLine,
    ) -> Result<TokenStream, LlmError> {
        let body = ChatRequest {
            model,
            messages,
            stream: true,
        };
        match &self.route {
            Route::Direct { client, target } => {
                let body = serde_json::to_vec(&body).map_err(|e| {
                    LlmError::Protocol(format!("the prompt cannot be encoded: {e}"))
                })?;
                let response = client
                    .post_json(
                        target,
                        self.authorization.as_ref().map(HeaderValue::as_bytes),
                        &body,
                    )
                    .await?;
                if (300..400).contains(&response.status)
                    && let Some(location) = &response.location
                {
                    // Not followed, as reqwest would: `LLM_URL` should
                    // name the server itself.
                    tracing::warn!(
                        status = response.status,
                        target = %redirect_target(&self.url, location),
                        "the LLM server redirects; set LLM_URL to the target"
                    );
                    return Err(LlmError::Status {
                        status: response.status,
                        message:
                            "the LLM server redirects elsewhere (the chat service's log says where)"
                                .into(),
                    });
                }
                if !(200..300).contains(&response.status) {
                    let text = response.body.read_to_end(MAX_ERROR_BODY_BYTES).await;
                    return Err(status_error(
                        response.status,
                        &String::from_utf8_lossy(&text),
                    ));
                }
                Ok(Box::pin(lines::tokens(response.body, parse)))
            }
            Route::Reqwest(http) => {
                let mut request = http.post(self.url.clone()).json(&body);
                if let Some(value) = &self.authorization {
                    request = request.header(AUTHORIZATION, value.clone());
                }
                let response = request.send().await.map_err(request_error)?;
                let status = response.status().as_u16();
                if !response.status().is_success() {
                    let text = response.text().await.unwrap_or_default();
                    return Err(status_error(status, &text));
                }
                Ok(Box::pin(lines::tokens(
                    ChunkStream(response.bytes_stream()),
                    parse,
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use voicechat_testkit::llm_double::{LlmDouble, Script};

    use super::*;
    use crate::llm::{Role, ollama, openai};

    fn prompt() -> Vec<PromptMessage> {
        vec![PromptMessage {
            role: Role::User,
            content: "hi".into(),
        }]
    }

    /// Both routes to one server, for one backend's wire format.
    fn routes(double: &LlmDouble, path: &str) -> [ChatEndpoint; 2] {
        let http = reqwest::Client::new();
        let url = reqwest::Url::parse(&format!("{}{path}", double.url())).unwrap();
        let direct = ChatEndpoint::via_http1(url.clone(), Some("key")).unwrap();
        assert_eq!(direct.client_name(), "built-in HTTP/1.1");
        let reqwest = ChatEndpoint::via_reqwest(&http, url, Some("key")).unwrap();
        [direct, reqwest]
    }

    async fn answer(endpoint: &ChatEndpoint, parse: ParseLine) -> Result<Vec<String>, LlmError> {
        let stream = endpoint.post_chat("m", &prompt(), parse).await?;
        stream.collect::<Vec<_>>().await.into_iter().collect()
    }

    #[tokio::test]
    async fn both_routes_read_the_same_answers_and_errors() {
        for (path, parse) in [
            ("/api/chat", ollama::parse_line as ParseLine),
            ("/v1/chat/completions", openai::parse_line),
        ] {
            let double = LlmDouble::start(Script::tokens(&["Hel", "lo", " there"])).await;
            for endpoint in routes(&double, path) {
                let name = endpoint.client_name();
                for _ in 0..2 {
                    assert_eq!(
                        answer(&endpoint, parse).await.unwrap(),
                        ["Hel", "lo", " there"],
                        "{name} {path}"
                    );
                }
            }
            let sent = double.requests();
            assert_eq!(sent.len(), 4);
            assert_eq!(sent[0], sent[3], "both routes send the same request");
            assert_eq!(sent[0]["messages"][0]["content"], "hi");
            assert_eq!(sent[0]["stream"], true);
            let key = Some("Bearer key".to_owned());
            assert_eq!(
                double.authorizations(),
                [key.clone(), key.clone(), key.clone(), key]
            );

            double.set(Script::Status(404, "model \"m\" not found".into()));
            for endpoint in routes(&double, path) {
                let err = answer(&endpoint, parse).await.unwrap_err();
                assert!(
                    matches!(&err, LlmError::Status { status: 404, message } if message == "model \"m\" not found"),
                    "{}: {err}",
                    endpoint.client_name()
                );
            }
        }
    }

    #[test]
    fn a_redirects_target_is_logged_without_secrets() {
        let url = reqwest::Url::parse("http://gw.local/llm/api/chat").unwrap();
        assert_eq!(
            redirect_target(&url, "https://u:p@gw.example/llm/api/chat?key=s#f"),
            "https://gw.example/llm/api/chat"
        );
        assert_eq!(
            redirect_target(&url, "/v2/api/chat"),
            "http://gw.local/v2/api/chat"
        );
    }

    /// A server that answers one request with `answer` and closes.
    async fn answering(answer: &'static str) -> reqwest::Url {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/chat", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            // The request is small: one read holds it.
            let _ = socket.read(&mut [0u8; 4096]).await;
            let _ = socket.write_all(answer.as_bytes()).await;
        });
        reqwest::Url::parse(&url).unwrap()
    }

    #[tokio::test]
    async fn redirects_are_refused_without_naming_the_target_to_the_user() {
        let url = answering(
            "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://secret.example/x?k=1\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        let endpoint = ChatEndpoint::via_http1(url, None).unwrap();
        let err = answer(&endpoint, ollama::parse_line).await.unwrap_err();
        assert!(
            matches!(&err, LlmError::Status { status: 308, message } if message.contains("redirects")),
            "{err}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");

        // Without a Location it is any other error status, with its body.
        let url =
            answering("HTTP/1.1 302 Found\r\nContent-Length: 17\r\n\r\n{\"error\":\"moved\"}")
                .await;
        let endpoint = ChatEndpoint::via_http1(url, None).unwrap();
        let err = answer(&endpoint, ollama::parse_line).await.unwrap_err();
        assert!(
            matches!(&err, LlmError::Status { status: 302, message } if message == "moved"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_key_that_would_break_the_header_is_refused() {
        let http = reqwest::Client::new();
        let url = reqwest::Url::parse("http://llm:8000/v1/chat/completions").unwrap();
        let err = ChatEndpoint::new(
            &http,
            url,
            Some("k\r\nX-Evil: 1"),
            Duration::from_secs(1),
            1,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("LLM_API_KEY"), "{err}");
    }
}
