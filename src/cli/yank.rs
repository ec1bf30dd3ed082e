//! `ggen-p2p yank NAME@VERSION`: sign a yank of one of your versions.

use anyhow::Result;

use super::{Backend, Output};
use crate::registry::{Registry, YankRequest};

pub async fn run(backend: &Backend, request: YankRequest, out: &Output) -> Result<()> {
    if semver::Version::parse(&request.spec.req).is_err() {
        let spec = &request.spec;
        let message = if spec.req.is_empty() {
            format!("yank needs an exact version, and \"{spec}\" names none")
        } else {
            format!("yank needs an exact version, and {:?} is not one", spec.req)
        };
        return Err(super::error::usage(
            message,
            format!("example: ggen-p2p yank {}@1.2.0", spec.name),
        ));
    }
    let report = backend.yank(request).await?;
    if out.json {
        return Ok(out.json(&report)?);
    }
    out.line(format!(
        "yanked {}@{}: hidden from new installs, still fetchable by exact version",
        report.name, report.version
    ))?;
    Ok(())
}
