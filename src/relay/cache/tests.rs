use std::time::Duration;

use bytes::Bytes;

use super::memory::Memory;
use super::{param_of, with_id, without_id, Slot};
use crate::jsonrpc::{Frame, RawId};

fn request(text: &str) -> Frame {
    Frame::parse(Bytes::from(text.to_owned())).unwrap()
}

/// Where an answer looked up in generation `gen` of `generation` is kept.
fn slot(entry: &str, generation: &str, gen: &str) -> Slot {
    Slot {
        key: format!("{entry}:{gen}"),
        generation: generation.to_owned(),
        gen: gen.to_owned(),
    }
}

fn raw_id(text: &str) -> RawId {
    request(&format!(
        r#"{{"jsonrpc":"2.0","id":{text},"method":"ping"}}"#
    ))
    .id()
    .unwrap()
}

#[test]
fn answers_are_kept_without_their_id_and_get_the_next_callers_byte_for_byte() {
    let answer = Bytes::from_static(br#"{"jsonrpc":"2.0", "id" : 17,"result":{"tools":[]}}"#);
    let kept = without_id(&answer).unwrap();
    assert!(!kept.windows(2).any(|w| w == b"17"));
    assert_eq!(with_id(&kept, &raw_id("17")).unwrap(), answer);
    for id in [
        r#""a\"b""#,
        "1e3",
        "-0",
        "12345678901234567890123456789012345678901234567890",
    ] {
        let again = with_id(&kept, &raw_id(id)).unwrap();
        let expected = format!(r#"{{"jsonrpc":"2.0", "id" : {id},"result":{{"tools":[]}}}}"#);
        assert_eq!(again, expected.as_bytes(), "{id}");
    }
}

#[test]
fn errors_and_garbage_are_not_kept() {
    let error =
        Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}"#);
    assert!(without_id(&error).is_none());
    assert!(without_id(&Bytes::from_static(b"not json")).is_none());
    assert!(with_id(b"99:short", &raw_id("1")).is_none());
    assert!(with_id(b"no colon", &raw_id("1")).is_none());
}

#[test]
fn only_the_params_that_matter_make_a_key() {
    let list = |params: &str| {
        let text = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list"{params}}}"#);
        param_of(&request(&text), "tools/list")
    };
    assert_eq!(list("").as_deref(), Some(""));
    assert_eq!(list(r#","params":{}"#).as_deref(), Some(""));
    assert_eq!(list(r#","params":{"cursor":"p2"}"#).as_deref(), Some("p2"));
    assert_eq!(
        list(r#","params":{"cursor":"p2","_meta":{"progressToken":3}}"#).as_deref(),
        Some("p2")
    );
    // Anything else may change the answer: not cached.
    assert_eq!(list(r#","params":{"filter":"x"}"#), None);
    assert_eq!(list(r#","params":{"cursor":5}"#), None);
    let read = |params: &str| {
        let text = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"resources/read"{params}}}"#);
        param_of(&request(&text), "resources/read")
    };
    assert_eq!(
        read(r#","params":{"uri":"file:///docs/a"}"#).as_deref(),
        Some("file:///docs/a")
    );
    assert_eq!(read(""), None);
    assert_eq!(read(r#","params":{"uri":"file:///a","range":1}"#), None);
}

#[test]
fn memory_answers_live_until_their_ttl_or_a_new_generation() {
    let m = Memory::new(2, 1 << 20);
    let (gen, none) = m.lookup("e:a", "g:tools");
    assert!(none.is_none());
    m.fill(
        &slot("e:a", "g:tools", &gen),
        "p",
        b"0:x".to_vec(),
        Duration::from_secs(60),
    );
    assert_eq!(m.lookup("e:a", "g:tools").1.as_deref(), Some(&b"0:x"[..]));
    // Another generation key is not touched by this one's change.
    m.bump("g:prompts");
    assert!(m.lookup("e:a", "g:tools").1.is_some());
    m.bump("g:tools");
    let (new_gen, gone) = m.lookup("e:a", "g:tools");
    assert!(gone.is_none() && new_gen != gen);
    // A fill under the old generation (a change happened while the child answered) is
    // never read.
    m.fill(
        &slot("e:a", "g:tools", &gen),
        "p",
        b"0:old".to_vec(),
        Duration::from_secs(60),
    );
    assert!(m.lookup("e:a", "g:tools").1.is_none());
    // Expired answers are not served.
    m.fill(
        &slot("e:b", "g:tools", &new_gen),
        "p",
        b"0:y".to_vec(),
        Duration::ZERO,
    );
    assert!(m.lookup("e:b", "g:tools").1.is_none());
}

#[test]
fn memory_is_bounded() {
    let m = Memory::new(2, 1 << 20);
    for i in 0..5 {
        m.fill(
            &slot(&format!("e:{i}"), "g", "0"),
            "p",
            b"0:x".to_vec(),
            Duration::from_secs(60),
        );
    }
    let kept = (0..5)
        .filter(|i| m.lookup(&format!("e:{i}"), "g").1.is_some())
        .count();
    assert_eq!(kept, 2);
}

#[test]
fn memory_is_bounded_by_bytes_oldest_first() {
    // 8 KiB: a share is 1 KiB; each answer with its key is about 300 bytes.
    let m = Memory::new(1000, 8 << 10);
    let answer = || vec![b'x'; 290];
    for i in 0..40 {
        m.fill(
            &slot(&format!("e:{i:02}"), "g", "0"),
            &format!("p{}", i % 10),
            answer(),
            Duration::from_secs(60),
        );
    }
    let (total, _) = m.bytes("p0");
    assert!(total <= 8 << 10, "{total}");
    assert!(total > 6 << 10, "{total}");
    // The oldest went first.
    assert!(m.lookup("e:00", "g").1.is_none());
    assert!(m.lookup("e:39", "g").1.is_some());
}

#[test]
fn one_principal_only_evicts_its_own_answers() {
    let m = Memory::new(1000, 8 << 10);
    let answer = || vec![b'x'; 290];
    m.fill(
        &slot("e:other", "g", "0"),
        "other",
        answer(),
        Duration::from_secs(60),
    );
    // A caller filling with cursors or URI variants.
    for i in 0..100 {
        m.fill(
            &slot(&format!("e:{i}"), "g", "0"),
            "greedy",
            answer(),
            Duration::from_secs(60),
        );
    }
    let (total, held) = m.bytes("greedy");
    assert!(held <= 1 << 10, "{held}");
    assert!(total <= held + 400, "{total}");
    assert!(
        m.lookup("e:other", "g").1.is_some(),
        "another's answer was evicted"
    );
    assert!(m.lookup("e:99", "g").1.is_some());
    assert!(m.lookup("e:0", "g").1.is_none());
    // An answer larger than a share is not kept at all.
    m.fill(
        &slot("e:big", "g", "0"),
        "other",
        vec![b'x'; 2000],
        Duration::from_secs(60),
    );
    assert!(m.lookup("e:big", "g").1.is_none());
}

#[test]
fn a_fill_after_a_change_is_not_kept_even_if_the_generation_reads_as_before() {
    // Many updated URIs: past `max` generations the cache forgets everything (once every
    // generation read `0` again then).
    let m = Memory::new(2, 1 << 20);
    let (gen, _) = m.lookup("e:a", "g:read-a");
    assert_eq!(gen, "0");
    m.bump("g:read-a");
    m.bump("g:read-b");
    m.bump("g:read-c");
    // The answer the child gave to the lookup made before the change arrives now.
    m.fill(
        &slot("e:a", "g:read-a", &gen),
        "p",
        b"0:old".to_vec(),
        Duration::from_secs(60),
    );
    assert!(
        m.lookup("e:a", "g:read-a").1.is_none(),
        "a stale answer came back"
    );
}
