//! Why an HTTP link to a remote server ended: one error type for every link file, so that
//! `remote/cause.rs` can put it in words without importing the link itself.

use reqwest::StatusCode;

/// Why an HTTP link ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("invalid upstream url")]
    Url,
    #[error("invalid configured header")]
    Header,
    #[error("http client setup failed")]
    Client(#[source] reqwest::Error),
    #[error("request failed")]
    Network(#[source] reqwest::Error),
    #[error("upstream session ended (404)")]
    SessionGone,
    #[error("upstream answered {0}")]
    Status(StatusCode),
    #[error("not an sse stream")]
    NotSse,
    /// Not kept as a source: a parse error carries the stream's text (message bodies).
    #[error("unreadable sse stream")]
    Sse,
    #[error("message larger than the cap")]
    TooLarge,
    #[error("legacy sse stream ended before its endpoint event")]
    NoEndpoint,
    #[error("legacy sse endpoint is not a url of the same origin")]
    BadEndpoint,
    #[error("upstream did not answer in time")]
    Timeout,
    #[error("link task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    /// A transport failure, without the URL reqwest would print (its query may hold secrets).
    pub(super) fn network(e: reqwest::Error) -> Error {
        Error::Network(e.without_url())
    }
}
