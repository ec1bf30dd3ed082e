use std::net::SocketAddr;

use anyhow::Context;

pub struct Config {
    pub addr: SocketAddr,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let addr = std::env::var("{{ENV_PREFIX}}_ADDR").unwrap_or_else(|_| "0.0.0.0:8080".into());
        let addr = addr
            .parse()
            .with_context(|| format!("{{ENV_PREFIX}}_ADDR={addr:?} is not a socket address"))?;
        Ok(Self { addr })
    }
}
