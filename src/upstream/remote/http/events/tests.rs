//! Tests of the linear SSE parser: the event grammar, and bounded work and memory for
//! over-long lines (issue 14, bug 11).

use super::*;

fn parse(chunks: &[&[u8]], max: usize) -> (Vec<Event>, u64) {
    let mut p = Parser::new(max);
    let mut out = Vec::new();
    for c in chunks {
        p.push(c);
        while let Some(ev) = p.pop() {
            out.push(ev);
        }
    }
    (out, p.take_dropped())
}

#[test]
fn events_parse_with_any_line_end_and_split_anywhere() {
    let text = b"\xef\xbb\xbf: comment\r\nevent: endpoint\rdata: /message?x=1\n\nid: 7\nretry: 250\ndata: a\ndata:b\r\n\r\ndata\n\n";
    let whole = parse(&[text], 1024);
    assert_eq!(whole.1, 0);
    let evs = whole.0;
    assert_eq!(evs.len(), 3, "{evs:?}");
    assert_eq!(evs[0].event, "endpoint");
    assert_eq!(evs[0].data, "/message?x=1");
    assert_eq!(evs[1].event, "message");
    assert_eq!(evs[1].data, "a\nb");
    assert_eq!(evs[1].id, "7");
    assert_eq!(evs[1].retry, Some(Duration::from_millis(250)));
    // An empty `data` field is an event with empty data; the id persists.
    assert_eq!(evs[2].data, "");
    assert_eq!(evs[2].id, "7");
    // Byte by byte (CR LF split across chunks included): the same events.
    let bytes: Vec<&[u8]> = text.chunks(1).collect();
    assert_eq!(parse(&bytes, 1024).0, evs);
}

#[test]
fn events_without_data_are_not_dispatched() {
    let (evs, dropped) = parse(&[b"event: x\nid: 1\n\n: ping\n\ndata: y\n\n"], 1024);
    assert_eq!(dropped, 0);
    assert_eq!(evs.len(), 1);
    assert_eq!(
        (evs[0].event.as_str(), evs[0].id.as_str()),
        ("message", "1")
    );
}

#[test]
fn over_long_line_is_dropped_and_the_stream_goes_on() {
    let long = vec![b'x'; 5000];
    let mut chunks: Vec<&[u8]> = vec![b"data: "];
    chunks.extend(long.chunks(100));
    chunks.push(b"\n\ndata: ok\n\n");
    let (evs, dropped) = parse(&chunks, 1024);
    assert_eq!(dropped, 1);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].data, "ok");
}

#[test]
fn over_long_event_of_short_lines_is_dropped() {
    let line = b"data: 0123456789\n".repeat(200);
    let (evs, dropped) = parse(&[&line, b"\ndata: ok\n\n"], 1024);
    assert_eq!(dropped, 1);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].data, "ok");
}

#[test]
fn invalid_utf8_data_drops_its_event_only() {
    let (evs, dropped) = parse(&[b"data: \xff\xfe\n\ndata: ok\n\n"], 1024);
    assert_eq!(dropped, 1);
    assert_eq!(evs.len(), 1);
}

// Issue 14, bug 11: a 64 MiB line in 8 KiB chunks costs one look at each byte and no more
// memory than the cap (the old parser rescanned its buffer for every chunk).
#[test]
fn huge_line_in_small_chunks_is_scanned_once_and_not_buffered() {
    const CAP: usize = 4 << 20;
    let chunk = vec![b'x'; 8 << 10];
    let mut p = Parser::new(CAP);
    p.push(b"data: ");
    let mut fed = 6u64;
    for _ in 0..(64 << 20) / chunk.len() {
        p.push(&chunk);
        fed += chunk.len() as u64;
        assert!(p.line.capacity() <= 2 * CAP);
    }
    p.push(b"\n\ndata: after\n\n");
    fed += 15;
    assert!(p.scanned() <= fed, "scanned {} of {fed}", p.scanned());
    assert_eq!(p.take_dropped(), 1);
    assert_eq!(p.pop().map(|e| e.data), Some("after".to_owned()));
    assert_eq!(p.pop(), None);
}
