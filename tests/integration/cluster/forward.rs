//! Forwarding: requests for another node's session reach the owner and are answered there.

use super::*;

#[tokio::test]
async fn sessions_are_tagged_with_the_node_that_minted_them() {
    let fleet = Fleet::start(3, |_| vec![], &[]);
    for i in 0..3 {
        let mut c = Client::new(&fleet.url(i));
        c.initialize(VERSION).await;
        let id = c.session.clone().unwrap();
        assert_eq!(node_of(&id), Fleet::node(i), "{id}");
        let (status, _, answer) = echo(&c, 1, "hi").await;
        assert_eq!(status, 200);
        assert_eq!(answer["text"], "hi");
    }
}
