//! Goal: a frame written from many payload parts arrives byte for byte, whatever the part
//! sizes (empty parts, one-byte parts, parts larger than the socket buffer) and however slowly
//! the peer reads: partial sends across part boundaries and waits for room when the socket is
//! full lose and reorder nothing, whichever way `write_frame` sends the parts, and frames
//! written together with `write_frames` arrive whole and in order; a read given up mid-frame
//! resumes where it stopped.
//!
//! Method: two glommio tasks on one executor over loopback. The writer sends frames whose
//! payload is cut into seeded random parts (more than 1,024 of them in one frame, totalling
//! megabytes); the reader pauses between reads so the socket buffer fills, then checks the
//! message and the payload against what was sent. The seed is printed on failure.

use std::time::Duration;

use bytes::Bytes;
use glommio::LocalExecutorBuilder;

/// Frames per seed, and seeds.
const FRAMES: usize = 6;
const SEEDS: u64 = 4;

/// A listener on a free loopback port (bound on the current executor), its address, and the
/// limits both ends of these tests use: frames up to 64 MiB, 30 s idle.
fn loopback_listener() -> (net::Listener, std::net::SocketAddr, net::Limits) {
    let bound = net::bind_reuseport("127.0.0.1:0".parse().expect("address")).expect("bind");
    let address = bound.local_addr().expect("address");
    let listener = net::Listener::from_std(bound).expect("listener");
    let limits = net::Limits {
        frame_bytes_max: 64 << 20,
        idle_timeout: Some(Duration::from_secs(30)),
    };
    (listener, address, limits)
}

/// `frames` (message, payload) as a byte stream of frames, under a 64 MiB frame limit.
fn encoded(frames: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut stream_bytes = Vec::new();
    for (message, payload) in frames {
        let prefix =
            schema::wire::frame_prefix(message.len(), payload.len(), 64 << 20).expect("prefix");
        stream_bytes.extend_from_slice(&prefix);
        stream_bytes.extend_from_slice(message);
        stream_bytes.extend_from_slice(payload);
    }
    stream_bytes
}

/// Reads `frames` back from `reader`, byte for byte and in order, then the end of the stream.
async fn read_back(reader: &mut net::FrameReader, frames: &[(Vec<u8>, Vec<u8>)]) {
    for (index, (message, payload)) in frames.iter().enumerate() {
        let frame = reader
            .read_frame()
            .await
            .expect("read")
            .expect("a frame, not the end");
        assert_eq!(&frame.message[..], &message[..], "frame {index} message");
        assert_eq!(frame.payload.len(), payload.len(), "frame {index} length");
        assert!(frame.payload[..] == payload[..], "frame {index} bytes");
    }
    assert!(
        reader.read_frame().await.expect("the end").is_none(),
        "nothing after the last frame"
    );
}

fn parts_for(rng: &mut fastrand::Rng, frame: usize) -> Vec<Bytes> {
    // The first frames have many small parts (more than one sendmsg carries), the later ones
    // few large ones (more than the socket buffer holds).
    let count = if frame.is_multiple_of(2) {
        1_500 + rng.usize(0..500)
    } else {
        3 + rng.usize(0..5)
    };
    (0..count)
        .map(|_| {
            let length = match rng.u8(0..10) {
                0 => 0,
                1 => 1,
                _ if frame.is_multiple_of(2) => rng.usize(1..4_096),
                _ => rng.usize(256 << 10..1 << 20),
            };
            let mut part = vec![0u8; length];
            rng.fill(&mut part);
            Bytes::from(part)
        })
        .collect()
}

#[test]
fn frames_from_many_parts_arrive_intact() {
    for seed in 0..SEEDS {
        let outcome = LocalExecutorBuilder::default()
            .spawn(move || async move {
                let (listener, address, limits) = loopback_listener();
                let client = net::Connection::connect(address, Duration::from_secs(5), limits)
                    .await
                    .expect("connect");
                let server = listener.accept(limits).await.expect("accept");
                let (_, mut writer) = client.split();
                let (mut reader, _server_writer) = server.split();

                let mut rng = fastrand::Rng::with_seed(seed);
                let frames: Vec<(Vec<u8>, Vec<Bytes>)> = (0..FRAMES)
                    .map(|frame| {
                        (
                            format!("message {frame:0>60}").into_bytes(),
                            parts_for(&mut rng, frame),
                        )
                    })
                    .collect();
                let expected = frames.clone();
                let writing = glommio::spawn_local(async move {
                    // Odd seeds write frame by frame, even seeds all frames in one call (a
                    // client's queued requests go out together).
                    if seed % 2 == 1 {
                        for (message, parts) in &frames {
                            writer.write_frame(message, parts).await.expect("write");
                        }
                    } else {
                        let out: Vec<net::OutFrame<'_>> = frames
                            .iter()
                            .map(|(message, payload)| net::OutFrame { message, payload })
                            .collect();
                        writer.write_frames(&out).await.expect("write");
                    }
                });
                for (index, (message, parts)) in expected.iter().enumerate() {
                    // A slow reader: the writer meets a full socket buffer.
                    glommio::timer::sleep(Duration::from_millis(20)).await;
                    let frame = reader
                        .read_frame()
                        .await
                        .expect("read")
                        .expect("a frame, not the end");
                    assert_eq!(&frame.message[..], &message[..], "frame {index} message");
                    let payload: Vec<u8> =
                        parts.iter().flat_map(|part| part.iter().copied()).collect();
                    assert_eq!(
                        frame.payload.len(),
                        payload.len(),
                        "frame {index} payload length"
                    );
                    assert!(
                        frame.payload[..] == payload[..],
                        "frame {index} payload bytes"
                    );
                }
                writing.await;
            })
            .expect("executor")
            .join();
        if let Err(error) = outcome {
            panic!("seed {seed}: {error:?}");
        }
    }
}

