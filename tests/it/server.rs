//! The HTTP server, over a real socket.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Fixture, Kind};

async fn get(address: std::net::SocketAddr, path: &str) -> String {
    let mut socket = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn health_and_readiness_answer_over_http() {
    let fixture = Fixture::new(Kind::Sqlite).await.unwrap();
    let store = fixture.open().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = opsledger::app::App::start(store, std::sync::Arc::new(opsledger::app::SystemClock));
    let keys = opsledger::http::auth::Keys::from_secret(b"a secret for the server test");
    let server = tokio::spawn(opsledger::http::server::serve(listener, app, keys, async {
        let _ = stopped.await;
    }));
    assert!(get(address, "/healthz").await.starts_with("HTTP/1.1 200"));
    let ready = get(address, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(
        ready.contains(r#""backend":"sqlite""#) && ready.contains(r#""position":0"#),
        "{ready}"
    );
    assert!(get(address, "/nowhere").await.starts_with("HTTP/1.1 404"));
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
