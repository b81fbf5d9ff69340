//! TEMP stub (replaced by the real aggregate)
use crate::caller::Caller;
use crate::config::servers::{AggregateSpec, EndpointSpec};
use crate::relay::Relay;
use crate::upstream::stdio::{ChildHandle, ChildOutput};
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub name: String,
    pub relay: Arc<Relay>,
}

#[derive(Debug)]
pub(crate) struct Aggregator {
    _m: watch::Receiver<Arc<[Member]>>,
    _s: AggregateSpec,
    _e: Option<EndpointSpec>,
}
impl Aggregator {
    pub(crate) fn new(
        m: watch::Receiver<Arc<[Member]>>,
        s: AggregateSpec,
        e: Option<EndpointSpec>,
    ) -> Aggregator {
        Aggregator {
            _m: m,
            _s: s,
            _e: e,
        }
    }
}
impl crate::upstream::Launch for Aggregator {
    fn launch(&self, _caller: Option<&Caller>) -> (ChildHandle, ChildOutput) {
        let (h, o, _e) = crate::upstream::stdio::link();
        (h, o)
    }
    fn max_line(&self) -> usize {
        1 << 20
    }
}
