use super::*;

/// A fresh directory with a self-signed certificate and its key (`cert.pem`, `key.pem`).
fn generated(tag: &str) -> (PathBuf, crate::cert::Written) {
    let dir = std::env::temp_dir().join(format!("mcp-relay-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let written = crate::cert::generate(&dir, &[], 1).unwrap();
    (dir, written)
}

#[test]
fn the_default_trust_is_the_mozilla_roots_and_a_bundle_replaces_it() {
    let default = TlsClient::with_options(&TlsOptions::default(), Alpn::Http).unwrap();
    assert_eq!(default.config.alpn_protocols.len(), 2);
    assert_eq!(default.trust(), &Trust::Mozilla);
    let (dir, written) = generated("ca");
    let private =
        TlsClient::with_options(&TlsOptions::with_ca(Some(&written.cert)), Alpn::WebSocket)
            .unwrap();
    assert_eq!(private.config.alpn_protocols, [b"http/1.1".to_vec()]);
    assert_eq!(private.trust(), &Trust::Bundle(written.cert.clone()));
    assert_ne!(default, private);
    assert!(format!("{private:?}").contains("cert.pem"));
    // A key is not a certificate; a missing file is named.
    let err =
        TlsClient::with_options(&TlsOptions::with_ca(Some(&written.key)), Alpn::None).unwrap_err();
    assert!(err.contains("no certificate"), "{err}");
    let missing = dir.join("missing.pem");
    let err =
        TlsClient::with_options(&TlsOptions::with_ca(Some(&missing)), Alpn::None).unwrap_err();
    assert!(err.contains("missing.pem"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn options_insecure_with_a_ca_is_a_usage_error() {
    let opts = TlsOptions {
        ca: Some(PathBuf::from("/nonexistent/ca.pem")),
        insecure: true,
        ..TlsOptions::default()
    };
    let err = opts.check().unwrap_err();
    assert!(
        err.contains("--insecure") && err.contains("pick one"),
        "{err}"
    );
    // Refused before any file is read.
    let err = TlsClient::with_options(&opts, Alpn::Http).unwrap_err();
    assert!(err.contains("pick one"), "{err}");
}

#[test]
fn options_half_a_client_identity_is_a_usage_error() {
    let cert_only = TlsOptions {
        client_cert: Some(PathBuf::from("c.pem")),
        ..TlsOptions::default()
    };
    let err = cert_only.check().unwrap_err();
    assert!(err.contains("private key") && err.contains("both"), "{err}");
    let key_only = TlsOptions {
        client_key: Some(PathBuf::from("k.pem")),
        ..TlsOptions::default()
    };
    let err = key_only.check().unwrap_err();
    assert!(err.contains("certificate") && err.contains("both"), "{err}");
    assert!(TlsClient::with_options(&key_only, Alpn::None).is_err());
    assert!(TlsOptions::default().check().is_ok());
    assert!(!TlsOptions::default().is_tls_only());
    assert!(cert_only.is_tls_only());
    let system = TlsOptions {
        roots: Roots::System,
        ..TlsOptions::default()
    };
    assert!(!system.is_tls_only());
}

#[test]
fn options_client_identity_is_read_and_must_match() {
    let (dir, one) = generated("id-one");
    let other_dir = dir.join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = crate::cert::generate(&other_dir, &[], 1).unwrap();
    let with = |cert: &Path, key: &Path| TlsOptions {
        client_cert: Some(cert.to_path_buf()),
        client_key: Some(key.to_path_buf()),
        ..TlsOptions::default()
    };
    let good = TlsClient::with_options(&with(&one.cert, &one.key), Alpn::Http).unwrap();
    assert!(good.config.client_auth_cert_resolver.has_certs());
    assert!(!TlsClient::with_options(&TlsOptions::default(), Alpn::Http)
        .unwrap()
        .config
        .client_auth_cert_resolver
        .has_certs());
    let err = TlsClient::with_options(&with(&one.cert, &other.key), Alpn::Http).unwrap_err();
    assert!(err.contains("does not match"), "{err}");
    let err = TlsClient::with_options(&with(&one.key, &one.key), Alpn::Http).unwrap_err();
    assert!(
        err.contains("client certificate") && err.contains("no certificate"),
        "{err}"
    );
    let err = TlsClient::with_options(&with(&one.cert, &one.cert), Alpn::Http).unwrap_err();
    assert!(err.contains("no private key"), "{err}");
    let missing = dir.join("gone.pem");
    let err = TlsClient::with_options(&with(&one.cert, &missing), Alpn::Http).unwrap_err();
    assert!(
        err.contains("gone.pem") && err.contains("cannot read"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn options_insecure_trusts_anything_and_compares_by_options() {
    let insecure = TlsOptions {
        insecure: true,
        ..TlsOptions::default()
    };
    let a = TlsClient::with_options(&insecure, Alpn::Http).unwrap();
    assert_eq!(a.trust(), &Trust::Any);
    assert_eq!(a, TlsClient::with_options(&insecure, Alpn::Http).unwrap());
    assert_ne!(a, TlsClient::with_options(&insecure, Alpn::None).unwrap());
    assert_ne!(
        a,
        TlsClient::with_options(&TlsOptions::default(), Alpn::Http).unwrap()
    );
}

#[test]
fn system_roots_load_or_fall_back_to_mozilla() {
    let opts = TlsOptions {
        roots: Roots::System,
        ..TlsOptions::default()
    };
    let client = TlsClient::with_options(&opts, Alpn::Http).unwrap();
    assert!(matches!(client.trust(), Trust::System | Trust::Mozilla));
}

/// Log lines written while `f` runs on this thread.
fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = sink.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

/// A server holding `written`'s self-signed certificate (for `localhost` and 127.0.0.1).
fn server(written: &crate::cert::Written) -> Arc<rustls::ServerConfig> {
    let chain = CertificateDer::pem_file_iter(&written.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&written.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// An in-memory handshake of `client` with `server`, sending the name `name`; session
/// tickets are delivered, so a second one can resume.
fn handshake(
    client: &TlsClient,
    server: &Arc<rustls::ServerConfig>,
    name: &str,
) -> Result<(), String> {
    use rustls::{ClientConnection, Connection, ServerConnection};
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut c = Connection::from(ClientConnection::new(client.config(), name).unwrap());
    let mut s = Connection::from(ServerConnection::new(server.clone()).unwrap());
    let pass = |from: &mut Connection, to: &mut Connection| -> Result<(), String> {
        let mut buf = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut buf).map_err(|e| e.to_string())?;
        }
        let mut rest = &buf[..];
        while !rest.is_empty() {
            to.read_tls(&mut rest).map_err(|e| e.to_string())?;
        }
        to.process_new_packets().map_err(|e| e.to_string())?;
        Ok(())
    };
    for _ in 0..10 {
        pass(&mut c, &mut s)?;
        pass(&mut s, &mut c)?;
        // Done, session tickets included.
        if !c.is_handshaking() && !s.is_handshaking() && !s.wants_write() {
            return Ok(());
        }
    }
    Err("the handshake did not finish".to_owned())
}

#[test]
fn insecure_accepts_any_name_and_warns_on_every_connection() {
    let (dir, written) = generated("insecure");
    let back = server(&written);
    let open = TlsClient::with_options(
        &TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        },
        Alpn::None,
    )
    .unwrap();
    let logs = logged(|| {
        handshake(&open, &back, "elsewhere.example").unwrap();
        handshake(&open, &back, "elsewhere.example").unwrap();
    });
    let warnings = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("TLS verification disabled (--insecure)"))
        .count();
    // Resumption is off: the second connection is verified (and warned about) too.
    assert_eq!(warnings, 2, "{logs}");
    assert!(logs.contains("elsewhere.example"), "{logs}");
    // The same server is refused by the default trust, and by its own CA for another name.
    let strict = TlsClient::with_options(&TlsOptions::default(), Alpn::None).unwrap();
    let err = handshake(&strict, &back, "localhost").unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    let pinned =
        TlsClient::with_options(&TlsOptions::with_ca(Some(&written.cert)), Alpn::None).unwrap();
    handshake(&pinned, &back, "localhost").unwrap();
    let err = handshake(&pinned, &back, "elsewhere.example").unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
