//! The HTTP/1 server loop, on hyper's connection builder rather than `axum::serve`, which
//! has no header-read timeout: a client that opens a connection and sends its headers
//! slowly (or never) would otherwise hold it forever. Shutdown stops accepting at once,
//! lets every connection finish the request it is serving, and drops what is still open
//! when the deadline passes.

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Connection settings.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Headers must arrive within this; also the idle keep-alive limit.
    pub header_read_timeout: Duration,
    /// After `stop`, how long connections get to finish.
    pub grace: Duration,
}

/// Serves `router` until `stop` is cancelled, then lets connections finish for
/// `opts.grace` and drops the rest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    opts: ServeOptions,
    stop: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            _ = stop.cancelled() => break,
        };
        let (stream, _peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let stop = stop.clone();
        conns.spawn(async move {
            let mut builder = http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(opts.header_read_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    r = conn.as_mut() => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stop.cancelled(), if !stopping => {
                        // Finishes the request in progress, then closes; idle ones close now.
                        conn.as_mut().graceful_shutdown();
                        stopping = true;
                    }
                }
            }
        });
    }
    drop(listener);
    let deadline = Instant::now() + opts.grace;
    let open = conns.len();
    let drained =
        tokio::time::timeout_at(deadline, async { while conns.join_next().await.is_some() {} })
            .await;
    if drained.is_err() {
        tracing::warn!(
            open_at_stop = open,
            still_open = conns.len(),
            "shutdown grace ran out; closing the remaining connections"
        );
        conns.abort_all();
    }
}
