//! Optional OpenTelemetry trace export (`serve --otlp-endpoint URL`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`): one SERVER span per JSON-RPC request, named and attributed
//! after the OpenTelemetry semantic conventions for MCP, sent over OTLP/HTTP (protobuf) by a
//! batch processor on its own thread (bounded queue: a slow or dead collector costs dropped
//! spans and a rate-limited warning, never request latency).
//!
//! Off by default: without an endpoint nothing is started and [`RequestSpan::start`] is one
//! atomic load. The span's lifecycle is the request's `Ticket` (`ticket.rs`): it starts
//! when the ticket is made and is ended, with the outcome, when the ticket drops. The parent
//! comes from `params._meta.traceparent`, else from the HTTP `traceparent` header (read by
//! [`propagate`], an axum layer `app.rs` adds when tracing is on); frames are never changed.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};

mod span;

pub(crate) use span::{propagate, RequestSpan};

/// The exporter's own HTTP timeout (connect, send, answer).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one "export failed" warning per this interval.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// How long a clean shutdown waits for the last batch.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

static TRACER: OnceLock<SdkTracer> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot build the OTLP exporter")]
    Build(#[source] opentelemetry_otlp::ExporterBuildError),
    #[error("cannot build the OTLP HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Where spans go and under which `service.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OtelConfig {
    /// The full traces URL (`…/v1/traces`).
    pub endpoint: String,
    pub service_name: String,
}

impl OtelConfig {
    /// `--otlp-endpoint`, else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is), else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; a base URL gets `/v1/traces`. None: tracing is off.
    /// A bad flag is a usage error; a bad variable is ignored with a warning (as OpenTelemetry
    /// SDKs do), so it cannot stop `stdio` or `connect`, which share these flags.
    pub(crate) fn build(
        flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<OtelConfig>, String> {
        match OtelConfig::resolve(flag, env) {
            Err(e) if flag.is_none() => {
                tracing::warn!(error = %e, "trace export off");
                Ok(None)
            }
            other => other,
        }
    }

    fn resolve(
        flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<OtelConfig>, String> {
        let nonempty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let (from, url, full) = match flag {
            Some(f) => ("--otlp-endpoint", f.to_owned(), false),
            None => match (
                nonempty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
                nonempty("OTEL_EXPORTER_OTLP_ENDPOINT"),
            ) {
                (Some(u), _) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", u, true),
                (None, Some(u)) => ("OTEL_EXPORTER_OTLP_ENDPOINT", u, false),
                (None, None) => return Ok(None),
            },
        };
        let url = url.trim();
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("{from} `{url}`: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "{from} `{url}`: must be an http:// or https:// URL"
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(format!("{from}: credentials in the URL are not accepted"));
        }
        let endpoint = if full || url.trim_end_matches('/').ends_with("/v1/traces") {
            url.to_owned()
        } else {
            format!("{}/v1/traces", url.trim_end_matches('/'))
        };
        let service_name = nonempty("OTEL_SERVICE_NAME").unwrap_or_else(|| "mcp-relay".into());
        Ok(Some(OtelConfig {
            endpoint,
            service_name,
        }))
    }
}

/// The running exporter; [`Exporter::shutdown`] flushes it.
#[derive(Debug)]
pub(crate) struct Exporter {
    provider: SdkTracerProvider,
}

/// Starts the exporter (inside the runtime: its HTTP calls run there) and makes it the
/// tracer of every request span. None when `cfg` is None (or a tracer is already set).
pub(crate) fn start(cfg: Option<&OtelConfig>) -> Result<Option<Exporter>, Error> {
    let Some(cfg) = cfg else { return Ok(None) };
    if TRACER.get().is_some() {
        return Ok(None);
    }
    let client = HttpClient {
        http: reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(Error::Client)?,
        rt: tokio::runtime::Handle::current(),
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(cfg.endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(Error::Build)?;
    let exporter = Warned {
        inner: exporter,
        state: Mutex::new(WarnState::default()),
    };
    // Defaults (queue 2048, delay 5 s, batch 512, timeout 30 s) unless OTEL_BSP_* say otherwise.
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(BatchConfigBuilder::default().build())
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(cfg.service_name.clone())
        .build();
    // The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build();
    let _ = TRACER.set(provider.tracer("mcp-relay"));
    tracing::info!(endpoint = %cfg.endpoint, "exporting traces (OTLP/HTTP)");
    Ok(Some(Exporter { provider }))
}

impl Exporter {
    /// Exports what is queued (bounded by a timeout) and stops the exporter thread.
    pub(crate) async fn shutdown(self) {
        let provider = self.provider;
        let done =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT))
                .await;
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "trace export not flushed");
        }
    }
}

// === impl HttpClient ===

/// The exporter's HTTP client: the tree's reqwest (rustls), run on the relay's runtime while
/// the batch processor's thread waits for it.
#[derive(Debug)]
struct HttpClient {
    http: reqwest::Client,
    rt: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for HttpClient {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<Bytes>,
    ) -> Result<opentelemetry_http::Response<Bytes>, opentelemetry_http::HttpError> {
        let http = self.http.clone();
        let request = reqwest::Request::try_from(request)?;
        let call = async move {
            let mut res = http.execute(request).await?;
            let mut out = opentelemetry_http::Response::builder().status(res.status().as_u16());
            let mut body = Vec::new();
            // The answer is a small protobuf; a larger one is cut (it is only logged).
            while let Some(chunk) = res.chunk().await? {
                if body.len() + chunk.len() > 64 * 1024 {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            if let Some(ct) = res.headers().get(reqwest::header::CONTENT_TYPE) {
                out = out.header(reqwest::header::CONTENT_TYPE, ct.clone());
            }
            Ok::<_, opentelemetry_http::HttpError>(out.body(Bytes::from(body))?)
        };
        self.rt.spawn(call).await?
    }
}

// === impl Warned ===

/// The OTLP exporter, with failures logged at most once per [`WARN_EVERY`] (with the
/// number of spans dropped meanwhile).
#[derive(Debug)]
struct Warned<E> {
    inner: E,
    state: Mutex<WarnState>,
}

#[derive(Debug, Default)]
struct WarnState {
    last: Option<Instant>,
    dropped: u64,
}

impl<E: SpanExporter> SpanExporter for Warned<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let res = self.inner.export(batch).await;
        if let Err(e) = &res {
            let Ok(mut s) = self.state.lock() else {
                return res;
            };
            s.dropped += spans;
            if s.last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                tracing::warn!(error = %e, dropped_spans = s.dropped, "trace export failed");
                s.last = Some(Instant::now());
                s.dropped = 0;
            }
        }
        res
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// Whether request spans are being made.
pub(crate) fn enabled() -> bool {
    TRACER.get().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_flag_env_and_defaults() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(OtelConfig::build(None, &env(&[])), Ok(None));
        let c = OtelConfig::build(Some("http://127.0.0.1:4318/"), &env(&[]))
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(c.service_name, "mcp-relay");
        let c = OtelConfig::build(
            None,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example:4318"),
                ("OTEL_SERVICE_NAME", "edge"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "https://otel.example:4318/v1/traces");
        assert_eq!(c.service_name, "edge");
        let c = OtelConfig::build(
            None,
            &env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:1/custom")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.endpoint, "http://c:1/custom");
        for bad in ["ftp://x", "not a url", "http://u:p@host:1"] {
            assert!(OtelConfig::build(Some(bad), &env(&[])).is_err(), "{bad}");
        }
        let bad_env = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://x")]);
        assert_eq!(OtelConfig::build(None, &bad_env), Ok(None));
    }
}
