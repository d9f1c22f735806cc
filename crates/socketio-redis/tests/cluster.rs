//! Several nodes through one Redis: room broadcasts, except, targeted
//! fan-out, acks from many nodes, fetchSockets, socketsJoin/Leave,
//! disconnectSockets and serverSideEmit. Needs Redis on 127.0.0.1:6379.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use socketio_client::Client;

const QUIET: Duration = Duration::from_millis(300);

/// A broadcast to two rooms reaches every socket in either room once,
/// whichever node sends it and whichever nodes the sockets are on; the
/// others get nothing. Then `except`, and `socket.broadcast` (except the
/// sender) across nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_broadcasts_reach_exactly_the_right_sockets_once() {
    let prefix = unique_prefix("rooms");
    let nodes = [
        Node::start(&prefix, None).await,
        Node::start(&prefix, None).await,
        Node::start(&prefix, None).await,
    ];
    let events = &["news", "shout"];
    // a1: r1 + r2, a2: r1 (node 0); b1: r2, b2: none (node 1); c1: r3 (node 2).
    let (a1, mut a1_rx) = client(&nodes[0], events).await;
    let (a2, mut a2_rx) = client(&nodes[0], events).await;
    let (b1, mut b1_rx) = client(&nodes[1], events).await;
    let (_b2, mut b2_rx) = client(&nodes[1], events).await;
    let (c1, mut c1_rx) = client(&nodes[2], events).await;
    join(&a1, "r1").await;
    join(&a1, "r2").await;
    join(&a2, "r1").await;
    join(&b1, "r2").await;
    join(&c1, "r3").await;

    for (i, sender) in nodes.iter().enumerate() {
        let reached = sender
            .io
            .of("/")
            .unwrap()
            .to("r1")
            .to("r2")
            .emit("news", &(format!("from {i}"),))
            .unwrap();
        let local = [2, 1, 0][i];
        assert_eq!(reached, local, "local deliveries on node {i}");
        for rx in [&mut a1_rx, &mut a2_rx, &mut b1_rx] {
            assert_eq!(expect(rx, "news").await.args, [json!(format!("from {i}"))]);
        }
    }
    for rx in [&mut a1_rx, &mut a2_rx, &mut b1_rx, &mut b2_rx, &mut c1_rx] {
        nothing(rx, QUIET).await;
    }

    // r2 except r1: only b1 (a1 is in r1), sent from the node without any.
    nodes[2]
        .io
        .of("/")
        .unwrap()
        .to("r2")
        .except("r1")
        .emit("news", &("not r1",))
        .unwrap();
    assert_eq!(expect(&mut b1_rx, "news").await.args, [json!("not r1")]);
    // Everyone except a socket id of another node.
    let b1_id = b1.id().unwrap();
    nodes[0]
        .io
        .of("/")
        .unwrap()
        .except(&b1_id)
        .emit("news", &("all but b1",))
        .unwrap();
    for rx in [&mut a1_rx, &mut a2_rx, &mut b2_rx, &mut c1_rx] {
        assert_eq!(expect(rx, "news").await.args, [json!("all but b1")]);
    }
    // A client's broadcast reaches everyone else on every node.
    a2.emit("shout", &("hi",)).unwrap();
    for rx in [&mut a1_rx, &mut b1_rx, &mut b2_rx, &mut c1_rx] {
        assert_eq!(expect(rx, "shout").await.args, [json!("hi")]);
    }
    for rx in [&mut a1_rx, &mut a2_rx, &mut b1_rx, &mut b2_rx, &mut c1_rx] {
        nothing(rx, QUIET).await;
    }
    // One message per broadcast and room reached each node; copies of a
    // two-room broadcast on a node in both rooms were dropped.
    assert!(
        nodes[0].cluster.stats().duplicates >= 2,
        "{:?}",
        nodes[0].cluster.stats()
    );
    assert_eq!(nodes[2].cluster.stats().undecodable, 0);
    finish(&prefix, &nodes.iter().collect::<Vec<_>>()).await;
}

