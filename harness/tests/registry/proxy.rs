//! A TCP proxy that cuts every connection once enough bytes went upstream: a
//! push interrupted half-way.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// A TCP proxy to `upstream` that, while `cut` is set, drops every connection
/// once `limit` bytes have gone upstream in all: a push cut half-way.
pub struct CuttingProxy {
    pub addr: SocketAddr,
    pub cut: Arc<AtomicBool>,
    pub cuts: Arc<AtomicUsize>,
}

impl CuttingProxy {
    pub fn start(upstream: SocketAddr, limit: usize) -> CuttingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(true));
        let cuts = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicUsize::new(0));
        let (cut2, cuts2) = (cut.clone(), cuts.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                // Upstream -> client, as is.
                std::thread::spawn(move || pipe(s2, c2, None));
                let counter = (sent.clone(), limit, cut2.clone(), cuts2.clone());
                std::thread::spawn(move || pipe(client, server, Some(counter)));
            }
        });
        CuttingProxy { addr, cut, cuts }
    }
}

type Counter = (Arc<AtomicUsize>, usize, Arc<AtomicBool>, Arc<AtomicUsize>);

fn pipe(mut from: TcpStream, mut to: TcpStream, counter: Option<Counter>) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((sent, limit, cut, cuts)) = &counter {
            let total = sent.fetch_add(n, Ordering::SeqCst) + n;
            if cut.load(Ordering::SeqCst) && total > *limit {
                cuts.fetch_add(1, Ordering::SeqCst);
                break;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
