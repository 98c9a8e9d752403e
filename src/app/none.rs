//! `[app] provider = "none"` (the default): pgship deploys the database only. Teams whose CI
//! deploys the app run pgship for the database alone; there is no merge, no push and no host to
//! ask, so the code half's driver ([`super::code::App`]) skips git entirely for this provider
//! and these answers are what the host side has to say.

use super::{AppSettings, CodeState, Events, Host};

/// No host.
pub struct NoHost;

impl Host for NoHost {
    async fn preflight(&self, _: &AppSettings) -> Result<Option<(String, Option<String>)>, String> {
        Ok(None)
    }

    async fn deploy(
        &self,
        _: &AppSettings,
        _: &str,
        _: &mut dyn Events,
    ) -> Result<Option<String>, String> {
        Ok(None)
    }

    async fn restore(
        &self,
        _: &AppSettings,
        _: &CodeState,
        _: &mut dyn Events,
    ) -> Result<bool, String> {
        Ok(false)
    }

    async fn after_revert(
        &self,
        _: &AppSettings,
        _: &str,
        _: bool,
        _: &mut dyn Events,
    ) -> Result<(), String> {
        Ok(())
    }

    async fn current(&self, _: &AppSettings) -> Result<Option<String>, String> {
        Ok(None)
    }
}
