//! Consumer groups: being built (issue #5). Until then every group request is refused with an
//! explicit error.

use std::rc::Rc;

use schema::wire::{ErrorCode, RequestBodyOwned, ResponseBodyOwned};

use crate::shard::Shard;

/// Answers a group request.
pub async fn handle(_shard: &Rc<Shard>, _body: RequestBodyOwned) -> ResponseBodyOwned {
    ResponseBodyOwned::Heartbeat {
        error: ErrorCode::Internal,
        message: "consumer groups are not built yet".to_string(),
    }
}
