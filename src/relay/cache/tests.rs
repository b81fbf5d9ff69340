use std::time::Duration;

use bytes::Bytes;

use super::memory::Memory;
use super::{param_of, with_id, without_id};
use crate::jsonrpc::{Frame, RawId};

fn request(text: &str) -> Frame {
    Frame::parse(Bytes::from(text.to_owned())).unwrap()
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
    let m = Memory::new(2);
    let (gen, none) = m.lookup("e:a", "g:tools");
    assert!(none.is_none());
    m.fill(
        format!("e:a:{gen}"),
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
        format!("e:a:{gen}"),
        b"0:old".to_vec(),
        Duration::from_secs(60),
    );
    assert!(m.lookup("e:a", "g:tools").1.is_none());
    // Expired answers are not served.
    m.fill(format!("e:b:{new_gen}"), b"0:y".to_vec(), Duration::ZERO);
    assert!(m.lookup("e:b", "g:tools").1.is_none());
}

#[test]
fn memory_is_bounded() {
    let m = Memory::new(2);
    for i in 0..5 {
        m.fill(format!("e:{i}:0"), b"0:x".to_vec(), Duration::from_secs(60));
    }
    let kept = (0..5)
        .filter(|i| m.lookup(&format!("e:{i}"), "g").1.is_some())
        .count();
    assert_eq!(kept, 2);
}
