//! Placement groups as the caller sees them: requests to the control
//! service, and the `ready()` object that resolves once a group is created.

use std::sync::Arc;

use oxray_common::{ObjectId, Result};
use oxray_proto::*;

use crate::core::{CoreWorker, Inner};
use crate::objects::{error_object, ObjectKind};

impl Inner {
    fn group_call(&self, body: Body) -> Result<PlacementGroupInfo> {
        match self.block_on(self.daemon.call(body))? {
            Body::PlacementGroupInfo(info) => Ok(info),
            other => Err(crate::core::unexpected(other)),
        }
    }
}

impl CoreWorker {
    /// Registers a placement group; the control service reserves it in
    /// the background.
    pub fn create_placement_group(
        &self,
        request: CreatePlacementGroup,
    ) -> Result<PlacementGroupInfo> {
        self.inner.check_alive()?;
        let request = CreatePlacementGroup {
            owner: self.inner.address.to_string(),
            ..request
        };
        self.inner.group_call(Body::CreatePlacementGroup(request))
    }

    /// A group by id (or by name in `namespace` when `pg_id` is empty).
    pub fn placement_group(
        &self,
        pg_id: &[u8],
        name: &str,
        namespace: &str,
    ) -> Result<PlacementGroupInfo> {
        self.inner.check_alive()?;
        let body = Body::GetPlacementGroup(GetPlacementGroup {
            pg_id: pg_id.to_vec(),
            name: name.into(),
            namespace: namespace.into(),
            wait: false,
        });
        self.inner.group_call(body)
    }

    /// Removes a group: its resources return, its workers end.
    pub fn remove_placement_group(&self, pg_id: &[u8]) -> Result<()> {
        self.inner.check_alive()?;
        let body = Body::RemovePlacementGroup(RemovePlacementGroup {
            pg_id: pg_id.to_vec(),
        });
        self.inner
            .block_on(self.inner.daemon.call(body))
            .map(|_| ())
    }

    /// Every placement group of the cluster.
    pub fn list_placement_groups(&self) -> Result<Vec<PlacementGroupInfo>> {
        self.inner.check_alive()?;
        match self.inner.block_on(
            self.inner
                .daemon
                .call(Body::PlacementGroupList(PlacementGroupList::default())),
        )? {
            Body::PlacementGroupList(l) => Ok(l.groups),
            other => Err(crate::core::unexpected(other)),
        }
    }

    /// An object that becomes `value` once group `pg_id` is created (or an
    /// error if it is removed first); the caller holds one reference.
    pub fn placement_group_ready(&self, pg_id: &[u8], value: Object) -> Result<ObjectId> {
        self.inner.check_alive()?;
        let id = self.new_put_id();
        let inner: &Arc<Inner> = &self.inner;
        inner.refs.add(id, &inner.address, true);
        inner.store.expect(id);
        let call = inner
            .daemon
            .start_call(Body::GetPlacementGroup(GetPlacementGroup {
                pg_id: pg_id.to_vec(),
                wait: true,
                ..Default::default()
            }));
        let me = inner.clone();
        inner.handle.spawn(async move {
            let reply = match call {
                Ok(rx) => rx.await.ok(),
                Err(_) => None,
            };
            let object = match reply {
                Some(Body::PlacementGroupInfo(info)) if info.state == "CREATED" => value,
                Some(Body::PlacementGroupInfo(_)) => error_object(
                    ObjectKind::SystemError,
                    "the placement group was removed before it was ready",
                ),
                Some(Body::ErrorReply(e)) => error_object(ObjectKind::SystemError, e.message),
                _ => error_object(ObjectKind::SystemError, "the oxray daemon is gone"),
            };
            me.fulfil_holding(id, object, true);
        });
        Ok(id)
    }
}