/// A node is sent only what its sockets need: a node without sockets in a
/// room receives nothing for it from Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_receives_only_the_rooms_it_has_sockets_in() {
    let prefix = unique_prefix("targeted");
    let nodes = [
        Node::start(&prefix, None).await,
        Node::start(&prefix, None).await,
        Node::start(&prefix, None).await,
    ];
    let (a, mut a_rx) = client(&nodes[0], &["room-message"]).await;
    let (b, mut b_rx) = client(&nodes[1], &["room-message"]).await;
    let (c, mut c_rx) = client(&nodes[2], &["room-message"]).await;
    join(&a, "hot").await;
    join(&b, "hot").await;
    join(&c, "cold").await;
    let before: Vec<_> = nodes.iter().map(|n| n.cluster.stats()).collect();
    for i in 0..10 {
        a.emit("to-room", &("hot", i)).unwrap();
        assert_eq!(expect(&mut a_rx, "room-message").await.args, [json!(i)]);
        assert_eq!(expect(&mut b_rx, "room-message").await.args, [json!(i)]);
    }
    nothing(&mut c_rx, QUIET).await;
    let after: Vec<_> = nodes.iter().map(|n| n.cluster.stats()).collect();
    let rooms = |i: usize| after[i].room_messages - before[i].room_messages;
    let received = |i: usize| after[i].received - before[i].received;
    assert_eq!(rooms(1), 10, "node 1 has a socket in the room");
    assert_eq!(received(2), 0, "node 2 has none: {:?}", after[2]);
    // Its own room topic still works.
    nodes[0]
        .io
        .to("cold")
        .unwrap()
        .emit("room-message", &("brr",))
        .unwrap();
    assert_eq!(expect(&mut c_rx, "room-message").await.args, [json!("brr")]);
    assert_eq!(
        nodes[2].cluster.stats().room_messages - before[2].room_messages,
        1
    );
    // After the last local socket left, the node stops listening.
    c.disconnect().await;
    eventually("node 2 leaves the room topic", || async {
        nodes[2].cluster.settled(WAIT).await && nodes[2].cluster.stats().topics < after[2].topics
    })
    .await;
    let quiet = nodes[2].cluster.stats().received;
    nodes[0]
        .io
        .to("cold")
        .unwrap()
        .emit("room-message", &("nobody",))
        .unwrap();
    tokio::time::sleep(QUIET).await;
    assert_eq!(nodes[2].cluster.stats().received, quiet);
    finish(&prefix, &nodes.iter().collect::<Vec<_>>()).await;
}

/// A broadcast with acks collects the reply of every socket of every node;
/// a socket that does not answer is a timeout in the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_with_acks_collects_every_reply_from_every_node() {
    let prefix = unique_prefix("acks");
    let nodes = [
        Node::start(&prefix, None).await,
        Node::start(&prefix, None).await,
        Node::start(&prefix, None).await,
    ];
    let mut clients = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for k in 0..2 {
            let name = format!("node{n}-client{k}");
            let builder =
                Client::builder(&node.url)
                    .reconnection(false)
                    .on("poll", move |data, ack| {
                        if let Some(ack) = ack {
                            let _ = ack.send(&(name.clone(), data.args));
                        }
                    });
            clients.push(builder.connect().await.unwrap());
        }
    }
    // A socket that never answers, in the "quiet" room on node 1.
    let silent = Client::builder(&nodes[1].url)
        .reconnection(false)
        .on("poll", |_, _| {})
        .connect()
        .await
        .unwrap();
    join(&silent, "quiet").await;

    let results = nodes[0]
        .io
        .of("/")
        .unwrap()
        .timeout(Duration::from_millis(800))
        .emit_with_ack("poll", &("question",))
        .await
        .unwrap();
    assert_eq!(results.len(), 7, "{results:?}");
    let mut answers: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|d| {
            assert_eq!(d.args[1], json!(["question"]));
            d.args[0].as_str().unwrap().to_owned()
        })
        .collect();
    answers.sort();
    let mut expected: Vec<String> = (0..3)
        .flat_map(|n| (0..2).map(move |k| format!("node{n}-client{k}")))
        .collect();
    expected.sort();
    assert_eq!(answers, expected);
    let timeouts = results
        .iter()
        .filter(|r| matches!(r, Err(socketio::AckError::Timeout)))
        .count();
    assert_eq!(timeouts, 1);

    // Targeted at a room on another node: only that socket.
    let results = nodes[2]
        .io
        .to("quiet")
        .unwrap()
        .timeout(Duration::from_millis(300))
        .emit_with_ack("poll", &())
        .await
        .unwrap();
    assert_eq!(results, [Err(socketio::AckError::Timeout)]);
    drop(clients);
    finish(&prefix, &nodes.iter().collect::<Vec<_>>()).await;
}

