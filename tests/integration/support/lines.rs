//! A newline-delimited JSON-RPC connection: the TCP front (plain or TLS, optionally opened
//! with its credential line) and the stdio front's pipes. The shared message handling is
//! `conn::Conn`.

use std::collections::VecDeque;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::conn::Conn;

/// One JSON-RPC message per line, both ways.
pub struct Lines {
    read: Box<dyn tokio::io::AsyncBufRead + Unpin + Send>,
    write: Box<dyn AsyncWrite + Unpin + Send>,
    backlog: VecDeque<Value>,
}

impl Lines {
    /// Over any byte streams (pipes, a TLS stream's halves, a tuned socket's halves).
    pub fn new(
        read: impl AsyncRead + Unpin + Send + 'static,
        write: impl AsyncWrite + Unpin + Send + 'static,
    ) -> Lines {
        Lines {
            read: Box::new(BufReader::new(read)),
            write: Box::new(write),
            backlog: VecDeque::new(),
        }
    }

    /// A plain TCP connection to `addr`.
    pub async fn tcp(addr: &str) -> Lines {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (r, w) = tcp.into_split();
        Lines::new(r, w)
    }

    /// A TCP connection whose first line is the credential object `hello` (e.g.
    /// `{"authorization": "Bearer …"}`).
    pub async fn tcp_with(addr: &str, hello: &Value) -> Lines {
        let mut c = Lines::tcp(addr).await;
        c.send_raw(&hello.to_string()).await;
        c
    }

    /// Writes a line where the relay may already have closed; either way is fine.
    pub async fn try_send(&mut self, text: &str) {
        let _ = self.write.write_all(format!("{text}\n").as_bytes()).await;
        let _ = self.write.flush().await;
    }
}

impl Conn for Lines {
    async fn send_raw(&mut self, text: &str) {
        self.write.write_all(text.as_bytes()).await.unwrap();
        self.write.write_all(b"\n").await.unwrap();
        self.write.flush().await.unwrap();
    }

    /// The next line as JSON; `None` at EOF (or a reset).
    async fn read(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.read.read_line(&mut line).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
        }
    }

    fn backlog(&mut self) -> &mut VecDeque<Value> {
        &mut self.backlog
    }
}
