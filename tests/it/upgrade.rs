//! Upgraded connections (WebSocket) are tunnelled.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Options, Tollgate, Upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_works_through_the_proxy() {
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    let stream = TcpStream::connect(tollgate.addr).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async("ws://tollgate.test/ws", stream)
        .await
        .expect("handshake through the proxy");
    assert_eq!(response.status(), 101);
    assert!(response.headers().contains_key("x-request-id"));
    for text in ["hello", "through", "tollgate"] {
        ws.send(Message::text(text)).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    ws.close(None).await.unwrap();
}