/// fetchSockets sees every node's sockets with their rooms and handshake;
/// socketsJoin, socketsLeave and disconnectSockets act on other nodes'
/// sockets; a fetched remote socket can be emitted to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_join_leave_and_disconnect_sockets_across_nodes() {
    let prefix = unique_prefix("fetch");
    let mut nodes = [
        Node::start(&prefix, None).await,
        Node::start(&prefix, None).await,
        Node::start(&prefix, None).await,
    ];
    let events = &["news", "direct"];
    let (a, _a_rx) = client(&nodes[0], events).await;
    let (b, mut b_rx) = client(&nodes[1], events).await;
    let (c, mut c_rx) = client(&nodes[2], events).await;
    join(&b, "blue").await;
    let (a_id, b_id, c_id) = (a.id().unwrap(), b.id().unwrap(), c.id().unwrap());

    let ns = nodes[0].io.of("/").unwrap();
    let mut fetched = ns.try_fetch_sockets().await.unwrap();
    fetched.sort_by(|x, y| x.id().cmp(y.id()));
    let mut ids: Vec<String> = fetched.iter().map(|s| s.id().to_owned()).collect();
    let mut expected = vec![a_id.clone(), b_id.clone(), c_id.clone()];
    expected.sort();
    ids.sort();
    assert_eq!(ids, expected);
    let remote_b = fetched.iter().find(|s| s.id() == b_id).unwrap();
    assert!(remote_b.local().is_none());
    let mut rooms = remote_b.rooms().to_vec();
    rooms.sort();
    let mut expected_rooms = vec!["blue".to_owned(), b_id.clone()];
    expected_rooms.sort();
    assert_eq!(rooms, expected_rooms);
    assert!(
        remote_b.handshake().url.contains("EIO=4"),
        "{:?}",
        remote_b.handshake()
    );
    assert!(fetched
        .iter()
        .any(|s| s.id() == a_id && s.local().is_some()));
    // A fetched socket of another node can be emitted to.
    remote_b.emit("direct", &("hello b",)).unwrap();
    assert_eq!(expect(&mut b_rx, "direct").await.args, [json!("hello b")]);
    // Filtered by room.
    let blue = ns.clone().to("blue").try_fetch_sockets().await.unwrap();
    assert_eq!(blue.len(), 1);
    assert_eq!(blue[0].id(), b_id);

    // socketsJoin on a socket of node 2, from node 0.
    ns.clone().to(&c_id).join("vip");
    eventually("c joined vip", || {
        let op = ns.clone().to("vip");
        async move {
            op.try_fetch_sockets()
                .await
                .map(|s| s.len() == 1)
                .unwrap_or(false)
        }
    })
    .await;
    assert!(nodes[2].cluster.settled(WAIT).await);
    nodes[1]
        .io
        .to("vip")
        .unwrap()
        .emit("news", &("vip only",))
        .unwrap();
    assert_eq!(expect(&mut c_rx, "news").await.args, [json!("vip only")]);
    nothing(&mut b_rx, QUIET).await;
    // socketsLeave on every node.
    ns.clone().to("vip").leave("vip");
    eventually("nobody in vip", || {
        let op = ns.clone().to("vip");
        async move {
            op.try_fetch_sockets()
                .await
                .map(|s| s.is_empty())
                .unwrap_or(false)
        }
    })
    .await;

    // disconnectSockets of a room on another node.
    ns.clone().to("blue").disconnect();
    let (gone, reason) = next(&mut nodes[1].disconnects).await;
    assert_eq!(
        (gone.as_str(), reason.as_str()),
        (b_id.as_str(), "server namespace disconnect")
    );
    eventually("b is gone", || {
        let ns = ns.clone();
        async move {
            ns.try_fetch_sockets()
                .await
                .map(|s| s.len() == 2)
                .unwrap_or(false)
        }
    })
    .await;
    nothing(&mut nodes[0].disconnects, QUIET).await;
    nothing(&mut nodes[2].disconnects, Duration::ZERO).await;
    finish(&prefix, &nodes.iter().collect::<Vec<_>>()).await;
}