/// A peer that announces the largest frame and sends only part of it, then goes: the reader
/// reports exactly what arrived (it read the body as it came, not into a buffer of the claimed
/// size), and the next connection is unaffected.
#[test]
fn a_frame_cut_short_reports_what_arrived() {
    LocalExecutorBuilder::default()
        .spawn(|| async move {
            let (listener, address, limits) = loopback_listener();
            let claimed = (64 << 20) - 1024;
            let sent = 300_000;
            let peer = std::thread::spawn(move || {
                use std::io::Write;
                let mut stream = std::net::TcpStream::connect(address).expect("connect");
                let prefix = schema::wire::frame_prefix(
                    16,
                    claimed - 16 - schema::wire::FRAME_PREFIX_BYTES,
                    64 << 20,
                )
                .expect("prefix");
                stream.write_all(&prefix).expect("prefix");
                stream.write_all(&vec![7u8; sent]).expect("body");
                // Dropped: the connection closes mid-frame.
            });
            let server = listener.accept(limits).await.expect("accept");
            let (mut reader, _writer) = server.split();
            match reader.read_frame().await {
                Err(net::ReadError::Truncated {
                    received_bytes,
                    expected_bytes,
                }) => {
                    assert_eq!(received_bytes, schema::wire::FRAME_PREFIX_BYTES + sent);
                    assert_eq!(expected_bytes, claimed);
                }
                other => panic!("expected a truncated frame, got {other:?}"),
            }
            peer.join().expect("peer");
        })
        .expect("executor")
        .join()
        .expect("test");
}

/// A peer that trickles frames in pieces of every size, pausing between them: the reader
/// waits for the peer mid-prefix and mid-body, and receives bodies in pieces smaller than
/// asked for; every byte of every frame arrives, in order, and nothing beyond what was received
/// is counted (a read that counted the bytes it asked for, not those it got, fails here).
#[test]
fn frames_trickled_in_pieces_arrive_intact() {
    const SEED: u64 = 11;
    LocalExecutorBuilder::default()
        .spawn(|| async move {
            let (listener, address, limits) = loopback_listener();
            let mut rng = fastrand::Rng::with_seed(SEED);
            // Payloads empty, below a 4 KiB page, around it, and of several read steps;
            // every byte depends on its frame and position, so a byte lost, doubled or left
            // unwritten shows.
            let frames: Vec<(Vec<u8>, Vec<u8>)> = [0usize, 100, 4095, 4097, 70_000, 1 << 20]
                .iter()
                .enumerate()
                .map(|(frame, &bytes)| {
                    let message = format!("trickled {frame:0>40}").into_bytes();
                    let payload = (0..bytes)
                        .map(|at| (at.wrapping_mul(31) ^ frame.wrapping_mul(97)) as u8)
                        .collect();
                    (message, payload)
                })
                .collect();
            let stream_bytes = encoded(&frames);
            let pieces: Vec<usize> = {
                let mut pieces = Vec::new();
                let mut left = stream_bytes.len();
                while left > 0 {
                    let piece = match rng.u8(..4) {
                        0 => rng.usize(1..8),
                        1 => rng.usize(8..5_000),
                        _ => rng.usize(5_000..200_000),
                    }
                    .min(left);
                    pieces.push(piece);
                    left -= piece;
                }
                pieces
            };
            let peer = std::thread::spawn(move || {
                use std::io::Write;
                let mut stream = std::net::TcpStream::connect(address).expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let mut at = 0;
                for piece in pieces {
                    stream
                        .write_all(&stream_bytes[at..at + piece])
                        .expect("piece");
                    at += piece;
                    std::thread::sleep(Duration::from_micros(300));
                }
            });
            let server = listener.accept(limits).await.expect("accept");
            let (mut reader, _writer) = server.split();
            read_back(&mut reader, &frames).await;
            peer.join().expect("peer");
        })
        .expect("executor")
        .join()
        .expect("test");
}

/// A read given up while a frame is half there (the future dropped, as a timeout does) loses
/// nothing: the next read returns the whole frame, then the next one.
#[test]
fn a_read_given_up_mid_frame_resumes_where_it_stopped() {
    LocalExecutorBuilder::default()
        .spawn(|| async move {
            let (listener, address, limits) = loopback_listener();
            let message = format!("resumed {:0>40}", 0).into_bytes();
            let payload: Vec<u8> = (0..300_000u32).map(|at| (at % 253) as u8).collect();
            let frames = vec![(message, payload); 2];
            let stream_bytes = encoded(&frames);
            let (go_on, resume) = std::sync::mpsc::channel::<()>();
            let peer = std::thread::spawn(move || {
                use std::io::Write;
                let mut stream = std::net::TcpStream::connect(address).expect("connect");
                // The first frame's prefix and a third of its body, then the rest later.
                let cut = 100_000;
                stream.write_all(&stream_bytes[..cut]).expect("first part");
                resume.recv().expect("go on");
                stream.write_all(&stream_bytes[cut..]).expect("the rest");
            });
            let server = listener.accept(limits).await.expect("accept");
            let (mut reader, _writer) = server.split();
            let given_up =
                futures_lite::future::or(async { Some(reader.read_frame().await) }, async {
                    glommio::timer::sleep(Duration::from_millis(200)).await;
                    None
                })
                .await;
            assert!(given_up.is_none(), "half a frame is not a frame");
            go_on.send(()).expect("peer");
            read_back(&mut reader, &frames).await;
            peer.join().expect("peer");
        })
        .expect("executor")
        .join()
        .expect("test");
}