/// serverSideEmit reaches the other nodes' handlers (not the sender's) and
/// says how many nodes it reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_emit_reaches_the_other_nodes() {
    let prefix = unique_prefix("sse");
    let mut nodes = [
        Node::start(&prefix, None).await,
        Node::start(&prefix, None).await,
        Node::start(&prefix, None).await,
    ];
    let reached = nodes[0]
        .io
        .of("/")
        .unwrap()
        .server_side_emit("hello", &("world", 42))
        .await
        .unwrap();
    assert_eq!(reached, 2);
    for node in &mut nodes[1..] {
        assert_eq!(
            next(&mut node.server_events).await,
            [json!("world"), json!(42)]
        );
    }
    nothing(&mut nodes[0].server_events, QUIET).await;
    // The heartbeat registry lists the three nodes.
    let mut listed = nodes[0].cluster.nodes().await.unwrap();
    listed.sort();
    let mut ids: Vec<String> = nodes
        .iter()
        .map(|n| n.cluster.node_id().to_owned())
        .collect();
    ids.sort();
    assert_eq!(listed, ids);
    nodes[2].cluster.close().await;
    let listed = nodes[0].cluster.nodes().await.unwrap();
    assert_eq!(listed.len(), 2);
    finish(&prefix, &nodes.iter().collect::<Vec<_>>()).await;
}

/// A node that receives requests but never answers (a stand-in that only
/// subscribes): fetchSockets reports the timeout (the `socketio` API then
/// falls back to this node's sockets), and a broadcast with acks keeps
/// every ack that did come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_times_out_requests_without_losing_answers() {
    let prefix = unique_prefix("silent");
    let nodes = [
        Node::start(&prefix, None).await,
        Node::start(&prefix, None).await,
    ];
    let mut clients = Vec::new();
    for node in &nodes {
        let client = Client::builder(&node.url)
            .reconnection(false)
            .on("poll", |_, ack| {
                if let Some(ack) = ack {
                    let _ = ack.send(&("here",));
                }
            })
            .connect()
            .await
            .unwrap();
        clients.push(client);
    }
    let silent = redis::Client::open(REDIS).unwrap();
    let mut silent = silent.get_async_pubsub().await.unwrap();
    silent.subscribe(format!("{prefix}:req")).await.unwrap();

    let ns = nodes[0].io.of("/").unwrap();
    let started = std::time::Instant::now();
    let err = ns.try_fetch_sockets().await.unwrap_err();
    assert_eq!(
        err,
        socketio::AdapterError::Timeout {
            responded: 1,
            expected: 2
        }
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited the request timeout"
    );
    let local = ns.fetch_sockets().await;
    assert_eq!(local.len(), 1);
    assert!(local[0].local().is_some());

    let results = ns
        .clone()
        .timeout(Duration::from_millis(200))
        .emit_with_ack("poll", &())
        .await
        .unwrap();
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results
        .iter()
        .all(|r| r.as_ref().unwrap().args == [json!("here")]));
    drop(silent);
    finish(&prefix, &nodes.iter().collect::<Vec<_>>()).await;
}

/// Binary attachments cross nodes as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_broadcasts_cross_nodes() {
    let prefix = unique_prefix("binary");
    let nodes = [
        Node::start(&prefix, None).await,
        Node::start(&prefix, None).await,
    ];
    let (b, mut b_rx) = client(&nodes[1], &["file"]).await;
    join(&b, "files").await;
    let payload = bytes::Bytes::from_static(&[0, 1, 2, 255]);
    nodes[0]
        .io
        .to("files")
        .unwrap()
        .emit_binary(
            "file",
            &("name.bin", socketio::placeholder(0)),
            vec![payload.clone()],
        )
        .unwrap();
    let data = expect(&mut b_rx, "file").await;
    assert_eq!(data.args[0], json!("name.bin"));
    assert_eq!(data.binary, [payload]);
    finish(&prefix, &nodes.iter().collect::<Vec<_>>()).await;
}
